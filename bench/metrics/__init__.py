"""Metrics: pure functions of samples. `INFO` (torch-free) tells reports which way is better."""

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
