"""The image's filesystem read layer by layer from ``docker save``, without running anything.

A shell-less image has nothing to run ``find`` with, and a file deleted in a later layer is
still in the image's bytes though no container shows it. So verify streams the saved image once
and, for every layer in order, keeps each entry's metadata (mode, owner, type), the whiteouts
(deletions of earlier layers' files), and the secret hits in file names and contents. The final
filesystem is the layers applied in order; the hits are kept for every layer, deleted or not.

Caps: a file's first :data:`CONTENT_CAP` bytes are scanned (the rest is counted, not read); ELF
and PE files (compiled code: most of Wine's 0.9 GB) are not scanned for contents, only named;
a layer with more than :data:`MAX_ENTRIES` entries fails the read. Each layer is read once per
process (per set of canaries): the images of one Dockerfile share most of their layers.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import posixpath
import stat
import tarfile
import threading
from collections.abc import Iterator
from typing import IO, Any

from mt5forge.errors import VerificationError
from mt5forge.verify.patterns import Hit, Scanner

log = logging.getLogger(__name__)

CONTENT_CAP = 8 * 1024 * 1024
MAX_ENTRIES = 500_000
_BINARY_MAGIC = (b"\x7fELF", b"MZ")


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    mode: int
    """Permission bits and setuid/setgid/sticky (``stat.S_IMODE``)."""
    uid: int
    gid: int
    kind: str
    """``file``, ``dir``, ``link`` (symlink) or ``other``."""
    size: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Layer:
    key: str
    """The layer's directory in the saved tar (its v1 id)."""
    entries: dict[str, Entry]
    deleted: frozenset[str]
    """Paths this layer deletes (whiteouts)."""
    opaque: frozenset[str]
    """Directories whose earlier content this layer hides."""
    hits: tuple[Hit, ...]
    scanned_bytes: int
    binaries: int
    """ELF/PE files not scanned for contents."""
    truncated: int
    """Files longer than CONTENT_CAP (only their start was scanned)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SavedImage:
    layers: tuple[Layer, ...]
    config: dict[str, Any]
    """The image config JSON as saved (history, env, labels)."""

    def final(self) -> dict[str, Entry]:
        """The filesystem a container starts from: the layers applied in order."""
        fs: dict[str, Entry] = {}
        for layer in self.layers:
            gone = set(layer.deleted)
            hidden = set(layer.opaque)
            if gone or hidden:
                fs = {p: e for p, e in fs.items() if not _under(p, gone, hidden)}
            fs.update(layer.entries)
        return fs

    def deleted_later(self, index: int, path: str) -> bool:
        """Whether a later layer deletes ``path`` of layer ``index``."""
        for layer in self.layers[index + 1 :]:
            if _under(path, set(layer.deleted), set(layer.opaque), self_too=True):
                return True
        return False

    def hits(self) -> Iterator[tuple[int, Hit]]:
        for i, layer in enumerate(self.layers):
            for hit in layer.hits:
                yield i, hit


def _under(path: str, gone: set[str], hidden: set[str], *, self_too: bool = True) -> bool:
    p = path
    if self_too and p in gone:
        return True
    while p not in ("/", ""):
        parent = posixpath.dirname(p)
        if parent in gone or parent in hidden:
            return True
        p = parent
    return False


def _kind(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym() or member.islnk():
        return "link"
    return "other"


def read_layer(key: str, fileobj: IO[bytes], scanner: Scanner) -> Layer:
    entries: dict[str, Entry] = {}
    deleted: set[str] = set()
    opaque: set[str] = set()
    hits: list[Hit] = []
    scanned = binaries = truncated = 0
    where = f"layer {key[:12]}"
    with tarfile.open(fileobj=fileobj, mode="r|") as tar:
        for member in tar:
            if len(entries) + len(deleted) > MAX_ENTRIES:
                raise VerificationError(f"Layer {key[:12]} has more than {MAX_ENTRIES} entries.")
            path = "/" + member.name.lstrip("./").rstrip("/")
            base = posixpath.basename(path)
            parent = posixpath.dirname(path)
            if base == ".wh..wh..opq":
                opaque.add(parent)
                continue
            if base.startswith(".wh."):
                deleted.add(posixpath.join(parent, base[4:]))
                continue
            entries[path] = Entry(
                mode=stat.S_IMODE(member.mode), uid=member.uid, gid=member.gid,
                kind=_kind(member), size=member.size,
            )  # fmt: skip
            named = scanner.name_hit(path, where)
            if named is not None:
                hits.append(named)
            if not member.isreg() or member.size == 0:
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            data = handle.read(CONTENT_CAP)
            if data.startswith(_BINARY_MAGIC):
                binaries += 1
                continue
            scanned += len(data)
            truncated += member.size > CONTENT_CAP
            hits.extend(scanner.scan(data, f"{where} {path}"))
    return Layer(
        key=key, entries=entries, deleted=frozenset(deleted), opaque=frozenset(opaque),
        hits=tuple(hits), scanned_bytes=scanned, binaries=binaries, truncated=truncated,
    )  # fmt: skip


_cache: dict[tuple[str, tuple[bytes, ...]], Layer] = {}
"""Layers read in this process, by their directory in the saved tar and the canaries. The
engine names that directory by the layer's chain id, its parent and its history entry, so
equal names are equal layers: images of one Dockerfile share them (an image's top layer gets
another name in an image built FROM it, and is read again there)."""
_lock = threading.Lock()


class _Stream(io.RawIOBase):
    """A file object over docker-py's chunk iterator, so tarfile can stream it."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def save_and_read(image: Any, scanner: Scanner) -> SavedImage:
    """Stream ``docker save`` of ``image`` (a docker-py Image) and read every layer (the
    tar lists them by name, not in order: manifest.json, at the end, gives the order)."""
    by_key: dict[str, Layer] = {}
    blobs: dict[str, bytes] = {}
    raw = io.BufferedReader(_Stream(iter(image.save(chunk_size=1024 * 1024))), 1024 * 1024)
    with tarfile.open(fileobj=raw, mode="r|") as outer:
        for member in outer:
            if member.name.endswith("/layer.tar") and member.isreg():
                key = member.name.split("/")[0]
                with _lock:
                    cached = _cache.get((key, scanner.canaries))
                if cached is not None:
                    by_key[key] = cached
                    continue
                handle = outer.extractfile(member)
                if handle is None:
                    continue
                layer = read_layer(key, handle, scanner)
                with _lock:
                    _cache[(key, scanner.canaries)] = layer
                by_key[key] = layer
            elif member.isreg() and member.name.endswith(".json") and member.size < 16 << 20:
                handle = outer.extractfile(member)
                if handle is not None:
                    blobs[member.name] = handle.read()
    manifest = json.loads(blobs["manifest.json"]) if "manifest.json" in blobs else None
    if not manifest:
        raise VerificationError("docker save gave no manifest.json; cannot order the layers.")
    config = json.loads(blobs.get(manifest[0]["Config"], b"{}"))
    order = [name.split("/")[0] for name in manifest[0]["Layers"]]
    missing = [k for k in order if k not in by_key]
    if missing:
        raise VerificationError(f"docker save lacks layers {missing}.")
    return SavedImage(layers=tuple(by_key[k] for k in order), config=config or {})
