"""The lock: ``checksums/artifacts.lock.toml``, one sha256 per artifact, written by ``invoke pin``.

The lock is reviewed as a diff, so it is written in a fixed, sorted, line-per-value form (no TOML
writer needed). An entry with an empty sha256 means "not pinned yet": a fetch of that artifact
fails closed and says to run ``invoke pin`` where upstream is reachable.

Every entry says where its bytes come from (``origin``: ``upstream``, ``real-from-PyPI`` or
``fixture``, see :data:`mt5forge.manifest.ORIGINS`). It has no default: a lock that does not say
cannot present a stand-in as the upstream file by omission.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from mt5forge.errors import ConfigError
from mt5forge.files import atomic_write
from mt5forge.manifest import ORIGINS, SHA256_RE
from mt5forge.tomlmodel import did_you_mean

LOCK_FILE = "artifacts.lock.toml"
SIGNATURES_DIR = "signatures"

_HEADER = """\
# The lock: sha256 of every fetched artifact. Written by `invoke pin`; review changes as a diff.
# An empty sha256 is "not pinned yet": fetching that artifact fails until `invoke pin` runs where
# its upstream is reachable. Signature files that upstream publishes are kept in signatures/.
# origin: "upstream" (the manifest's own URL), "real-from-PyPI" (real bytes from a pinned PyPI
# package, not the upstream file) or "fixture" (a stand-in made by mt5forge.fixtures).
"""


@dataclasses.dataclass(frozen=True, kw_only=True)
class LockEntry:
    name: str
    filename: str
    """The upstream file name the hash belongs to (a renamed file is a changed pin)."""
    sha256: str
    """64 lower-case hex digits, or empty when not pinned yet."""
    origin: str
    """``upstream``, ``real-from-PyPI`` or ``fixture``: where the pinned bytes come from."""
    size: int = 0
    """Bytes, when known (0: unknown). Also the cap on what a fetch accepts."""
    version: str = ""
    """The manifest's version when this was pinned (empty: not recorded); ``invoke pin``
    refuses to go back to an older one without ``--allow-downgrade``."""
    note: str = ""
    """Why this value: the source of the pin, or how a re-pin was justified."""


_FIELDS = {f.name for f in dataclasses.fields(LockEntry)} - {"name"}


def lock_path(lock_dir: Path) -> Path:
    return lock_dir / LOCK_FILE


def parse_lock(text: str, where: Path) -> dict[str, LockEntry]:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from e
    out: dict[str, LockEntry] = {}
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{name}] must be a table.")
        for key in table:
            if key not in _FIELDS:
                raise ConfigError(
                    f"{where}: [{name}] unknown key '{key}'.", hint=did_you_mean(key, list(_FIELDS))
                )
        sha = table.get("sha256", "")
        if not isinstance(sha, str) or (sha and not SHA256_RE.match(sha)):
            raise ConfigError(
                f"{where}: [{name}] sha256 {sha!r} is malformed.",
                hint="A sha256 is 64 lower-case hex digits (empty: not pinned yet).",
            )
        filename = table.get("filename")
        if not isinstance(filename, str) or not filename:
            raise ConfigError(f"{where}: [{name}] needs filename.")
        size = table.get("size", 0)
        note = table.get("note", "")
        version = table.get("version", "")
        if not isinstance(version, str):
            raise ConfigError(f"{where}: [{name}] version must be a string.")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ConfigError(f"{where}: [{name}] size must be a non-negative integer.")
        if not isinstance(note, str):
            raise ConfigError(f"{where}: [{name}] note must be a string.")
        origin = table.get("origin")
        if origin not in ORIGINS:
            raise ConfigError(
                f"{where}: [{name}] origin {origin!r} is not one of {', '.join(ORIGINS)}.",
                hint="Every lock entry says where its bytes come from; there is no default. "
                + (did_you_mean(origin, list(ORIGINS)) if isinstance(origin, str) else ""),
            )
        out[name] = LockEntry(
            name=name,
            filename=filename,
            sha256=sha,
            origin=origin,
            size=size,
            version=version,
            note=note,
        )
    return out


def read_lock(lock_dir: Path) -> dict[str, LockEntry]:
    """The lock's entries by artifact name; a missing file is an empty lock."""
    path = lock_path(lock_dir)
    if not path.is_file():
        return {}
    return parse_lock(path.read_text(encoding="utf-8"), path)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_lock(entries: Iterable[LockEntry]) -> str:
    lines = [_HEADER]
    for e in sorted(entries, key=lambda e: e.name):
        lines.append(f"[{e.name}]")
        lines.append(f"filename = {_quote(e.filename)}")
        lines.append(f"sha256 = {_quote(e.sha256)}")
        lines.append(f"origin = {_quote(e.origin)}")
        if e.version:
            lines.append(f"version = {_quote(e.version)}")
        if e.size:
            lines.append(f"size = {e.size}")
        if e.note:
            lines.append(f"note = {_quote(e.note)}")
        lines.append("")
    return "\n".join(lines)


def write_lock(lock_dir: Path, entries: Mapping[str, LockEntry]) -> Path:
    """Write the lock atomically (temp file + rename) so a crash never leaves half a lock."""
    return atomic_write(lock_path(lock_dir), render_lock(entries.values()))


def lock_diff(old: Mapping[str, LockEntry], new: Mapping[str, LockEntry], where: str) -> str:
    """Unified diff between two locks, as ``invoke pin`` shows it."""
    a = render_lock(old.values()).splitlines(keepends=True)
    b = render_lock(new.values()).splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, fromfile=f"{where} (before)", tofile=where))
