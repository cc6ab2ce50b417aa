"""The labels and provenance an image carries: OCI labels (source, revision, created, base),
one label per artifact and wheel sha256, and the profile it was built from.

``created`` is the time of the last commit that touched the image's inputs, not the wall clock,
so an unchanged tree rebuilds nothing, labels included.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from mt5forge import __version__
from mt5forge.errors import ToolError
from mt5forge.images import ArtifactLike, BaseInfo, Target
from mt5forge.tools.run import call

LABEL_OCI = "org.opencontainers.image"
LABEL_OURS = "org.mt5forge"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SourceInfo:
    url: str
    """Where the source lives (``git remote get-url origin``, else a file: URL of the tree)."""
    revision: str
    """Last commit that touched the image's inputs; ``-dirty`` when they have local edits."""
    created: str
    """RFC 3339 time of that commit: the image's creation time, stable across rebuilds."""


def parse_pip_hashes(text: str) -> dict[str, tuple[str, str]]:
    """``name -> (version, sha256)`` from a hash-pinned requirements file (first hash each)."""
    joined = re.sub(r"\\\s*\n", " ", text)
    out: dict[str, tuple[str, str]] = {}
    for line in joined.splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9._-]+)==([^\s;]+).*?--hash=sha256:([0-9a-f]{64})", line)
        if m:
            name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
            out[name] = (m.group(2), m.group(3))
    return out


def label_key(name: str) -> str:
    """A label-safe form of an artifact or package name."""
    return re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-.")


def labels(
    target: Target,
    *,
    source: SourceInfo,
    base: BaseInfo,
    profile: str,
    artifacts: Iterable[ArtifactLike] = (),
    wheels: Mapping[str, tuple[str, str]] | None = None,
    version: str = __version__,
) -> dict[str, str]:
    """OCI labels plus one label per artifact (and wheel) sha256, and the profile."""
    out = {
        f"{LABEL_OCI}.title": f"mt5forge {target.image} ({target.variant})",
        f"{LABEL_OCI}.source": source.url,
        f"{LABEL_OCI}.revision": source.revision,
        f"{LABEL_OCI}.version": version,
        f"{LABEL_OCI}.created": source.created,
        f"{LABEL_OCI}.base.name": base.name,
        f"{LABEL_OCI}.base.digest": base.digest,
        f"{LABEL_OCI}.licenses": "MIT",
        f"{LABEL_OURS}.image": target.image,
        f"{LABEL_OURS}.variant": target.variant,
        f"{LABEL_OURS}.profile": profile,
    }
    stand_ins = []
    for a in artifacts:
        key = label_key(a.name)
        out[f"{LABEL_OURS}.artifact.{key}.file"] = a.filename
        out[f"{LABEL_OURS}.artifact.{key}.version"] = a.version
        out[f"{LABEL_OURS}.artifact.{key}.sha256"] = a.sha256
        out[f"{LABEL_OURS}.artifact.{key}.origin"] = a.origin
        if a.origin != "upstream":
            stand_ins.append(f"{a.name}={a.origin}")
    if stand_ins:
        # One label a later gate (push) reads to refuse an image that is not all upstream.
        out[f"{LABEL_OURS}.not-upstream"] = ",".join(sorted(stand_ins))
    for name, (ver, sha) in sorted((wheels or {}).items()):
        out[f"{LABEL_OURS}.wheel.{label_key(name)}.version"] = ver
        out[f"{LABEL_OURS}.wheel.{label_key(name)}.sha256"] = sha
    return out


def _git(root: Path, *args: str) -> str:
    try:
        proc = call("git", "-C", root, *args, timeout=30)
    except ToolError:
        return ""
    return proc.stdout.decode("utf-8", "replace").strip()


def public_url(url: str) -> str:
    """``url`` without user information: a clone URL can carry a token (GitLab CI's
    ``https://gitlab-ci-token:<job token>@...``), and the source label is public."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        return urllib.parse.urlunsplit(parts._replace(netloc=host))
    return url


def source_info(
    root: Path, paths: Sequence[str] = ("build", "manifests", "checksums")
) -> SourceInfo:
    """Source URL, revision and commit time of the image inputs under ``root``."""
    existing = [p for p in paths if (root / p).exists()]
    url = public_url(_git(root, "remote", "get-url", "origin")) or root.resolve().as_uri()
    rev = _git(root, "log", "-1", "--format=%H", "--", *existing) or _git(root, "rev-parse", "HEAD")
    stamp = _git(root, "log", "-1", "--format=%ct", "--", *existing)
    if rev and _git(root, "status", "--porcelain", "--untracked-files=all", "--", *existing):
        rev += "-dirty"
    created = (
        datetime.fromtimestamp(int(stamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if stamp.isdigit()
        else "1970-01-01T00:00:00Z"
    )
    return SourceInfo(url=url, revision=rev or "unknown", created=created)
