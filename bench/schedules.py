"""The lens weight lambda(t) as plain functions of the step t (Sajjadi et al. 2018)."""

import math


def sine(t: int, K: int, lam: float = 1.0) -> float:
    """lam * (1 - sin(t*pi / 2K)) for t <= K, then 0: the paper's schedule."""
    return lam * (1.0 - math.sin(t * math.pi / (2 * K))) if t < K else 0.0


def linear(t: int, K: int, lam: float = 1.0) -> float:
    return lam * (1.0 - t / K) if t < K else 0.0


def constant(t: int, K: int, lam: float = 1.0) -> float:
    return lam


def none(t: int, K: int, lam: float = 1.0) -> float:
    """The lens only learns to reconstruct (lambda = 0): a control for the lens' capacity alone."""
    return 0.0


def lam(schedule: str, t: int, K: int, lam: float = 1.0) -> float:
    """lambda(t) of the schedule registered under that name (bench.registry)."""
    from bench import registry

    return registry.get("schedule", schedule)(t, K, lam)
