"""Real image data (bench/data/images.py): Fashion-MNIST from the Debian package, MNIST from local
IDX files, stacked "Color MNIST", sklearn digits, the cache, and the missing-file errors."""

import gzip
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from bench import registry
from bench.data import images as im
from bench.schema import DatasetCfg

SYS = Path("/usr/share/datasets/fashion-mnist")
IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
needs_fashion = pytest.mark.skipif(not (SYS / "train-images-idx3-ubyte.gz").exists(),
                                   reason="Debian package dataset-fashion-mnist not installed (make installs it as root)")


def load(name, **kw):
    return registry.get("dataset", name)(DatasetCfg(name=name, **kw))


def read_idx(path: Path) -> np.ndarray:
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}i", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write_idx(path: Path, a: np.ndarray, gz: bool = False) -> None:
    a = np.ascontiguousarray(a, dtype=np.uint8)
    data = bytes([0, 0, 8, a.ndim]) + struct.pack(f">{a.ndim}i", *a.shape) + a.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wb", compresslevel=1) as f:
            f.write(data)
    else:
        path.write_bytes(data)


def write_subset(folder: Path, n_train: int, n_test: int, gz: bool) -> dict:
    """The first n images of the real Fashion-MNIST splits, written as an IDX set in `folder`."""
    arrays = {f: read_idx(SYS / f"{f}.gz") for f in IDX}
    sub = {}
    for f, a in arrays.items():
        sub[f] = a[: n_train if f.startswith("train") else n_test]
        write_idx(folder / f, sub[f], gz=gz)
    return sub


def snapshot(folder: Path):
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir())


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache for the tests that only read Fashion-MNIST, so it is prepared once."""
    return tmp_path_factory.mktemp("ganbench-cache")


@pytest.fixture
def cache(shared_cache, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(shared_cache))
    monkeypatch.delenv("GANBENCH_DATA", raising=False)
    return shared_cache


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    c = tmp_path / "cache"
    monkeypatch.setenv("GANBENCH_CACHE", str(c))
    monkeypatch.delenv("GANBENCH_DATA", raising=False)
    return c


# ----------------------------------------------------------------------------- config and registry
def test_config_fields_and_registry():
    cfg = DatasetCfg(name="stacked")
    assert (cfg.image_size, cfg.data_root, cfg.download, cfg.base, cfg.stack_seed) == (32, None, False, "fashion_mnist", 0)
    for bad in ({"image_size": 0}, {"base": "cifar10"}, {"stack_seed": -1}, {"imagesize": 32}):
        with pytest.raises(ValidationError):
            DatasetCfg(name="stacked", **bad)
    for name in ("fashion_mnist", "mnist", "cifar10", "celeba", "stacked", "digits"):
        assert callable(registry.get("dataset", name))


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "c"))
    assert im.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    monkeypatch.delenv("GANBENCH_CACHE")
    assert im.cache_dir() == Path.home() / ".cache" / "ganbench"


# ----------------------------------------------------------------------------- Fashion-MNIST
@needs_fashion
def test_fashion_mnist_first_load_cached_load_and_system_folder_untouched(fresh_cache, monkeypatch):
    before = snapshot(SYS)
    t0 = time.perf_counter()
    a = load("fashion_mnist")
    first = time.perf_counter() - t0

    assert a.train.shape == (60000, 1, 32, 32) and a.test.shape == (10000, 1, 32, 32)
    assert a.train.dtype == torch.uint8 and a.train_labels.dtype == torch.int64
    assert a.dim == (1, 32, 32) and a.num_classes == 10 and a.base_name is None
    assert a.train_labels.bincount().tolist() == [6000] * 10
    assert a.test_labels.bincount().tolist() == [1000] * 10
    # the labels are the files' labels, in order
    assert torch.equal(a.train_labels, torch.from_numpy(read_idx(SYS / "train-labels-idx1-ubyte.gz").astype(np.int64)))
    # uncompressed copies for torchvision live in the cache, the system folder is unchanged
    staged = list((fresh_cache / "raw").glob("FashionMNIST-*/FashionMNIST/raw/train-images-idx3-ubyte"))
    assert len(staged) == 1 and staged[0].stat().st_size == 16 + 60000 * 28 * 28
    assert snapshot(SYS) == before

    # the second load comes from the cache: preparing would fail now
    def boom(*a, **k):
        raise AssertionError("prepared again instead of read from the cache")
    monkeypatch.setattr(im, "_stage_idx", boom)
    t0 = time.perf_counter()
    b = load("fashion_mnist")
    second = time.perf_counter() - t0
    print(f"fashion_mnist load: first {first:.2f} s, cached {second:.4f} s")
    assert second < 2.0
    for f in ("train", "train_labels", "test", "test_labels"):
        assert torch.equal(getattr(a, f), getattr(b, f))
    assert len(list((fresh_cache / "prepared").glob("fashion_mnist-32-*.pt"))) == 1
    assert not list((fresh_cache / "prepared").glob(".*tmp"))  # no temporary files left

    # what every Ray trial does: a fresh process loads from the cache without importing torchvision
    code = ("import sys, time, torch; from bench import registry; from bench.schema import DatasetCfg; "
            "t = time.perf_counter(); d = registry.get('dataset', 'fashion_mnist')(DatasetCfg(name='fashion_mnist')); "
            "print(time.perf_counter() - t, tuple(d.train.shape), 'torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "GANBENCH_CACHE": str(fresh_cache)}).stdout.split(maxsplit=1)
    assert float(out[0]) < 1.0 and out[1].strip() == "(60000, 1, 32, 32) False"


@needs_fashion
def test_fashion_mnist_sample_split_and_scaling(cache):
    d = load("fashion_mnist")
    x = d.sample(512, torch.Generator().manual_seed(3))
    assert x.shape == (512, 1, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1  # Fashion-MNIST has black backgrounds
    assert torch.equal(x, d.sample(512, torch.Generator().manual_seed(3)))
    assert not torch.equal(x, d.sample(512, torch.Generator().manual_seed(4)))
    xt = d.to_float(d.test)
    assert xt.shape == (10000, 1, 32, 32) and xt.dtype == torch.float32 and d.test_labels.shape == (10000,)
    assert d.to_float(torch.tensor([0, 255], dtype=torch.uint8)).tolist() == [-1.0, 1.0]


@needs_fashion
def test_fashion_mnist_data_root_and_env_redirect(fresh_cache, tmp_path, monkeypatch):
    sub = write_subset(tmp_path / "fm", 300, 50, gz=True)
    by_root = load("fashion_mnist", data_root=str(tmp_path / "fm"), image_size=28)
    assert by_root.train.shape == (300, 1, 28, 28) and by_root.test.shape == (50, 1, 28, 28)
    assert torch.equal(by_root.train[:, 0], torch.from_numpy(sub["train-images-idx3-ubyte"].copy()))
    assert torch.equal(by_root.test_labels, torch.from_numpy(sub["t10k-labels-idx1-ubyte"].astype(np.int64)))

    write_subset(tmp_path / "env" / "fashion-mnist", 200, 40, gz=False)  # uncompressed, in a sub-folder
    monkeypatch.setenv("GANBENCH_DATA", str(tmp_path / "env"))
    by_env = load("fashion_mnist", image_size=28)
    assert by_env.train.shape == (200, 1, 28, 28) and by_env.test.shape == (40, 1, 28, 28)
    assert torch.equal(by_env.train, by_root.train[:200])

    # an explicit data_root is the only place looked at: no silent fall-back to the system package
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="fashion_mnist: missing"):
        load("fashion_mnist", data_root=str(tmp_path / "empty"))


# ----------------------------------------------------------------------------- MNIST (through torchvision)
@needs_fashion
def test_mnist_loads_local_idx_files(fresh_cache, tmp_path, monkeypatch):
    # uncompressed, torchvision layout under data_root: read in place (nothing staged in the cache)
    sub = write_subset(tmp_path / "root" / "MNIST" / "raw", 500, 100, gz=False)
    d = load("mnist", data_root=str(tmp_path / "root"), image_size=28)
    assert d.train.shape == (500, 1, 28, 28) and d.test.shape == (100, 1, 28, 28) and d.num_classes == 10
    assert torch.equal(d.train[:, 0], torch.from_numpy(sub["train-images-idx3-ubyte"].copy()))
    assert torch.equal(d.train_labels, torch.from_numpy(sub["train-labels-idx1-ubyte"].astype(np.int64)))
    assert not (fresh_cache / "raw").exists()

    # gzipped under $GANBENCH_DATA/MNIST/raw: decompressed into the cache, resized to 32
    write_subset(tmp_path / "env" / "MNIST" / "raw", 400, 80, gz=True)
    before = snapshot(tmp_path / "env" / "MNIST" / "raw")
    monkeypatch.setenv("GANBENCH_DATA", str(tmp_path / "env"))
    e = load("mnist")
    assert e.train.shape == (400, 1, 32, 32) and e.test.shape == (80, 1, 32, 32)
    assert torch.equal(e.train, im._resize(d.train[:400], 32))
    assert list((fresh_cache / "raw").glob("MNIST-*/MNIST/raw/t10k-images-idx3-ubyte"))
    assert snapshot(tmp_path / "env" / "MNIST" / "raw") == before  # the source folder is never written to


def test_mnist_missing_files_error_is_one_clear_line(fresh_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_DATA", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError) as e:
        load("mnist")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("mnist: missing ")
    for f in IDX:
        assert f"{f}(.gz)" in msg
    assert str(tmp_path / "data" / "MNIST" / "raw") in msg
    assert str(fresh_cache / "data" / "MNIST" / "raw") in msg
    assert "dataset.data_root" in msg and "GANBENCH_DATA" in msg and "dataset.download: true" in msg

    # a partial set: only the missing files are named
    raw = tmp_path / "data" / "MNIST" / "raw"
    write_idx(raw / IDX[0], np.zeros((3, 28, 28), np.uint8))
    write_idx(raw / IDX[1], np.zeros(3, np.uint8), gz=True)
    with pytest.raises(FileNotFoundError) as e:
        load("mnist")
    msg = str(e.value)
    assert "\n" not in msg and IDX[2] in msg and IDX[3] in msg and IDX[0] not in msg and IDX[1] not in msg
    assert f"most complete folder is {raw}" in msg

    # with data_root set, only it is searched
    with pytest.raises(FileNotFoundError) as e:
        load("mnist", data_root=str(tmp_path / "elsewhere"))
    msg = str(e.value)
    assert str(tmp_path / "elsewhere" / "MNIST" / "raw") in msg and str(raw) not in msg
    assert not (tmp_path / "elsewhere").exists()  # looking never creates the folder


def test_cifar10_and_celeba_missing_files_errors(fresh_cache, tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load("cifar10", data_root=str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("cifar10: missing data_batch_1,")
    assert "test_batch" in msg and str(tmp_path / "cifar-10-batches-py") in msg
    with pytest.raises(FileNotFoundError) as e:
        load("celeba", data_root=str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and "img_align_celeba/" in msg and "list_eval_partition.txt" in msg
    assert str(tmp_path / "celeba") in msg


# ----------------------------------------------------------------------------- stacked ("Color MNIST")
@needs_fashion
def test_stacked_channels_labels_and_coverage(cache):
    base = load("fashion_mnist")
    s = load("stacked")
    assert s.train.shape == (60000, 3, 32, 32) and s.test.shape == (10000, 3, 32, 32)
    assert s.dim == (3, 32, 32) and s.num_classes == 1000 and s.base_name == "fashion_mnist"
    assert s.train_labels.min() >= 0 and s.train_labels.max() <= 999
    assert s.train_labels.unique().numel() > 990
    for x, y, idx, bx, by in ((s.train, s.train_labels, s.train_index, base.train, base.train_labels),
                              (s.test, s.test_labels, s.test_index, base.test, base.test_labels)):
        for c in range(3):
            assert torch.equal(x[:, c], bx[idx[:, c], 0])  # channel c is base image idx[:, c] of that split
        assert torch.equal(y, 100 * by[idx[:, 0]] + 10 * by[idx[:, 1]] + by[idx[:, 2]])
    # independent of the stored index: find each channel's image in the base set, check its label digit
    flat = base.train.reshape(len(base.train), -1)
    for i in range(0, 60000, 7919):
        digits = (s.train_labels[i] // 100, s.train_labels[i] // 10 % 10, s.train_labels[i] % 10)
        for c in range(3):
            match = (flat == s.train[i, c].reshape(1, -1)).all(1)
            assert match.any() and digits[c] in base.train_labels[match].tolist()
    sx = s.sample(64, torch.Generator().manual_seed(0))
    assert sx.shape == (64, 3, 32, 32) and sx.min() >= -1 and sx.max() <= 1


@needs_fashion
def test_stacked_deterministic_per_seed(cache):
    a = load("stacked")
    a_train, a_labels = a.train.clone(), a.train_labels.clone()
    for p in (cache / "prepared").glob("stacked-s0-*.pt"):
        p.unlink()  # rebuild from scratch: same seed, same data
    b = load("stacked")
    assert torch.equal(a_train, b.train) and torch.equal(a_labels, b.train_labels)
    c = load("stacked", stack_seed=1)
    assert (c.train_labels != a_labels).float().mean() > 0.9
    assert not torch.equal(c.test, b.test)


def test_stacked_on_digits(fresh_cache):
    s = load("stacked", base="digits", image_size=16)
    base = load("digits", image_size=16)
    assert s.train.shape == (1437, 3, 16, 16) and s.test.shape == (360, 3, 16, 16) and s.base_name == "digits"
    assert torch.equal(s.test[:, 1], base.test[s.test_index[:, 1], 0])
    assert torch.equal(s.test_labels, 100 * base.test_labels[s.test_index[:, 0]]
                       + 10 * base.test_labels[s.test_index[:, 1]] + base.test_labels[s.test_index[:, 2]])


# ----------------------------------------------------------------------------- digits
def test_digits(fresh_cache):
    from sklearn.datasets import load_digits

    d32, d16, d8 = (load("digits", image_size=n) for n in (32, 16, 8))
    assert d32.train.shape == (1437, 1, 32, 32) and d32.test.shape == (360, 1, 32, 32)
    assert d16.train.shape == (1437, 1, 16, 16) and d16.test.shape == (360, 1, 16, 16)
    assert torch.equal(d32.train_labels, d16.train_labels) and d32.num_classes == 10
    assert d32.train_labels.bincount().min() > 130 and d32.test_labels.bincount().min() > 30  # stratified
    assert d32.train.max() == 255 and d32.train.min() == 0
    # at 8x8, train + test are exactly sklearn's images scaled to 0..255, each once
    ref = torch.from_numpy(np.round(load_digits().images * 255 / 16)).to(torch.uint8).reshape(1797, -1)
    got = torch.cat([d8.train, d8.test]).reshape(1797, -1)
    key = lambda t: sorted(map(tuple, t.tolist()))  # noqa: E731
    assert key(got) == key(ref)
    x = d16.sample(10, torch.Generator().manual_seed(0))
    assert x.shape == (10, 1, 16, 16) and -1 <= x.min() and x.max() <= 1


def test_damaged_cache_file_is_rebuilt(fresh_cache):
    a = load("digits", image_size=8).train.clone()  # (loaded memory-mapped: copy before damaging the file)
    (pt,) = (fresh_cache / "prepared").glob("digits-8-*.pt")
    pt.write_bytes(b"not a torch file")
    b = load("digits", image_size=8)
    assert torch.equal(a, b.train) and pt.stat().st_size > 1000
