"""NRDS, the Normalized Relative Discriminative Score (Zhang, Song, Qi, "Decoupled Learning for
Conditional Adversarial Networks", WACV 2018), following the authors' own code
(ZZUTK/Decoupled-Learning-Conditional-GAN, folder NRDS: `NRDS.py` trains, `NRDS.m` scores).

The procedure, for n >= 2 models compared on the same real data:

1. Train ONE binary classifier C from scratch: label 1 = the real samples, label 0 = the samples of
   all n models POOLED together. Every epoch shuffles the real set and the pooled fake set
   separately and runs min(#real, #pooled) // batch_size steps; each step takes `batch_size` real and
   `batch_size` fake samples (balanced) and minimizes BCE(real, 1) + BCE(fake, 0), each a batch mean
   (computed from logits here for numerical stability). Adam, lr 2e-4, betas (0.5, 0.999).
2. After every epoch e, run C over each model i's samples separately:
   C_i(e) = mean_x sigmoid(C_e(x)); the same on the real samples gives the real curve (kept for
   plotting, never normalized).
3. Area under each model curve by the trapezoid rule with unit spacing (MATLAB's `trapz(y)`):
   A_i = sum_{e=1}^{E-1} (C_i(e) + C_i(e+1)) / 2.
4. NRDS_i = A_i / sum_j A_j over the n models only, so the scores sum to 1. Higher = the model's
   samples fooled C for longer = better.

Scores are relative: they depend on which models are compared together (the pool), on the real set
and on the settings, all returned in `NRDSResult.settings`. Compare only scores from the same call.

Classifiers (`classifier=`):
- "conv" (images [N, C, H, W]): the authors' discriminator: 4 conv layers, 5x5, stride 2, "same"
  padding, 64/128/256/512 channels, each followed by ReLU (the authors' code uses plain ReLU here,
  and batch norm only behind a flag that is off by default, `is_bn=0`), then FC 1024 + leaky ReLU 0.2,
  FC 1, sigmoid; weights N(0, 0.02) (truncated for convs), biases 0, as in their `ops.py`. `width`
  scales every channel count and the FC width (width 0.25 -> 16/32/64/128 channels and FC 256).
  `ImageClassifier(..., leak=0.2)` gives leaky ReLUs in the convs too, for users who want that.
- "mlp" (points [N, D], e.g. the paper's 2-D toy check): 2 hidden layers of 64 units, leaky ReLU 0.2.
- "auto": "mlp" for rank-2 inputs, "conv" for rank-4 inputs.
- a callable `factory(sample_shape) -> nn.Module` whose module maps [B, *sample_shape] to B logits
  (pre-sigmoid; shape [B] or [B, 1]). It is built under the seeded RNG, so it is deterministic too.

Defaults, and why they differ from the authors' (batch size 1, 100 epochs in `main.py`, full width):
- `batch_size=64`: batch 1 is very slow (one optimizer step per sample; thousands of samples times
  100 epochs) and its curves are noisy; balanced batches of 64 keep the same objective and the same
  one-pass-per-epoch schedule, so the procedure and the *relative* ranking it measures are kept,
  at a small fraction of the cost, with smoother curves.
- `epochs=50`: the default of the authors' `NRDS.train()` (their command line used 100). With batch
  64 each epoch makes 64x fewer updates than theirs, so C strengthens more gradually and 50 points
  still resolve the curves from "undecided" to "separated"; more epochs mainly add a tail where all
  fake curves are near 0 and contribute little area.
- `width=0.25` for the image net: CPU-affordable (about 1/16 of the conv FLOPs of full width) while
  keeping the architecture; `width=1.0, batch_size=1, epochs=100` reproduces the authors' setting.
Inputs are used as given: pass real and fake data in the same value range (the authors used [-1, 1]).

Determinism: model initialization runs under `torch.manual_seed(seed)` inside `torch.random.fork_rng`
(the caller's global RNG state is left untouched), the shuffles come from a private
`torch.Generator` seeded with `seed`, and deterministic algorithms are switched on for the duration
of the call (restored afterwards). The same seed, data, device and thread count give identical
results; on CUDA full determinism also needs CUBLAS_WORKSPACE_CONFIG (set to ":4096:8" here if unset,
effective only before cuBLAS starts).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from torch.nn import functional as F

DEFAULT_EPOCHS = 50
DEFAULT_BATCH_SIZE = 64
DEFAULT_WIDTH = 0.25
EVAL_BATCH = 512


@dataclass
class NRDSResult:
    scores: dict[str, float]  # NRDS per model, in the order of `fakes`; sum to 1
    curves: dict[str, list[float]]  # per model: mean sigmoid(C) on its samples after each epoch
    real_curve: list[float]  # mean sigmoid(C) on the real samples after each epoch (not normalized)
    areas: dict[str, float] = field(default_factory=dict)  # trapezoid areas A_i before normalization
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class ImageClassifier(nn.Module):
    """The authors' NRDS discriminator for [B, C, H, W] inputs; returns logits [B]."""

    CHANNELS = (64, 128, 256, 512)
    FC = 1024

    def __init__(self, sample_shape, width: float = 1.0, leak: float = 0.0):
        super().__init__()
        if len(sample_shape) != 3:
            raise ValueError(f"ImageClassifier expects samples of shape [C, H, W], got {list(sample_shape)}")
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width}")
        c, h, w = (int(s) for s in sample_shape)
        layers: list[nn.Module] = []
        for base in self.CHANNELS:
            out = max(1, round(base * width))
            layers += [nn.Conv2d(c, out, 5, stride=2, padding=2), nn.LeakyReLU(leak) if leak else nn.ReLU()]
            c, h, w = out, (h + 1) // 2, (w + 1) // 2  # "same" padding, stride 2: ceil(size / 2)
        fc = max(1, round(self.FC * width))
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Sequential(nn.Linear(c * h * w, fc), nn.LeakyReLU(0.2), nn.Linear(fc, 1))
        for m in self.modules():  # the authors' ops.py: N(0, 0.02) weights (truncated for convs), zero bias
            if isinstance(m, nn.Conv2d):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)


class PointClassifier(nn.Module):
    """A small MLP for [B, D] points (the paper's 2-D toy check); returns logits [B]."""

    def __init__(self, sample_shape, hidden: int = 64):
        super().__init__()
        if len(sample_shape) != 1:
            raise ValueError(f"PointClassifier expects samples of shape [D], got {list(sample_shape)}")
        d = int(sample_shape[0])
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


def _build_classifier(classifier, sample_shape: tuple[int, ...], width: float) -> tuple[nn.Module, str]:
    if callable(classifier) and not isinstance(classifier, str):
        return classifier(sample_shape), getattr(classifier, "__name__", None) or repr(classifier)
    if classifier == "auto":
        if len(sample_shape) == 1:
            classifier = "mlp"
        elif len(sample_shape) == 3:
            classifier = "conv"
        else:
            raise ValueError(f"classifier='auto' needs points [N, D] or images [N, C, H, W]; "
                             f"got samples of shape {list(sample_shape)}")
    if classifier == "mlp":
        return PointClassifier(sample_shape), "mlp"
    if classifier == "conv":
        return ImageClassifier(sample_shape, width=width), f"conv(width={width:g})"
    raise ValueError(f"unknown classifier {classifier!r}: use 'auto', 'conv', 'mlp' or a callable")


def _as_samples(x, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(x)
        except Exception as e:
            raise ValueError(f"{what} must be a tensor of samples, got {type(x).__name__}") from e
    if x.dim() < 2:
        raise ValueError(f"{what} must have shape [N, ...] with N samples; got shape {list(x.shape)}")
    if len(x) == 0:
        raise ValueError(f"{what} is empty (0 samples)")
    if not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
        raise ValueError(f"{what} must hold real numbers, got dtype {x.dtype}")
    x = x.detach().float()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{what} contains NaN or Inf")
    return x


@contextlib.contextmanager
def _deterministic(device: torch.device, seed: int):
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    was_on, was_warn = torch.are_deterministic_algorithms_enabled(), \
        torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn_det, cudnn_bench = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        # warn_only: an op without a deterministic kernel warns instead of failing the metric
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_on, warn_only=was_warn)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_det, cudnn_bench


def _logits(net: nn.Module, x: Tensor) -> Tensor:
    out = net(x)
    if out.numel() != len(x):
        raise ValueError(f"the classifier must return one logit per sample: got output shape "
                         f"{list(out.shape)} for a batch of {len(x)}")
    return out.reshape(len(x))


@torch.no_grad()
def _mean_prob(net: nn.Module, x: Tensor) -> float:
    total = 0.0
    for i in range(0, len(x), EVAL_BATCH):
        total += float(torch.sigmoid(_logits(net, x[i:i + EVAL_BATCH]).double()).sum())
    return total / len(x)


def trapezoid_area(curve: list[float]) -> float:
    """Unit-spacing trapezoid rule, as MATLAB's trapz(y): sum_e (y_e + y_{e+1}) / 2."""
    return math.fsum((a + b) / 2 for a, b in itertools.pairwise(curve))


def nrds(real: Tensor, fakes: Mapping[str, Tensor], epochs: int = DEFAULT_EPOCHS,
         batch_size: int = DEFAULT_BATCH_SIZE, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
         classifier: str | Callable[[tuple[int, ...]], nn.Module] = "auto", seed: int = 0,
         device: str | torch.device = "cpu", width: float = DEFAULT_WIDTH) -> NRDSResult:
    """NRDS of each model in `fakes` (name -> samples [N_i, ...]) against `real` ([N, ...]).

    See the module docstring for the procedure and the defaults. Raises ValueError on fewer than 2
    models, empty sets, mismatched sample shapes, non-finite values or impossible settings.
    """
    if not isinstance(fakes, Mapping):
        raise TypeError(f"fakes must be a mapping name -> samples, got {type(fakes).__name__}")
    if len(fakes) < 2:
        raise ValueError(f"NRDS compares at least 2 models (scores are relative to the pool); "
                         f"got {len(fakes)}: {list(fakes)}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 2:
        raise ValueError(f"epochs must be an integer >= 2 (the trapezoid area needs 2 points), got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not callable(classifier) and classifier not in ("auto", "conv", "mlp"):
        raise ValueError(f"unknown classifier {classifier!r}: use 'auto', 'conv', 'mlp' or a callable")
    real = _as_samples(real, "real")
    shape = tuple(real.shape[1:])
    fk: dict[str, Tensor] = {}
    for name, x in fakes.items():
        x = _as_samples(x, f"fake set {name!r}")
        if tuple(x.shape[1:]) != shape:
            raise ValueError(f"fake set {name!r} has samples of shape {list(x.shape[1:])}, "
                             f"but the real samples have shape {list(shape)}")
        fk[str(name)] = x
    if len(fk) != len(fakes):
        raise ValueError(f"model names must be distinct as strings: {list(fakes)}")
    n_real, n_pool = len(real), sum(len(x) for x in fk.values())
    steps = min(n_real, n_pool) // batch_size
    if steps == 0:
        raise ValueError(f"batch_size {batch_size} is larger than min(#real, #pooled fake) = "
                         f"{min(n_real, n_pool)}: no training step would run")

    device = torch.device(device)
    real = real.to(device)
    fk = {k: v.to(device) for k, v in fk.items()}
    pool = torch.cat(list(fk.values()))

    with _deterministic(device, seed):
        net, cname = _build_classifier(classifier, shape, width)
        net = net.to(device)
        opt = torch.optim.Adam(net.parameters(), lr=lr, betas=tuple(betas))
        gen = torch.Generator().manual_seed(seed)  # private: the shuffles never touch the global RNG
        ones = torch.ones(batch_size, device=device)
        zeros = torch.zeros(batch_size, device=device)
        curves: dict[str, list[float]] = {k: [] for k in fk}
        real_curve: list[float] = []
        for _ in range(epochs):
            net.train()
            perm_r = torch.randperm(n_real, generator=gen).to(device)
            perm_f = torch.randperm(n_pool, generator=gen).to(device)
            for b in range(steps):
                sl = slice(b * batch_size, (b + 1) * batch_size)
                # two forward passes, real then fake, as in the authors' code (matters with batch norm)
                loss = F.binary_cross_entropy_with_logits(_logits(net, real[perm_r[sl]]), ones) \
                    + F.binary_cross_entropy_with_logits(_logits(net, pool[perm_f[sl]]), zeros)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            net.eval()
            for k, x in fk.items():
                curves[k].append(_mean_prob(net, x))
            real_curve.append(_mean_prob(net, real))

    areas = {k: trapezoid_area(c) for k, c in curves.items()}
    total = math.fsum(areas.values())
    if not (total > 0 and math.isfinite(total)):
        raise FloatingPointError(f"NRDS undefined: the model curves have total area {total}")
    scores = {k: a / total for k, a in areas.items()}
    settings = {
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "betas": list(betas), "classifier": cname,
        "seed": seed, "device": str(device), "steps_per_epoch": steps, "n_real": n_real,
        "n_fake": {k: len(v) for k, v in fk.items()},
    }
    return NRDSResult(scores=scores, curves=curves, real_curve=real_curve, areas=areas, settings=settings)
