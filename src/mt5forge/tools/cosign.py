"""cosign 2.5 (Debian trixie's package), run in the tools image, key-based and offline.

Nothing here talks to a transparency log or an OIDC provider: signatures are made with
``--tlog-upload=false`` and checked with ``--insecure-ignore-tlog`` and the public key (keyless
signing is the release workflow's job). The key's password reaches cosign as ``COSIGN_PASSWORD``
by name (:func:`mt5forge.tools.toolsimage.run_in`), never in an argument or a log line.
Exit codes of a refused verification (10, 12, 1...) become :class:`VerificationError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mt5forge.errors import ToolError, VerificationError
from mt5forge.tools.toolsimage import run_in

PASSWORD_ENV = "COSIGN_PASSWORD"  # noqa: S105 (a variable name, not a secret)
TIMEOUT = 600.0


def _registry_flags(ref: str) -> list[str]:
    """Plain HTTP is allowed for a loopback registry only."""
    return ["--allow-http-registry"] if ref.startswith(("127.", "localhost")) else []


def generate_key_pair(image: str, prefix: Path, *, password: str) -> tuple[Path, Path]:
    """A throw-away key pair ``<prefix>.key`` (encrypted with ``password``) and ``.pub``."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    run_in(
        image,
        ["cosign", "generate-key-pair", "--output-key-prefix", str(prefix)],
        mounts=[prefix.parent],
        env={PASSWORD_ENV: password},
        timeout=120,
    )
    key, pub = prefix.with_suffix(".key"), prefix.with_suffix(".pub")
    if not key.is_file() or not pub.is_file():
        raise ToolError(f"cosign generate-key-pair left no key pair at {prefix}.*")
    return key, pub


def sign(image: str, ref: str, *, key: Path, password: str) -> None:
    """Sign ``ref`` (``repo@sha256:...``) with ``key``; the signature goes to the registry."""
    run_in(
        image,
        [
            "cosign",
            "sign",
            "--key",
            str(key),
            "--tlog-upload=false",
            "--yes",
            *_registry_flags(ref),
            ref,
        ],
        mounts=[key.parent],
        env={PASSWORD_ENV: password},
        timeout=TIMEOUT,
    )


def attest(image: str, ref: str, *, key: Path, password: str, predicate: Path, kind: str) -> None:
    """Attach ``predicate`` as an in-toto attestation of type ``kind`` (``cyclonedx``,
    ``slsaprovenance1``) to ``ref``."""
    run_in(
        image,
        [
            "cosign",
            "attest",
            "--key",
            str(key),
            "--tlog-upload=false",
            "--yes",
            "--type",
            kind,
            "--predicate",
            str(predicate),
            *_registry_flags(ref),
            ref,
        ],
        mounts=[key.parent, predicate.parent],
        env={PASSWORD_ENV: password},
        timeout=TIMEOUT,
    )


def _verify(image: str, argv: list[str], mounts: Iterable[Path], what: str) -> list[Any]:
    code, out, err = run_in(image, argv, mounts=mounts, timeout=TIMEOUT, check=False)
    if code != 0:
        tail = (err or out).decode("utf-8", "replace").strip()[-800:]
        raise VerificationError(f"cosign refused {what} (exit code {code}).", hint=tail or None)
    found: list[Any] = []
    for line in out.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        found.extend(doc if isinstance(doc, list) else [doc])
    if not found:
        raise VerificationError(f"cosign printed no verified payload for {what}.")
    return found


def verify(image: str, ref: str, *, public_key: Path) -> list[Any]:
    """cosign's own check of the signatures on ``ref``: the verified payloads."""
    return _verify(
        image,
        [
            "cosign",
            "verify",
            "--key",
            str(public_key),
            "--insecure-ignore-tlog=true",
            "--output",
            "json",
            *_registry_flags(ref),
            ref,
        ],
        [public_key.parent],
        f"the signatures of {ref}",
    )


def verify_attestation(image: str, ref: str, *, public_key: Path, kind: str) -> list[Any]:
    """cosign's own check of the ``kind`` attestations on ``ref``: the DSSE envelopes."""
    return _verify(
        image,
        [
            "cosign",
            "verify-attestation",
            "--key",
            str(public_key),
            "--insecure-ignore-tlog=true",
            "--type",
            kind,
            "--output",
            "json",
            *_registry_flags(ref),
            ref,
        ],
        [public_key.parent],
        f"the {kind} attestation of {ref}",
    )
