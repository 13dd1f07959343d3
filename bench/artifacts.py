"""A trial's artifacts, encoded, written and decoded here and nowhere else. They are written as files
where the trial runs, under an artifact root: the results folder when the study's storage is the
default one on this machine, else `<storage>/artifacts` (the NFS path or bucket of `--storage`, which
every node reaches), from where the driver copies a trial's files into the results folder when the
trial ends (`fetch`). Result rows and Ray's result stream carry only their paths, relative to the root:

  grids/<trial_id>/<step>_<kind>.png   image sample grids of every evaluation (64 images, 8 x 8)
  samples/<trial_id>.npz               toys: generated / real / lensed points of the last evaluation
  outputs/<trial_id>.npz               ED structures: the final test outputs for the study-level NRDS
                                       (`outputs` uint8 [N, C, H, W], `index` int64 test indices,
                                       `labels` int64[, `swapped_labels` for caae])
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from bench.fsutil import atomic_write, filesystem

GRID_IMAGES = 64


def png_grid(x) -> bytes:
    """Up to 64 images in [-1, 1] ([N, C, H, W] tensor) -> PNG bytes of an 8 x 8 grid; a [rows, cols, C,
    H, W] tensor (e.g. a row per class) -> a rows x cols grid of all of them."""
    from torchvision.transforms.functional import to_pil_image
    from torchvision.utils import make_grid

    if x.dim() == 5:
        nrow, x = x.shape[1], x.flatten(0, 1)
    else:
        nrow, x = 8, x[:GRID_IMAGES]
    grid = make_grid(x.clamp(-1, 1), nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1.0)
    if x.shape[1] == 1:
        grid = grid[:1]  # make_grid repeats one channel three times; a grey PNG is a third of the size
    buf = io.BytesIO()
    to_pil_image(grid).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def encode_npz(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def decode_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data)) as z:
        return {k: z[k] for k in z.files}


def read_npz(root: str | Path, rel: str) -> dict[str, np.ndarray]:
    return decode_npz((Path(root) / rel).read_bytes())


def _write(root: str | Path, rel: str, data: bytes) -> str:
    if "://" not in str(root):
        atomic_write(Path(root) / rel, lambda tmp: Path(tmp).write_bytes(data))
    else:  # an object store's write becomes visible whole when the stream closes
        fs, base = filesystem(str(root))
        fs.create_dir(f"{base}/{rel}".rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(f"{base}/{rel}") as f:
            f.write(data)
    return rel


def trial_files(trial_id: str) -> list[str]:
    """The artifact paths (files or folders, relative to the root) a trial may have written."""
    return [f"grids/{trial_id}", f"samples/{trial_id}.npz", f"outputs/{trial_id}.npz"]


def fetch(root: str, results_dir: str | Path, trial_id: str) -> None:
    """Copy a trial's artifacts from the artifact root (storage) into the results folder."""
    import pyarrow.fs

    fs, base = filesystem(root)
    local = pyarrow.fs.LocalFileSystem()
    for rel in trial_files(trial_id):
        info = fs.get_file_info(f"{base}/{rel}")
        if info.type == pyarrow.fs.FileType.NotFound:
            continue
        target = Path(results_dir) / rel
        # pyarrow copies a folder's files into an existing folder only
        (target if info.type == pyarrow.fs.FileType.Directory else target.parent).mkdir(parents=True, exist_ok=True)
        pyarrow.fs.copy_files(f"{base}/{rel}", str(target), source_filesystem=fs, destination_filesystem=local)


def save(root: str | Path, trial_id: str, step: int, artifacts: dict) -> dict:
    """Write one evaluation's artifacts ({"grids": {kind: images}, "samples": {kind: points},
    "outputs": {name: array}}) under root; return the row columns that point to them."""
    cols = {}
    for kind, images in (artifacts.get("grids") or {}).items():
        cols[f"grid_{kind}"] = _write(root, f"grids/{trial_id}/{step:08d}_{kind}.png", png_grid(images))
    if artifacts.get("samples"):
        cols["samples_path"] = _write(root, f"samples/{trial_id}.npz", encode_npz(
            {k: np.asarray(v, dtype=np.float32) for k, v in artifacts["samples"].items()}))
        cols["samples_step"] = step
    if artifacts.get("outputs"):
        cols["outputs_path"] = _write(root, f"outputs/{trial_id}.npz", encode_npz(artifacts["outputs"]))
    return cols


def sample_rows(root: str | Path, rel: str, ids: dict, step: int) -> list[dict]:
    """samples.parquet rows ({**ids, step, kind, x, y}) of a samples file."""
    return [{**ids, "step": step, "kind": kind, "x": float(p[0]), "y": float(p[1])}
            for kind, pts in read_npz(root, rel).items() for p in pts]
