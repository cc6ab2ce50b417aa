"""OpenPGP detached-signature checks in a throw-away keyring holding only the pinned keys.

Each check creates a fresh GNUPGHOME, imports only the key files the manifest names, verifies,
and compares the full primary-key fingerprint of the signer with the allow-list. A good signature
by any other key, an expired or revoked key, a signature over other bytes, or a missing key all
raise :class:`VerificationError`; nothing here returns False.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import gnupg

from mt5forge.errors import ToolMissingError, VerificationError
from mt5forge.tools.run import INSTALL_HINTS, which

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SignatureCheck:
    fingerprint: str
    """Full primary-key fingerprint of the signer (upper-case hex)."""
    signer: str
    """The signer's user id, as gpg reports it."""
    created: str
    """Signature creation time (seconds since the epoch), as gpg reports it."""


def _reason(verified: object) -> str:
    problems = getattr(verified, "problems", None) or []
    statuses = [p.get("status", "") for p in problems if isinstance(p, dict)]
    key_status = getattr(verified, "key_status", None)
    status = getattr(verified, "status", None)
    text = key_status or (statuses[-1] if statuses else None) or status or "no valid signature"
    if text == "no public key":
        keyid = getattr(verified, "key_id", None) or ""
        return f"signed by key {keyid}, which is not among the pinned keys"
    if text == "signature bad":
        return "the signature does not match these bytes (BAD signature)"
    return str(text)


def verify_detached(
    data: Path,
    signature: Path,
    *,
    key_files: Sequence[Path],
    fingerprints: Sequence[str],
    name: str,
) -> SignatureCheck:
    """Verify ``signature`` over ``data`` with only ``key_files``; the signer must be allowed."""
    allowed = {f.replace(" ", "").upper() for f in fingerprints}
    if not allowed:
        raise VerificationError(f"{name}: the OpenPGP allow-list is empty; nothing can be trusted.")
    try:
        gpg_binary = which("gpg")
    except ToolMissingError as e:
        raise ToolMissingError(e.message, hint=f"Install it: {INSTALL_HINTS['gpg']}.") from e
    if not signature.is_file():
        raise VerificationError(f"{name}: signature file {signature} is missing.")
    home = tempfile.mkdtemp(prefix="mt5forge-gpg-")
    try:
        gpg = gnupg.GPG(gpgbinary=gpg_binary, gnupghome=home)
        imported: set[str] = set()
        for key_file in key_files:
            if not key_file.is_file():
                raise VerificationError(
                    f"{name}: pinned key file {key_file} does not exist.",
                    hint="Vendor the armored public key there (never fetch it at build time).",
                )
            result = gpg.import_keys(key_file.read_text(encoding="utf-8"))
            imported.update(f.upper() for f in (result.fingerprints or []) if f)
        missing = sorted(allowed - imported)
        if missing:
            raise VerificationError(
                f"{name}: no key with pinned fingerprint {', '.join(missing)} in "
                f"{', '.join(str(k) for k in key_files)}.",
                hint="The key files do not hold the key the manifest allows.",
            )
        with open(signature, "rb") as sig:
            verified = gpg.verify_file(sig, str(data))
        if not verified.valid:
            raise VerificationError(
                f"{name}: OpenPGP verification failed: {_reason(verified)}.",
                hint=f"signature {signature.name} over {data.name}",
            )
        primary = (verified.pubkey_fingerprint or verified.fingerprint or "").upper()
        if primary not in allowed:
            raise VerificationError(
                f"{name}: signed by {primary} ({verified.username}), which is not in the "
                f"allow-list ({', '.join(sorted(allowed))}).",
            )
        log.debug("%s: good signature by %s (%s)", name, primary, verified.username)
        return SignatureCheck(
            fingerprint=primary,
            signer=str(verified.username or ""),
            created=str(verified.sig_timestamp or verified.timestamp or ""),
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
