"""What an image was made from, in two forms: the SLSA v1 provenance predicate attested with
cosign, and the build ID ``invoke rebuild`` compares (the same inputs, hashed).

Inputs: the project's lock (``checksums/``), the artifact manifests (``manifests/``), the
``build/`` tree (one digest over every file's path and bytes), the base image (name and digest,
from the image's own labels) and, for a rebuild, the apt package versions the base would
install now. Each is named with its sha256, so a reader can check any of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mt5forge import __version__

BUILD_TYPE = "https://github.com/mt5forge/mt5forge/blob/main/docs/build-type/v1"
"""What ``externalParameters`` mean: the image, variant and profile mt5forge built."""

INPUT_DIRS = ("checksums", "manifests")
SKIP_PARTS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_sha256(root: Path) -> str:
    """One digest over a directory: every regular file's relative path and sha256, sorted.
    Caches and egg-info (made by tools, not inputs) are left out."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(root)
        if SKIP_PARTS.intersection(rel.parts) or any(x.endswith(".egg-info") for x in rel.parts):
            continue
        h.update(f"{rel.as_posix()}\0{file_sha256(path)}\n".encode())
    return h.hexdigest()


def inputs(root: Path) -> dict[str, str]:
    """``name -> sha256`` of the repository inputs: each lock and manifest file, and the
    ``build/`` tree."""
    out: dict[str, str] = {}
    for d in INPUT_DIRS:
        base = root / d
        if base.is_dir():
            for path in sorted(p for p in base.rglob("*") if p.is_file()):
                out[path.relative_to(root).as_posix()] = file_sha256(path)
    out["build/"] = tree_sha256(root / "build")
    return out


def predicate(
    *,
    image: str,
    variant: str,
    profile: str,
    labels: Mapping[str, str],
    inputs: Mapping[str, str],
    builder_id: str,
    invocation: str,
    started: str,
) -> dict[str, Any]:
    """The SLSA v1 provenance predicate (cosign wraps it in the in-toto statement whose
    subject is the pushed digest)."""
    deps: list[dict[str, Any]] = []
    base_name = labels.get("org.opencontainers.image.base.name", "")
    base_digest = labels.get("org.opencontainers.image.base.digest", "")
    if base_name and base_digest.startswith("sha256:"):
        deps.append({"uri": base_name, "digest": {"sha256": base_digest.removeprefix("sha256:")}})
    source = labels.get("org.opencontainers.image.source", "")
    revision = labels.get("org.opencontainers.image.revision", "")
    if source and revision:
        deps.append(
            {
                "uri": f"git+{source}",
                "digest": {"gitCommit": revision.split("-")[0]},
                "annotations": {"revision": revision},
            }
        )
    for name, sha in sorted(inputs.items()):
        deps.append({"uri": name, "digest": {"sha256": sha}})
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"image": image, "variant": variant, "profile": profile},
            "internalParameters": {"mt5forge": __version__},
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {"id": builder_id, "version": {"mt5forge": __version__}},
            "metadata": {"invocationId": invocation, "startedOn": started},
        },
    }


def build_id(inputs: Mapping[str, str], *, base_digest: str, packages: Mapping[str, str]) -> str:
    """One digest over everything a rebuild starts from: the repository inputs, the base
    image's digest and the package versions apt would install now. Equal IDs: nothing changed."""
    doc = {
        "inputs": dict(sorted(inputs.items())),
        "base": base_digest,
        "packages": dict(sorted(packages.items())),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
