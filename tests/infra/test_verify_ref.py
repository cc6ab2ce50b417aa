"""`invoke verify --ref IMAGE_REF --image bot --variant slim` through the real command line: a
local image under another name, built by anyone, judged by bot:slim's expectations; the
record is keyed by its id and names the reference judged."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mt5forge.records import read_record

pytestmark = [pytest.mark.infra, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_verify_ref_judges_a_copy_of_bot_slim_by_its_expectations(
    built: Any, docker_client: Any, tmp_path: Path
) -> None:
    image = docker_client.images.get(built.first["bot:slim"].image_id)
    repo, tag = "mt5forge-verify-ref/somebodys-bot", f"copy-{secrets.token_hex(4)}"
    ref = f"{repo}:{tag}"
    assert image.tag(repo, tag)
    run_dir = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5FORGE_")}
    env["MT5FORGE_PATHS_RUN_DIR"] = str(run_dir)
    invoke = Path(sys.executable).with_name("invoke")
    try:
        done = subprocess.run(  # the project's own task runner
            [str(invoke), "verify", "--ref", ref, "--image", "bot", "--variant", "slim",
             "--format", "json"],
            cwd=REPO, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
    finally:
        docker_client.images.remove(ref)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = read_record(run_dir, "verify", image.id)
    assert record.image_id == image.id and record.passed
    assert (record["image"], record["variant"], record["reference"]) == ("bot", "slim", ref)
    statuses = {c["name"]: c["status"] for c in record["checks"]}
    assert "failed" not in statuses.values(), record["checks"]
    assert statuses["pair"] == "passed" and statuses["metadata"] == "passed"
    metadata = next(c for c in record["checks"] if c["name"] == "metadata")
    assert metadata["detail"].endswith(f"tag somebodys-bot:{tag}")
