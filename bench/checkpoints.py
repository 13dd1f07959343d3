"""A pack's checkpoints in the study's storage. run_trial hands over its whole state (networks,
optimizers, random streams, loop position, the rows reported so far); it is written as `state.pt` plus
`meta.json` (step, member trial ids) and persisted by Ray Tune (`tune.report(..., checkpoint=...)`) to
<storage>/<experiment>/<pack_id>/checkpoint_NNNNNN/, where <storage> is results/<study>/ray on one
machine or the shared path / bucket of `--storage` on a cluster (pyarrow file systems: local, NFS, s3://).

Ray's retries restore a trial from its own latest checkpoint (`tune.get_checkpoint()`). A rerun of the
study after the driver died starts a new experiment; its trials find their pack's latest checkpoint
among every earlier experiment of the storage (`resume_state`), so they resume instead of starting over.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from bench.fsutil import filesystem

STATE, META = "state.pt", "meta.json"


def write(state: dict, directory: str | Path) -> None:
    import torch

    directory = Path(directory)
    torch.save(state, directory / STATE)
    (directory / META).write_text(json.dumps({"t": state["loop"]["t"], "ids": state["ids"]}))


def read(checkpoint) -> dict:
    """The state in a Ray Tune Checkpoint (downloaded first when it lives in a bucket)."""
    import torch

    with checkpoint.as_directory() as d:
        return torch.load(Path(d) / STATE, map_location="cpu", weights_only=True)


def _dirs(fs, path: str) -> list:
    import pyarrow.fs

    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    except OSError:
        return []
    return [i for i in infos if i.type == pyarrow.fs.FileType.Directory]


def candidates(storage: str, pack_id: str) -> list:
    """The pack's checkpoints across the storage's experiments, latest step first (Ray Tune Checkpoints)."""
    from ray import tune

    fs, root = filesystem(storage)
    found = []
    for exp in _dirs(fs, root):
        for ck in _dirs(fs, f"{exp.path}/{pack_id}"):
            if not ck.base_name.startswith("checkpoint_"):
                continue
            try:
                with fs.open_input_stream(f"{ck.path}/{META}") as f:
                    found.append((json.loads(f.read())["t"], ck.path))
            except (OSError, ValueError, KeyError):  # its upload did not finish
                continue
    return [tune.Checkpoint(path, filesystem=fs) for _, path in sorted(found, reverse=True)]


def resume_state(own, storage: str, pack_id: str) -> Optional[dict]:
    """The state to resume from: Ray's own checkpoint of this trial (a retry), else the latest readable
    one an earlier run of the study left (one cut short by a kill mid-upload is skipped)."""
    import logging

    for ckpt in ([own] if own is not None else []) + candidates(storage, pack_id):
        try:
            return read(ckpt)
        except Exception as e:  # noqa: BLE001 - an incomplete checkpoint: try the one before
            logging.getLogger(__name__).warning("skipping unreadable checkpoint %s: %s", ckpt.path, e)
    return None


def remove(storage: str, pack_id: str) -> None:
    """Delete every checkpoint of a pack that has finished (they are only for resuming)."""
    fs, root = filesystem(storage)
    for exp in _dirs(fs, root):
        for ck in _dirs(fs, f"{exp.path}/{pack_id}"):
            if ck.base_name.startswith("checkpoint_"):
                fs.delete_dir(ck.path)
