"""Metrics: pure functions of samples. `INFO` (torch-free) tells reports which way is better."""

import math

# name -> (higher_is_better, label). Storage, statistics and reports read this, never model code.
INFO: dict[str, tuple[bool, str]] = {
    "modes_covered": (True, "modes covered"),
    "hq_fraction": (True, "high-quality fraction (within 3 std of a mode)"),
    "mode_kl": (False, "KL(mode histogram || uniform)"),
    "energy_distance": (False, "energy distance to real"),
    # image metrics (bench.metrics.images), in the feature space of the dataset's own classifier named
    # in the row's `evaluator` column (e.g. "fmnist-lenet"): NOT Inception FID/KID, not comparable
    # with published numbers nor across evaluators
    "fid": (False, "FID (evaluator features, not Inception)"),
    "kid_mean": (False, "KID (evaluator features, not Inception)"),
    "kid_std": (False, "KID std across subsets"),
    "precision": (True, "precision (k-NN, k=3)"),
    "recall": (True, "recall (k-NN, k=3)"),
    "density": (True, "density (k-NN, k=5; 1 = real-like)"),
    "coverage": (True, "coverage (k-NN, k=5)"),
    # encoder-decoder structures (bench.structures.edgan): outputs vs targets on a fixed test subset,
    # images in [0, 1] scale; swap_accuracy (caae) = the evaluator's accuracy for the swapped label
    "l1": (False, "L1 to the target ([0, 1] scale)"),
    "psnr": (True, "PSNR to the target (dB)"),
    "swap_accuracy": (True, "label-swapped outputs classified as the swapped label"),
    # conditional and code-controlled structures (bench.structures.cgan, .infogan; bench.metrics.conditional):
    # evaluator classes of conditional samples vs the class asked for; D's class head on test images (ACGAN);
    # agreement of InfoGAN's categorical code with the evaluator's classes (best one-to-one map; NMI)
    "class_accuracy": (True, "conditional samples classified as their class (evaluator)"),
    "class_fid": (False, "per-class FID, mean over classes (evaluator features)"),
    "d_class_accuracy": (True, "D's class head accuracy on test images (ACGAN, SGAN)"),
    "code_accuracy": (True, "categorical code vs evaluator class: best-permutation accuracy"),
    "code_nmi": (True, "categorical code vs evaluator class: normalized mutual information"),
    # encoder GANs (bench.structures.age, .ali; bench.metrics.encoders): reconstructions G(E(x)) of test
    # images are scored by `l1` / `psnr` above; the codes E(x) by their divergence to AGE's sphere prior,
    # the evaluator's accuracy on reconstructions, a linear probe's test accuracy on E(x)
    "code_kl": (False, "KL of E(x)'s fitted Gaussian to the sphere prior (AGE)"),
    "rec_accuracy": (True, "reconstructions G(E(x)) classified as their image's class (evaluator)"),
    "probe_accuracy": (True, "linear probe (logistic regression) on E(x): test accuracy"),
    # optional, only with a local Inception weights file ($GANBENCH_INCEPTION_WEIGHTS)
    "inception_fid": (False, "Inception FID"),
    "inception_kid_mean": (False, "Inception KID"),
    "inception_kid_std": (False, "Inception KID std across subsets"),
}

# The values each metric can take, for intervals that stay inside them and for the scale a spread is read on
# (bench.stats.scales): name -> (lower bound, upper bound, strictly positive). None = unbounded; "modes" = the
# dataset's number of modes (N_MODES). Strictly positive = never 0 for a generator that differs from the data
# at all, so a log scale is defined; a squared distance's unbiased estimate (energy distance, KID) can dip below 0
# by sampling noise, so its lower bound 0 holds for the true value, not for every estimate.
BOUNDS: dict[str, tuple[float | None, float | str | None, bool]] = {
    "modes_covered": (0, "modes", False),
    "hq_fraction": (0, 1, False),
    "mode_kl": (0, None, False),
    "energy_distance": (0, None, False),
    "fid": (0, None, True),
    "kid_mean": (0, None, False),
    "kid_std": (0, None, False),
    "precision": (0, 1, False),
    "recall": (0, 1, False),
    "density": (0, None, False),
    "coverage": (0, 1, False),
    "l1": (0, 1, True),
    "psnr": (None, None, False),  # dB: already a log scale; its spread is read as is
    "swap_accuracy": (0, 1, False),
    "class_accuracy": (0, 1, False),
    "class_fid": (0, None, True),
    "d_class_accuracy": (0, 1, False),
    "code_accuracy": (0, 1, False),
    "code_nmi": (0, 1, False),
    "code_kl": (0, None, False),
    "rec_accuracy": (0, 1, False),
    "probe_accuracy": (0, 1, False),
    "inception_fid": (0, None, True),
    "inception_kid_mean": (0, None, False),
    "inception_kid_std": (0, None, False),
}
# modes of the toy mixtures; classes of the labelled image datasets (modes_covered counts evaluator classes)
N_MODES = {"ring8": 8, "grid25": 25, "fashion_mnist": 10, "mnist": 10, "cifar10": 10}
SCALES = ("absolute", "relative", "log")


def bounds(metric: str, dataset: str | None = None) -> tuple[float, float]:
    """(lower, upper) bound of a metric's values on a dataset; -inf / inf where unbounded or unknown."""
    lo, hi, _ = BOUNDS.get(metric, (None, None, False))
    if hi == "modes":
        hi = N_MODES.get(dataset)
    return (-math.inf if lo is None else float(lo)), (math.inf if hi is None else float(hi))


def default_scale(metric: str) -> str:
    """The scale a spread of `metric` is judged on unless a question says otherwise: relative (the spread over
    the mean: a std that falls with the mean is not more robust) for non-negative unbounded metrics; absolute
    for metrics with a fixed range (proportions, modes) and for signed ones."""
    lo, hi, _ = BOUNDS.get(metric, (None, None, False))
    return "relative" if lo == 0 and hi is None else "absolute"


def scale_error(metric: str, scale: str) -> str | None:
    """Why `scale` cannot be used for `metric` (None when it can)."""
    if scale not in SCALES:
        return f"unknown scale '{scale}' (one of {', '.join(SCALES)})"
    lo, _, positive = BOUNDS.get(metric, (None, None, False))
    if scale == "log" and not positive:
        return f"a log scale needs a strictly positive metric; {metric} can be zero or negative"
    if scale == "relative" and lo is None:
        return f"a relative scale (spread / mean) needs a non-negative metric; {metric} can be negative"
    return None

# What a trial records, by its data and structure (final.* columns with a value): the toys' mode and distance
# metrics; the image metrics (evaluator features) on images; plus each structure's own.
TOY_METRICS = ("modes_covered", "hq_fraction", "mode_kl", "energy_distance")
IMAGE_METRICS = ("modes_covered", "mode_kl", "fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage")
OWN_METRICS = {"ed+gan": ("l1", "psnr"), "ed+gan2": ("l1", "psnr"), "ed//gan": ("l1", "psnr"),
               "cgan": ("class_accuracy", "class_fid"), "acgan": ("class_accuracy", "class_fid", "d_class_accuracy"),
               "infogan": ("code_accuracy", "code_nmi"), "sgan": ("d_class_accuracy",),
               "ali": ("l1", "psnr", "rec_accuracy", "probe_accuracy"), "age": ("l1", "psnr", "code_kl")}
TOY_DATASETS = ("ring8", "grid25")


def recorded(structure: str, dataset: str, task: str | None = None) -> tuple[str, ...]:
    """The metrics a trial of this structure on this dataset records (Inception metrics only with local weights)."""
    base = TOY_METRICS if dataset in TOY_DATASETS else IMAGE_METRICS
    own = OWN_METRICS.get(structure, ())
    return base + own + (("swap_accuracy",) if task == "caae" else ())
