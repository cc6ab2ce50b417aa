"""The lock file, the cache layout and the Authenticode subject parser (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mt5forge.cache import Cache, sha256_file
from mt5forge.errors import ConfigError
from mt5forge.lock import LockEntry, lock_diff, parse_lock, read_lock, render_lock, write_lock
from mt5forge.tools import authenticode
from mt5forge.tools.authenticode import parse_subject

SHA = "a" * 64


def test_lock_round_trip_is_stable(tmp_path: Path) -> None:
    entries = {
        "b": LockEntry(
            name="b", filename="b.msi", sha256=SHA, origin="fixture", size=3, note='say "why"'
        ),
        "a": LockEntry(name="a", filename="a.exe", sha256="", origin="upstream"),
    }
    write_lock(tmp_path, entries)
    text = (tmp_path / "artifacts.lock.toml").read_text()
    assert text.index("[a]") < text.index("[b]"), "sorted, so diffs stay small"
    assert read_lock(tmp_path) == entries
    assert render_lock(read_lock(tmp_path).values()) == text


def test_lock_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match=r"\[x\] sha256 'abc' is malformed"):
        parse_lock('[x]\nfilename = "f"\nsha256 = "abc"\n', Path("l"))
    with pytest.raises(ConfigError, match="unknown key 'sha265'"):
        parse_lock('[x]\nfilename = "f"\nsha265 = ""\n', Path("l"))
    with pytest.raises(ConfigError, match="needs filename"):
        parse_lock('[x]\nsha256 = ""\n', Path("l"))


def test_lock_entry_must_say_its_origin() -> None:
    """No default: a lock that does not say where bytes come from cannot pass as upstream."""
    entry = '[x]\nfilename = "f"\nsha256 = ""\n'
    with pytest.raises(ConfigError, match="origin None is not one of"):
        parse_lock(entry, Path("l"))
    with pytest.raises(ConfigError, match="Did you mean 'real-from-PyPI'"):
        parse_lock(entry + 'origin = "real-from-pypi"\n', Path("l"))
    got = parse_lock(entry + 'origin = "real-from-PyPI"\n', Path("l"))
    assert got["x"].origin == "real-from-PyPI"


def test_lock_diff_shows_the_moved_hash() -> None:
    old = {"x": LockEntry(name="x", filename="f", sha256=SHA, origin="upstream")}
    new = {"x": LockEntry(name="x", filename="f", sha256="b" * 64, origin="upstream")}
    diff = lock_diff(old, new, "checksums/artifacts.lock.toml")
    assert f'-sha256 = "{SHA}"' in diff and f'+sha256 = "{"b" * 64}"' in diff
    assert lock_diff(old, old, "x") == ""


def test_missing_lock_is_empty(tmp_path: Path) -> None:
    assert read_lock(tmp_path) == {}


def test_cache_commit_is_content_addressed_and_read_only(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    part = cache.partial(SHA)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"x")
    final = cache.commit(part, SHA, "file.msi")
    assert final == tmp_path / "sha256" / "aa" / SHA / "file.msi"
    assert not part.exists() and final.read_bytes() == b"x"
    assert final.stat().st_mode & 0o222 == 0
    assert sha256_file(final) == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"


def test_parse_osslsigncode_subject() -> None:
    subject = "/C=CY/ST=Lemesos/O=MetaQuotes Ltd./CN=MetaQuotes Ltd."
    assert parse_subject(subject) == {
        "C": "CY",
        "ST": "Lemesos",
        "O": "MetaQuotes Ltd.",
        "CN": "MetaQuotes Ltd.",
    }


FULL = {"C": "CY", "ST": "Lemesos", "O": "MetaQuotes Ltd.", "CN": "MetaQuotes Ltd."}


@pytest.mark.parametrize(
    ("subject", "accepted"),
    [
        ("/C=CY/ST=Lemesos/O=MetaQuotes Ltd./CN=MetaQuotes Ltd.", True),
        # Order does not matter; every attribute and no other does.
        ("/CN=MetaQuotes Ltd./O=MetaQuotes Ltd./ST=Lemesos/C=CY", True),
        # CN and O alone are not the signer.
        ("/C=US/ST=Lemesos/O=MetaQuotes Ltd./CN=MetaQuotes Ltd.", False),
        ("/O=MetaQuotes Ltd./CN=MetaQuotes Ltd.", False),
        ("/C=CY/ST=Lemesos/L=Limassol/O=MetaQuotes Ltd./CN=MetaQuotes Ltd.", False),
        # A value that smuggles '/O=MetaQuotes Ltd.' reads as a second O: never a match.
        ("/C=CY/ST=Lemesos/O=Evil Inc/CN=MetaQuotes Ltd./O=MetaQuotes Ltd.", False),
        ("/C=CY/ST=Lemesos/O=MetaQuotes Ltd./CN=Evil/CN=MetaQuotes Ltd.", False),
    ],
)
def test_authenticode_signer_is_matched_by_its_full_name(subject: str, accepted: bool) -> None:
    """The comparison ``verify`` applies to osslsigncode's subject and issuer lines (the chain
    check itself runs for real in tests/integration/fetch)."""
    assert authenticode.matches(subject, FULL) is accepted
    assert not authenticode.matches(subject, {}), "an empty pin matches nothing"
