"""Containers "simple signing" with GnuPG: the signature, its lookaside store, and the
``policy.json`` + ``registries.d`` that make skopeo and podman enforce it.

A simple signature is an OpenPGP *signed message* (not detached) whose content is a small JSON
document naming the manifest digest and the reference it was signed for::

    {"critical": {"type": "atomic container signature",
                  "image": {"docker-manifest-digest": "sha256:..."},
                  "identity": {"docker-reference": "127.0.0.1:5000/mt5forge/bot:slim-0.1.0"}},
     "optional": {"creator": "mt5forge ...", "timestamp": 1764640000}}

Signatures live beside the registry, in a *lookaside* store laid out as containers/image
expects: ``<store>/<repository path>@sha256=<hex>/signature-<n>`` (n from 1). One signature is
made per tag, so a pull by any tag or by the digest matches (``matchRepoDigestOrExact``).

The key is named by its full fingerprint; its passphrase comes from the environment
(``SIGNING_GPG_PASSPHRASE``) or gpg-agent, and is never logged. :func:`verify_simple` is our own
verifier: a fresh keyring holding only the pinned public key, the signer's full fingerprint
compared, the payload's digest and repository compared.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gnupg

from mt5forge import __version__
from mt5forge.errors import ToolError, VerificationError
from mt5forge.files import atomic_write
from mt5forge.tools.run import call, which

log = logging.getLogger(__name__)

SIGNATURE_TYPE = "atomic container signature"
PASSPHRASE_ENV = "SIGNING_GPG_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)
MAX_SIGNATURE_BYTES = 64 * 1024
"""A simple signature is a few hundred bytes; anything bigger is refused unread."""
MAX_SIGNATURES = 64

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_FPR = re.compile(r"^[0-9A-F]{40}$")


def store_dir(run_dir: Path) -> Path:
    """The lookaside store of a run."""
    return run_dir / "sigstore"


def trust_dir(run_dir: Path) -> Path:
    """Where sign writes ``gpg/`` and ``full/`` policy.json + registries.d."""
    return run_dir / "trust"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimpleSignature:
    path: Path
    fingerprint: str
    """Full fingerprint of the signer's primary key."""
    digest: str
    identity: str
    """The ``docker-reference`` the signature was made for."""


def split_repository(repository: str) -> tuple[str, str]:
    """``host:port/path/name`` -> (``host:port``, ``path/name``)."""
    host, _, path = repository.partition("/")
    if not path or not host:
        raise VerificationError(f"{repository!r} is not host/path.")
    return host, path


def signature_dir(store: Path, repository: str, digest: str) -> Path:
    """``<store>/<path>@sha256=<hex>``: where containers/image looks for the signatures."""
    if not _DIGEST.match(digest):
        raise VerificationError(f"{digest!r} is not a sha256 manifest digest.")
    _, path = split_repository(repository)
    return store / f"{path}@sha256={digest.removeprefix('sha256:')}"


def payload(digest: str, identity: str, *, now: float | None = None) -> bytes:
    doc = {
        "critical": {
            "type": SIGNATURE_TYPE,
            "image": {"docker-manifest-digest": digest},
            "identity": {"docker-reference": identity},
        },
        "optional": {
            "creator": f"mt5forge {__version__}",
            "timestamp": int(now if now is not None else time.time()),
        },
    }
    return json.dumps(doc, sort_keys=True).encode()


def _gpg(home: Path) -> gnupg.GPG:
    return gnupg.GPG(gpgbinary=which("gpg"), gnupghome=str(home))


def stop_agent(home: Path) -> None:
    """Stop the gpg-agent gpg started for ``home`` (a throw-away home must not leave one
    running)."""
    call("gpgconf", "--homedir", str(home), "--kill", "gpg-agent", timeout=30, check=False)


def check_fingerprint(fingerprint: str) -> str:
    fpr = fingerprint.replace(" ", "").upper()
    if not _FPR.match(fpr):
        raise VerificationError(
            f"{fingerprint!r} is not a full OpenPGP fingerprint (40 hex digits).",
            hint="Name the signing key by its full fingerprint, never a short key id.",
        )
    return fpr


def sign_simple(
    *,
    home: Path,
    fingerprint: str,
    digest: str,
    identity: str,
    passphrase: str | None = None,
) -> bytes:
    """A simple signature of ``digest`` for ``identity`` by the key ``fingerprint`` in
    ``home``. The passphrase (argument, else ``SIGNING_GPG_PASSPHRASE``, else gpg-agent) is
    handed to gpg on a pipe and never logged."""
    fpr = check_fingerprint(fingerprint)
    secret = passphrase if passphrase is not None else os.environ.get(PASSPHRASE_ENV)
    gpg = _gpg(home)
    signed = gpg.sign(
        payload(digest, identity),
        keyid=fpr,
        passphrase=secret,
        binary=True,
        clearsign=False,
        detach=False,
        extra_args=["--pinentry-mode", "loopback"] if secret is not None else None,
    )
    data = bytes(signed.data or b"")
    if not data:
        raise ToolError(
            f"gpg made no signature with key {fpr}: {signed.status or 'no status'}.",
            hint=f"Is the secret key in {home}, and the passphrase in ${PASSPHRASE_ENV} or "
            "gpg-agent?",
        )
    return data


def write_signatures(
    store: Path, repository: str, digest: str, blobs: Sequence[bytes]
) -> list[Path]:
    """Replace the signatures of ``digest`` in the store with ``blobs`` (signature-1...)."""
    where = signature_dir(store, repository, digest)
    if where.exists():
        shutil.rmtree(where)
    return [atomic_write(where / f"signature-{n}", blob) for n, blob in enumerate(blobs, 1)]


def read_signatures(store: Path, repository: str, digest: str) -> list[Path]:
    where = signature_dir(store, repository, digest)
    found: list[Path] = []
    for n in range(1, MAX_SIGNATURES + 1):
        p = where / f"signature-{n}"
        if not p.is_file():
            break
        found.append(p)
    return found


def verify_simple(
    store: Path,
    repository: str,
    digest: str,
    *,
    public_key: Path,
    fingerprint: str,
) -> list[SimpleSignature]:
    """Every simple signature of ``digest`` in the store, each checked with only
    ``public_key`` and the pinned ``fingerprint``. VerificationError naming the first bad one:
    no signature, a bad or foreign one, or one for another digest or repository all refuse."""
    fpr = check_fingerprint(fingerprint)
    paths = read_signatures(store, repository, digest)
    if not paths:
        raise VerificationError(
            f"No simple signature of {repository}@{digest} in {store}.",
            hint="Sign it (`invoke sign`).",
        )
    home = Path(tempfile.mkdtemp(prefix="mt5forge-sigverify-"))
    try:
        gpg = _gpg(home)
        imported = gpg.import_keys(public_key.read_bytes())
        if fpr not in {f.upper() for f in imported.fingerprints or []}:
            raise VerificationError(f"{public_key} does not hold the key {fpr}.")
        out = [_check_one(gpg, p, fpr, repository, digest) for p in paths]
    finally:
        stop_agent(home)
        shutil.rmtree(home, ignore_errors=True)
    return out


def _check_one(
    gpg: gnupg.GPG, path: Path, fpr: str, repository: str, digest: str
) -> SimpleSignature:
    if path.stat().st_size > MAX_SIGNATURE_BYTES:
        raise VerificationError(f"{path} is {path.stat().st_size} bytes, not a signature.")
    result = gpg.decrypt(path.read_bytes())
    signer = (getattr(result, "pubkey_fingerprint", None) or result.fingerprint or "").upper()
    if not result.valid:
        why = result.status or "no valid signature"
        if "no public key" in str(getattr(result, "key_status", "") or why):
            why = "signed by a key that is not the pinned one"
        raise VerificationError(f"{path}: {why}.")
    if signer != fpr:
        raise VerificationError(f"{path}: signed by {signer}, not the pinned key {fpr}.")
    try:
        doc: Any = json.loads(result.data)
        critical = doc["critical"]
        got_type = critical["type"]
        got_digest = critical["image"]["docker-manifest-digest"]
        identity = str(critical["identity"]["docker-reference"])
    except (ValueError, KeyError, TypeError) as e:
        raise VerificationError(
            f"{path}: the signed content is not a simple signing payload."
        ) from e
    if got_type != SIGNATURE_TYPE:
        raise VerificationError(f"{path}: signature type {got_type!r}, not {SIGNATURE_TYPE!r}.")
    if got_digest != digest:
        raise VerificationError(f"{path}: signed for {got_digest}, not {digest}.")
    ident_repo = re.split(r"[:@](?=[^/]*$)", identity, maxsplit=1)[0]
    if ident_repo != repository:
        raise VerificationError(f"{path}: signed for {identity}, not the repository {repository}.")
    return SimpleSignature(path=path, fingerprint=signer, digest=digest, identity=identity)


def policy(
    scope: str, *, gpg_key: Path | None = None, cosign_key: Path | None = None
) -> dict[str, Any]:
    """A containers ``policy.json`` that accepts images under ``scope`` (``host:port/prefix``)
    only with a simple signature by ``gpg_key`` and/or a cosign signature by ``cosign_key``,
    rejects every other registry image, and lets local layouts through (they are ours)."""
    reqs: list[dict[str, Any]] = []
    if gpg_key is not None:
        reqs.append({"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(gpg_key.resolve())})
    if cosign_key is not None:
        reqs.append(
            {
                "type": "sigstoreSigned",
                "keyPath": str(cosign_key.resolve()),
                # cosign signs a digest with the bare repository as identity, which
                # matchRepoDigestOrExact never accepts (it wants a tag or digest in it).
                "signedIdentity": {"type": "matchRepository"},
            }
        )
    if not reqs:
        raise VerificationError("A policy needs at least one key.")
    accept = [{"type": "insecureAcceptAnything"}]
    return {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {scope: reqs},
            "dir": {"": accept},
            "oci": {"": accept},
            "docker-daemon": {"": accept},
        },
    }


def registries_d(scope: str, store: Path, *, sigstore_attachments: bool) -> str:
    """The ``registries.d`` YAML that points containers/image at the lookaside store (and at
    cosign's attachments in the registry when asked)."""
    lines = ["docker:", f"  {scope}:", f"    lookaside: file://{store.resolve()}"]
    if sigstore_attachments:
        lines.append("    use-sigstore-attachments: true")
    return "\n".join(lines) + "\n"


def write_trust(
    dest: Path,
    scope: str,
    store: Path,
    *,
    gpg_key: Path | None = None,
    cosign_key: Path | None = None,
) -> tuple[Path, Path]:
    """Write ``policy.json`` and ``registries.d/mt5forge.yaml`` under ``dest``; return both."""
    pol = atomic_write(
        dest / "policy.json",
        json.dumps(policy(scope, gpg_key=gpg_key, cosign_key=cosign_key), indent=2) + "\n",
    )
    regd = dest / "registries.d"
    atomic_write(
        regd / "mt5forge.yaml",
        registries_d(scope, store, sigstore_attachments=cosign_key is not None),
    )
    return pol, regd


@dataclasses.dataclass(frozen=True, kw_only=True)
class GpgKey:
    home: Path
    fingerprint: str
    public_key: Path
    """The public key, exported (binary) for policy.json and our verifier."""


def make_gpg_key(home: Path, *, name: str, passphrase: str) -> GpgKey:
    """A throw-away signing key (ed25519) in a new ``home``: for the demo and tests, made at
    run time, never committed. The passphrase is the caller's and is not logged."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    home.chmod(0o700)
    gpg = _gpg(home)
    spec = gpg.gen_key_input(
        key_type="EDDSA",
        key_curve="ed25519",
        key_usage="sign",
        name_real=name,
        name_email="signing@mt5forge.invalid",
        expire_date="1d",
        passphrase=passphrase,
        no_protection=False,
    )
    made = gpg.gen_key(spec)
    fpr = str(made.fingerprint or "").upper()
    if not _FPR.match(fpr):
        raise ToolError(f"gpg did not make a key in {home}: {made.status or made.stderr[-300:]}")
    exported = gpg.export_keys(fpr, armor=False)
    public = atomic_write(home.parent / f"{home.name}.pub.gpg", bytes(exported))
    return GpgKey(home=home, fingerprint=fpr, public_key=public)
