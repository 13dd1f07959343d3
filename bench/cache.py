"""The one cache helper: prepared datasets, evaluator weights and real-data statistics are all
`cached(path, build)`: load the file if it is there; else take a lock (the `filelock` package: one
process builds while the others wait, e.g. Ray trials starting together on one machine) and build it,
unless a process that held the lock before us already did, then save it atomically (a reader never
sees half a file). A damaged file (never a half-written one) is rebuilt.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Optional

from filelock import FileLock

from bench.fsutil import atomic_write

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The ganbench cache folder: $GANBENCH_CACHE, else ~/.cache/ganbench (created on demand)."""
    d = Path(os.environ.get("GANBENCH_CACHE") or Path.home() / ".cache" / "ganbench").expanduser()
    d.mkdir(parents=True, exist_ok=True)
    return d


def load_torch(path: Path, mmap: bool = False) -> Optional[dict]:
    """A torch.save'd dict of tensors, or None when absent or unreadable."""
    import torch

    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # damaged (never half-written: writes are atomic): rebuild
        log.warning("ignoring unreadable cache file %s (%s)", path, e)
        return None


def cached(path: Path, build: Callable[[], dict], mmap: bool = False) -> dict:
    """The object cached at `path` (a torch.save'd dict), built and saved under a lock when absent."""
    import torch

    path = Path(path)
    obj = load_torch(path, mmap)
    if obj is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{path}.lock"):
            obj = load_torch(path, mmap)  # another process may have built it while we waited
            if obj is None:
                built = build()
                atomic_write(path, lambda tmp: torch.save(built, tmp))
                obj = load_torch(path, mmap) if mmap else built
    return obj
