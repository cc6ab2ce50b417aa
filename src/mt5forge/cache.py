"""The content-addressed artifact cache.

Layout under ``[fetch] cache_dir``::

    sha256/<first 2 hex>/<sha256>/<upstream file name>   verified files, never written in place
    partial/<sha256>.part                                  bytes of an unfinished download (resume)
    locks/<sha256>.lock                                    one writer per artifact (flock)
    quarantine/                                            cached files that no longer hash right

A file reaches its final name only by ``os.replace`` after every check passed, so a reader sees
either nothing or a complete verified file. Two fetches into one cache serialise per artifact on
an exclusive ``flock``; the second finds the first one's result and reports a cache hit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from mt5forge.files import CHUNK, sha256_file

__all__ = ["CHUNK", "Cache", "sha256_file"]


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def entry(self, sha256: str, filename: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256 / filename

    def partial(self, sha256: str) -> Path:
        return self.root / "partial" / f"{sha256}.part"

    def scratch(self) -> Path:
        """A directory for throw-away files (signatures, pin downloads) on the same filesystem."""
        d = self.root / "tmp"
        d.mkdir(parents=True, exist_ok=True)
        return d

    @contextlib.contextmanager
    def locked(self, sha256: str) -> Iterator[None]:
        d = self.root / "locks"
        d.mkdir(parents=True, exist_ok=True)
        with open(d / f"{sha256}.lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def commit(self, verified: Path, sha256: str, filename: str) -> Path:
        """Move a verified file to its final name atomically; return that name."""
        final = self.entry(sha256, filename)
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(verified, "rb") as f:
            os.fsync(f.fileno())
        verified.chmod(0o444)
        os.replace(verified, final)
        return final

    def quarantine(self, path: Path) -> Path:
        """Move a cached file that no longer hashes right out of the way (kept for forensics)."""
        d = self.root / "quarantine"
        d.mkdir(parents=True, exist_ok=True)
        target = d / f"{int(time.time())}-{path.parent.name[:12]}-{path.name}"
        os.replace(path, target)
        return target
