"""A loss weight lambda(t) as plain functions of the step t, schedule(t, K, lam): the lens weight (Sajjadi et al.
2018: sine, linear, constant, none anneal lam to 0 over the horizon K) and DANN's adaptation weight (Ganin et al.
2016: dann ramps 0 up to lam); any structure may use any of them for a weight of its own."""

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


def dann(t: int, K: int, lam: float = 1.0, gamma: float = 10.0) -> float:
    """Ganin et al. 2016's adaptation weight: lam * (2 / (1 + exp(-gamma p)) - 1), p = t / K the training progress
    in [0, 1] (K: the run's steps); 0 at the start, lam * 0.987 at the end for gamma = 10."""
    return lam * (2.0 / (1.0 + math.exp(-gamma * min(t / K, 1.0))) - 1.0)


def lam(schedule: str, t: int, K: int, lam: float = 1.0) -> float:
    """lambda(t) of the schedule registered under that name (bench.registry)."""
    from bench import registry

    return registry.get("schedule", schedule)(t, K, lam)
