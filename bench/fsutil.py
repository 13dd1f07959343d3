"""Two file-system helpers every writer shares: atomic writes and a cross-process lock. Torch-free."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(target: Path, write: Callable[[str], None], mode: int = 0o644) -> None:
    """`write(tmp)` into a temporary file beside `target`, then rename it into place: readers see the
    old file or the new one, never half of one; a failed write leaves the old file untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, mode)  # mkstemp makes it 0600; shared caches and results must be readable by all
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive lock across processes on one machine (e.g. Ray trials building one cache entry)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the atomic writes alone keep caches consistent
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
