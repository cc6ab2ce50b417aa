"""Streaming downloads: caps, deadlines, retries with backoff, resume with Range, sha256 while
streaming.

One attempt loop handles every transient failure the same way (5xx, a refused or dropped
connection, a body that ends early, a server that stops sending), so that each retry resumes from
the bytes already on disk when the server honours ``Range`` (206 with a matching
``Content-Range``) and starts over when it does not (200). urllib3's ``Retry`` covers only the
request, not a body that breaks half way, hence our own loop (the pattern pip uses for resumes).

What a hostile server cannot do:

- send more than ``max_bytes`` (the lock's size, or the manifest's maximum): a ``Content-Length``
  above it is refused before the body is read, and a body that grows past it is cut off at once;
  either way the partial file is removed;
- make us store anything but the bytes as served: ``Accept-Encoding: identity`` on every request,
  and a response with a ``Content-Encoding`` (or a transfer coding other than chunked) is refused,
  never decoded;
- hold a download forever by dripping bytes: besides the per-read timeout, every artifact has an
  overall ``deadline`` across all attempts, checked between reads. Reads return what has arrived
  (``read1``), so a check runs at least once per ``read_timeout``;
- make us write through a link: the partial file is opened with ``O_NOFOLLOW`` and must be a
  regular file.

A disk error (full, read-only, no permission) ends with :class:`FetchError` saying so, and the
partial file is removed. The body is written in chunks of up to 1 MiB as it arrives and hashed on
the way; it is never held in memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import errno
import hashlib
import logging
import os
import queue
import re
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests
from requests.adapters import HTTPAdapter

from mt5forge import __version__
from mt5forge.errors import FetchError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
#: Worth another try: the server or a proxy on the way had a bad moment.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclasses.dataclass(frozen=True, kw_only=True)
class HttpOptions:
    connect_timeout: float = 15.0
    """Seconds to wait for the TCP/TLS connection."""
    read_timeout: float = 60.0
    """Seconds without a byte before the attempt is abandoned (a stalled server)."""
    retries: int = 4
    """Further attempts after the first."""
    backoff: float = 0.5
    """Seconds before the first retry; doubled after each."""
    deadline: float = 3600.0
    """Seconds one download may take in all, every attempt and wait included (a server that
    drips one byte per second never trips ``read_timeout``). Overrun by at most one read."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Downloaded:
    path: Path
    size: int
    sha256: str
    attempts: int
    resumed: bool
    """True when some bytes came from an earlier attempt (Range)."""


class Refused(FetchError):
    """The server sent what we never accept (too many bytes, an encoded body): not retried,
    and the partial file is gone."""


class DiskError(FetchError):
    """The partial file could not be written (disk full, read-only, no permission)."""


class DeadlineError(FetchError):
    """The download did not finish within its overall deadline."""


#: Called once per attempt with (total size or None, bytes already on disk), then per chunk.
StartFn = Callable[[int | None, int], None]
BytesFn = Callable[[int], None]


def new_session() -> requests.Session:
    """A Session with no hidden retries (ours resume) and an honest User-Agent."""
    s = requests.Session()
    adapter = HTTPAdapter(max_retries=0, pool_connections=4, pool_maxsize=4)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = f"mt5forge/{__version__} (+verified fetch)"
    # Compressed transfer would change what we hash and break Range offsets; a response that
    # is encoded anyway is refused (see download).
    s.headers["Accept-Encoding"] = "identity"
    return s


_DISK_WHY = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ELOOP: "it is a symbolic link (never followed)",
}


def _disk(e: OSError, dest: Path, name: str) -> DiskError:
    dest.unlink(missing_ok=True)
    why = _DISK_WHY.get(e.errno or 0, e.strerror or str(e))
    return DiskError(
        f"{name}: cannot write {dest}: {why}.",
        hint="Nothing partial was kept. Free space or make [fetch] cache_dir writable, then "
        "fetch again.",
    )


def _open_partial(dest: Path, resume: bool) -> int:
    """Open ``dest`` for writing without following a link; it must be a regular file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(dest, flags if resume else flags | os.O_TRUNC, 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(dest))
    return fd


def _have(dest: Path) -> int:
    """Bytes of an earlier attempt in ``dest``; a link or odd file there is removed, unread."""
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return 0
    if not stat.S_ISREG(st.st_mode):
        log.warning("%s is not a regular file (a link?); removed, not followed", dest)
        dest.unlink()
        return 0
    return st.st_size


def _hash_prefix(path: Path, length: int) -> hashlib._Hash:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        remaining = length
        while remaining:
            block = f.read(min(CHUNK, remaining))
            if not block:
                break
            h.update(block)
            remaining -= len(block)
    return h


def _too_big(name: str, url: str, dest: Path, got: int, cap: int) -> Refused:
    dest.unlink(missing_ok=True)
    return Refused(
        f"{name}: {url} sent {got} bytes or more, over the cap of {cap} bytes for this "
        "artifact; stopped and removed the partial file.",
        hint="The cap is the lock's size, or the manifest's max_size while none is pinned. A "
        "server sending more is serving something else.",
    )


def _copy_file_url(
    url: str,
    dest: Path,
    name: str,
    max_bytes: int,
    on_start: StartFn | None,
    on_bytes: BytesFn | None,
) -> Downloaded:
    src = Path(unquote(urlparse(url).path))
    if not src.is_file():
        raise FetchError(f"{name}: {src} does not exist (mirror {url}).")
    size = src.stat().st_size
    if max_bytes and size > max_bytes:
        raise _too_big(name, url, dest, size, max_bytes)
    if on_start:
        on_start(size, 0)
    h = hashlib.sha256()
    written = 0
    with open(src, "rb") as fin:
        try:
            out = os.fdopen(_open_partial(dest, resume=False), "wb")
        except OSError as e:
            raise _disk(e, dest, name) from e
        with out:
            while block := fin.read(CHUNK):
                written += len(block)
                if max_bytes and written > max_bytes:
                    out.close()
                    raise _too_big(name, url, dest, written, max_bytes)
                try:
                    out.write(block)
                except OSError as e:
                    raise _disk(e, dest, name) from e
                h.update(block)
                if on_bytes:
                    on_bytes(len(block))
    return Downloaded(path=dest, size=written, sha256=h.hexdigest(), attempts=1, resumed=False)


def download(
    url: str,
    dest: Path,
    *,
    name: str,
    options: HttpOptions,
    max_bytes: int = 0,
    session: requests.Session | None = None,
    on_start: StartFn | None = None,
    on_bytes: BytesFn | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Downloaded:
    """Download ``url`` into ``dest`` (resuming bytes already in it); return size and sha256.

    ``dest`` is a partial file owned by the caller: it is left in place when all attempts fail
    on the transport so that a later run resumes, and removed when the server sent what is
    never accepted (:class:`Refused`) or the disk failed (:class:`DiskError`). ``max_bytes``
    (0: none) caps the body. Raises :class:`FetchError` naming ``name``, the URL and the reason.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _disk(e, dest, name) from e
    if urlparse(url).scheme == "file":
        return _copy_file_url(url, dest, name, max_bytes, on_start, on_bytes)
    session = session or new_session()
    attempts = options.retries + 1
    reason = ""
    resumed_any = False
    started = time.monotonic()
    deadline = started + options.deadline

    def late() -> bool:
        return time.monotonic() > deadline

    attempt = 0
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            wait = options.backoff * 2 ** (attempt - 2)
            if time.monotonic() + wait > deadline:
                break
            log.info("%s: %s; attempt %d of %d in %.1f s", name, reason, attempt, attempts, wait)
            sleep(wait)
        if late():
            break
        have = _have(dest)
        if max_bytes and have > max_bytes:
            raise _too_big(name, url, dest, have, max_bytes)
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            resp = session.get(
                url,
                stream=True,
                headers=headers,
                timeout=(options.connect_timeout, options.read_timeout),
                allow_redirects=True,
            )
        except requests.Timeout:
            reason = f"no answer within {options.read_timeout:g} s"
            continue
        except requests.ConnectionError as e:
            reason = f"connection failed ({_short(e)})"
            continue
        except requests.RequestException as e:
            raise FetchError(f"{name}: cannot request {url}: {_short(e)}") from e
        with resp:
            status = resp.status_code
            if status == 416 and have:
                # The partial is as long as (or longer than) the file: start over.
                dest.unlink()
                reason = "server refused to resume (HTTP 416)"
                continue
            if status in RETRY_STATUSES:
                reason = f"HTTP {status} {resp.reason}"
                continue
            if status >= 400:
                raise FetchError(
                    f"{name}: {url} answered HTTP {status} {resp.reason}.",
                    hint="Check the URL in the manifest, or the mirror ([fetch] mirror / "
                    "MT5FORGE_MIRROR) serves this file name.",
                )
            encoding = resp.headers.get("Content-Encoding", "").strip()
            coding = resp.headers.get("Transfer-Encoding", "").strip().lower()
            if encoding or coding not in ("", "chunked"):
                dest.unlink(missing_ok=True)
                header = "Content-Encoding" if encoding else "Transfer-Encoding"
                raise Refused(
                    f"{name}: {url} answered with {header}: "
                    f"{_short_text(encoding or coding)}; an artifact is stored byte for byte as "
                    "served, never decoded.",
                    hint="We ask for identity encoding; a server that encodes anyway is "
                    "misconfigured or hostile. Nothing was kept.",
                )
            offset = 0
            if status == 206 and have:
                m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                if m and int(m.group(1)) == have:
                    offset = have
            length = resp.headers.get("Content-Length", "")
            total = int(length) + offset if length.isdigit() else None
            if max_bytes and total is not None and total > max_bytes:
                raise _too_big(name, url, dest, total, max_bytes)
            if offset:
                resumed_any = True
                log.info("%s: resuming at byte %d", name, offset)
            if on_start:
                on_start(total, offset)
            written = offset
            try:
                hasher = _hash_prefix(dest, offset) if offset else hashlib.sha256()
                fd = _open_partial(dest, resume=bool(offset))
            except OSError as e:
                raise _disk(e, dest, name) from e
            try:
                if offset:
                    os.lseek(fd, offset, os.SEEK_SET)
                os.ftruncate(fd, offset)
            except OSError as e:
                os.close(fd)
                raise _disk(e, dest, name) from e
            # Keep the bytes of a body that breaks off: with urllib3's own length check the
            # last read raises and drops what it got. We compare the length ourselves below.
            raw = resp.raw
            raw.enforce_content_length = False
            sink = _Sink(fd, hasher, offset)
            try:
                while True:
                    if late():
                        raise _deadline(name, url, options.deadline, written)
                    try:
                        chunk = raw.read1(CHUNK, decode_content=False)
                    except Exception as e:  # OSError, urllib3's ProtocolError, ReadTimeoutError
                        raise _Transient(_read_failure(e, options, written, total)) from e
                    if not chunk:
                        break
                    written += len(chunk)
                    if max_bytes and written > max_bytes:
                        raise _too_big(name, url, dest, written, max_bytes)
                    sink.put(chunk)
                    if on_bytes:
                        on_bytes(len(chunk))
                sink.finish()
            except _Transient as t:
                reason = t.reason
                continue
            except OSError as e:  # from the sink: the disk
                raise _disk(e, dest, name) from e
            finally:
                sink.stop()
                os.close(fd)
            if total is not None and written != total:
                reason = f"body ended after {written} of {total} bytes"
                continue
            return Downloaded(
                path=dest,
                size=written,
                sha256=hasher.hexdigest(),
                attempts=attempt,
                resumed=resumed_any,
            )
    kept = _have(dest)
    if late() or attempt < attempts:
        raise _deadline(name, url, options.deadline, kept, reason)
    raise FetchError(
        f"{name}: download of {url} failed after {attempts} attempt(s): {reason}.",
        hint=f"The {kept} bytes received so far are kept in {dest}; a later fetch resumes them."
        if kept
        else None,
    )


class _Transient(Exception):
    """A read failed in a way worth another attempt (internal to :func:`download`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _read_failure(e: BaseException, options: HttpOptions, written: int, total: int | None) -> str:
    if "timed out" in str(e).lower() or "timeout" in type(e).__name__.lower():
        return f"no data for {options.read_timeout:g} s after {written} bytes"
    return f"connection dropped after {written} of {total or '?'} bytes"


def _deadline(name: str, url: str, seconds: float, got: int, last: str = "") -> DeadlineError:
    why = f" (last: {last})" if last else ""
    return DeadlineError(
        f"{name}: {url} did not deliver the file within the deadline of {seconds:g} s "
        f"({got} bytes received){why}.",
        hint="A server that sends too slowly is given up on; the next mirror, if any, is tried.",
    )


class _Sink:
    """Writes and hashes the received chunks in a worker thread, and starts their writeback to
    disk as it goes, so that receiving, hashing and flushing overlap.

    Measured on this 2-CPU machine (benchmarks/bench_fetch.py --breakdown, and plain writes of
    1 MiB blocks then ``fsync``): sha256 runs at about 850 MiB/s and the receive loop about as
    fast, so in one thread one waits for the other. What made the larger file slow, though, is
    the page cache: written without flushing, dirty pages pile up until the kernel throttles the
    writer (``balance_dirty_pages``) and the final ``fsync`` flushes them all. Write plus
    ``fsync`` of 1 GiB ran at 237-323 MiB/s that way, and at 1065-1249 MiB/s when writeback of
    every 8 MiB is started right after it is written (``sync_file_range``, which does not wait),
    the final ``fsync`` then having little left to do. At most :data:`QUEUE` chunks wait, so
    memory stays flat. A disk error in the worker is raised on the next :meth:`put` or at
    :meth:`finish`.
    """

    QUEUE = 8
    WRITEBACK = 8 << 20

    def __init__(self, fd: int, hasher: hashlib._Hash, offset: int = 0) -> None:
        self._fd, self._hasher = fd, hasher
        self._queue: queue.Queue[bytes | None] = queue.Queue(self.QUEUE)
        self._error: OSError | None = None
        self._stopped = False
        self._flushed = self._written = offset
        self._thread = threading.Thread(target=self._work, name="fetch-sink", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is not None or self._stopped:
                continue  # drain: the receiver is told on its next put
            try:
                _write_all(self._fd, chunk)
            except OSError as e:
                self._error = e
                continue
            self._written += len(chunk)
            self._hasher.update(chunk)
            if self._written - self._flushed >= self.WRITEBACK:
                start_writeback(self._fd, self._flushed, self._written - self._flushed)
                self._flushed = self._written

    def put(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def finish(self) -> None:
        """Wait until every chunk is written and hashed; raise the worker's disk error."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """End the worker without writing what is still queued (idempotent)."""
        if self._thread.is_alive():
            self._stopped = True
            self._queue.put(None)
            self._thread.join()


def _libc_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_SYNC_FILE_RANGE = _libc_sync_file_range()
#: SYNC_FILE_RANGE_WRITE: start writeback of dirty pages in the range, do not wait for it.
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes at ``offset`` to disk, without waiting
    (Linux ``sync_file_range``). Advisory: where it is missing or fails, nothing happens, and
    the ``fsync`` before commit still makes the file durable."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _short_text(text: str) -> str:
    """A header value for a message: printable and short (it comes from the server)."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return repr(clean[:60] + ("..." if len(clean) > 60 else ""))


def _short(e: BaseException) -> str:
    text = str(e)
    return text if len(text) < 200 else text[:200] + "..."
