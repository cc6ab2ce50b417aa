"""File helpers every module shares: a streaming sha256 and write-to-temp-then-rename.

One copy each, so a fix (a temp file left behind on failure, a file read whole into memory)
is made once.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

CHUNK = 1 << 20
"""Read size for hashing: large enough for full speed, small enough to keep memory flat."""


def sha256_file(path: Path) -> str:
    """The sha256 of ``path`` as hex, read in :data:`CHUNK` blocks (never whole)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: Path, data: str | bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same directory and a rename.

    A reader sees the old file or the whole new one, never half; on any failure (disk full,
    interrupt) the temp file is removed and ``path`` is untouched. ``mode`` sets permissions
    before the rename (``mkstemp`` makes 0600).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data.encode("utf-8") if isinstance(data, str) else data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644 if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
