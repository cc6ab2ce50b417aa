"""Fixtures shared by every test tree. Each fixture removes what it creates."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from buildrun import CA_MARKER, build_run_settings
from hypothesis import settings as hypothesis_settings

from mt5forge import config
from mt5forge.base import BaseImage, ensure_base
from mt5forge.config import Settings
from mt5forge.engine import ensure_engine
from mt5forge.fixtures import FixtureKit, fixture_session
from mt5forge.registry import Registry, start_registry, stop_registry
from mt5forge.stages import PIPELINE, run_stages, select
from mt5forge.stages.build import BuildResult

REPO = Path(__file__).resolve().parent.parent

# Property tests draw the same examples every run, so a red run (CI's, the README's test
# command) is reproducible and never a roll of the dice. HYPOTHESIS_EXPLORE=1 draws new ones.
hypothesis_settings.register_profile("fixed", derandomize=True, print_blob=True)
if not os.environ.get("HYPOTHESIS_EXPLORE"):
    hypothesis_settings.load_profile("fixed")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The project's own settings, as `invoke` would load them from the repository root."""
    return config.load(REPO, env={})


@pytest.fixture(scope="session")
def docker_client(settings: Settings) -> Iterator[Any]:
    """A real Docker Engine (started here on Debian as root when none answers)."""
    ensure_engine(settings)
    import docker

    client = docker.from_env(timeout=600)
    yield client
    client.close()


@pytest.fixture
def local_registry(settings: Settings, tmp_path: Path) -> Iterator[Registry]:
    """A real registry (Debian's docker-registry) on a free 127.0.0.1 port, stopped after."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    local = dataclasses.replace(
        settings, paths=dataclasses.replace(settings.paths, run_dir=str(tmp_path / "runs"))
    )
    reg = start_registry(local, address=f"127.0.0.1:{port}", root=tmp_path / "storage")
    try:
        yield reg
    finally:
        stop_registry(local, address=reg.address)


@pytest.fixture(scope="session")
def base_image(settings: Settings, docker_client: Any) -> BaseImage:
    """The project's base image, built with debootstrap on first use and reused after."""
    return ensure_base(settings)


class Built:
    """All five images built once per session from the fixture profile, then built again (the
    second build must be all cache hits). The CA bundle carries a marker line so a test can
    prove it reaches no layer of any final image."""

    def __init__(
        self,
        settings: Settings,
        profile: FixtureKit,
        first: Sequence[BuildResult],
        second: Sequence[BuildResult],
        bundle: Path,
        base: BaseImage,
    ) -> None:
        self.settings = settings
        self.profile = profile
        self.first = {str(r.target): r for r in first}
        self.second = {str(r.target): r for r in second}
        self.bundle = bundle
        self.marker = CA_MARKER
        self.base = base
        self.results: dict[str, Any] = {}
        """Every stage's result of the first run (base, fetch, build)."""


@pytest.fixture(scope="session")
def built(
    docker_client: Any, base_image: BaseImage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Built]:
    run_dir = tmp_path_factory.mktemp("build-run")
    settings = build_run_settings(run_dir)
    with fixture_session(settings) as (profile, fixture_settings):
        # The whole pipeline as a task runs it: base (reused), fetch, build; then the build
        # stage alone again, given the same base and artifacts.
        results = run_stages(fixture_settings, select(until="build"))
        assert [s.name for s in PIPELINE][:3] == ["base", "fetch", "build"]
        again = run_stages(fixture_settings, select(["build"]), given=results)
        built = Built(
            fixture_settings,
            profile,
            results["build"],
            again["build"],
            Path(settings.build.ca_bundle),
            results["base"],
        )
        built.results = results
        yield built
