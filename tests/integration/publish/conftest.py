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

from mt5forge.stages import run_stages, select
from mt5forge.stages.build import BuildResult

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
