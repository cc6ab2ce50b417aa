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
    assert py.filename == "python-3.12.10-amd64.exe"
    assert py.openpgp and py.openpgp.fingerprints == ("7169605F62C751356D054A26A821E680E5FA6305",)
    assert (REPO / "manifests" / "keys" / py.openpgp.keys[0]).is_file()
    assert py.signature_filename == "python-3.12.10-amd64.exe.asc"
    mt5 = by["mt5setup"]
    assert mt5.authenticode and dict(mt5.authenticode.subject) == {
        "CN": "MetaQuotes Ltd.",
        "O": "MetaQuotes Ltd.",
    }
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
    assert inputs.lock["python-windows"].sha256.startswith("67b5635e80ea")


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
    assert inputs.url_for(py, py.url) == "http://127.0.0.1:9/base/python-3.12.10-amd64.exe"
    assert inputs.url_for(py, py.signature_url).endswith("/base/python-3.12.10-amd64.exe.asc")
    assert describe(py, "upstream") == "sha256 (lock) + OpenPGP 7169...6305"
    mono = next(m for m in inputs.manifests if m.name == "wine-mono")
    assert describe(mono, "fixture") == "sha256 (addons.c) [fixture]"
