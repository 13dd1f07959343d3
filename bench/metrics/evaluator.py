"""Per-dataset evaluator networks: a small classifier CNN trained on the dataset's own training split,
whose penultimate layer (128 features) replaces Inception for FID/KID/precision/recall/density/
coverage, and whose predicted classes give the mode metrics.

**This is not Inception FID.** Numbers computed with these features are named after their evaluator
(`Evaluator.name`, e.g. "fmnist-lenet", reported in a separate `evaluator` column) and are not
comparable with published Inception FIDs, nor across evaluators (datasets, image sizes, versions).
The real Inception path, for users who have its weights file, is `bench.metrics.images.inception_metrics`.

The classifier ("lenet"): three 3x3 conv blocks (16, 32, 64 channels; batch norm, ReLU, 2x2 max pool),
adaptive average pooling to 4x4, FC 1024 -> 128 + ReLU (the features), FC 128 -> classes. Trained
deterministically (fixed seed, `torch.use_deterministic_algorithms`, two torch threads, one process,
on the CPU) with Adam and a one-cycle learning rate (4 epochs of batch 256, at least 150 steps), no
augmentation. Measured on the 2-core dev CPU: Fashion-MNIST 32x32 91.6 % test accuracy in 50-60 s
(the same weights on every run); digits 99.2 % in about 10 s. The accuracy is stored with it.

Stacked ("Color") data: the evaluator is the *base* set's classifier applied to each channel; the
predicted mode is 100 * c_R + 10 * c_G + c_B and the features are the three channels' features
concatenated (384).

Caching: `cache_dir()/evaluators/<key>.pt`, key = hash of (dataset name, image size, a fingerprint
of the training images and labels, the architecture's source and version, the training settings,
the seed), through bench.cache: written atomically under a lock (the `filelock` package), so when
several Ray trials start at once, one trains and the others wait, then load.
Across machines without a shared cache each machine trains its own copy; same torch build and CPU
type give the same weights, and `Evaluator.id` carries a hash of the weights so rows can tell.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.cache import cache_dir, cached

log = logging.getLogger(__name__)

ARCH_VERSION = "lenet-v1"
TRAIN_THREADS = 2
SHORT_NAMES = {"fashion_mnist": "fmnist", "mnist": "mnist", "digits": "digits", "cifar10": "cifar10"}


# ----------------------------------------------------------------------------- the network
class LeNet(nn.Module):
    """Three conv blocks + FC 128 (the features) + the class head."""

    def __init__(self, in_channels: int, num_classes: int, widths=(16, 32, 64), features: int = 128):
        super().__init__()
        layers, c = [], in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c = w
        self.conv = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(c * 16, features), nn.ReLU(inplace=True))
        self.head = nn.Linear(features, num_classes)

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.fc(self.conv(x))
        return f, self.head(f)

    def forward(self, x: Tensor) -> Tensor:
        return self.embed(x)[1]


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 4
    min_steps: int = 150          # small sets (digits: 1,437 images) get at least this many steps
    batch_size: int = 256
    max_lr: float = 5e-3          # one-cycle peak; Adam
    weight_decay: float = 0.0
    seed: int = 0

    def steps(self, n: int) -> int:
        return max(self.epochs * math.ceil(n / self.batch_size), self.min_steps)


DEFAULT_SETTINGS = TrainSettings()


# ----------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _deterministic(threads: Optional[int] = None):
    """Deterministic algorithms (and optionally a fixed thread count) inside; the caller's state after."""
    det, warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    nthreads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(det, warn_only=warn)
        torch.set_num_threads(nthreads)


_FP_MEMO: dict = {}


def data_fingerprint(data) -> str:
    """A content hash of the training images and labels: the same data gives the same key on every
    machine (about 0.1 s for Fashion-MNIST; memoised per process by the data's own cache key)."""
    memo = getattr(data, "key", "") or None
    if memo is not None and memo in _FP_MEMO:
        return _FP_MEMO[memo]
    x, y = data.train, data.train_labels
    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps([list(x.shape), str(x.dtype), list(y.shape)]).encode())
    h.update(x.contiguous().numpy().reshape(-1).view("uint8"))
    h.update(y.to(torch.int64).contiguous().numpy().reshape(-1).view("uint8"))
    out = h.hexdigest()
    if memo is not None:
        _FP_MEMO[memo] = out
    return out


# ----------------------------------------------------------------------------- the evaluator
@dataclass
class Evaluator:
    """A trained classifier: `.features(x)` [N, F] (penultimate layer), `.logits(x)`, `.predict(x)`."""

    name: str                       # "fmnist-lenet"; stacked: "fmnist-lenet-3ch"
    net: LeNet
    key: str                        # the recipe hash (cache file name)
    weights_hash: str
    test_accuracy: float            # of the base classifier, on the base set's test split
    num_classes: int                # 10; stacked: 1000 (modes)
    channels: int                   # input channels of the data the evaluator is applied to
    per_channel: bool = False       # stacked: the base classifier on each channel
    meta: dict = field(default_factory=dict)
    batch_size: int = 1000

    @property
    def id(self) -> str:
        """name + weights hash: identical ids mean identical features."""
        return f"{self.name}@{self.weights_hash[:8]}"

    @property
    def feature_dim(self) -> int:
        return self.net.fc[0].out_features * (self.channels if self.per_channel else 1)

    def columns(self) -> dict:
        """The columns a results row carries next to the metrics this evaluator produced."""
        return {"evaluator": self.name, "evaluator_id": self.id, "evaluator_accuracy": self.test_accuracy}

    def to(self, device) -> "Evaluator":
        self.net.to(device)
        return self

    @torch.no_grad()
    def embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(features [N, F] float32, logits) on the CPU; x float in [-1, 1], [N, C, H, W].
        Stacked: features [N, 3F], logits [N, 3, 10] (per channel)."""
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"{self.name}: expected [N, {self.channels}, H, W] images, got {tuple(x.shape)}")
        self.net.eval()
        dev = next(self.net.parameters()).device
        feats, logits = [], []
        for i in range(0, len(x), self.batch_size):
            b = x[i:i + self.batch_size].to(dev, torch.float32)
            if self.per_channel:
                n, c = b.shape[:2]
                f, lg = self.net.embed(b.reshape(n * c, 1, *b.shape[2:]))
                f, lg = f.reshape(n, -1), lg.reshape(n, c, -1)
            else:
                f, lg = self.net.embed(b)
            feats.append(f.float().cpu())
            logits.append(lg.float().cpu())
        if not feats:
            return torch.zeros(0, self.feature_dim), torch.zeros(0, self.num_classes)
        return torch.cat(feats), torch.cat(logits)

    def features(self, x: Tensor) -> Tensor:
        return self.embed(x)[0]

    def logits(self, x: Tensor) -> Tensor:
        return self.embed(x)[1]

    def classes_from_logits(self, logits: Tensor) -> Tensor:
        """Class ids; stacked: mode id 100 * c_R + 10 * c_G + c_B."""
        if self.per_channel:
            c = logits.argmax(-1)
            weights = 10 ** torch.arange(c.shape[1] - 1, -1, -1)
            return (c * weights).sum(1)
        return logits.argmax(-1)

    def predict(self, x: Tensor) -> Tensor:
        return self.classes_from_logits(self.logits(x))


def recipe(data, settings: TrainSettings = DEFAULT_SETTINGS) -> dict:
    """What the cached weights depend on (its hash is the cache key)."""
    return {"dataset": data.name, "image_size": int(data.train.shape[-1]), "channels": int(data.train.shape[1]),
            "num_classes": int(data.num_classes), "data": data_fingerprint(data),
            "arch": ARCH_VERSION, "arch_source": _source_hash(LeNet), "train": asdict(settings),
            "train_source": _source_hash(train_classifier)}


def _source_hash(obj) -> str:
    try:
        return hashlib.sha1(inspect.getsource(obj).encode()).hexdigest()
    except (OSError, TypeError):  # no source shipped: the version strings alone
        return "nosource"


def recipe_key(r: dict) -> str:
    return hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest()[:20]


def train_classifier(data, settings: TrainSettings = DEFAULT_SETTINGS, verbose: bool = False,
                     on_step=None) -> tuple[LeNet, dict]:
    """Train the classifier on data.train deterministically; returns (net in eval mode, meta). `on_step(step,
    steps)` is called every 50 steps (the run's progress line)."""
    if not data.num_classes:
        raise ValueError(f"{data.name}: no class labels to train an evaluator on")
    x, y = data.train, data.train_labels
    n = len(x)
    steps = settings.steps(n)
    t0 = time.perf_counter()
    with _deterministic(threads=min(TRAIN_THREADS, os.cpu_count() or 1)), torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        net = LeNet(x.shape[1], data.num_classes)
        opt = torch.optim.Adam(net.parameters(), lr=settings.max_lr, weight_decay=settings.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.max_lr, total_steps=steps)
        g = torch.Generator().manual_seed(settings.seed)
        net.train()
        perm, pos = torch.randperm(n, generator=g), 0
        for step in range(steps):
            if pos + settings.batch_size > n:  # drop the ragged end of an epoch; reshuffle
                perm, pos = torch.randperm(n, generator=g), 0
            idx = perm[pos:pos + settings.batch_size]
            pos += settings.batch_size
            loss = F.cross_entropy(net(data.to_float(x[idx])), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if on_step is not None and step % 50 == 0:
                on_step(step, steps)
            if verbose and (step % 200 == 0 or step == steps - 1):
                log.info("%s evaluator: step %d/%d loss %.4f", data.name, step, steps, loss.item())
        net.eval()
        train_s = time.perf_counter() - t0
        acc = accuracy(net, data.test, data.test_labels, data.to_float)
    return net, {"test_accuracy": acc, "train_seconds": train_s, "steps": steps, "train_size": n,
                 "torch_version": str(torch.__version__)}


@torch.no_grad()
def accuracy(net: nn.Module, x: Tensor, y: Tensor, to_float, batch: int = 1000) -> float:
    net.eval()
    correct = sum(int((net(to_float(x[i:i + batch])).argmax(1) == y[i:i + batch]).sum())
                  for i in range(0, len(x), batch))
    return correct / max(len(x), 1)


def _base_data(cfg):
    """A stacked set's base ImageData, built from the stacked set's own DatasetCfg with the base's name."""
    from bench import registry

    return registry.get("dataset", cfg.base)(cfg.model_copy(update={"name": cfg.base}))


def _weights_hash(state: dict) -> str:
    h = hashlib.blake2b(digest_size=16)
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _classifier(data, settings: TrainSettings, say=None) -> tuple[LeNet, dict, str]:
    """The trained classifier for `data` from the cache, training (once, under a lock) when absent."""
    r = recipe(data, settings)
    key = recipe_key(r)

    def train() -> dict:
        log.info("training the %s evaluator (one-time, cached in %s)", data.name, cache_dir() / "evaluators")
        on_step = None if say is None else \
            (lambda k, n: say(f"training the {data.name} evaluator (once, then cached): step {k}/{n}"))
        net, meta = train_classifier(data, settings, on_step=on_step)
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        return {"state_dict": state,
                "meta": {**meta, "recipe": json.dumps(r, sort_keys=True), "weights_hash": _weights_hash(state)}}

    saved = cached(cache_dir() / "evaluators" / f"{key}.pt", train)
    meta = saved["meta"]
    net = LeNet(int(data.train.shape[1]), int(data.num_classes))
    net.load_state_dict(saved["state_dict"])
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, meta, key


_MEMO: dict = {}


def get_evaluator(data, cfg, settings: TrainSettings = DEFAULT_SETTINGS, say=None) -> Evaluator:
    """The evaluator for an ImageData built from the DatasetCfg `cfg` (a stacked set's evaluator is its
    base set's classifier). Memoised per process; trained and cached on disk on first use."""
    stacked = getattr(data, "base_name", None) is not None
    base = _base_data(cfg) if stacked else data
    if not base.num_classes:
        raise ValueError(f"{data.name}: unlabelled data has no classifier evaluator (no labels to train on)")
    memo = (data_fingerprint(base), stacked, int(data.train.shape[1]), settings)
    if memo not in _MEMO:
        net, meta, key = _classifier(base, settings, say)
        short = SHORT_NAMES.get(base.name, base.name)
        name = f"{short}-lenet" + ("-3ch" if stacked else "")
        _MEMO[memo] = Evaluator(
            name=name, net=net, key=key, weights_hash=meta["weights_hash"], test_accuracy=float(meta["test_accuracy"]),
            num_classes=base.num_classes ** data.train.shape[1] if stacked else base.num_classes,
            channels=int(data.train.shape[1]), per_channel=stacked, meta=dict(meta))
    return _MEMO[memo]


# ----------------------------------------------------------------------------- once per cluster
def prepare(dataset_cfgs: list[dict], say=None) -> dict[str, bytes]:
    """Train (or load from the cache) the evaluator of each labelled image dataset config, here, and
    return its cache files {name: bytes}. The runner calls this as one Ray task before a study's
    trials start and hands the files to every trial (`install`): a cluster trains each evaluator
    once, not once per node, and no trial waits on another's training. `say(text)`: what it is doing now."""
    from bench import registry
    from bench.schema import DatasetCfg

    say = say or (lambda text: None)
    files = {}
    for d in dataset_cfgs:
        cfg = DatasetCfg.model_validate(d)
        say(f"loading {cfg.name} at {cfg.image_size} px (the first time: decoded, resized, cached)")
        data = registry.get("dataset", cfg.name)(cfg)
        say(f"the {cfg.name} evaluator: loading or training it")
        try:
            ev = get_evaluator(data, cfg, say=say)
        except ValueError:  # unlabelled data: no classifier evaluator
            continue
        files[f"{ev.key}.pt"] = (cache_dir() / "evaluators" / f"{ev.key}.pt").read_bytes()
    return files


def install(files: dict[str, bytes]) -> None:
    """Put `prepare`'s files into this node's cache (those it already has are left alone)."""
    from bench.fsutil import atomic_write

    for name, data in files.items():
        path = cache_dir() / "evaluators" / name
        if not path.exists():
            atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
