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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

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


def _osslsigncode_verify(
    exe: Path, ca_file: Path, *, timeout: float, offline: bool = False
) -> tuple[int, str]:
    """``osslsigncode verify`` against the roots in ``ca_file`` (also the timestamp roots);
    ``offline`` adds ``-ignore-crl``. Returns the exit code and stdout+stderr as text."""
    proc = call(
        "osslsigncode",
        "verify",
        "-CAfile",
        ca_file,
        "-TSA-CAfile",
        ca_file,
        *(["-ignore-crl"] if offline else []),
        "-in",
        exe,
        timeout=timeout,
        check=False,
    )
    text = (proc.stdout or b"") + (proc.stderr or b"")
    return proc.returncode, text.decode("utf-8", "replace")


def verify(exe: Path, *, name: str, subject: Mapping[str, str], ca_file: Path) -> AuthenticodeCheck:
    """Check ``exe``'s Authenticode signature and that its signer matches ``subject``."""
    if not subject:
        raise VerificationError(f"{name}: the Authenticode signer allow-list is empty.")
    if not ca_file.is_file():
        raise VerificationError(
            f"{name}: CA bundle {ca_file} for the Authenticode chain is missing."
        )
    returncode, out = _osslsigncode_verify(exe, ca_file, timeout=120)
    if returncode != 0 or "Signature verification: ok" not in out:
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


# --- every signature of a file, each signer on an allow-list (PE files inside archives) ----------

_ISSUER = re.compile(r"^\s*Issuer\s*:\s*(.+?)\s*$", re.MULTILINE)
_INDEX = re.compile(r"^Signature Index:\s*(\d+)", re.MULTILINE)
#: One per signature; anchored, because "Timestamp Server Signature verification: ok" (the
#: countersignature alone) contains the same words.
_SIG_OK = re.compile(r"^Signature verification: ok\s*$", re.MULTILINE)
#: osslsigncode answers in well under a second per file (0.06 s for python.exe, measured); the
#: timeout only stops a hang.
VERIFY_TIMEOUT = 60.0


class SignerRule(Protocol):
    """What :func:`verify_all` needs of an allowed signer (``manifest.Signer``)."""

    @property
    def subject(self) -> Mapping[str, str]: ...
    @property
    def issuer(self) -> Mapping[str, str]: ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class Signature:
    """One Authenticode signature as osslsigncode reported it."""

    index: int
    """0 is the primary signature; higher ones are nested (appended later, e.g. SHA-1 + SHA-256
    dual signing, or a second publisher as on Microsoft's vcruntime140.dll)."""
    subject: str
    issuer: str
    verified: bool


def parse_signatures(output: str) -> list[Signature]:
    """Every ``Signature Index: N`` block of ``osslsigncode verify`` output, in order."""
    starts = [(m.start(), int(m.group(1))) for m in _INDEX.finditer(output)]
    out: list[Signature] = []
    for i, (pos, index) in enumerate(starts):
        block = output[pos : starts[i + 1][0] if i + 1 < len(starts) else len(output)]
        marker = block.find("Signer's certificate:")
        subject = _SUBJECT.search(block, marker) if marker >= 0 else None
        issuer = _ISSUER.search(block, subject.end()) if subject else None
        out.append(
            Signature(
                index=index,
                subject=subject.group(1) if subject else "",
                issuer=issuer.group(1) if issuer else "",
                verified=bool(_SIG_OK.search(block)),
            )
        )
    return out


def _matches(name: str, want: Mapping[str, str]) -> bool:
    # Exactly once, as in verify(): a repeated attribute is what a "/CN=..." smuggled inside
    # another value looks like in OpenSSL's one-line form.
    pairs = subject_pairs(name)
    return all([x for a, x in pairs if a == k] == [v] for k, v in want.items())


def _why_failed(out: str) -> str:
    if "No signature found" in out:
        return "it carries no Authenticode signature"
    if "MISMATCH" in out.upper():
        return "it was changed after it was signed (message digest mismatch)"
    lines = [ln.strip() for ln in out.splitlines() if ln.strip() and "error:" in ln.lower()]
    lines = lines or [ln.strip() for ln in out.splitlines() if ln.strip()][-3:]
    return "signature or certificate chain did not verify against the pinned roots: " + (
        " / ".join(lines[-3:])
    )


def verify_all(
    exe: Path, *, name: str, signers: Sequence[SignerRule], ca_file: Path
) -> list[Signature]:
    """Every Authenticode signature of ``exe`` verifies to a root in ``ca_file`` and each is by
    one of ``signers`` (subject and issuer); raise VerificationError naming ``name`` otherwise.

    Signatures are checked at their countersigned time (osslsigncode does, given the timestamp
    roots in ``-TSA-CAfile``): the PSF's leaf certificates live three days, so "now" would fail
    every release. ``-ignore-crl`` keeps it offline: without it osslsigncode downloads the CRLs
    named in the certificates. A nested signature is appended outside the primary one's
    digest, so anyone could add one: each must verify and be on the allow-list too.
    """
    if not signers:
        raise VerificationError(f"{name}: the Authenticode signer allow-list is empty.")
    returncode, out = _osslsigncode_verify(exe, ca_file, timeout=VERIFY_TIMEOUT, offline=True)
    sigs = parse_signatures(out)
    if returncode != 0 or not sigs or not all(s.verified for s in sigs):
        raise VerificationError(f"{name}: Authenticode check failed: {_why_failed(out)}.")
    for s in sigs:
        if not any(
            _matches(s.subject, r.subject) and _matches(s.issuer, r.issuer) for r in signers
        ):
            allowed = "; ".join(
                ", ".join(f"{k}={v}" for k, v in r.subject.items())
                + " via "
                + ", ".join(f"{k}={v}" for k, v in r.issuer.items())
                for r in signers
            )
            which = "primary signature" if s.index == 0 else f"nested signature #{s.index}"
            raise VerificationError(
                f"{name}: {which} is by {s.subject} (issuer {s.issuer}), "
                f"not an allowed signer ({allowed}).",
            )
    return sigs
