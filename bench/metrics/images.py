"""Image metrics: FID, KID, precision/recall, density/coverage in a dataset's *evaluator* feature
space, and mode coverage from the evaluator's predicted classes.

**Not Inception FID.** The features come from `bench.metrics.evaluator` (a small classifier trained
on the dataset itself). Results carry the evaluator in separate columns (`Evaluator.columns()`:
`evaluator` = e.g. "fmnist-lenet", `evaluator_id` = name@weights-hash); the numbers are comparable
only between rows with the same `evaluator_id`, never with published Inception FIDs.

`image_metrics(evaluator, data, fake, split="test")` -> dict:
- `fid`: against the real split's mean/covariance over the *whole* split (e.g. all 10,000 test images);
- `kid_mean`, `kid_std`: 100 subsets of min(1000, n) (mean and std across subsets; with n <= 1000
  every subset is the whole set, and kid_std is NaN: there is no spread to report);
- `precision`, `recall` (k = 3), `density`, `coverage` (k = 5): against a fixed random subset of the
  real split as large as the generated set (capped at the split size);
- class-structured data only (num_classes > 0): `modes_covered` — the number of classes (1000 modes
  for stacked data) predicted for at least 10 % of the generated samples a uniform generator would
  give each (count >= 0.1 * n / K: 100 of 10,000 on 10 classes; on 1000 modes with n <= 10,000 that
  is at least one sample, the usual stacked-MNIST rule), and `mode_kl` — KL(predicted-class
  histogram || uniform), natural log (0 = all classes equally often; log K = a single class).

The real side (mean, covariance, subset features, its k-NN radii, KID's real-real kernel sums) is
computed once per (evaluator weights, split content, size, settings) and cached in
`cache_dir()/stats/` (atomic writes, a lock) and in memory.

Inception FID/KID (`inception_metrics`) are optional: they need `torch-fidelity` (with or without
`torchmetrics`) and a local weights file named by $GANBENCH_INCEPTION_WEIGHTS (torch-fidelity's
`weights-inception-2015-12-05-6726825d.pth`); nothing is ever downloaded. Otherwise they are skipped
with a reason string, logged once per process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from bench.metrics import fid as F
from bench.cache import cache_dir, cached
from bench.metrics.evaluator import Evaluator

log = logging.getLogger(__name__)

STATS_VERSION = 1
MIN_FRACTION = 0.1
K_PR, K_DC = 3, 5
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000


# ----------------------------------------------------------------------------- pure helpers
def class_modes(classes: Tensor, num_classes: int, min_fraction: float = MIN_FRACTION) -> dict:
    """modes_covered (classes with >= min_fraction * n / K predictions) and mode_kl = KL(p || uniform)."""
    classes = torch.as_tensor(classes).long().reshape(-1)
    n, K = len(classes), int(num_classes)
    counts = torch.bincount(classes, minlength=K).double()
    covered = int((counts >= min_fraction * n / K).sum())
    if n == 0:
        return {"modes_covered": 0, "mode_kl": math.nan}
    p = counts / n
    nz = p > 0
    return {"modes_covered": covered, "mode_kl": float((p[nz] * (p[nz] * K).log()).sum())}


def _split_tensors(data, split: str) -> tuple[Tensor, Tensor]:
    if split == "train":
        return data.train, data.train_labels
    if split == "test":
        return data.test, data.test_labels
    raise ValueError(f"split must be 'train' or 'test', not {split!r}")


_SPLIT_FP: dict = {}


def _split_fingerprint(data, split: str) -> str:
    memo = (data.key, split) if getattr(data, "key", "") else None
    if memo is not None and memo in _SPLIT_FP:
        return _SPLIT_FP[memo]
    x, y = _split_tensors(data, split)
    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps([data.name, list(x.shape)]).encode())
    h.update(x.contiguous().numpy().reshape(-1).view("uint8"))
    h.update(y.to(torch.int64).contiguous().numpy().reshape(-1).view("uint8"))
    out = h.hexdigest()
    if memo is not None:
        _SPLIT_FP[memo] = out
    return out


def _subset_index(n_total: int, n: int, seed: int) -> Tensor:
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def _cached_stats(spec: dict, compute) -> dict:
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]
    if key in _STATS_MEMO:
        return _STATS_MEMO[key]
    name = f"{spec['kind']}-{spec.get('evaluator', '').replace('@', '-')}-{spec['split']}-n{spec['n']}-{key}"
    st = cached(cache_dir() / "stats" / f"{name}.pt", compute)
    _STATS_MEMO[key] = st
    return st


_STATS_MEMO: dict = {}


# ----------------------------------------------------------------------------- real statistics
def real_stats(evaluator: Evaluator, data, split: str = "test", n: Optional[int] = None, seed: int = 0,
               k_pr: int = K_PR, k_dc: int = K_DC, kid_subsets: int = KID_SUBSETS,
               kid_subset_size: int = KID_SUBSET_SIZE) -> dict:
    """The real side of `image_metrics`, cached: mu, sigma (float64, whole split), `features` of a
    seeded subset of n images (float32), their k-NN `radii` {k_pr, k_dc} and `kid_xx` (KID's
    real-real kernel sums when the generated set also has n samples)."""
    x, _ = _split_tensors(data, split)
    n_total = len(x)
    n = n_total if n is None else min(int(n), n_total)
    spec = {"kind": "real", "v": STATS_VERSION, "evaluator": evaluator.id, "data": _split_fingerprint(data, split),
            "split": split, "n": n, "seed": seed, "k": [k_pr, k_dc], "kid": [kid_subsets, kid_subset_size]}

    def compute():
        feats = torch.cat([evaluator.features(data.to_float(x[i:i + 5000])) for i in range(0, n_total, 5000)])
        mu, sigma = F.feature_stats(feats)
        sub = feats[_subset_index(n_total, n, seed)].contiguous()
        radii = F.knn_radii(sub, [k_pr, k_dc])
        kid_xx = F.kid_real_terms(sub, n, kid_subsets, kid_subset_size, seed) if n >= 2 else []
        return {"mu": torch.from_numpy(mu), "sigma": torch.from_numpy(sigma), "features": sub,
                "radii": {int(k): v for k, v in radii.items()}, "kid_xx": torch.tensor(kid_xx, dtype=torch.float64),
                "n_total": n_total}

    return _cached_stats(spec, compute)


# ----------------------------------------------------------------------------- the metrics
def image_metrics(evaluator: Evaluator, data, fake: Tensor, split: str = "test", *, seed: int = 0,
                  k_pr: int = K_PR, k_dc: int = K_DC, kid_subsets: int = KID_SUBSETS,
                  kid_subset_size: int = KID_SUBSET_SIZE, features: Optional[Tensor] = None,
                  logits: Optional[Tensor] = None, device=None) -> dict:
    """Evaluator metrics of generated images `fake` ([N, C, H, W] float in [-1, 1]) against `split`.
    (`features`/`logits`: the evaluator's outputs for `fake` when the caller already has them.)
    KID and the k-NN metrics run on `device` (default: the CPU), the evaluator net where it lives."""
    if features is None or logits is None:
        if not bool(torch.isfinite(fake).all()):
            raise FloatingPointError("generated images contain NaN/Inf")
        features, logits = evaluator.embed(fake)
    if device is not None:
        features = features.to(device)
    n = len(features)
    real = real_stats(evaluator, data, split, n, seed, k_pr, k_dc, kid_subsets, kid_subset_size)
    mu, sigma = F.feature_stats(features)
    out = {"fid": F.fid(real["mu"], real["sigma"], mu, sigma)}
    kid_xx = real["kid_xx"].tolist() if len(real["features"]) == n else None
    out["kid_mean"], out["kid_std"] = F.kid(real["features"], features, kid_subsets, kid_subset_size, seed,
                                            real_xx=kid_xx)
    out.update(F.manifold_metrics(real["features"], features, k_pr, k_dc, real_radii=real["radii"]))
    if data.num_classes:
        out.update(class_modes(evaluator.classes_from_logits(logits), evaluator.num_classes))
    return out


def psnr_l1(out: Tensor, target: Tensor) -> dict:
    """l1 = mean |out - target| and psnr = mean over images of 10 log10(1 / MSE_i), in [0, 1] scale
    (inputs in [-1, 1]; MSE floored at 1e-10)."""
    d = (out.double() - target.double()) / 2
    mse = (d ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return {"l1": float(d.abs().mean()), "psnr": float((10 * torch.log10(1 / mse)).mean())}


# ----------------------------------------------------------------------------- Inception (optional)
INCEPTION_ENV = "GANBENCH_INCEPTION_WEIGHTS"
_LOGGED: set = set()


def inception_status() -> Optional[str]:
    """None when Inception FID/KID can be computed here, else the reason they are skipped."""
    path = os.environ.get(INCEPTION_ENV)
    if not path:
        return (f"inception metrics skipped: ${INCEPTION_ENV} is not set (a local copy of torch-fidelity's "
                "weights-inception-2015-12-05-6726825d.pth; nothing is downloaded)")
    if not Path(path).expanduser().is_file():
        return f"inception metrics skipped: ${INCEPTION_ENV}={path} is not a file"
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        return ("inception metrics skipped: torch-fidelity is not installed "
                "(pip install torchmetrics torch-fidelity)")
    return None


def _inception_net(path: str):
    try:  # torchmetrics' wrapper (stays in eval mode; antialiased resize), else torch-fidelity's own
        from torchmetrics.image.fid import NoTrainInceptionV3

        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                 feature_extractor_weights_path=path)
    except ImportError:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=path)
    return net.eval()


_INCEPTION: dict = {}


@torch.no_grad()
def inception_features(images_uint8: Tensor, batch: int = 100, device=None) -> Tensor:
    """2048-d pool features of uint8 [N, C, H, W] images (grey images repeated to 3 channels)."""
    path = str(Path(os.environ[INCEPTION_ENV]).expanduser())
    if path not in _INCEPTION:
        _INCEPTION[path] = _inception_net(path)
    net = _INCEPTION[path]
    dev = torch.device(device) if device is not None else next(net.parameters()).device
    net.to(dev)
    out = []
    for i in range(0, len(images_uint8), batch):
        b = images_uint8[i:i + batch].to(dev)
        if b.shape[1] == 1:
            b = b.repeat(1, 3, 1, 1)
        f = net(b)
        out.append((f[0] if isinstance(f, tuple) else f).reshape(len(b), -1).double().cpu())
    return torch.cat(out)


def to_uint8(x: Tensor) -> Tensor:
    """float in [-1, 1] -> uint8 0..255 (as the real images are stored)."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def inception_metrics(data, fake: Tensor, split: str = "test", n_real: Optional[int] = None, seed: int = 0,
                      device=None) -> tuple[dict, Optional[str]]:
    """({'inception_fid', 'inception_kid_mean', 'inception_kid_std'}, None), or ({}, reason) when the
    Inception path is unavailable (the reason is logged once per process). Slow on a CPU: Inception v3
    at 299x299 costs about 6 GFLOPs per image."""
    reason = inception_status()
    if reason is not None:
        if reason not in _LOGGED:
            _LOGGED.add(reason)
            log.warning(reason)
        return {}, reason
    path = Path(os.environ[INCEPTION_ENV]).expanduser()
    st = path.stat()
    x, _ = _split_tensors(data, split)
    n_total = len(x)
    n = n_total if n_real is None else min(int(n_real), n_total)
    spec = {"kind": "inception", "v": STATS_VERSION, "evaluator": f"inception-{st.st_size}-{st.st_mtime_ns}",
            "data": _split_fingerprint(data, split), "split": split, "n": n, "seed": seed}

    def compute():
        feats = inception_features(x[_subset_index(n_total, n, seed)], device=device)
        mu, sigma = F.feature_stats(feats)
        return {"mu": torch.from_numpy(mu), "sigma": torch.from_numpy(sigma), "features": feats.float()}

    real = _cached_stats(spec, compute)
    ff = inception_features(to_uint8(fake), device=device)
    mu, sigma = F.feature_stats(ff)
    km, ks = F.kid(real["features"], ff, KID_SUBSETS, KID_SUBSET_SIZE, seed)
    return {"inception_fid": F.fid(real["mu"], real["sigma"], mu, sigma),
            "inception_kid_mean": km, "inception_kid_std": ks}, None
