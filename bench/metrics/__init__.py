"""Metrics: pure functions of samples. `INFO` (torch-free) tells reports which way is better."""

import math
from dataclasses import dataclass

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

# ----------------------------------------------------------------------------- derived convergence metrics
# Convergence speed (issue 23 item 2) as per-trial metrics, named `<kind>:<metric>` after a recorded metric:
#   auc:<m>                       the normalised area under the learning curve of <m> (trapezoids over the evaluated
#                                 steps / the span of steps: the run's mean level over training); same direction,
#                                 bounds and default scale as <m>
#   steps_to_within:<m>[@<frac>]  the first evaluated step at which <m> is within <frac> (default 0.1: 10 %) of the
#                                 run's own best, |v - best| <= frac * |best|; lower is better, >= 0, relative scale.
#                                 Measured on the evaluation grid (train.eval_every): a discrete value, a multiple
#                                 of eval_every, never finer. The band is relative to the best: for a best near 0
#                                 (an energy distance estimate can dip to 0 or below) it is narrow, close to the
#                                 step of the best itself
# They are not recorded by a trial: the report computes them from curves.parquet (bench.stats.convergence.
# derived_columns) into `final.<name>` columns, for the names a study's `question:` block uses, so the question,
# its statistics and the leaderboard read them like any final metric. A diverged or failed run, or one without a
# finite evaluation, has no value (NaN, like its final.<m>): it counts as a failure, never as fast. A question may
# name them (metric, co_primary, secondary, scale keys); sweep.retrain.metric may not (stage 2 ranks the points
# while the study runs, from the recorded finals), nor may an optuna sweep.metric (the trials report recorded ones).
# INFO and BOUNDS list the recorded metrics (iteration, keys, items: only those); a derived name is found on lookup
# (`in`, [], get), its entry made from its base metric's.
DERIVED_KINDS = {"auc": "normalised area under the learning curve of <metric>: its mean level over training "
                        "(same direction as <metric>)",
                 "steps_to_within": "steps to come within <frac> (default 0.1) of the run's own best <metric>, on the "
                                    "evaluation grid (lower is better)"}
WITHIN = 0.1  # steps_to_within's default fraction of the run's own best


@dataclass(frozen=True)
class Derived:
    """A derived convergence metric: `kind` (auc, steps_to_within) of the recorded metric `base`."""
    name: str
    kind: str
    base: str
    within: float = WITHIN


def _parse_derived(name) -> tuple[Derived | None, str | None]:
    if not isinstance(name, str) or ":" not in name:
        return None, f"'{name}' is not a derived metric (<kind>:<metric>)"
    kind, rest = name.split(":", 1)
    if kind not in DERIVED_KINDS:
        return None, (f"unknown derived metric kind '{kind}' in '{name}' (derived metrics: auc:<metric>, "
                      f"steps_to_within:<metric>[@<fraction>])")
    base, at, frac = rest.partition("@")
    if not dict.__contains__(INFO, base):
        return None, f"unknown base metric '{base}' in '{name}' (known: {', '.join(INFO)})"
    within = WITHIN
    if at:
        if kind != "steps_to_within":
            return None, f"'{name}': a @<fraction> is for steps_to_within only"
        try:
            within = float(frac)
        except ValueError:
            within = math.nan
        if not 0 < within <= 1:
            return None, f"'{name}': the fraction after @ must be a number in (0, 1], e.g. @0.05 for 5 %"
    return Derived(name, kind, base, within), None


def derived(name) -> Derived | None:
    """The derived convergence metric `name` names (`auc:fid`, `steps_to_within:energy_distance@0.05`), else None."""
    return _parse_derived(name)[0]


def derived_error(name) -> str | None:
    """Why `name`, written as a derived metric (it has a ':'), is not one; None when it is."""
    return _parse_derived(name)[1]


def _derived_info(d: Derived, base: tuple[bool, str]) -> tuple[bool, str]:
    if d.kind == "auc":
        return base[0], f"normalised area under the learning curve of {base[1]} ({d.name})"
    return False, (f"steps to come within {d.within * 100:g} % of the run's own best {base[1]} ({d.name}; on the "
                   "evaluation grid)")


def _derived_bounds(d: Derived, base: tuple) -> tuple:
    # the area over the steps, divided by their span, is a mean of the metric's values: the metric's own range
    return base if d.kind == "auc" else (0, None, False)


class _WithDerived(dict):
    """A table of the recorded metrics (its keys, iteration and items) that also answers for a derived convergence
    metric's name on lookup (`in`, [], get), with an entry made from its base metric's."""

    def __init__(self, table: dict, make):
        super().__init__(table)
        self._make = make

    def __missing__(self, key):
        d = derived(key)
        if d is None or not dict.__contains__(self, d.base):
            raise KeyError(key)
        return self._make(d, dict.__getitem__(self, d.base))

    def __contains__(self, key) -> bool:
        return dict.__contains__(self, key) or derived(key) is not None

    def get(self, key, default=None):
        try:
            return self[key]
        except (KeyError, TypeError):
            return default


# recorded values that describe a run's state rather than its quality (e.g. the Dirac GAN's theta and psi): in the
# curves for the sections that draw them, never ranked, summarised or tested as a metric (`"diagnostic": true`)
DIAGNOSTIC: set[str] = set()


def _declared_metrics() -> None:
    """Metrics a structure declares that nothing above lists (bench.catalog's `new_metrics`): direction, label, range."""
    from bench import catalog

    for s in catalog.catalog().values():
        for name, m in s.new_metrics.items():
            if name in INFO:
                continue
            INFO[name] = (bool(m.get("higher_is_better", False)), str(m.get("label", name)))
            if m.get("diagnostic"):
                DIAGNOSTIC.add(name)
            lo, hi = (list(m.get("range", [None, None])) + [None, None])[:2]
            BOUNDS[name] = (lo, hi, bool(m.get("positive", False)))


_declared_metrics()
INFO = _WithDerived(INFO, _derived_info)
BOUNDS = _WithDerived(BOUNDS, _derived_bounds)


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
INCEPTION_METRICS = ("inception_fid", "inception_kid_mean", "inception_kid_std")
# generator weight averaging (train.ema): every sample metric also scored on the averaged generator, in the same row
EMA = "_ema"
for _m in dict.fromkeys(TOY_METRICS + IMAGE_METRICS + INCEPTION_METRICS):
    dict.__setitem__(INFO, _m + EMA, (INFO[_m][0], INFO[_m][1] + " of the averaged generator (train.ema)"))
    dict.__setitem__(BOUNDS, _m + EMA, BOUNDS[_m])
def _own_metrics() -> dict[str, tuple[str, ...]]:
    from bench import catalog

    return {name: s.metrics + tuple(m for m in s.new_metrics if m not in s.metrics)
            for name, s in catalog.catalog().items()}


OWN_METRICS = _own_metrics()  # each structure's own metrics, as its DECLARE lists them (bench.catalog)
TOY_DATASETS = ("ring8", "grid25")


def recorded(structure: str, dataset: str, task: str | None = None, ema: bool = False) -> tuple[str, ...]:
    """The metrics a trial of this structure on this dataset records (Inception metrics only with local weights);
    `ema`: with train.ema set, each sample metric of the averaged generator too (<metric>_ema)."""
    from bench import catalog
    from bench.registry import POINT_DATASETS

    declared = catalog.catalog().get(structure)
    no_samples = declared is not None and not declared.samples
    base = () if dataset in POINT_DATASETS or no_samples else TOY_METRICS if dataset in TOY_DATASETS else IMAGE_METRICS
    own = OWN_METRICS.get(structure, ())
    return base + own + (("swap_accuracy",) if task == "caae" else ()) + (tuple(m + EMA for m in base) if ema else ())
