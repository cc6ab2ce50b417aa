"""The fixture profile (built once per session) and a fresh 127.0.0.1 server per test.

Every test serves its own copy of the stand-ins, so one that swaps a signature or a file cannot
affect another, and gets settings with short timeouts and backoff so that faults fail fast.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mt5forge import config
from mt5forge.config import Settings
from mt5forge.fixtures import FileServer, FixtureKit, make_fixture_kit, serve_directory
from mt5forge.fixtures import stop_gpg_agent as _stop_agent

REPO = Path(__file__).resolve().parents[3]
FAST = {"connect_timeout": 2, "read_timeout": 1, "retries": 2, "backoff_ms": 10}


@pytest.fixture(scope="session")
def fixture_profile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FixtureKit]:
    """wixl MSIs, mingw programs, a throw-away OpenPGP key and Authenticode cert: made once."""
    profile = make_fixture_kit(tmp_path_factory.mktemp("fixture-profile"))
    yield profile
    _stop_agent(profile.gnupghome)


@pytest.fixture
def served(fixture_profile: FixtureKit, tmp_path: Path) -> Path:
    """A per-test copy of the stand-ins that the test may change."""
    d = tmp_path / "serve"
    shutil.copytree(fixture_profile.serve_dir, d)
    return d


@pytest.fixture
def server(served: Path) -> Iterator[FileServer]:
    with serve_directory(served, stall_seconds=3) as s:
        yield s


MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(fixture_profile: FixtureKit, server: FileServer, tmp_path: Path) -> MakeSettings:
    """Settings for the fixture profile behind ``server``; keyword args override [fetch]."""

    def make(**fetch: Any) -> Settings:
        overrides = fixture_profile.settings_overrides(server.url, tmp_path / "cache")
        overrides["fetch"].update(FAST)
        overrides["fetch"].update(fetch)
        return config.load(REPO, env={}, overrides=overrides)

    return make


def _snapshot(cache: Path) -> dict[str, str]:
    root = cache / "sha256"
    if not root.is_dir():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def snapshot() -> Callable[[Path], dict[str, str]]:
    """Every verified file in a cache (relative path -> sha256 of its content)."""
    return _snapshot
