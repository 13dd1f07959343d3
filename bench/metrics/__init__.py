"""Metrics: pure functions of samples. `INFO` (torch-free) tells reports which way is better."""

# name -> (higher_is_better, label). Storage, statistics and reports read this, never model code.
INFO: dict[str, tuple[bool, str]] = {
    "modes_covered": (True, "modes covered"),
    "hq_fraction": (True, "high-quality fraction (within 3 std of a mode)"),
    "mode_kl": (False, "KL(mode histogram || uniform)"),
    "energy_distance": (False, "energy distance to real"),
}
