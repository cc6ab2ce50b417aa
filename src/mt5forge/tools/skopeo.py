"""skopeo, the containers project's copier and verifier, through :func:`mt5forge.tools.run.call`.

Two skopeos serve the pipeline: the host's (Debian 12 ships 1.9 with sigstore support disabled;
it copies, pushes and checks GPG "simple signing") and the tools image's (trixie's 1.18, which
also verifies cosign signatures, :mod:`mt5forge.tools.toolsimage`). Both take the same argument
lists; ``runner`` says which one runs them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mt5forge.errors import RegistryError, ToolError
from mt5forge.tools.run import call

log = logging.getLogger(__name__)

Runner = Callable[[Sequence[str], float, Mapping[str, str] | None], bytes]
"""Runs skopeo with these arguments, a timeout and extra environment; returns stdout or raises
ToolError."""

COPY_TIMEOUT = 1800.0
"""Seconds for one copy: a terminal image is ~1 GiB through a compressor."""


def host_runner(argv: Sequence[str], timeout: float, env: Mapping[str, str] | None) -> bytes:
    return call("skopeo", *argv, timeout=timeout, env=env).stdout


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def stage_from_engine(image_id: str, dest: Path, *, runner: Runner = host_runner) -> str:
    """Copy the engine's image ``image_id`` into a ``dir:`` layout at ``dest`` (layers gzipped)
    and return the manifest digest it will have in any registry (``--preserve-digests`` keeps
    it). The image id must be the manifest's config digest: that is what ties the push to the
    records kept under the id."""
    runner(
        ["copy", "--quiet", "--dest-compress", f"docker-daemon:{image_id}", f"dir:{dest}"],
        COPY_TIMEOUT,
        None,
    )
    manifest = dest / "manifest.json"
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    config = (doc.get("config") or {}).get("digest")
    if config != image_id:
        raise RegistryError(
            f"The copied manifest's config is {config}, not the image id {image_id}.",
            hint="The engine answered for another image; nothing was pushed.",
        )
    return file_digest(manifest)


STAGED_MARK = ".mt5forge-staged"


def mark_staged(dest: Path, digest: str) -> None:
    """Say that the layout at ``dest`` is complete (a later push may reuse it)."""
    (dest / STAGED_MARK).write_text(digest, encoding="utf-8")


def reuse_staged(dest: Path, image_id: str) -> str | None:
    """The manifest digest of a complete layout left at ``dest`` by an earlier push of
    ``image_id`` that failed part-way, or None. Every blob is hashed again: a layout that
    changed on disk is not reused."""
    mark = dest / STAGED_MARK
    manifest = dest / "manifest.json"
    if not mark.is_file() or not manifest.is_file():
        return None
    digest = file_digest(manifest)
    if mark.read_text(encoding="utf-8").strip() != digest:
        return None
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        blobs = [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]
    except (ValueError, KeyError, TypeError):
        return None
    if blobs[0] != image_id:
        return None
    for blob in blobs:
        path = dest / str(blob).removeprefix("sha256:")
        if not path.is_file() or file_digest(path) != blob:
            return None
    return digest


def push_dir(
    src: Path,
    dest: str,
    *,
    tls_verify: bool,
    authfile: Path | None = None,
    runner: Runner = host_runner,
) -> None:
    """Push the ``dir:`` layout ``src`` to ``dest`` (``docker://`` reference, a digest or a
    tag) keeping every digest."""
    argv = [
        "copy",
        "--quiet",
        "--preserve-digests",
        "--remove-signatures",
        f"--dest-tls-verify={str(tls_verify).lower()}",
    ]
    if authfile is not None:
        argv += ["--dest-authfile", str(authfile)]
    try:
        runner([*argv, f"dir:{src}", dest], COPY_TIMEOUT, None)
    except ToolError as e:
        raise RegistryError(f"Pushing to {dest} failed: {e.message}", hint=e.hint) from e


def retag(
    src: str,
    dest: str,
    *,
    tls_verify: bool,
    authfile: Path | None = None,
    runner: Runner = host_runner,
) -> None:
    """Point ``dest`` (a tag) at ``src`` (a digest reference in the same registry): a manifest
    PUT, the blobs are there already."""
    argv = [
        "copy",
        "--quiet",
        "--preserve-digests",
        "--remove-signatures",
        f"--src-tls-verify={str(tls_verify).lower()}",
        f"--dest-tls-verify={str(tls_verify).lower()}",
    ]
    if authfile is not None:
        argv += ["--authfile", str(authfile)]
    try:
        runner([*argv, src, dest], COPY_TIMEOUT, None)
    except ToolError as e:
        raise RegistryError(f"Tagging {dest} failed: {e.message}", hint=e.hint) from e


def inspect_raw(ref: str, *, tls_verify: bool, runner: Runner = host_runner) -> dict[str, Any]:
    """The manifest at ``ref`` (``docker://...``) as the registry serves it."""
    out = runner(["inspect", "--raw", f"--tls-verify={str(tls_verify).lower()}", ref], 120.0, None)
    doc = json.loads(out)
    if not isinstance(doc, dict):
        raise RegistryError(f"The manifest of {ref} is not a JSON object.")
    return doc


def manifest_digest(ref: str, *, tls_verify: bool, runner: Runner = host_runner) -> str:
    out = runner(
        ["inspect", "--format", "{{.Digest}}", f"--tls-verify={str(tls_verify).lower()}", ref],
        120.0,
        None,
    )
    return out.decode().strip()


def copy_under_policy(
    src: str,
    dest: str,
    *,
    policy: Path,
    registries_d: Path,
    tls_verify: bool = False,
    runner: Runner = host_runner,
) -> None:
    """``skopeo copy`` with ``policy`` and ``registries_d``: skopeo itself enforces the
    signatures (ToolError when it refuses)."""
    runner(
        [
            "--policy",
            str(policy),
            "--registries.d",
            str(registries_d),
            "copy",
            "--quiet",
            f"--src-tls-verify={str(tls_verify).lower()}",
            src,
            dest,
        ],
        COPY_TIMEOUT,
        None,
    )
