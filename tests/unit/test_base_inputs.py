from __future__ import annotations

from pathlib import Path

from mt5forge import config
from mt5forge.base import apt_sources, host_mirrors, inputs_key, mirrors

SOURCES = """Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_host_mirrors_read_deb822(tmp_path: Path) -> None:
    f = tmp_path / "debian.sources"
    f.write_text(SOURCES)
    assert host_mirrors(f) == (
        "http://mirror.example/debian",
        "http://mirror.example/debian-security",
    )
    assert host_mirrors(tmp_path / "absent") == ("", "")


def test_configured_mirror_derives_its_security_archive(tmp_path: Path) -> None:
    s = config.load(tmp_path, env={"MT5FORGE_BASE_DEBIAN_MIRROR": "http://10.0.0.1/debian/"})
    assert mirrors(s) == ("http://10.0.0.1/debian", "http://10.0.0.1/debian-security")


def test_apt_sources_cover_suite_updates_and_security() -> None:
    text = apt_sources("trixie", "http://m/debian", "http://m/debian-security", "/k.gpg")
    assert "Suites: trixie trixie-updates\n" in text
    assert "URIs: http://m/debian-security\nSuites: trixie-security\n" in text
    assert text.count("Signed-By: /k.gpg") == 2


def test_inputs_key_is_stable_and_sensitive() -> None:
    a = inputs_key({"suite": "trixie", "mirror": "m"})
    assert a == inputs_key({"mirror": "m", "suite": "trixie"})
    assert a != inputs_key({"suite": "trixie", "mirror": "n"})
    assert len(a) == 12
