"""Real image data for the image track: Fashion-MNIST, MNIST, CIFAR-10, CelebA, stacked ("Color")
MNIST and scikit-learn's 8x8 digits.

Every builder is `builder(cfg: DatasetCfg) -> ImageData`. Images are kept as uint8 [N, C, H, W]
at `cfg.image_size` (bilinear, antialiased resize) and become float32 in [-1, 1] only when sampled.

Where the files are looked for (nothing is ever downloaded unless `dataset.download: true`):
- `cfg.data_root` when set (only there), else `$GANBENCH_DATA` (when set) and then the defaults:
  `/usr/share/datasets/fashion-mnist/` (Debian's `dataset-fashion-mnist`) for Fashion-MNIST and the
  cache's `data/` folder for everything (where `download: true` puts files).
- Fashion-MNIST: the four IDX files (`.gz` or not) in ROOT/FashionMNIST/raw, ROOT/fashion-mnist or
  ROOT itself. MNIST: in ROOT/MNIST/raw (and in data_root itself); its file names equal
  Fashion-MNIST's, so keep it in MNIST/raw under $GANBENCH_DATA.
- CIFAR-10: ROOT/cifar-10-batches-py/ (torchvision layout). CelebA: ROOT/celeba/ (torchvision
  layout: img_align_celeba/ and the five list/partition .txt files).

The prepared tensors are cached in `cache_dir()` ($GANBENCH_CACHE or ~/.cache/ganbench) as one
`.pt` file per (dataset, image size[, base, stack seed], source files' names/sizes/mtimes), written
atomically, and loaded memory-mapped: every Ray trial loads the data, in well under a second, and
trials on one machine share the pages. Source folders are never written to; IDX files that
torchvision needs uncompressed are decompressed into the cache.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from bench.cache import cache_dir, cached
from bench.fsutil import atomic_write

CACHE_VERSION = 1
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# ----------------------------------------------------------------------------- the data object
@dataclass
class ImageData:
    name: str
    train: torch.Tensor         # uint8 [N, C, H, W]
    train_labels: torch.Tensor  # int64 [N] (stacked: 100*l_R + 10*l_G + l_B in 0..999)
    test: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int            # 10, 1000 for stacked, 0 for unlabelled (celeba)
    base_name: Optional[str] = None            # stacked: the base set of each channel
    train_index: Optional[torch.Tensor] = None  # stacked: int64 [N, 3], base image of R, G, B; domains: [N] of A
    test_index: Optional[torch.Tensor] = None
    train_b: Optional[torch.Tensor] = None       # domains (bench.data.domains): domain B = T(images), uint8
    train_b_labels: Optional[torch.Tensor] = None
    train_b_index: Optional[torch.Tensor] = None  # domains: the base training images B was made from
    test_b: Optional[torch.Tensor] = None        # T(test), paired with test image for image
    transform: Optional[str] = None              # domains: the name of T
    domain_base: Optional[str] = None            # domains: the base set of both domains
    key: str = ""                               # its cache key (dataset, size, source files' stamp)
    _copies: dict = field(default_factory=dict, repr=False)  # the training split on other devices

    @property
    def dim(self) -> tuple:
        return tuple(self.train.shape[1:])

    @staticmethod
    def to_float(x: torch.Tensor) -> torch.Tensor:
        """uint8 -> float32 in [-1, 1]."""
        return x.float().div_(127.5).sub_(1.0)

    def on(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(train images, train labels) on a device, copied there once (a GPU trial samples batches there)."""
        device = torch.device(device)
        if device.type == "cpu":
            return self.train, self.train_labels
        if device not in self._copies:
            self._copies[device] = (self.train.to(device), self.train_labels.to(device))
        return self._copies[device]

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n random training images (with replacement), float32 in [-1, 1], on the generator's device."""
        idx = torch.randint(len(self.train), (n,), generator=generator, device=generator.device)
        return self.to_float(self.on(generator.device)[0][idx])


# ----------------------------------------------------------------------------- helpers
def _resize(x: torch.Tensor, size: int, chunk: int = 8192) -> torch.Tensor:
    """uint8 [N, C, h, w] -> uint8 [N, C, size, size]: centre square crop, bilinear antialiased resize."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    h, w = x.shape[-2:]
    if h != w:
        s = min(h, w)
        x = TF.center_crop(x, [s, s])
    if x.shape[-1] == size:
        return x.contiguous()
    return torch.cat([TF.resize(x[i:i + chunk], [size, size], interpolation=InterpolationMode.BILINEAR,
                                antialias=True) for i in range(0, len(x), chunk)]).contiguous()


def _tv(cls_name: str):
    import torchvision.datasets  # imported only when preparing: the cached path must stay fast

    return getattr(torchvision.datasets, cls_name)


def _stamp(paths) -> str:
    """A hash of the source files' names, sizes and mtimes (not their contents: that is slow)."""
    items = []
    for p in paths:
        st = os.stat(p)
        items.append([Path(p).name, st.st_size, st.st_mtime_ns])
    return hashlib.sha1(json.dumps(items).encode()).hexdigest()[:12]


def _cached(key: str, build: Callable[[], dict]) -> ImageData:
    """The dataset for `key` from the cache (memory-mapped), building it when absent."""
    return ImageData(**cached(cache_dir() / "prepared" / f"{key}.pt", build, mmap=True), key=key)


def _pack(name, train, train_labels, test, test_labels, num_classes, size, **extra) -> dict:
    return {"name": name,
            "train": _resize(train, size), "train_labels": train_labels.to(torch.int64).contiguous(),
            "test": _resize(test, size), "test_labels": test_labels.to(torch.int64).contiguous(),
            "num_classes": int(num_classes), **extra}


def _roots(cfg) -> tuple[list[Path], bool]:
    """(roots to search, strict): data_root alone when set, else $GANBENCH_DATA then the cache's data/."""
    if cfg.data_root:
        return [Path(cfg.data_root).expanduser()], True
    roots = [Path(os.environ["GANBENCH_DATA"]).expanduser()] if os.environ.get("GANBENCH_DATA") else []
    return roots + [cache_dir() / "data"], False


def _download_root(cfg) -> Path:
    return _roots(cfg)[0][0]


def _missing_error(name: str, missing: list[str], searched: list[Path], found: Optional[Path] = None) -> FileNotFoundError:
    where = ", ".join(str(s) for s in dict.fromkeys(searched))
    partial = f" (the most complete folder is {found})" if found is not None else ""
    return FileNotFoundError(
        f"{name}: missing {', '.join(missing)} in {where}{partial}; "
        "set dataset.data_root or GANBENCH_DATA, or dataset.download: true")


# ----------------------------------------------------------------------------- IDX sets (MNIST, Fashion-MNIST)
def _idx_candidates(name: str, cfg) -> list[Path]:
    roots, strict = _roots(cfg)
    if name == "fashion_mnist":
        dirs = [d for r in roots for d in (r / "FashionMNIST" / "raw", r / "fashion-mnist", r)]
        if not strict:
            dirs.append(FASHION_SYSTEM_DIR)
    else:
        dirs = [r / "MNIST" / "raw" for r in roots] + ([roots[0]] if strict else [])
    return list(dict.fromkeys(dirs))


def _idx_find(folder: Path) -> dict[str, Path]:
    """The IDX files present in a folder: uncompressed preferred, else .gz."""
    out = {}
    for f in IDX_FILES:
        for p in (folder / f, folder / f"{f}.gz"):
            if p.is_file():
                out[f] = p
                break
    return out


def _idx_sources(name: str, cfg, tv_name: str) -> dict[str, Path]:
    cands = _idx_candidates(name, cfg)
    best, best_dir = {}, None
    for d in cands:
        found = _idx_find(d)
        if len(found) == len(IDX_FILES):
            return found
        if len(found) > len(best):
            best, best_dir = found, d
    if cfg.download:
        root = _download_root(cfg)
        for train in (True, False):
            _tv(tv_name)(str(root), train=train, download=True)
        found = _idx_find(root / tv_name / "raw")
        if len(found) == len(IDX_FILES):
            return found
        cands.append(root / tv_name / "raw")
    missing = [f"{f}(.gz)" for f in IDX_FILES if f not in best]
    raise _missing_error(name, missing, cands, best_dir)


def _stage_idx(sources: dict[str, Path], tv_name: str, stamp: str) -> Path:
    """A torchvision root whose TV_NAME/raw holds the four files uncompressed. Uncompressed sources
    already in such a layout are used in place; otherwise the files are (decompressed and) copied
    into the cache. Source folders are never written to."""
    folders = {p.parent for p in sources.values()}
    if len(folders) == 1 and all(p.suffix != ".gz" for p in sources.values()):
        folder = folders.pop()
        if folder.name == "raw" and folder.parent.name == tv_name:
            return folder.parent.parent
    root = cache_dir() / "raw" / f"{tv_name}-{stamp}"
    raw = root / tv_name / "raw"
    for f, src in sources.items():
        dst = raw / f
        if dst.is_file():
            continue

        def write(tmp, src=src):
            with (gzip.open(src, "rb") if src.suffix == ".gz" else open(src, "rb")) as fi, open(tmp, "wb") as fo:
                shutil.copyfileobj(fi, fo, 1 << 20)
        atomic_write(dst, write)
    return root


def _idx_dataset(name: str, tv_name: str, cfg) -> ImageData:
    sources = _idx_sources(name, cfg, tv_name)
    stamp = _stamp(sources[f] for f in IDX_FILES)

    def build():
        tv_cls = _tv(tv_name)
        root = _stage_idx(sources, tv_name, stamp)
        tr, te = (tv_cls(str(root), train=t, download=False) for t in (True, False))
        return _pack(name, tr.data.unsqueeze(1), tr.targets, te.data.unsqueeze(1), te.targets, 10,
                     cfg.image_size)

    return _cached(f"{name}-{cfg.image_size}-v{CACHE_VERSION}-{stamp}", build)


def fashion_mnist(cfg) -> ImageData:
    return _idx_dataset("fashion_mnist", "FashionMNIST", cfg)


def mnist(cfg) -> ImageData:
    return _idx_dataset("mnist", "MNIST", cfg)


# ----------------------------------------------------------------------------- CIFAR-10, CelebA
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
CELEBA_FILES = ("img_align_celeba", "list_attr_celeba.txt", "identity_CelebA.txt", "list_bbox_celeba.txt",
                "list_landmarks_align_celeba.txt", "list_eval_partition.txt")


def _folder_sources(name: str, cfg, sub: str, files: tuple[str, ...], tv_call) -> Path:
    """The root whose SUB folder holds all FILES (downloading there when cfg.download)."""
    roots, _ = _roots(cfg)
    best, best_dir = -1, None
    for r in roots:
        n = sum((r / sub / f).exists() for f in files)
        if n == len(files):
            return r
        if n > best:
            best, best_dir, have = n, r / sub, {f for f in files if (r / sub / f).exists()}
    if cfg.download:
        root = _download_root(cfg)
        tv_call(root, True)
        return root
    missing = [f + ("/" if f == "img_align_celeba" else "") for f in files if f not in have]
    raise _missing_error(name, missing, [r / sub for r in roots], best_dir if best > 0 else None)


def check_files(cfg) -> None:
    """Raise the missing-files error (FileNotFoundError: where the files are expected, how to get them) for an image
    set whose files are absent, without loading or downloading anything; a set with dataset.download: true, or one
    that needs no files (digits), passes. `ganbench validate` and `run` call it before Ray starts."""
    if cfg.download or cfg.name == "digits":
        return
    if cfg.name in ("stacked", "domains"):
        return check_files(cfg.model_copy(update={"name": cfg.base}))
    if cfg.name in ("fashion_mnist", "mnist"):
        cands = _idx_candidates(cfg.name, cfg)
        best, best_dir = {}, None
        for d in cands:
            found = _idx_find(d)
            if len(found) == len(IDX_FILES):
                return
            if len(found) > len(best):
                best, best_dir = found, d
        raise _missing_error(cfg.name, [f"{f}(.gz)" for f in IDX_FILES if f not in best], cands, best_dir)
    if cfg.name in ("cifar10", "celeba"):
        sub, files = ("cifar-10-batches-py", CIFAR_FILES) if cfg.name == "cifar10" else ("celeba", CELEBA_FILES)
        _folder_sources(cfg.name, cfg, sub, files, None)


def _checked(name: str, make):
    try:
        return make()
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted"
        raise FileNotFoundError(f"{name}: torchvision rejected the files ({e}); "
                                "re-fetch them or set dataset.download: true") from None


def cifar10(cfg) -> ImageData:
    root = _folder_sources("cifar10", cfg, "cifar-10-batches-py", CIFAR_FILES,
                           lambda r, dl: _tv("CIFAR10")(str(r), train=True, download=dl))
    stamp = _stamp(root / "cifar-10-batches-py" / f for f in CIFAR_FILES)

    def build():
        tr, te = (_checked("cifar10", lambda t=t: _tv("CIFAR10")(str(root), train=t, download=False))
                  for t in (True, False))
        nchw = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2)  # noqa: E731
        return _pack("cifar10", nchw(tr.data), torch.tensor(tr.targets), nchw(te.data), torch.tensor(te.targets),
                     10, cfg.image_size)

    return _cached(f"cifar10-{cfg.image_size}-v{CACHE_VERSION}-{stamp}", build)


def _celeba_split(ds, size: int) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image, read_file

    folder = Path(ds.root) / ds.base_folder / "img_align_celeba"
    out, batch = [], []
    for i, fname in enumerate(ds.filename):
        batch.append(decode_image(read_file(str(folder / fname)), mode=ImageReadMode.RGB))
        if len(batch) == 1024 or i == len(ds.filename) - 1:
            out.append(_resize(torch.stack(batch), size))
            batch = []
    return torch.cat(out) if out else torch.zeros(0, 3, size, size, dtype=torch.uint8)


def celeba(cfg) -> ImageData:
    """Aligned CelebA (torchvision's split: 162,770 train / 19,962 test), centre-cropped to 178x178
    then resized. Unlabelled: labels are 0 and num_classes is 0."""
    root = _folder_sources("celeba", cfg, "celeba", CELEBA_FILES,
                           lambda r, dl: _tv("CelebA")(str(r), split="train", target_type=[], download=dl))
    stamp = _stamp(root / "celeba" / f for f in CELEBA_FILES)

    def build():
        tr, te = (_checked("celeba", lambda s=s: _tv("CelebA")(str(root), split=s, target_type=[], download=False))
                  for s in ("train", "test"))
        xtr, xte = _celeba_split(tr, cfg.image_size), _celeba_split(te, cfg.image_size)
        return {"name": "celeba", "train": xtr, "train_labels": torch.zeros(len(xtr), dtype=torch.int64),
                "test": xte, "test_labels": torch.zeros(len(xte), dtype=torch.int64), "num_classes": 0}

    return _cached(f"celeba-{cfg.image_size}-v{CACHE_VERSION}-{stamp}", build)


# ----------------------------------------------------------------------------- digits (sklearn, offline)
def digits(cfg) -> ImageData:
    """scikit-learn's 1,797 8x8 digits: a tiny real set for fast tests. Stratified 80/20 split with a
    fixed seed (1,437 train / 360 test); values 0..16 rescaled to 0..255."""
    import importlib.util

    # the stamp without importing sklearn (slow): the cached path must stay fast
    spec = importlib.util.find_spec("sklearn")
    src = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    stamp = _stamp([src]) if src and src.exists() else "nostamp"

    def build():
        import sklearn.datasets
        from sklearn.model_selection import train_test_split

        d = sklearn.datasets.load_digits()
        x = torch.from_numpy(d.images * (255.0 / 16.0)).round().clamp(0, 255).to(torch.uint8).unsqueeze(1)
        y = torch.from_numpy(d.target).to(torch.int64)
        itr, ite = train_test_split(torch.arange(len(y)).numpy(), test_size=0.2, random_state=0,
                                    stratify=d.target)
        itr, ite = torch.from_numpy(itr), torch.from_numpy(ite)
        return _pack("digits", x[itr], y[itr], x[ite], y[ite], 10, cfg.image_size)

    return _cached(f"digits-{cfg.image_size}-v{CACHE_VERSION}-{stamp}", build)


# ----------------------------------------------------------------------------- stacked ("Color MNIST")
def _stack(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
    idx = torch.randint(len(x), (len(x), 3), generator=gen)
    images = x[idx, 0]                                     # [N, 3, H, W]: channel c from base image idx[:, c]
    labels = (100 * y[idx[:, 0]] + 10 * y[idx[:, 1]] + y[idx[:, 2]]).to(torch.int64)
    return images.contiguous(), labels, idx


def stacked(cfg) -> ImageData:
    """The tempered-lens paper's "Color MNIST": three random images of the base set (cfg.base) as the
    R, G, B channels; label 100*l_R + 10*l_G + l_B (1000 modes). Train is drawn from the base's train
    split and test from its test split, each as large as the base split; fixed by cfg.stack_seed."""
    from bench import registry

    base = registry.get("dataset", cfg.base)(cfg)
    if base.train.shape[1] != 1:
        raise ValueError(f"stacked: base {cfg.base} is not single-channel")

    def build():
        gen = torch.Generator().manual_seed(cfg.stack_seed)
        xtr, ytr, itr = _stack(base.train, base.train_labels, gen)
        xte, yte, ite = _stack(base.test, base.test_labels, gen)
        return {"name": "stacked", "train": xtr, "train_labels": ytr, "test": xte, "test_labels": yte,
                "num_classes": 1000, "base_name": cfg.base, "train_index": itr, "test_index": ite}

    return _cached(f"stacked-s{cfg.stack_seed}-{base.key}", build)

