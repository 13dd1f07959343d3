"""The file-system helpers every writer shares: atomic writes, pyarrow file systems for storage URIs. Torch-free."""

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


def filesystem(uri: str):
    """(pyarrow FileSystem, path in it) of a local path or a storage URI (file://, s3://, gs://, ...)."""
    import pyarrow.fs

    if "://" not in uri:
        return pyarrow.fs.LocalFileSystem(), str(Path(uri).resolve())
    return pyarrow.fs.FileSystem.from_uri(uri)
