"""Distances between two sets of feature vectors: FID, KID, improved precision/recall, density/coverage.

Pure functions of feature matrices (numpy arrays or torch tensors, [N, D]); which network produced
the features is the caller's business (`bench.metrics.evaluator`). With features from a classifier
trained on the dataset itself these are *not* Inception FID/KID and are not comparable with
published Inception numbers; results name their evaluator in a separate column.

- `fid`: ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^{1/2}) (Heusel et al. 2017), in float64; the
  trace of the square root is computed as the sum of the square roots of the eigenvalues of the
  symmetric PSD matrix S_r^{1/2} S_g S_r^{1/2}, which has the same spectrum as S_r S_g (no complex
  parts to discard, unlike `scipy.linalg.sqrtm`).
- `kid`: unbiased MMD^2 with the kernel (x.y/d + 1)^3 (Binkowski et al. 2018), averaged over random
  subsets (the mean and the standard deviation across subsets, as in torchmetrics / the paper's code).
- `precision_recall` (Kynkaanniemi et al. 2019, k = 3) and `density_coverage` (Naeem et al. 2020,
  k = 5): k-NN balls, each point's radius being the distance to its k-th nearest neighbour within
  its own set, the point itself excluded. `manifold_metrics` gives all four from one pass over the
  real x fake distances and accepts precomputed real radii (they depend on the real set only and
  are cached with the real statistics).

Distances are computed in float32 in row chunks (squared distances via one matrix product per
chunk), so 10,000 x 10,000 sets fit in a few hundred MB and take about a second on two cores.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]
CHUNK = 2048  # rows of the distance matrix computed at once (CHUNK x N float32)


def _np64(x: Array) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _t(x: Array, dtype=torch.float32, device=None) -> torch.Tensor:
    """A contiguous tensor on `device` (default: where x already is; numpy arrays: the CPU)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    return x.detach().to(device if device is not None else x.device, dtype).contiguous()


# ----------------------------------------------------------------------------- FID
def feature_stats(f: Array) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of features [N, D] in float64; covariance with the N - 1 denominator."""
    f = _np64(f)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need a [N >= 2, D] feature matrix, got shape {f.shape}")
    mu = f.mean(axis=0)
    c = f - mu
    return mu, (c.T @ c) / (len(f) - 1)


def _sqrtm_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(s1: Array, s2: Array) -> float:
    """Tr((S1 S2)^{1/2}) for symmetric PSD S1, S2: sum of sqrt(eigenvalues of S1^{1/2} S2 S1^{1/2})."""
    a = _sqrtm_psd(_np64(s1))
    m = a @ _np64(s2) @ a
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w, 0, None)).sum())


def fid(mu1: Array, s1: Array, mu2: Array, s2: Array) -> float:
    """Frechet distance between N(mu1, S1) and N(mu2, S2)."""
    mu1, mu2, s1, s2 = _np64(mu1), _np64(mu2), _np64(s1), _np64(s2)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))


def fid_from_features(f1: Array, f2: Array) -> float:
    return fid(*feature_stats(f1), *feature_stats(f2))


# ----------------------------------------------------------------------------- KID
def kid_subsets(n_real: int, n_fake: int, subsets: int = 100, subset_size: int = 1000,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The subset indices `kid` uses: ([subsets, m] into real, [subsets, m] into fake), m capped at
    the smaller set; drawn without replacement within a subset from a generator seeded with `seed`."""
    m = min(subset_size, n_real, n_fake)
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    g = torch.Generator().manual_seed(seed)
    ir = torch.stack([torch.randperm(n_real, generator=g)[:m] for _ in range(subsets)])
    ifake = torch.stack([torch.randperm(n_fake, generator=g)[:m] for _ in range(subsets)])
    return ir, ifake


def _poly_kernel_sums(a: torch.Tensor, b: torch.Tensor, d: int, same: bool) -> float:
    """sum of (a.b/d + 1)^3 over all pairs (excluding the diagonal when a is b), in float64."""
    k = torch.addmm(torch.ones((), dtype=a.dtype, device=a.device), a, b.T, beta=1.0, alpha=1.0 / d).pow_(3)
    s = k.sum(dtype=torch.float64)
    if same:
        s = s - torch.diagonal(k).sum(dtype=torch.float64)
    return float(s)


def kid(f_real: Array, f_fake: Array, subsets: int = 100, subset_size: int = 1000, seed: int = 0,
        real_xx: Optional[Sequence[float]] = None) -> tuple[float, float]:
    """KID: (mean, std over subsets) of the unbiased MMD^2 with the cubic polynomial kernel; the std is
    NaN when the subsets cannot differ (subset_size >= both set sizes).

    `real_xx` optionally holds, per subset, the real-real kernel sum (off-diagonal) for the same
    (n_real, n_fake, subsets, subset_size, seed): it depends on the real features only and can be
    cached with them (`kid_real_terms`). Computed on the device of f_fake."""
    xf = _t(f_fake)
    xr = _t(f_real, device=xf.device)
    if xr.shape[1] != xf.shape[1]:
        raise ValueError(f"feature sizes differ: {xr.shape[1]} vs {xf.shape[1]}")
    d = xr.shape[1]
    ir, ifk = kid_subsets(len(xr), len(xf), subsets, subset_size, seed)
    m = ir.shape[1]
    if real_xx is not None and len(real_xx) != subsets:
        raise ValueError(f"real_xx has {len(real_xx)} entries for {subsets} subsets")
    vals = np.empty(subsets)
    for s in range(subsets):
        a, b = xr[ir[s]], xf[ifk[s]]
        kxx = real_xx[s] if real_xx is not None else _poly_kernel_sums(a, a, d, True)
        kyy = _poly_kernel_sums(b, b, d, True)
        kxy = _poly_kernel_sums(a, b, d, False)
        vals[s] = (kxx + kyy) / (m * (m - 1)) - 2.0 * kxy / (m * m)
    # When a subset is as large as both sets, every subset is the same pair of sets: their "std" is float
    # rounding (1e-14), not a spread, so NaN is returned instead.
    return float(vals.mean()), math.nan if m == len(xr) == len(xf) else float(vals.std())


def kid_real_terms(f_real: Array, n_fake: int, subsets: int = 100, subset_size: int = 1000,
                   seed: int = 0) -> list[float]:
    """The per-subset real-real kernel sums `kid(..., real_xx=...)` accepts."""
    xr = _t(f_real)
    ir, _ = kid_subsets(len(xr), n_fake, subsets, subset_size, seed)
    return [_poly_kernel_sums(xr[i], xr[i], xr.shape[1], True) for i in ir]


# ----------------------------------------------------------------------------- k-NN manifolds
def _sqdist(a: torch.Tensor, b: torch.Tensor, a2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances [len(a), len(b)], clamped at 0."""
    return torch.addmm(a2[:, None] + b2[None, :], a, b.T, beta=1.0, alpha=-2.0).clamp_(min=0)


def knn_radii(f: Array, ks: Union[int, Sequence[int]] = 3, chunk: int = CHUNK) -> Union[torch.Tensor, dict]:
    """Distance from each point to its k-th nearest neighbour in the same set, itself excluded.
    `ks` an int -> a float32 tensor [N]; a list -> {k: tensor}. One pass serves several k."""
    x = _t(f)
    single = isinstance(ks, int)
    klist = [ks] if single else sorted(set(int(k) for k in ks))
    kmax = klist[-1]
    if kmax >= len(x):
        raise ValueError(f"k = {kmax} needs more than {kmax} points, got {len(x)}")
    x2 = (x * x).sum(1)
    out = {k: torch.empty(len(x), device=x.device) for k in klist}
    for i in range(0, len(x), chunk):
        d2 = _sqdist(x[i:i + chunk], x, x2[i:i + chunk], x2)
        # the point itself is (numerically about) the nearest: take the (k+1)-th smallest
        kth = torch.topk(d2, kmax + 1, dim=1, largest=False, sorted=True).values
        for k in klist:
            out[k][i:i + chunk] = kth[:, k].sqrt()
    return out[ks] if single else out


def manifold_metrics(f_real: Array, f_fake: Array, k_pr: int = 3, k_dc: int = 5,
                     real_radii: Optional[dict] = None, chunk: int = CHUNK, pr: bool = True) -> dict:
    """precision, recall (k_pr) and density, coverage (k_dc) from one pass over real x fake.

    precision: fraction of fakes inside at least one real k_pr-ball; recall: fraction of reals inside
    at least one fake k_pr-ball; density: (1 / (k_dc M)) sum over fakes of the number of real
    k_dc-balls containing it; coverage: fraction of reals whose k_dc-ball contains at least one fake.
    `real_radii`: {k: radii} from `knn_radii(f_real, [k_pr, k_dc])`, computed when absent.
    `pr=False` skips precision/recall (and the fake x fake pass that recall needs).
    Computed on the device of f_fake."""
    xf = _t(f_fake)
    xr = _t(f_real, device=xf.device)
    if xr.shape[1] != xf.shape[1]:
        raise ValueError(f"feature sizes differ: {xr.shape[1]} vs {xf.shape[1]}")
    if real_radii is None or k_pr not in real_radii or k_dc not in real_radii:
        real_radii = knn_radii(xr, [k_pr, k_dc], chunk)
    r_pr2 = real_radii[k_pr].to(xf.device, torch.float32).pow(2)
    r_dc2 = real_radii[k_dc].to(xf.device, torch.float32).pow(2)
    f_pr2 = knn_radii(xf, k_pr, chunk).pow(2) if pr else None
    xr2, xf2 = (xr * xr).sum(1), (xf * xf).sum(1)
    dev = xf.device
    in_real = torch.zeros(len(xf), dtype=torch.bool, device=dev)        # precision
    n_balls = torch.zeros(len(xf), dtype=torch.float64, device=dev)      # density
    recalled = torch.empty(len(xr), dtype=torch.bool, device=dev)
    covered = torch.empty(len(xr), dtype=torch.bool, device=dev)
    for i in range(0, len(xr), chunk):
        d2 = _sqdist(xr[i:i + chunk], xf, xr2[i:i + chunk], xf2)     # [c, M]
        if pr:
            in_real |= (d2 <= r_pr2[i:i + chunk, None]).any(0)
            recalled[i:i + chunk] = (d2 <= f_pr2[None, :]).any(1)
        in_dc = d2 <= r_dc2[i:i + chunk, None]
        n_balls += in_dc.sum(0, dtype=torch.float64)
        covered[i:i + chunk] = in_dc.any(1)
    out = {"density": float(n_balls.sum() / (k_dc * len(xf))), "coverage": float(covered.double().mean())}
    if pr:
        out = {"precision": float(in_real.double().mean()), "recall": float(recalled.double().mean()), **out}
    return out


def precision_recall(f_real: Array, f_fake: Array, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019)."""
    m = manifold_metrics(f_real, f_fake, k_pr=k, k_dc=k)
    return m["precision"], m["recall"]


def density_coverage(f_real: Array, f_fake: Array, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020)."""
    m = manifold_metrics(f_real, f_fake, k_pr=k, k_dc=k, pr=False)
    return m["density"], m["coverage"]


__all__ = ["feature_stats", "fid", "fid_from_features", "trace_sqrt_product", "kid", "kid_subsets",
           "kid_real_terms", "knn_radii", "manifold_metrics", "precision_recall", "density_coverage"]
