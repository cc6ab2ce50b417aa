"""Streaming downloads: timeouts, retries with backoff, resume with Range, sha256 while streaming.

One attempt loop handles every transient failure the same way (5xx, a refused or dropped
connection, a body that ends early, a server that stops sending), so that each retry resumes from
the bytes already on disk when the server honours ``Range`` (206 with a matching
``Content-Range``) and starts over when it does not (200). urllib3's ``Retry`` covers only the
request, not a body that breaks half way, hence our own loop (the pattern pip uses for resumes).

The file is written in 1 MiB chunks and hashed as it arrives; it is never held in memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import shutil
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class Downloaded:
    path: Path
    size: int
    sha256: str
    attempts: int
    resumed: bool
    """True when some bytes came from an earlier attempt (Range)."""


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
    # Compressed transfer would change what we hash and break Range offsets.
    s.headers["Accept-Encoding"] = "identity"
    return s


def _hash_prefix(path: Path, length: int) -> hashlib._Hash:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        remaining = length
        while remaining:
            block = f.read(min(CHUNK, remaining))
            if not block:
                break
            h.update(block)
            remaining -= len(block)
    return h


def _copy_file_url(
    url: str, dest: Path, name: str, on_start: StartFn | None, on_bytes: BytesFn | None
) -> Downloaded:
    src = Path(unquote(urlparse(url).path))
    if not src.is_file():
        raise FetchError(f"{name}: {src} does not exist (mirror {url}).")
    size = src.stat().st_size
    if on_start:
        on_start(size, 0)
    h = hashlib.sha256()
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        while block := fin.read(CHUNK):
            fout.write(block)
            h.update(block)
            if on_bytes:
                on_bytes(len(block))
    shutil.copystat(src, dest)
    return Downloaded(path=dest, size=size, sha256=h.hexdigest(), attempts=1, resumed=False)


def download(
    url: str,
    dest: Path,
    *,
    name: str,
    options: HttpOptions,
    session: requests.Session | None = None,
    on_start: StartFn | None = None,
    on_bytes: BytesFn | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Downloaded:
    """Download ``url`` into ``dest`` (resuming bytes already in it); return size and sha256.

    ``dest`` is a partial file owned by the caller: it is left in place when all attempts fail
    so that a later run resumes, and the caller removes it when the bytes prove wrong.
    Raises :class:`FetchError` naming ``name``, the URL and the last reason.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if urlparse(url).scheme == "file":
        return _copy_file_url(url, dest, name, on_start, on_bytes)
    session = session or new_session()
    attempts = options.retries + 1
    reason = ""
    resumed_any = False
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            wait = options.backoff * 2 ** (attempt - 2)
            log.info("%s: %s; attempt %d of %d in %.1f s", name, reason, attempt, attempts, wait)
            sleep(wait)
        have = dest.stat().st_size if dest.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
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
            offset = 0
            if status == 206 and have:
                m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                if m and int(m.group(1)) == have:
                    offset = have
            length = resp.headers.get("Content-Length")
            total = int(length) + offset if length and length.isdigit() else None
            hasher = _hash_prefix(dest, offset) if offset else hashlib.sha256()
            if offset:
                resumed_any = True
                log.info("%s: resuming at byte %d", name, offset)
            if on_start:
                on_start(total, offset)
            written = offset
            # Keep the bytes of a body that breaks off: with urllib3's own length check the
            # last read raises and drops what it got. We compare the length ourselves below.
            if hasattr(resp.raw, "enforce_content_length"):
                resp.raw.enforce_content_length = False
            try:
                with open(dest, "r+b" if offset else "wb") as f:
                    f.seek(offset)
                    f.truncate()
                    for chunk in resp.iter_content(CHUNK):
                        f.write(chunk)
                        hasher.update(chunk)
                        written += len(chunk)
                        if on_bytes:
                            on_bytes(len(chunk))
            except requests.exceptions.ConnectionError as e:
                if "timed out" in str(e).lower() or "timeout" in type(e).__name__.lower():
                    reason = f"no data for {options.read_timeout:g} s after {written} bytes"
                else:
                    reason = f"connection dropped after {written} of {total or '?'} bytes"
                continue
            except requests.exceptions.ChunkedEncodingError:
                reason = f"body ended after {written} of {total or '?'} bytes"
                continue
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
    kept = dest.stat().st_size if dest.exists() else 0
    raise FetchError(
        f"{name}: download of {url} failed after {attempts} attempt(s): {reason}.",
        hint=f"The {kept} bytes received so far are kept in {dest}; a later fetch resumes them."
        if kept
        else None,
    )


def _short(e: BaseException) -> str:
    text = str(e)
    return text if len(text) < 200 else text[:200] + "..."
