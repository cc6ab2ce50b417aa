"""Settings for a test session's own build run, shared by the test trees' ``built`` fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mt5forge import config
from mt5forge.config import Settings

REPO = Path(__file__).resolve().parent.parent
HOST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# A fixed marker keeps the bundle's bytes, and so the build cache, the same from run to run.
CA_MARKER = b"# mt5forge-build-ca-marker-7d1f0c2e9b5a4e61 (tests/integration/test_build_images.py)"


def build_run_settings(run_dir: Path, **overrides: dict[str, Any]) -> Settings:
    """The project's settings with a build CA bundle (the host's plus the marker), the run
    directory and the SBOM directory under ``run_dir``; ``overrides`` add sections."""
    bundle = run_dir / "build-ca.pem"
    host = HOST_BUNDLE.read_bytes() if HOST_BUNDLE.is_file() else b""
    bundle.write_bytes(host + b"\n" + CA_MARKER + b"\n")
    return config.load(
        REPO,
        env={},
        overrides={
            "build": {"ca_bundle": str(bundle)},
            "paths": {"run_dir": str(run_dir)},
            "sbom": {"dir": str(run_dir / "sbom")},
            **overrides,
        },
    )
