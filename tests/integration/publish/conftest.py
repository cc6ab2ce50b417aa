"""One image that passed every gate, for the push and sign tests.

The session's ``built`` images come from the fixture profile: here only the bot image (slim and
secure, the smallest; the publish tests use nothing else), so these tests do not wait for the
terminal images' Wine builds. The sbom, scan (fixture database) and verify stages run on
``bot:slim`` only, as a task runs them, so its records are real ones for its real image id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import pytest
from buildrun import build_run_settings
from keys import make_keys, passphrases

from mt5forge.fixtures import fixture_session
from mt5forge.fixtures.trivydb import write_db
from mt5forge.signing import stop_agent
from mt5forge.stages import Options, run_stages, select
from mt5forge.stages.build import BuildResult
from mt5forge.stages.sign import SigningKeys

GATED = "bot:slim"


@dataclasses.dataclass
class BotBuilt:
    """What tests/conftest.py's ``Built`` gives, for the bot image only."""

    settings: Any
    base: Any
    first: dict[str, BuildResult]
    results: dict[str, Any]


@pytest.fixture(scope="session")
def built(
    docker_client: Any, base_image: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BotBuilt]:
    """bot:slim and bot:secure built once from the fixture profile (base, fetch, build as a
    task runs them), instead of all five images."""
    run_dir = tmp_path_factory.mktemp("build-run")
    # Trivy's cache and (empty) fixture database of this session's own: Trivy locks its cache
    # directory, and another session's scans must not make these time out.
    settings = build_run_settings(
        run_dir,
        scan={"cache_dir": str(run_dir / "trivy-cache"), "db_dir": str(run_dir / "trivy")},
    )
    write_db(run_dir / "trivy", [])
    with fixture_session(settings) as (_profile, fixture_settings):
        options = Options(images=("bot",), variants=("slim", "secure"))
        results = run_stages(fixture_settings, select(until="build"), options=options)
        yield BotBuilt(
            settings=fixture_settings,
            base=results["base"],
            first={str(r.target): r for r in results["build"]},
            results=results,
        )


@dataclasses.dataclass(frozen=True)
class Gated:
    settings: Any
    build: BuildResult
    results: dict[str, Any]


@pytest.fixture(scope="session")
def gated(built: Any, docker_client: Any) -> Iterator[Gated]:
    """bot:slim under a tag of its own: the engine is shared, and another build may move
    ``mt5forge/bot:slim`` while verify runs the image by its reference."""
    first = built.first[GATED]
    reference = f"mt5forge-test/bot:gated-{os.getpid()}"
    docker_client.images.get(first.image_id).tag(reference)
    one = dataclasses.replace(first, reference=reference)
    given = {**built.results, "build": (one,)}
    try:
        results = run_stages(built.settings, select(["sbom", "scan", "verify"]), given=given)
        yield Gated(settings=built.settings, build=one, results=results)
    finally:
        with contextlib.suppress(Exception):
            docker_client.images.remove(reference, noprune=True)


@pytest.fixture(scope="session")
def tools_image(gated: Gated) -> str:
    """The tools image (skopeo 1.18, cosign 2.5 from trixie), built once."""
    from mt5forge.tools.toolsimage import ensure_tools_image

    return ensure_tools_image(gated.settings)


@pytest.fixture(scope="session")
def signing_keys(
    tools_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SigningKeys]:
    """Throw-away GnuPG and cosign keys, their passphrases in the environment while the
    session runs."""
    keys, gpg_pass, cosign_pass = make_keys(tmp_path_factory.mktemp("keys"), tools_image, "signer")
    try:
        with passphrases(gpg_pass, cosign_pass):
            yield keys
    finally:
        stop_agent(keys.gpg_home)
