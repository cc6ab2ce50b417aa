"""Parsing osslsigncode's per-signature output and matching PE files to groups (no programs)."""

from __future__ import annotations

from pathlib import Path

from mt5forge.manifest import load_manifests
from mt5forge.tools.authenticode import parse_signatures
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
