"""The local registry: Debian's docker-registry on loopback, a real push."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import requests

from mt5forge.base import BaseImage
from mt5forge.config import Settings
from mt5forge.errors import RegistryError
from mt5forge.registry import Registry, answers, start_registry, stop_registry

pytestmark = pytest.mark.integration


def test_push_to_the_local_registry(
    local_registry: Registry, docker_client: Any, base_image: BaseImage
) -> None:
    assert local_registry.started and answers(local_registry.address)
    ref = f"{local_registry.address}/mt5forge/base"
    docker_client.images.get(base_image.reference).tag(ref, "test")
    try:
        for line in docker_client.images.push(ref, tag="test", stream=True, decode=True):
            assert "error" not in line, line
    finally:
        docker_client.images.remove(f"{ref}:test")
    catalog = requests.get(f"{local_registry.url}/v2/_catalog", timeout=5).json()
    assert "mt5forge/base" in catalog["repositories"]


def test_start_finds_a_running_registry_and_stop_ends_it(
    settings: Settings, local_registry: Registry, tmp_path: Path
) -> None:
    local = dataclasses.replace(
        settings, paths=dataclasses.replace(settings.paths, run_dir=str(tmp_path / "runs"))
    )
    again = start_registry(local, address=local_registry.address, root=local_registry.root)
    assert not again.started  # a second start finds it running
    assert stop_registry(local, address=local_registry.address)
    assert not answers(local_registry.address)
    assert not stop_registry(local, address=local_registry.address)  # nothing left to stop


def test_registry_refuses_non_loopback(settings: Settings) -> None:
    with pytest.raises(RegistryError, match="loopback"):
        start_registry(settings, address="0.0.0.0:5000")
