"""``release``: a gate that fails stops the release before anything is pushed.

``run_release`` on ``bot:slim`` with the fixture profile, configured (``[scan] db_dir``) with a
fixture Trivy database holding one made-up HIGH advisory against bash, which every image
carries: fetch, build and sbom pass, the scan gate refuses, and the registry stays empty."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import requests

from mt5forge.errors import ScanError
from mt5forge.fixtures.trivydb import Advisory, write_db
from mt5forge.records import read_record, records_dir
from mt5forge.registry import Registry
from mt5forge.release import run_release
from mt5forge.stages import Options
from mt5forge.stages.sign import SigningKeys

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAKE_CVE = "CVE-2099-51001"


def _catalog(reg: Registry) -> list[str]:
    return list(requests.get(f"{reg.url}/v2/_catalog", timeout=10).json()["repositories"])


def _tags(reg: Registry, repo: str) -> list[str]:
    r = requests.get(f"{reg.url}/v2/{repo}/tags/list", timeout=10)
    return [] if r.status_code == 404 else list(r.json().get("tags") or [])


def test_a_failing_gate_pushes_nothing(
    gated: Any,
    local_registry: Registry,
    signing_keys: SigningKeys,
    tmp_path: Path,
) -> None:
    db = tmp_path / "trivy"
    write_db(db, [Advisory(id=FAKE_CVE, source_package="bash", fixed_version="99.0-1")])
    run_dir = tmp_path / "run"
    base = gated.settings
    # The session's fixture settings (so the build is the cached one), with this database and
    # a run directory of the test's own: its failing scan record stays out of the session's.
    settings = dataclasses.replace(
        base,
        scan=dataclasses.replace(base.scan, db_dir=str(db)),
        paths=dataclasses.replace(base.paths, run_dir=str(run_dir)),
        sbom=dataclasses.replace(base.sbom, dir=str(run_dir / "sbom")),
    )
    with pytest.raises(ScanError) as info:
        run_release(
            settings,
            Options(images=("bot",), variants=("slim",)),
            registry=local_registry.address,
            keys=signing_keys,
        )
    message = str(info.value)
    assert "scan gate" in message and "bot:slim" in message, message
    assert FAKE_CVE in message and "bash" in message, message
    assert info.value.exit_code != 0
    # What ran before the gate ran for real; the gate's record says it failed.
    # (The image id is the one this run built: the cached build gives the gated image's, a
    # rebuilt one, if the engine's cache was pruned meanwhile, its own.)
    [key] = [d.name for d in records_dir(run_dir).iterdir()]
    image_id = "sha256:" + key
    sbom = read_record(run_dir, "sbom", image_id)
    scan = read_record(run_dir, "scan", image_id)
    assert sbom is not None and sbom.passed
    assert scan is not None and not scan.passed
    # Nothing reached the registry, under any name or tag; nothing was signed.
    assert _catalog(local_registry) == []
    assert _tags(local_registry, "mt5forge/bot") == []
    assert read_record(run_dir, "push", image_id) is None
    assert read_record(run_dir, "sign", image_id) is None
    assert not (run_dir / "sigstore").exists()
