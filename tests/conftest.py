"""Fixtures shared by every test tree. Each fixture removes what it creates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mt5forge import config
from mt5forge.base import BaseImage, ensure_base
from mt5forge.config import Settings
from mt5forge.engine import ensure_engine

REPO = Path(__file__).resolve().parent.parent


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


@pytest.fixture(scope="session")
def base_image(settings: Settings, docker_client: Any) -> BaseImage:
    """The project's base image, built with debootstrap on first use and reused after."""
    return ensure_base(settings)
