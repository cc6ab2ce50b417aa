"""testinfra against running containers: a backend (how we reach the container) apart from
the checks (what we assert). Containers are started here and removed at the end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import testinfra

from mt5forge.base import BaseImage


@pytest.fixture(scope="module")
def base_host(docker_client: Any, base_image: BaseImage) -> Iterator[Any]:
    """The base image running as the configured non-root user, reached with testinfra."""
    container = docker_client.containers.run(
        base_image.reference,
        ["sleep", "infinity"],
        user="1000:1000",
        detach=True,
        network_disabled=True,
        labels={"org.mt5forge.test": "infra"},
    )
    try:
        yield testinfra.get_host(f"docker://{container.id}")
    finally:
        container.remove(force=True)


@pytest.fixture(scope="session")
def verify_canary() -> Any:
    """One set of made-up credentials for every verify run of the session: the layer scan
    looks for them too, so sharing them lets verify read each shared layer once."""
    from mt5forge.verify.live import Canary

    return Canary.make()
