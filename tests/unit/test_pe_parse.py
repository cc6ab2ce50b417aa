"""Parsing osslsigncode's per-signature output, matching PE files to groups, and the certificate
table check on crafted bytes (no programs; the same checks on files signed for real are in
tests/integration/fetch/test_fetch_authenticode_hostile.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mt5forge.errors import VerificationError
from mt5forge.manifest import load_manifests
from mt5forge.tools.authenticode import (
    check_certificate_table,
    parse_signatures,
    signed_data_certificates,
)
from mt5forge.tools.pe import group_for

REPO = Path(__file__).resolve().parents[2]

# Shape of `osslsigncode verify` 2.9 on vcruntime140.dll (trimmed): a primary and a nested
# signature, each with its own countersignature.
OUTPUT = """\
Signature Index: 0  (Primary Signature)
Signer's certificate:
\t------------------
\tSigner #0:
\t\tSubject: /C=US/O=Microsoft Corporation/CN=Microsoft Windows Software Compatibility Publisher
\t\tIssuer : /C=US/O=Microsoft Corporation/CN=Microsoft Windows Third Party Component CA 2013
Timestamp verified using:
\t\tSubject: /C=US/O=Microsoft Corporation/CN=Microsoft Time-Stamp Service
Timestamp Server Signature verification: ok
Signature verification: ok

Signature Index: 1
Signer's certificate:
\tSigner #0:
\t\tSubject: /C=US/O=Microsoft Corporation/CN=Microsoft Corporation
\t\tIssuer : /C=US/O=Microsoft Corporation/CN=Microsoft Code Signing PCA 2011
Timestamp Server Signature verification: ok
Signature verification: failed
"""


def test_each_signature_block_has_its_signer_issuer_and_verdict() -> None:
    sigs = parse_signatures(OUTPUT)
    assert [s.index for s in sigs] == [0, 1]
    assert sigs[0].subject.endswith("CN=Microsoft Windows Software Compatibility Publisher")
    assert sigs[0].issuer.endswith("CN=Microsoft Windows Third Party Component CA 2013")
    assert sigs[0].verified
    assert sigs[1].issuer.endswith("CN=Microsoft Code Signing PCA 2011")
    # A good countersignature is not a good signature: the anchored match tells them apart.
    assert not sigs[1].verified


def test_no_signature_blocks_is_no_signature() -> None:
    assert parse_signatures("No signature found\nFailed\n") == []


def test_files_match_the_first_group_case_insensitively() -> None:
    py = next(m for m in load_manifests(REPO / "manifests") if m.name == "python-windows")
    assert py.pe_authenticode
    groups = py.pe_authenticode.groups

    def cn(member: str) -> str:
        g = group_for(member, groups)
        assert g is not None, member
        return g.signers[0].subject["CN"]

    assert cn("cp312/VCRUNTIME140.DLL") == "Microsoft Windows Software Compatibility Publisher"
    assert cn("vcruntime140_1.dll") == "Microsoft Windows Software Compatibility Publisher"
    assert group_for("libssl-3.dll", groups) is groups[1]
    assert group_for("python.exe", groups) is groups[2]
    assert group_for("cp312/_ssl.pyd", groups) is groups[2]
    assert group_for("extra.bin", groups) is None


# --- the certificate table, on crafted bytes -----------------------------------------------------

#: A minimal PKCS#7 ContentInfo: SEQUENCE { OID signedData, [0] { SEQUENCE {} } }.
PKCS7 = bytes.fromhex("301106092a864886f70d010702a00430023000")


def pe_with_table(table: bytes, *, size: int | None = None, after: bytes = b"") -> bytes:
    """A PE32+ header whose certificate table is ``table`` at the end (then ``after``)."""
    head = bytearray(0x200)
    head[:2] = b"MZ"
    struct.pack_into("<I", head, 0x3C, 0x40)
    head[0x40:0x44] = b"PE\0\0"
    optional = 0x40 + 24
    struct.pack_into("<H", head, optional, 0x20B)
    struct.pack_into("<I", head, optional + 108, 16)
    struct.pack_into("<II", head, optional + 112 + 4 * 8, len(head), size or len(table))
    return bytes(head) + table + after


def entry(der: bytes, pad: bytes = b"") -> bytes:
    body = der + pad
    length = 8 + len(body)
    raw = struct.pack("<IHH", length, 0x0200, 0x0002) + body
    return raw + b"\0" * (-len(raw) % 8)


def check(tmp_path: Path, data: bytes) -> bytes:
    f = tmp_path / "x.exe"
    f.write_bytes(data)
    return check_certificate_table(f, name="x")


def test_one_entry_with_zero_padding_passes(tmp_path: Path) -> None:
    assert check(tmp_path, pe_with_table(entry(PKCS7, b"\0\0\0"))) == PKCS7
    assert signed_data_certificates(PKCS7) == []


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: b"not a PE at all" * 10, "not a PE file"),
        (lambda: pe_with_table(b"", size=0), "no Authenticode signature"),
        (lambda: pe_with_table(entry(PKCS7), after=b"payload!"), "8 bytes follow the certificate"),
        (lambda: pe_with_table(entry(PKCS7, b"\0evil\0\0")), "padding holds non-zero bytes"),
        (lambda: pe_with_table(entry(PKCS7) + entry(PKCS7)), "a second entry"),
        (lambda: pe_with_table(entry(PKCS7), size=4096), "runs past the end of the file"),
        (lambda: pe_with_table(entry(b"\x30\x84\xff\xff\xff\xff")), "not one well-formed"),
    ],
)
def test_crafted_tables_are_refused(tmp_path: Path, make: object, reason: str) -> None:
    assert callable(make)
    with pytest.raises(VerificationError, match=reason):
        check(tmp_path, make())


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(junk=st.binary(max_size=512), grow=st.integers(min_value=0, max_value=64))
def test_junk_in_the_table_only_ever_fails_as_verification(
    tmp_path: Path, junk: bytes, grow: int
) -> None:
    """Whatever the table holds, the parser answers with the DER or a VerificationError, and
    walking the DER for certificates never raises."""
    try:
        der = check(tmp_path, pe_with_table(junk, size=max(1, len(junk) + grow)))
    except VerificationError:
        return
    assert isinstance(signed_data_certificates(der), list)
    assert isinstance(signed_data_certificates(junk), list)
