"""Authenticode checks of Windows executables with ``osslsigncode verify`` (Debian package).

mt5setup.exe has no version and changes when MetaQuotes ships a new build, so its hash alone
cannot be pinned for long. What can be pinned is who signed it: ``osslsigncode`` checks each
signature against the file's own digest and its signer's chain against a CA bundle, and we compare
each signer certificate with the allow-list: its full subject (every attribute, nothing more), its
issuer, and where known its SHA-256 fingerprint. A changed hash with a valid, allowed signature can
then be re-pinned knowingly (``invoke pin``); anything else fails.

What an attacker cannot do:

- pass on a nested (``-nest``) signature when the primary one fails, or add a nested signature of
  their own to a good file: every signature present must verify, each with its own digest and
  chain, and each must be by an allowed signer;
- hide bytes in the file: the certificate table must end the file, hold one ``WIN_CERTIFICATE``
  whose PKCS#7 fills it up to zero padding, and every padding byte must be zero (bytes there are
  outside the signed digest: the CVE-2013-3900 trick);
- borrow a name: ``CN`` and ``O`` alone are not the signer; the whole subject and the issuer are.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import struct
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs7

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


# --- every signature of a file, each signer on an allow-list (PE files inside archives) ----------

_ISSUER = re.compile(r"^\s*Issuer\s*:\s*(.+?)\s*$", re.MULTILINE)
_INDEX = re.compile(r"^Signature Index:\s*(\d+)", re.MULTILINE)
_SERIAL = re.compile(r"^\s*Serial\s*:\s*([0-9A-Fa-f]+)\s*$", re.MULTILINE)
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
    @property
    def fingerprint(self) -> str: ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class Rule:
    """A :class:`SignerRule` made from values (mt5setup's manifest, tests)."""

    subject: Mapping[str, str]
    issuer: Mapping[str, str]
    fingerprint: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Signature:
    """One Authenticode signature as osslsigncode reported it."""

    index: int
    """0 is the primary signature; higher ones are nested (appended later, e.g. SHA-1 + SHA-256
    dual signing, or a second publisher as on Microsoft's vcruntime140.dll)."""
    subject: str
    issuer: str
    verified: bool
    serial: str = ""
    """The signer certificate's serial number, hex as osslsigncode prints it."""


def parse_signatures(output: str) -> list[Signature]:
    """Every ``Signature Index: N`` block of ``osslsigncode verify`` output, in order."""
    starts = [(m.start(), int(m.group(1))) for m in _INDEX.finditer(output)]
    out: list[Signature] = []
    for i, (pos, index) in enumerate(starts):
        block = output[pos : starts[i + 1][0] if i + 1 < len(starts) else len(output)]
        marker = block.find("Signer's certificate:")
        subject = _SUBJECT.search(block, marker) if marker >= 0 else None
        issuer = _ISSUER.search(block, subject.end()) if subject else None
        serial = _SERIAL.search(block, issuer.end()) if issuer else None
        out.append(
            Signature(
                index=index,
                subject=subject.group(1) if subject else "",
                issuer=issuer.group(1) if issuer else "",
                verified=bool(_SIG_OK.search(block)),
                serial=serial.group(1).upper().lstrip("0") if serial else "",
            )
        )
    return out


def matches(name: str, want: Mapping[str, str]) -> bool:
    """``name`` (OpenSSL's one-line form) is exactly ``want``: every attribute once, with that
    value, and no other attribute. A repeated attribute is what a ``/CN=...`` smuggled inside
    another value looks like in the one-line form, so it never matches."""
    pairs = subject_pairs(name)
    return bool(want) and sorted(pairs) == sorted(want.items())


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


def verify(exe: Path, *, name: str, rule: SignerRule, ca_file: Path) -> AuthenticodeCheck:
    """Check ``exe``'s Authenticode signatures (mt5setup.exe): every one valid and by ``rule``'s
    signer; return the signer. CRLs are checked online (upstream profile, ``invoke pin``)."""
    if not ca_file.is_file():
        raise VerificationError(
            f"{name}: CA bundle {ca_file} for the Authenticode chain is missing."
        )
    sigs = _verify_signatures(exe, name=name, signers=[rule], ca_file=ca_file, offline=False)
    found = sigs[0].subject
    log.debug("%s: Authenticode ok, signer %s", name, found)
    return AuthenticodeCheck(subject=found, attributes=dict(subject_pairs(found)))


def verify_all(
    exe: Path, *, name: str, signers: Sequence[SignerRule], ca_file: Path
) -> list[Signature]:
    """Every Authenticode signature of ``exe`` verifies to a root in ``ca_file`` and each is by
    one of ``signers`` (subject, issuer, fingerprint where pinned); raise VerificationError
    naming ``name`` otherwise.

    Signatures are checked at their countersigned time (osslsigncode does, given the timestamp
    roots in ``-TSA-CAfile``): the PSF's leaf certificates live three days, so "now" would fail
    every release. ``-ignore-crl`` keeps it offline: without it osslsigncode downloads the CRLs
    named in the certificates.
    """
    return _verify_signatures(exe, name=name, signers=signers, ca_file=ca_file, offline=True)


def _describe(r: SignerRule) -> str:
    text = _name(r.subject) + " issued by " + (_name(r.issuer) or "(no issuer pinned)")
    return text + (f", certificate SHA-256 {r.fingerprint[:16]}..." if r.fingerprint else "")


def _name(attrs: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in attrs.items())


def _verify_signatures(
    exe: Path, *, name: str, signers: Sequence[SignerRule], ca_file: Path, offline: bool
) -> list[Signature]:
    if not signers or any(not r.subject for r in signers):
        raise VerificationError(f"{name}: the Authenticode signer allow-list is empty.")
    if any(not r.issuer for r in signers):
        raise VerificationError(
            f"{name}: the manifest pins no issuer for its Authenticode signer; the subject "
            "alone is not the signer.",
            hint="Run `osslsigncode verify` on the file, check the signer's issuer (and "
            "certificate fingerprint) and pin them in the manifest's [authenticode].",
        )
    table = check_certificate_table(exe, name=name)
    # Online CRL checks (not offline) wait on the CAs' servers: more time.
    timeout = VERIFY_TIMEOUT if offline else 2 * VERIFY_TIMEOUT
    returncode, out = _osslsigncode_verify(exe, ca_file, timeout=timeout, offline=offline)
    sigs = parse_signatures(out)
    if not sigs:
        raise VerificationError(f"{name}: Authenticode check failed: {_why_failed(out)}.")
    for s in sigs:
        if not s.verified:
            # Named per signature: a good nested one never makes up for a bad primary.
            why = _why_failed(_block(out, s.index))
            if len(sigs) > 1:
                which = "primary signature" if s.index == 0 else f"nested signature #{s.index}"
                why += f" (the {which}, by {s.subject or '?'}; every signature must verify)"
            raise VerificationError(f"{name}: Authenticode check failed: {why}.")
    if returncode != 0:
        raise VerificationError(f"{name}: Authenticode check failed: {_why_failed(out)}.")
    certs = None
    for s in sigs:
        which = "primary signature" if s.index == 0 else f"nested signature #{s.index}"
        ok = [r for r in signers if matches(s.subject, r.subject) and matches(s.issuer, r.issuer)]
        if ok and any(r.fingerprint for r in ok):
            certs = certs if certs is not None else signed_data_certificates(table)
            got = _fingerprint(certs, s)
            ok = [r for r in ok if not r.fingerprint or r.fingerprint.lower() == got]
        if not ok:
            allowed = "; ".join(_describe(r) for r in signers)
            raise VerificationError(
                f"{name}: {which} is by {s.subject} (issuer {s.issuer}), "
                f"not an allowed signer ({allowed}).",
            )
    return sigs


def _block(out: str, index: int) -> str:
    """The part of osslsigncode's output about signature ``index``."""
    m = re.search(rf"^Signature Index:\s*{index}\b", out, re.MULTILINE)
    if not m:
        return out
    nxt = _INDEX.search(out, m.end())
    return out[m.start() : nxt.start() if nxt else len(out)]


def _fingerprint(certs: Sequence[x509.Certificate], s: Signature) -> str:
    """SHA-256 of the certificate that made signature ``s``: the one certificate in the file with
    its serial and subject. Several that differ (the certificate bag is not signed: anyone may
    add to it) give an empty answer, which matches no pin."""
    found = {
        c.fingerprint(hashes.SHA256()).hex()
        for c in certs
        if format(c.serial_number, "X") == s.serial and matches(s.subject, _attributes(c.subject))
    }
    return found.pop() if len(found) == 1 else ""


#: OpenSSL's short names, as osslsigncode prints them.
_SHORT = {
    x509.NameOID.COUNTRY_NAME: "C",
    x509.NameOID.STATE_OR_PROVINCE_NAME: "ST",
    x509.NameOID.LOCALITY_NAME: "L",
    x509.NameOID.ORGANIZATION_NAME: "O",
    x509.NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    x509.NameOID.COMMON_NAME: "CN",
}


def _attributes(name: x509.Name) -> dict[str, str]:
    return {_SHORT.get(a.oid, a.oid.dotted_string): str(a.value) for a in name}


# --- the certificate table: nothing but one signature and zero padding ---------------------------

#: The PE data directory of the certificate table (IMAGE_DIRECTORY_ENTRY_SECURITY).
_SECURITY = 4
#: WIN_CERT_REVISION_2_0 and WIN_CERT_TYPE_PKCS_SIGNED_DATA, the only kind Windows checks.
_REVISION, _PKCS = 0x0200, 0x0002
#: No real signature comes near this (the VC runtime's two signatures: 25 kB).
MAX_TABLE_BYTES = 1 << 20


def _refuse(name: str, why: str) -> VerificationError:
    return VerificationError(
        f"{name}: Authenticode check failed: {why}.",
        hint="Bytes outside the signed digest can carry anything; such a file is refused.",
    )


def check_certificate_table(exe: Path, *, name: str) -> bytes:
    """Check ``exe``'s certificate table and return its PKCS#7 (DER), or raise.

    The table must be where the PE header says, end the file exactly (no trailing bytes), hold
    exactly one revision-2 PKCS#7 ``WIN_CERTIFICATE`` whose DER fills it, and all padding (to the
    entry's length and to the 8-byte boundary) must be zero. A file with no table fails as
    unsigned.
    """
    try:
        with open(exe, "rb") as f:
            head = f.read(4096)
            f.seek(0, 2)
            size = f.tell()
            offset, length = _security_directory(head, name)
            if not length:
                raise VerificationError(
                    f"{name}: Authenticode check failed: it carries no Authenticode signature."
                )
            if length > MAX_TABLE_BYTES:
                raise _refuse(name, f"a certificate table of {length} bytes is not a signature")
            if offset + length > size:
                raise _refuse(name, "the certificate table runs past the end of the file")
            if offset + length != size:
                raise _refuse(
                    name,
                    f"{size - offset - length} bytes follow the certificate table (WIN_CERTIFICATE)"
                    " at the end of the file",
                )
            f.seek(offset)
            table = f.read(length)
    except OSError as e:
        raise VerificationError(f"{name}: cannot read {exe}: {e.strerror}.") from e
    if offset % 8:
        raise _refuse(name, "the certificate table is not 8-byte aligned")
    if length < 8:
        raise _refuse(name, "the certificate table is too short")
    dw_length, revision, kind = struct.unpack_from("<IHH", table)
    if revision != _REVISION or kind != _PKCS:
        raise _refuse(name, f"WIN_CERTIFICATE revision {revision:#x} type {kind:#x} is not PKCS#7")
    if dw_length < 8 or dw_length > length:
        raise _refuse(name, "WIN_CERTIFICATE length does not fit the certificate table")
    der = table[8:dw_length]
    der_len = _der_length(der)
    if der_len is None or der_len > len(der):
        raise _refuse(name, "the signature is not one well-formed PKCS#7 structure")
    padding = der[der_len:] + table[dw_length : (dw_length + 7) & ~7]
    if padding.strip(b"\0"):
        raise _refuse(name, "the signature's padding holds non-zero bytes")
    rest = table[(dw_length + 7) & ~7 :]
    if rest:
        raise _refuse(
            name,
            f"{len(rest)} more bytes follow the WIN_CERTIFICATE in the certificate table"
            + (" (a second entry, which Windows ignores)" if rest.strip(b"\0") else " (padding)"),
        )
    return der[:der_len]


def _security_directory(head: bytes, name: str) -> tuple[int, int]:
    """(file offset, size) of the certificate table from the PE headers in ``head``."""
    bad = _refuse(name, "not a PE file the check can read")
    if len(head) < 64 or head[:2] != b"MZ":
        raise bad
    pe = struct.unpack_from("<I", head, 0x3C)[0]
    if pe + 24 + 2 > len(head) or head[pe : pe + 4] != b"PE\0\0":
        raise bad
    optional = pe + 24
    magic = struct.unpack_from("<H", head, optional)[0]
    if magic == 0x10B:
        count_at, dirs = optional + 92, optional + 96
    elif magic == 0x20B:
        count_at, dirs = optional + 108, optional + 112
    else:
        raise bad
    entry = dirs + _SECURITY * 8
    if entry + 8 > len(head) or struct.unpack_from("<I", head, count_at)[0] <= _SECURITY:
        return 0, 0
    offset, length = struct.unpack_from("<II", head, entry)
    return offset, length


def _der_length(der: bytes) -> int | None:
    """Length in bytes of the DER element at the start of ``der`` (header included)."""
    got = _tlv(der, 0)
    return None if got is None else got[2]


def _tlv(der: bytes, pos: int) -> tuple[int, int, int] | None:
    """(tag, start of content, end) of the DER element at ``pos``; None when malformed."""
    if pos + 2 > len(der):
        return None
    tag, first = der[pos], der[pos + 1]
    if tag & 0x1F == 0x1F:
        return None  # high tag numbers: not in PKCS#7 signatures
    if first < 0x80:
        start, n = pos + 2, first
    else:
        k = first & 0x7F
        if k == 0 or k > 4 or pos + 2 + k > len(der):
            return None
        start, n = pos + 2 + k, int.from_bytes(der[pos + 2 : pos + 2 + k], "big")
    end = start + n
    return (tag, start, end) if end <= len(der) else None


#: DER of OID 1.2.840.113549.1.7.2 (PKCS#7 signedData).
_SIGNED_DATA_OID = bytes.fromhex("06092a864886f70d010702")


def _content_infos(der: bytes, pos: int, end: int, depth: int) -> Iterator[bytes]:
    """Every PKCS#7 ContentInfo of type signedData inside ``der[pos:end]``: the primary
    signature, the nested ones (in unauthenticated attributes) and the timestamps."""
    if depth > 32:
        return
    while pos < end:
        got = _tlv(der, pos)
        if got is None or got[2] > end:
            return
        tag, start, stop = got
        if tag & 0x20:  # constructed: look inside
            if tag == 0x30 and der[start : start + len(_SIGNED_DATA_OID)] == _SIGNED_DATA_OID:
                yield der[pos:stop]
            yield from _content_infos(der, start, stop, depth + 1)
        pos = stop


def signed_data_certificates(der: bytes) -> list[x509.Certificate]:
    """Every certificate carried by the PKCS#7 ``der`` and the signatures nested in it."""
    out: list[x509.Certificate] = []
    for info in _content_infos(der, 0, len(der), 0):
        try:
            out += pkcs7.load_der_pkcs7_certificates(info)
        except ValueError:
            continue
    return out
