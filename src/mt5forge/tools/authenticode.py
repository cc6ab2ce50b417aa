"""Authenticode checks of Windows executables with ``osslsigncode verify`` (Debian package).

mt5setup.exe has no version and changes when MetaQuotes ships a new build, so its hash alone
cannot be pinned for long. What can be pinned is who signed it: ``osslsigncode`` checks the
signature against the file's own digest and the signer's chain against a CA bundle, and we compare
the signer certificate's subject attributes with the manifest's allow-list. A changed hash with a
valid, allowed signature can then be re-pinned knowingly (``invoke pin``); anything else fails.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from pathlib import Path

from mt5forge.errors import VerificationError
from mt5forge.tools.run import call

log = logging.getLogger(__name__)

_SUBJECT = re.compile(r"^\s*Subject:\s*(.+?)\s*$", re.MULTILINE)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuthenticodeCheck:
    subject: str
    """The signer certificate's subject as osslsigncode prints it (``/C=../O=../CN=..``)."""
    attributes: Mapping[str, str]


def subject_pairs(subject: str) -> list[tuple[str, str]]:
    """``/C=CY/O=MetaQuotes Ltd./CN=MetaQuotes Ltd.`` -> ``[("C", "CY"), ...]``, in order.

    osslsigncode prints OpenSSL's one-line form (X509_NAME_oneline), which does not escape '/':
    a value containing ``/CN=...`` reads as one more attribute. Callers that compare values must
    therefore require each compared attribute exactly once (see :func:`verify`).
    """
    out: list[tuple[str, str]] = []
    for part in re.split(r"/(?=[A-Za-z][A-Za-z0-9.]*=)", subject.strip()):
        if "=" in part:
            key, _, value = part.partition("=")
            out.append((key.strip(), value.strip()))
    return out


def parse_subject(subject: str) -> dict[str, str]:
    """``/C=CY/ST=Lemesos/O=MetaQuotes Ltd./CN=MetaQuotes Ltd.`` -> ``{"C": "CY", ...}``.

    Values may contain spaces, commas and dots; of a repeated attribute the last one is kept.
    """
    return dict(subject_pairs(subject))


def signer_subject(output: str) -> str:
    """The first signer's subject from ``osslsigncode verify`` output (``Signer #0``)."""
    marker = output.find("Signer's certificate:")
    m = _SUBJECT.search(output, marker if marker >= 0 else 0)
    if not m:
        raise VerificationError("osslsigncode reported no signer subject.")
    return m.group(1)


def verify(exe: Path, *, name: str, subject: Mapping[str, str], ca_file: Path) -> AuthenticodeCheck:
    """Check ``exe``'s Authenticode signature and that its signer matches ``subject``."""
    if not subject:
        raise VerificationError(f"{name}: the Authenticode signer allow-list is empty.")
    if not ca_file.is_file():
        raise VerificationError(
            f"{name}: CA bundle {ca_file} for the Authenticode chain is missing."
        )
    proc = call(
        "osslsigncode",
        "verify",
        "-CAfile",
        ca_file,
        "-TSA-CAfile",
        ca_file,
        "-in",
        exe,
        timeout=120,
        check=False,
    )
    out = (proc.stdout or b"").decode("utf-8", "replace") + (proc.stderr or b"").decode(
        "utf-8", "replace"
    )
    if proc.returncode != 0 or "Signature verification: ok" not in out:
        if "No signature found" in out:
            why = "the file carries no Authenticode signature"
        elif "MESSAGE DIGEST MISMATCH" in out.upper() or "digest mismatch" in out.lower():
            why = "the file was changed after it was signed (digest mismatch)"
        else:
            lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
            why = "signature or certificate chain did not verify: " + " / ".join(lines[-3:])
        raise VerificationError(f"{name}: Authenticode check failed: {why}.")
    found = signer_subject(out)
    pairs = subject_pairs(found)
    attrs = dict(pairs)
    # Exactly once: a repeated CN or O is what a '/CN=...' smuggled inside another value
    # looks like in the one-line form, so it never counts as a match.
    wrong = {k: v for k, v in subject.items() if [x for a, x in pairs if a == k] != [v]}
    if wrong:
        want = ", ".join(f"{k}={v}" for k, v in subject.items())
        raise VerificationError(
            f"{name}: Authenticode signer is {found}, not the allowed signer ({want}).",
        )
    log.debug("%s: Authenticode ok, signer %s", name, found)
    return AuthenticodeCheck(subject=found, attributes=attrs)
