"""Each fault of issue 3 against a real HTTP server on 127.0.0.1.

Every failing case asserts three things: the error names the artifact and the reason, nothing
is left under the artifact's final cache name (nor as a partial, where the bytes were wrong), and
the rest of the cache (artifacts fetched before) is intact.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mt5forge import config
from mt5forge.cache import Cache
from mt5forge.config import Settings
from mt5forge.errors import ConfigError, FetchError, Mt5ForgeError, VerificationError
from mt5forge.fetch import fetch_all
from mt5forge.fixtures import (
    FileServer,
    FixtureKit,
    authenticode_sign,
    build_exe,
    export_openpgp_key,
    make_authenticode_cert,
    make_openpgp_key,
    openpgp_sign,
    revoke_openpgp_key,
    stop_gpg_agent,
)
from mt5forge.lock import LockEntry, read_lock, write_lock

pytestmark = pytest.mark.integration

Snapshot = Callable[[Path], dict[str, str]]
PY = "python-windows"
PY_FILE = "python-3.12.9-embed-amd64.zip"
MONO = "wine-mono"
MT5 = "mt5setup"
WARM = ["wine-gecko-x86", "wine-gecko-x86_64"]


@pytest.fixture
def warm(make_settings: Callable[..., Settings], snapshot: Snapshot) -> dict[str, str]:
    """A cache that already holds two verified artifacts; returns its snapshot."""
    settings = make_settings()
    fetch_all(settings, names=WARM)
    snap = snapshot(settings.cache_dir)
    assert len(snap) == 2
    return snap


def expect_failure(
    settings: Settings,
    name: str,
    error: type[Mt5ForgeError],
    *reasons: str,
    warm: dict[str, str],
    snapshot: Snapshot,
) -> Mt5ForgeError:
    """Fetch ``name``; assert the error, the message, nothing final, the rest intact."""
    with pytest.raises(error) as info:
        fetch_all(settings, names=[name])
    text = str(info.value)
    assert name in text, text
    for reason in reasons:
        assert reason in text, f"{reason!r} not in {text!r}"
    entry = read_lock(settings.path(settings.fetch.lock_dir)).get(name)
    if entry is not None and entry.sha256:
        final = Cache(settings.cache_dir).entry(entry.sha256, entry.filename)
        assert not final.exists(), f"{final} exists after a failed fetch"
        assert not final.parent.exists() or not any(final.parent.iterdir())
    assert snapshot(settings.cache_dir) == warm, "the rest of the cache changed"
    return info.value


def no_partials(settings: Settings) -> bool:
    d = settings.cache_dir / "partial"
    return not d.is_dir() or not any(d.iterdir())


# --- transport faults ----------------------------------------------------------------------------


def test_wrong_bytes(make_settings, server: FileServer, warm, snapshot) -> None:
    server.script("wine-mono-9.4.0-x86.msi", "corrupt")
    s = make_settings()
    expect_failure(s, MONO, VerificationError, "wrong bytes", warm=warm, snapshot=snapshot)
    assert no_partials(s), "wrong bytes must not be kept for a resume"


def test_truncated_body(make_settings, server: FileServer, warm, snapshot) -> None:
    server.script("wine-mono-9.4.0-x86.msi", "truncate", "truncate", "truncate")
    s = make_settings()
    err = expect_failure(
        s, MONO, FetchError, "3 attempt(s)", "of 9728 bytes", warm=warm, snapshot=snapshot
    )
    assert err.hint and "9628 bytes received so far are kept" in err.hint, err.hint


def test_dropped_connection_then_retry_resumes(
    make_settings, server: FileServer, warm, snapshot
) -> None:
    server.script("wine-mono-9.4.0-x86.msi", "drop")
    s = make_settings()
    [artifact] = fetch_all(s, names=[MONO])
    assert artifact.path.is_file() and not artifact.cache_hit
    ranges = [r for f, r in server.requests if f == "wine-mono-9.4.0-x86.msi"]
    assert ranges[0] == "" and ranges[1].startswith("bytes=4864-"), ranges
    assert no_partials(s)
    assert set(warm) < set(snapshot(s.cache_dir))


def test_dropped_connection_server_without_range(
    make_settings, server: FileServer, warm, snapshot
) -> None:
    """A server that ignores Range answers 200: the download starts over and still verifies."""
    server.script("wine-mono-9.4.0-x86.msi", "drop", "norange")
    [artifact] = fetch_all(make_settings(), names=[MONO])
    assert artifact.size == 9728


def test_http_404(make_settings, served: Path, warm, snapshot) -> None:
    (served / "wine-mono-9.4.0-x86.msi").unlink()
    s = make_settings()
    expect_failure(s, MONO, FetchError, "HTTP 404", warm=warm, snapshot=snapshot)


def test_500_twice_then_200(make_settings, server: FileServer, warm, snapshot) -> None:
    server.script("wine-mono-9.4.0-x86.msi", "500", "500")
    [artifact] = fetch_all(make_settings(), names=[MONO])
    assert artifact.path.is_file()
    assert [f for f, _ in server.requests].count("wine-mono-9.4.0-x86.msi") == 3


def test_500_until_retries_run_out(make_settings, server: FileServer, warm, snapshot) -> None:
    server.script("wine-mono-9.4.0-x86.msi", "500", "500", "500")
    s = make_settings()
    err = expect_failure(s, MONO, FetchError, "HTTP 500", warm=warm, snapshot=snapshot)
    assert err.hint is None, "no bytes were received, so none are kept for a resume"


def test_stall_past_read_timeout(make_settings, server: FileServer, warm, snapshot) -> None:
    server.script("wine-mono-9.4.0-x86.msi", "stall", "stall")
    s = make_settings(retries=1)
    expect_failure(s, MONO, FetchError, "no data for 1 s", warm=warm, snapshot=snapshot)


# --- OpenPGP faults ------------------------------------------------------------------------------


@pytest.fixture
def stranger(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A second throw-away key that no profile pins."""
    home = tmp_path / "stranger-gnupg"
    fpr = make_openpgp_key(home, "Stranger <stranger@mt5forge.invalid>")
    yield home, fpr
    stop_gpg_agent(home)


def test_good_signature_by_unpinned_key(
    make_settings, served: Path, stranger, warm, snapshot
) -> None:
    home, fpr = stranger
    openpgp_sign(home, fpr, served / PY_FILE, served / f"{PY_FILE}.asc")
    s = make_settings()
    expect_failure(
        s, PY, VerificationError, "not among the pinned keys", warm=warm, snapshot=snapshot
    )
    assert no_partials(s)


def test_key_in_keyring_but_not_allowed(
    make_settings,
    fixture_profile: FixtureKit,
    served: Path,
    stranger,
    tmp_path: Path,
    warm,
    snapshot,
) -> None:
    """Even an imported key must be in the fingerprint allow-list to count."""
    home, fpr = stranger
    keys = tmp_path / "keys"
    shutil.copytree(fixture_profile.keys_dir, keys)
    export_openpgp_key(home, fpr, keys / "stranger.asc")
    overlay = tmp_path / "trust.toml"
    text = fixture_profile.trust_overlay.read_text()
    overlay.write_text(
        text.replace(
            'keys = ["fixture-release.asc"]', 'keys = ["fixture-release.asc", "stranger.asc"]'
        )
    )
    openpgp_sign(home, fpr, served / PY_FILE, served / f"{PY_FILE}.asc")
    s = make_settings(keys_dir=str(keys), trust_overlay=str(overlay))
    expect_failure(
        s, PY, VerificationError, f"signed by {fpr}", "allow-list", warm=warm, snapshot=snapshot
    )


def test_signature_by_pinned_key_over_other_bytes(
    make_settings, fixture_profile: FixtureKit, served: Path, tmp_path: Path, warm, snapshot
) -> None:
    other = tmp_path / "other.bin"
    other.write_bytes(b"not the python installer\n")
    openpgp_sign(
        fixture_profile.gnupghome, fixture_profile.openpgp_fingerprint, other,
        served / f"{PY_FILE}.asc",
    )  # fmt: skip
    stop_gpg_agent(fixture_profile.gnupghome)
    s = make_settings()
    expect_failure(s, PY, VerificationError, "BAD signature", warm=warm, snapshot=snapshot)


def test_missing_signature_file(make_settings, served: Path, warm, snapshot) -> None:
    (served / f"{PY_FILE}.asc").unlink()
    s = make_settings()
    expect_failure(
        s, PY, VerificationError, f"{PY_FILE}.asc could not be fetched", "HTTP 404",
        warm=warm, snapshot=snapshot,
    )  # fmt: skip


def _pin_key(fixture_profile: FixtureKit, tmp_path: Path, home: Path, fpr: str) -> dict[str, str]:
    """Keys dir and overlay that pin ``fpr`` (instead of the fixture key) for python-windows."""
    keys = tmp_path / "pinned-keys"
    keys.mkdir()
    export_openpgp_key(home, fpr, keys / "pinned.asc")
    overlay = tmp_path / "pinned-trust.toml"
    text = fixture_profile.trust_overlay.read_text()
    text = text.replace('keys = ["fixture-release.asc"]', 'keys = ["pinned.asc"]')
    text = text.replace(fixture_profile.openpgp_fingerprint, fpr)
    overlay.write_text(text)
    return {"keys_dir": str(keys), "trust_overlay": str(overlay)}


def test_expired_pinned_key(
    make_settings, fixture_profile: FixtureKit, served: Path, tmp_path: Path, warm, snapshot
) -> None:
    home = tmp_path / "expired-gnupg"
    # Made and used in 2020 with a one-day lifetime: the signature was good then, not now.
    fpr = make_openpgp_key(home, "Expired <expired@mt5forge.invalid>", faked_time="20200101T000000")
    openpgp_sign(home, fpr, served / PY_FILE, served / f"{PY_FILE}.asc",
                 faked_time="20200101T010000")  # fmt: skip
    overrides = _pin_key(fixture_profile, tmp_path, home, fpr)
    stop_gpg_agent(home)
    s = make_settings(**overrides)
    expect_failure(s, PY, VerificationError, "expired", warm=warm, snapshot=snapshot)


def test_revoked_pinned_key(
    make_settings, fixture_profile: FixtureKit, served: Path, tmp_path: Path, warm, snapshot
) -> None:
    home = tmp_path / "revoked-gnupg"
    fpr = make_openpgp_key(home, "Revoked <revoked@mt5forge.invalid>")
    openpgp_sign(home, fpr, served / PY_FILE, served / f"{PY_FILE}.asc")
    revoke_openpgp_key(home, fpr)
    overrides = _pin_key(fixture_profile, tmp_path, home, fpr)
    stop_gpg_agent(home)
    s = make_settings(**overrides)
    expect_failure(s, PY, VerificationError, "revoked", warm=warm, snapshot=snapshot)


# --- Authenticode faults -------------------------------------------------------------------------


def _replace_and_repin(s: Settings, served: Path, exe: Path, tmp_path: Path) -> Settings:
    """Serve ``exe`` as mt5setup.exe with a lock that pins its hash, so only the signer fails."""
    from mt5forge.cache import sha256_file

    shutil.copyfile(exe, served / "mt5setup.exe")
    lock_dir = tmp_path / "lock"
    lock = read_lock(s.path(s.fetch.lock_dir))
    lock[MT5] = LockEntry(
        name=MT5, filename="mt5setup.exe", sha256=sha256_file(exe), origin="fixture"
    )
    write_lock(lock_dir, lock)
    overrides = {"fetch": {**vars(s.fetch), "lock_dir": str(lock_dir)}}
    return config.load(s.root, env={}, overrides=overrides)


def test_unsigned_exe_fails(make_settings, served: Path, tmp_path: Path, warm, snapshot) -> None:
    exe = build_exe(tmp_path / "mt5setup.exe", marker_name="mt5setup.exe")
    s = _replace_and_repin(make_settings(), served, exe, tmp_path)
    expect_failure(
        s, MT5, VerificationError, "no Authenticode signature", warm=warm, snapshot=snapshot
    )


def test_exe_signed_by_another_signer_fails(
    make_settings, served: Path, tmp_path: Path, warm, snapshot
) -> None:
    exe = build_exe(tmp_path / "mt5setup.exe", marker_name="mt5setup.exe")
    other = tmp_path / "other-cert"
    other.mkdir()
    cert, key = make_authenticode_cert(other, {"CN": "Somebody Else", "O": "Elsewhere"})
    authenticode_sign(exe, cert, key)
    s = _replace_and_repin(make_settings(), served, exe, tmp_path)
    expect_failure(s, MT5, VerificationError, "Authenticode", warm=warm, snapshot=snapshot)


# --- bad manifests and locks ---------------------------------------------------------------------


@pytest.fixture
def manifests_copy(fixture_profile: FixtureKit, tmp_path: Path) -> Path:
    d = tmp_path / "manifests"
    shutil.copytree(fixture_profile.manifests_dir, d, ignore=shutil.ignore_patterns("keys"))
    return d


def test_manifest_with_unknown_key(make_settings, manifests_copy: Path, warm, snapshot) -> None:
    path = manifests_copy / "wine-mono.toml"
    path.write_text(path.read_text().replace("\nsource = ", "\nsoruce = ", 1))
    with pytest.raises(ConfigError) as info:
        fetch_all(make_settings(manifests_dir=str(manifests_copy)), names=[MONO])
    text = str(info.value)
    assert "wine-mono.toml" in text and "unknown key 'soruce'" in text
    assert "Did you mean 'source'?" in text


def test_manifest_with_malformed_sha256(
    make_settings, manifests_copy: Path, warm, snapshot
) -> None:
    path = manifests_copy / "wine-mono.toml"
    text = path.read_text()
    path.write_text(text.replace('sha256 = "cf6173', 'sha256 = "XYZ173', 1))
    s = make_settings(manifests_dir=str(manifests_copy))
    with pytest.raises(ConfigError) as info:
        fetch_all(s, names=[MONO])
    assert "wine-mono" in str(info.value) and "malformed" in str(info.value)
    assert snapshot(s.cache_dir) == warm


def test_lock_without_entry(
    make_settings, fixture_profile: FixtureKit, tmp_path: Path, warm, snapshot
) -> None:
    lock = read_lock(fixture_profile.lock_dir)
    del lock[MONO]
    write_lock(tmp_path / "lock", lock)
    s = make_settings(lock_dir=str(tmp_path / "lock"))
    err = expect_failure(s, MONO, VerificationError, "no entry", warm=warm, snapshot=snapshot)
    assert err.hint and "invoke pin" in err.hint


def test_every_unpinned_artifact_is_named_before_any_download(
    make_settings, fixture_profile: FixtureKit, server: FileServer, tmp_path: Path
) -> None:
    lock = read_lock(fixture_profile.lock_dir)
    del lock[MONO]
    lock[MT5] = LockEntry(name=MT5, filename="mt5setup.exe", sha256="", origin="fixture")
    write_lock(tmp_path / "lock", lock)
    s = make_settings(lock_dir=str(tmp_path / "lock"))
    with pytest.raises(VerificationError) as info:
        fetch_all(s)
    text = str(info.value)
    assert f"{MONO}: the lock" in text and "no entry" in text, text
    assert f"{MT5}: the lock" in text and "an empty entry" in text, text
    assert "invoke pin" in text
    assert server.requests == [], "nothing is downloaded while any pin is missing"
    assert not (s.cache_dir / "sha256").exists()


def test_lock_with_malformed_sha256(
    make_settings, fixture_profile: FixtureKit, tmp_path: Path
) -> None:
    (tmp_path / "lock").mkdir()
    text = (fixture_profile.lock_dir / "artifacts.lock.toml").read_text()
    (tmp_path / "lock" / "artifacts.lock.toml").write_text(
        text.replace('sha256 = "', 'sha256 = "zz', 1)
    )
    with pytest.raises(ConfigError, match="malformed"):
        fetch_all(make_settings(lock_dir=str(tmp_path / "lock")))
