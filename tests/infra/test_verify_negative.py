"""Images built with one defect each, FROM the project's images (tests/infra/negative/): verify
catches each and the failing check names the defect. Contexts are copied to a temporary
directory, where the test writes any secret the defect needs; images are removed at the end."""

from __future__ import annotations

import secrets
import shutil
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mt5forge.stages.verify import context
from mt5forge.verify.cst import run_cst, write_config
from mt5forge.verify.expectations import expectation_for, load
from mt5forge.verify.live import Canary
from mt5forge.verify.run import ImageVerdict, verify_image

pytestmark = [pytest.mark.infra, pytest.mark.slow]

NEGATIVE = Path(__file__).parent / "negative"
PASSWORD = "neg-" + secrets.token_urlsafe(12)
TOKEN = "ghp_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))


@pytest.fixture(scope="module")
def negative(
    built: Any, docker_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """build(name) -> the image reference of tests/infra/negative/<name>, built once."""
    made: dict[str, str] = {}
    prefix = built.settings.images.prefix

    def build(name: str) -> str:
        if name not in made:
            ctx = tmp_path_factory.mktemp(name)
            shutil.copytree(NEGATIVE / name, ctx, dirs_exist_ok=True)
            (ctx / "api-token").write_text(TOKEN + "\n")
            ref = f"mt5forge-negative/{name}:test"
            docker_client.images.build(
                path=str(ctx), tag=ref, rm=True, forcerm=True,
                buildargs={"PREFIX": prefix, "NEGATIVE_PASSWORD": PASSWORD},
                labels={"org.mt5forge.test": "negative"},
            )  # fmt: skip
            made[name] = ref
        return made[name]

    yield build
    for ref in made.values():
        docker_client.images.remove(ref, force=True)


@pytest.fixture
def judge(built: Any, verify_canary: Canary) -> Any:
    """judge(ref, as_, *checks): verify ``ref`` by the expectations of ``as_`` (image:variant)."""

    def run(ref: str, as_: str, *checks: str) -> ImageVerdict:
        settings = built.settings
        image, variant = as_.split(":")
        e = expectation_for(load(settings.root / "build"), image, variant)
        return verify_image(context(settings), e, ref, canary=verify_canary, only=checks)

    return run


def failed(v: ImageVerdict, name: str) -> str:
    o = v.outcome(name)
    assert o.status == "failed", f"{name} did not catch the defect: {o.status}: {o.detail}"
    return o.detail


def test_root_user_is_caught(judge: Any, negative: Any, verify_canary: Canary) -> None:
    v = judge(negative("root-user"), "terminal-sim:slim", "user.config", "user.processes")
    assert "'0:0'" in failed(v, "user.config")
    assert "uids (0, 0, 0, 0)" in failed(v, "user.processes")


def test_password_in_env_is_caught(judge: Any, negative: Any, verify_canary: Canary) -> None:
    v = judge(negative("env-password"), "bot:slim", "secrets.config")
    detail = failed(v, "secrets.config")
    assert "credential by key name MT5_PASSWORD in ENV" in detail
    assert PASSWORD not in detail, "the report repeats the secret"


def test_token_deleted_in_a_later_layer_is_caught(
    judge: Any, negative: Any, verify_canary: Canary
) -> None:
    v = judge(negative("deleted-token"), "bot:slim", "secrets.layers", "secrets.canary")
    detail = failed(v, "secrets.layers")
    assert (
        "GitHub token in layer" in detail and "/opt/api-token (deleted in a later layer)" in detail
    )
    assert TOKEN not in detail
    assert v.outcome("secrets.canary").status == "passed"  # no container shows the file


def test_exposed_port_without_listener_is_caught(
    judge: Any, negative: Any, verify_canary: Canary
) -> None:
    v = judge(negative("expose-no-listener"), "terminal-sim:slim", "ports.exposed",
              "ports.listeners")  # fmt: skip
    assert "undeclared ['8080/tcp']" in failed(v, "ports.exposed")
    assert failed(v, "ports.listeners") == "EXPOSEd 8080/tcp has no listener off loopback" or (
        "8080" in failed(v, "ports.listeners")
    )


def test_undeclared_listener_is_caught(judge: Any, negative: Any, verify_canary: Canary) -> None:
    v = judge(negative("undeclared-listener"), "terminal-sim:slim", "ports.listeners")
    assert "undeclared listener 0.0.0.0:8081" in failed(v, "ports.listeners")


def test_setuid_binary_in_secure_is_caught(
    judge: Any, negative: Any, verify_canary: Canary
) -> None:
    v = judge(negative("setuid-secure"), "bot:secure", "files.setuid")
    assert "/usr/local/bin/env-suid (mode 4755)" in failed(v, "files.setuid")


def test_bridge_off_loopback_without_mutual_tls_is_caught(
    judge: Any, negative: Any, verify_canary: Canary
) -> None:
    v = judge(negative("bridge-off-loopback"), "terminal-sim:slim", "bridge.tls",
              "ports.listeners")  # fmt: skip
    detail = failed(v, "bridge.tls")
    assert "listens off loopback (0.0.0.0:18812) without mutual TLS" in detail
    assert "undeclared listener 0.0.0.0:18812" in failed(v, "ports.listeners")


def test_bot_that_cannot_log_in_is_caught(judge: Any, negative: Any, verify_canary: Canary) -> None:
    v = judge(negative("bot-cannot-log-in"), "bot:slim", "pair")
    assert "the bot did not log in and trade with the simulator" in failed(v, "pair")


def test_canary_leaked_to_a_log_line_is_caught(
    judge: Any, negative: Any, verify_canary: Canary
) -> None:
    v = judge(negative("canary-in-log"), "bot:slim", "secrets.canary")
    detail = failed(v, "secrets.canary")
    assert "log line" in detail and "debug: password=<canary>" in detail
    assert not [c for c in verify_canary.secrets() if c in detail]


def test_container_structure_test_agrees_on_the_root_user(
    judge: Any, negative: Any, built: Any, tmp_path: Path
) -> None:
    """The config generated from terminal-sim:slim's expectations fails the root image's
    metadata test, as verify's user.config does."""
    ref = negative("root-user")
    settings = built.settings
    e = expectation_for(load(settings.root / "build"), "terminal-sim", "slim")
    config = write_config(tmp_path / "cst.yaml", e, settings.runtime.uid, settings.runtime.gid)
    failed_cst = [r for r in run_cst(ref, config) if not r.passed]
    assert [r.name for r in failed_cst] == ["Command Test: runs as the runtime user",
                                            "Metadata Test"]  # fmt: skip
    assert judge(ref, "terminal-sim:slim", "user.config").outcome("user.config").status == "failed"
