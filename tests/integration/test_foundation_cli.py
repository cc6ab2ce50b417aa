"""The invoke tasks as a user runs them: real processes, real engine, clear failures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

INVOKE = str(Path(sys.executable).parent / "invoke")


def invoke(
    repo: Path,
    *args: str,
    env: dict[str, str] | None = None,
    user: int | None = None,
    timeout: int = 600,
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MT5FORGE_")}
    full_env.update(env or {})
    argv = [INVOKE, *args]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
        full_env["HOME"] = "/tmp"
    return subprocess.run(
        argv, cwd=repo, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_list_describes_every_task(repo_root: Path) -> None:
    out = invoke(repo_root, "--list")
    assert out.returncode == 0, out.stderr
    for name in ("engine", "base", "demo", "registry.start", "registry.stop", "config"):
        line = next((x for x in out.stdout.splitlines() if x.strip().startswith(name + " ")), "")
        assert len(line.split(None, 1)) == 2, f"{name} has no description in:\n{out.stdout}"


def test_wrong_config_key_is_a_clear_error(repo_root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[base]\nsourse = "registry"\n')
    out = invoke(repo_root, "base", env={"MT5FORGE_CONFIG": str(bad)})
    assert out.returncode == 2
    assert "unknown key 'sourse' in [base]" in out.stderr
    assert "Did you mean 'source'?" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_engine_task_reports_a_running_engine(repo_root: Path, docker_client: object) -> None:
    out = invoke(repo_root, "engine")
    assert out.returncode == 0, out.stderr
    assert "answers at unix://" in out.stdout


def test_engine_at_another_address_is_not_started(repo_root: Path, tmp_path: Path) -> None:
    out = invoke(repo_root, "engine", env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert out.returncode == 6
    assert "No Docker Engine answers at DOCKER_HOST=" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop")
def test_unreachable_engine_where_it_cannot_be_installed(
    repo_root: Path, docker_client: object
) -> None:
    # A non-root user cannot open root's docker socket and may not install packages: the task
    # must say what to install instead of trying, and exit non-zero without a traceback.
    probe = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
         f"open({str(repo_root / 'tasks.py')!r}).close()"],
        capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip("the checkout or the venv is not readable by an unprivileged user here")
    out = invoke(repo_root, "engine", user=65534)
    assert out.returncode == 6, out.stdout + out.stderr
    assert "Install Docker Engine" in out.stderr
    assert "Traceback" not in out.stderr


def test_autostart_off_is_respected(repo_root: Path, tmp_path: Path) -> None:
    out = invoke(
        repo_root,
        "engine",
        env={"MT5FORGE_ENGINE_AUTOSTART": "false", "DOCKER_HOST": f"unix://{tmp_path}/none.sock"},
    )
    assert out.returncode == 6
    assert "autostart is off" in out.stderr


def test_base_twice_reuses_the_image(repo_root: Path, base_image: object) -> None:
    out = invoke(repo_root, "base")
    assert out.returncode == 0, out.stderr
    assert "Reused mt5forge/base:trixie" in out.stdout
    assert "nothing rebuilt" in out.stdout
    # --format json: stdout is the report alone (progress goes to stderr), and it parses.
    out = invoke(repo_root, "base", "--format", "json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["title"] == "Base image" and report["data"]["reused"] is True
    assert report["data"]["image_id"].startswith("sha256:")


def test_an_unknown_report_format_fails_before_any_work(repo_root: Path) -> None:
    out = invoke(repo_root, "build", "--format", "yaml")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Formats: table, json" in out.stderr


def test_debootstrap_failure_is_a_clear_error(
    repo_root: Path, docker_client: object, tmp_path: Path
) -> None:
    # Port 9 (discard) on loopback is closed here: debootstrap cannot fetch the Release file.
    env = {
        "MT5FORGE_BASE_DEBIAN_MIRROR": "http://127.0.0.1:9/debian",
        "MT5FORGE_PATHS_RUN_DIR": str(tmp_path / "runs"),
        "MT5FORGE_IMAGES_PREFIX": "mt5forge-failtest",
    }
    out = invoke(repo_root, "base", env=env)
    assert out.returncode == 7, out.stdout + out.stderr
    assert "debootstrap could not build Debian trixie from http://127.0.0.1:9/debian" in out.stderr
    assert "Traceback" not in out.stderr
    # nothing half-made is left behind: no work directory, no image
    assert list((tmp_path / "runs" / "tmp").iterdir()) == []
    assert docker_client.images.list(name="mt5forge-failtest/base") == []  # type: ignore[attr-defined]


def test_unreachable_pinned_base_is_a_clear_error(repo_root: Path, docker_client: object) -> None:
    env = {
        "MT5FORGE_BASE_SOURCE": "registry",
        "MT5FORGE_BASE_IMAGE": "127.0.0.1:9/debian:trixie-slim@sha256:" + "0" * 64,
        "MT5FORGE_IMAGES_PREFIX": "mt5forge-failtest",
    }
    out = invoke(repo_root, "base", env=env, timeout=300)
    assert out.returncode == 7, out.stdout + out.stderr
    assert "Could not pull the base image 127.0.0.1:9/debian@sha256:" in out.stderr
    assert "MT5FORGE_BASE_SOURCE=debootstrap" in out.stderr
