"""The debootstrap-built base image, checked in a real engine."""

from __future__ import annotations

from typing import Any

import pytest

from mt5forge.base import BaseImage

pytestmark = pytest.mark.integration


def run(client: Any, image: str, *cmd: str, user: str = "") -> str:
    out = client.containers.run(
        image, list(cmd), user=user or None, remove=True, network_disabled=True
    )
    return out.decode() if isinstance(out, bytes) else str(out)


def test_base_records_how_it_was_made(docker_client: Any, base_image: BaseImage) -> None:
    labels = docker_client.images.get(base_image.reference).labels
    assert labels["org.mt5forge.base.source"] == "debootstrap"
    assert labels["org.mt5forge.base.suite"] == "trixie"
    assert labels["org.mt5forge.base.inputs"] == base_image.keyed_reference.rsplit("-", 1)[1]


def test_base_is_debian_trixie_with_security_sources(
    docker_client: Any, base_image: BaseImage
) -> None:
    assert run(docker_client, base_image.reference, "cat", "/etc/debian_version").startswith("13")
    sources = run(
        docker_client, base_image.reference, "cat", "/etc/apt/sources.list.d/debian.sources"
    )
    assert "Suites: trixie trixie-updates" in sources
    assert "Suites: trixie-security" in sources


def test_container_runs_as_non_root(docker_client: Any, base_image: BaseImage) -> None:
    assert run(docker_client, base_image.reference, "id", "-u", user="1000:1000").strip() == "1000"


def test_apt_lists_are_empty(docker_client: Any, base_image: BaseImage) -> None:
    listed = run(docker_client, base_image.reference, "find", "/var/lib/apt/lists", "-type", "f")
    assert [f for f in listed.split() if not f.endswith("/lock")] == []
