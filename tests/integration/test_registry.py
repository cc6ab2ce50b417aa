"""The local registry: Debian's docker-registry on loopback, a real push."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path
from typing import Any

import pytest
import requests

from mt5forge.base import BaseImage
from mt5forge.config import Settings
from mt5forge.errors import RegistryError
from mt5forge.registry import answers, start_registry, stop_registry

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_start_push_stop(
    settings: Settings, docker_client: Any, base_image: BaseImage, tmp_path: Path
) -> None:
    local = dataclasses.replace(
        settings, paths=dataclasses.replace(settings.paths, run_dir=str(tmp_path / "runs"))
    )
    address = f"127.0.0.1:{free_port()}"
    reg = start_registry(local, address=address, root=tmp_path / "storage")
    try:
        assert reg.started and answers(address)
        again = start_registry(local, address=address, root=tmp_path / "storage")
        assert not again.started  # a second start finds it running
        ref = f"{address}/mt5forge/base"
        docker_client.images.get(base_image.reference).tag(ref, "test")
        for line in docker_client.images.push(ref, tag="test", stream=True, decode=True):
            assert "error" not in line, line
        catalog = requests.get(f"http://{address}/v2/_catalog", timeout=5).json()
        assert "mt5forge/base" in catalog["repositories"]
        docker_client.images.remove(f"{ref}:test")
    finally:
        assert stop_registry(local, address=address)
    assert not answers(address)
    assert not stop_registry(local, address=address)


def test_registry_refuses_non_loopback(settings: Settings) -> None:
    with pytest.raises(RegistryError, match="loopback"):
        start_registry(settings, address="0.0.0.0:5000")
