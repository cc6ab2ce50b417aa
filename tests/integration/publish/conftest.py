"""One image that passed every gate, for the push and sign tests.

The session's ``built`` images come from the fixture profile; the sbom, scan (fixture
database) and verify stages run here on ``bot:slim`` only (the smallest image), as a task
runs them, so its records are real ones for its real image id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import pytest
from keys import make_keys, passphrases

from mt5forge.signing import stop_agent
from mt5forge.stages import run_stages, select
from mt5forge.stages.build import BuildResult
from mt5forge.stages.sign import SigningKeys

GATED = "bot:slim"


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
