"""The Trivy wrapper against the real binary and real images in the engine (offline)."""

from __future__ import annotations

import io
import secrets
import string
import tarfile
from pathlib import Path
from typing import Any

import pytest

from mt5forge.base import BaseImage
from mt5forge.tools import trivy

pytestmark = pytest.mark.integration


def test_real_trivy_reports_its_version() -> None:
    assert trivy.version().count(".") == 2


def test_clean_base_has_no_secrets(base_image: BaseImage, tmp_path: Path) -> None:
    report = trivy.scan_image(base_image.reference, cache_dir=tmp_path)
    assert report.version
    assert [f for f in report.findings if f.kind == "secret"] == []


def test_planted_token_is_found(docker_client: Any, base_image: BaseImage, tmp_path: Path) -> None:
    # A GitHub-token-shaped string made now (never committed), planted in a layer.
    token = "ghp_" + "".join(
        secrets.choice(string.ascii_letters + string.digits) for _ in range(36)
    )
    dockerfile = f"FROM {base_image.reference}\nCOPY leak.env /opt/leak.env\n".encode()
    content = f"GITHUB_TOKEN={token}\n".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile), ("leak.env", content)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    image, _ = docker_client.images.build(
        fileobj=buf, custom_context=True, tag="mt5forge-test/leak:1", rm=True
    )
    try:
        report = trivy.scan_image("mt5forge-test/leak:1", cache_dir=tmp_path)
        found = [f for f in report.findings if f.kind == "secret"]
        assert found, "Trivy missed a planted GitHub token"
        assert any("opt/leak.env" in f.target for f in found)
        assert all(token not in f.title for f in found)
    finally:
        docker_client.images.remove(image.id, force=True)
