"""The content-addressed artifact cache.

Layout under ``[fetch] cache_dir``::

    sha256/<first 2 hex>/<sha256>/<upstream file name>   verified files, never written in place
    partial/<sha256>.part                                  bytes of an unfinished download (resume)
    locks/<sha256>.lock                                    one writer per artifact (flock)
    quarantine/                                            cached files that no longer hash right

A file reaches its final name only by ``os.replace`` after every check passed, so a reader sees
either nothing or a complete verified file. Two fetches into one cache serialise per artifact on
an exclusive ``flock``; the second finds the first one's result and reports a cache hit.

The cache never follows a symbolic link below its root: every directory is opened one component
at a time with ``O_NOFOLLOW | O_DIRECTORY`` (``openat``), every file with ``O_NOFOLLOW``, and what
was opened is checked (a directory, a regular file). A link planted in a shared cache (pointing
at ``/etc/passwd``, or at a file the attacker controls) is refused, never written through or
read as a verified artifact. The root itself may be a link: it is the user's own setting.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from mt5forge.errors import FetchError, VerificationError
from mt5forge.files import CHUNK, sha256_file

__all__ = ["CHUNK", "Cache", "disk_error", "sha256_file"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def disk_error(e: OSError, what: str, name: str) -> FetchError:
    """A clear error for a failed write to the cache (disk full, read-only, no permission)."""
    why = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exhausted",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
    }.get(e.errno or 0, e.strerror or str(e))
    return FetchError(
        f"{name}: cannot {what}: {why}.",
        hint="Nothing partial was kept. Free space or make [fetch] cache_dir writable, then "
        "fetch again.",
    )


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def entry(self, sha256: str, filename: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256 / filename

    def partial(self, sha256: str) -> Path:
        """Where an unfinished download of ``sha256`` lives; its directory is checked."""
        self.real_dir("partial")
        return self.root / "partial" / f"{sha256}.part"

    def scratch(self) -> Path:
        """A directory for throw-away files (signatures, pin downloads) on the same filesystem."""
        self.real_dir("tmp")
        return self.root / "tmp"

    # --- no symlinks below the root ----------------------------------------------------------

    def _walk(self, parts: tuple[str, ...], *, create: bool) -> int | None:
        """An fd of ``root/parts...`` opened component by component without following links;
        None when a component is missing and ``create`` is false. The caller closes it."""
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            for part in parts:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    os.close(fd)
                    return None
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise self._link_error(parts, part) from e
                    raise
                os.close(fd)
                fd = nxt
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        return fd

    @contextlib.contextmanager
    def _dir_fd(self, *parts: str, create: bool) -> Iterator[int | None]:
        fd = self._walk(parts, create=create)
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    @contextlib.contextmanager
    def _made_dir(self, *parts: str) -> Iterator[int]:
        try:
            fd = self._walk(parts, create=True)
        except OSError as e:
            raise disk_error(e, f"create {self.root.joinpath(*parts)}", "artifact cache") from e
        if fd is None:  # a component vanished between mkdir and open: someone is racing us
            raise VerificationError(f"{self.root.joinpath(*parts)} disappeared while in use.")
        try:
            yield fd
        finally:
            os.close(fd)

    def _link_error(self, parts: tuple[str, ...], part: str) -> VerificationError:
        where = self.root.joinpath(*parts[: parts.index(part) + 1])
        return VerificationError(
            f"{where} in the artifact cache is a symbolic link or not a directory; the cache "
            "never follows links.",
            hint="Someone else can write to the cache directory. Remove that entry (or use a "
            "private [fetch] cache_dir) and fetch again.",
        )

    def real_dir(self, *parts: str) -> Path:
        """Create ``root/parts...`` and check no component is a link; return its path."""
        with self._made_dir(*parts):
            pass
        return self.root.joinpath(*parts)

    def hash_entry(self, sha256: str, filename: str) -> tuple[str, int] | None:
        """(sha256, size) of the cached file for ``sha256``, read without following a link;
        None when there is none. A link or anything not a regular file there is refused."""
        with self._dir_fd("sha256", sha256[:2], sha256, create=False) as d:
            if d is None:
                return None
            try:
                fd = os.open(filename, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=d)
            except FileNotFoundError:
                return None
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise VerificationError(
                        f"{self.entry(sha256, filename)} is a symbolic link; the cache never "
                        "follows links.",
                        hint="Remove it and fetch again; check who can write the cache.",
                    ) from e
                raise
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise VerificationError(f"{self.entry(sha256, filename)} is not a regular file.")
            h = hashlib.sha256()
            while block := f.read(CHUNK):
                h.update(block)
            return h.hexdigest(), st.st_size

    # --- locking, commit, quarantine ---------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, sha256: str) -> Iterator[None]:
        with self._made_dir("locks") as d:
            fd = os.open(
                f"{sha256}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                dir_fd=d,
            )  # fmt: skip
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def commit(self, verified: Path, sha256: str, filename: str, *, name: str = "") -> Path:
        """Move a verified file to its final name atomically and durably; return that name.

        The data is flushed (``fsync`` of the file) before the rename and the directory after
        it, so a crash leaves either no entry or a complete one. ``verified`` is opened without
        following links and must be a regular file.
        """
        final = self.entry(sha256, filename)
        try:
            fd = os.open(verified, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise VerificationError(f"{verified} is not a regular file.")
                os.fsync(fd)
                os.fchmod(fd, 0o444)
            finally:
                os.close(fd)
            with self._made_dir("sha256", sha256[:2], sha256) as d:
                os.replace(verified, filename, dst_dir_fd=d)
                os.fsync(d)
        except OSError as e:
            verified.unlink(missing_ok=True)
            raise disk_error(e, f"store {final}", name or filename) from e
        return final

    def quarantine(self, path: Path) -> Path:
        """Move a cached file that no longer hashes right out of the way (kept for forensics)."""
        self.real_dir("quarantine")
        target = (
            self.root / "quarantine" / f"{int(time.time())}-{path.parent.name[:12]}-{path.name}"
        )
        os.replace(path, target)
        return target
