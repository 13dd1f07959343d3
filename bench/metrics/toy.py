"""Metrics for the 2-D mixtures, as in VEEGAN / PacGAN: each sample is assigned to its nearest mode;
it is high quality when within 3 std of it; a mode is covered when it received at least
`min_fraction` of the high-quality samples it would get under perfect uniform coverage
(10 % by default: 31 of 2500 samples on the ring of 8, 10 on the grid of 25)."""

import math

import torch
from torch import Tensor


def mixture_modes(fake: Tensor, modes: Tensor, std: float, min_fraction: float = 0.1) -> dict:
    dist = torch.cdist(fake.double(), modes.double())
    dmin, nearest = dist.min(dim=1)
    hq = dmin <= 3 * std
    K, n = len(modes), len(fake)
    counts = torch.bincount(nearest[hq], minlength=K).double()
    covered = int((counts >= min_fraction * n / K).sum())
    total = counts.sum()
    if total > 0:  # KL(p || uniform) over high-quality samples; undefined (NaN) when there are none
        p = counts / total
        kl = float((p[p > 0] * (p[p > 0] * K).log()).sum())
    else:
        kl = math.nan
    return {"modes_covered": covered, "hq_fraction": float(hq.double().mean()), "mode_kl": kl}


def mean_self_distance(y: Tensor) -> Tensor:
    """E|Y-Y'| over distinct pairs (float64): the real side of the energy distance, the same at every
    evaluation of a trial (its real sample is fixed), so the caller may compute it once."""
    y = y.double()
    return torch.cdist(y, y).sum() / (len(y) * (len(y) - 1))


def energy_distance(x: Tensor, y: Tensor, eyy: Tensor | None = None) -> float:
    """Squared energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| (unbiased within-sample means)."""
    x, y = x.double(), y.double()
    exy = torch.cdist(x, y).mean()
    exx = mean_self_distance(x)
    eyy = mean_self_distance(y) if eyy is None else eyy
    return float(2 * exy - exx - eyy)


def toy_metrics(fake: Tensor, real: Tensor, modes: Tensor, std: float, eyy: Tensor | None = None) -> dict:
    finite = torch.isfinite(fake).all(dim=1)
    if not bool(finite.all()):
        raise FloatingPointError("generated samples contain NaN/Inf")
    return {**mixture_modes(fake, modes, std), "energy_distance": energy_distance(fake, real, eyy)}
