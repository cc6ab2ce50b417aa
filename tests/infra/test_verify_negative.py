"""Images built with one defect each, FROM the project's images (tests/infra/negative/): verify
catches each and the failing check names the defect. Contexts are copied to a temporary
directory, where the test writes any secret the defect needs; images are removed at the end."""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import string
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mt5forge.stages.verify import context
from mt5forge.verify.checks import Failed, Subject, ports_not_published
from mt5forge.verify.compose import SECURE_FILE
from mt5forge.verify.cst import run_cst, write_config
from mt5forge.verify.expectations import expectation_for, load
from mt5forge.verify.live import Canary, Running
from mt5forge.verify.run import ImageVerdict, verify_image

pytestmark = [pytest.mark.infra, pytest.mark.slow]

NEGATIVE = Path(__file__).parent / "negative"
REPO = Path(__file__).resolve().parents[2]
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
    """judge(ref, as_, *checks, root=None): verify ``ref`` by the expectations of ``as_``
    (image:variant); ``root``: a tree whose compose/ verify reads instead of the project's."""

    def run(ref: str, as_: str, *checks: str, root: Path | None = None) -> ImageVerdict:
        settings = built.settings
        image, variant = as_.split(":")
        e = expectation_for(load(settings.root / "build"), image, variant)
        ctx = context(settings)
        if root is not None:
            ctx = dataclasses.replace(ctx, root=root)
        return verify_image(ctx, e, ref, canary=verify_canary, only=checks)

    return run


def compose_copy(root: Path, edit: Any = None, **extra: dict[str, Any]) -> Path:
    """The project's compose/ copied under ``root``; ``edit(data)`` changes the parsed secure
    file before it is written back; ``extra``: more compose files, by name, as data."""
    shutil.copytree(REPO / "compose", root / "compose")
    if edit is not None:
        secure = root / SECURE_FILE
        data = yaml.safe_load(secure.read_text(encoding="utf-8"))
        edit(data)
        secure.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    for name, data in extra.items():
        (root / "compose" / name).write_text(yaml.safe_dump(data), encoding="utf-8")
    return root


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
              "ports.listeners", "bridge.isolation")  # fmt: skip
    detail = failed(v, "bridge.tls")
    assert "listens off loopback (0.0.0.0:18812) without mutual TLS" in detail
    assert "undeclared listener 0.0.0.0:18812" in failed(v, "ports.listeners")
    # And so the host and a third container reach it: bridge.isolation names both, with the
    # address they reached.
    isolation = failed(v, "bridge.isolation")
    ip = isolation.rsplit(" ", 1)[-1].rsplit(":", 1)[0]
    assert isolation == (
        f"the host reaches the bridge at {ip}:18812; another container connects to {ip}:18812"
    ), isolation


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


def _drop(service: str, *keys: str) -> Any:
    def edit(data: dict[str, Any]) -> None:
        for key in keys:
            del data["services"][service][key]

    return edit


@pytest.mark.parametrize(
    ("keys", "found"),
    [
        (("cap_drop",), ["capabilities not all dropped (CapDrop None)"]),
        (("security_opt",), ["no-new-privileges not set (SecurityOpt None)",
                             "may gain privileges"]),
        (("read_only", "pids_limit"), ["root filesystem is writable (ReadonlyRootfs false)",
                                       "no PidsLimit limit"]),
    ],
)  # fmt: skip
def test_secure_compose_service_without_hardening_is_caught(
    judge: Any, built: Any, tmp_path: Path, keys: tuple[str, ...], found: list[str]
) -> None:
    """bot:secure as a secure compose file runs it that lost hardening: verify runs the image
    as the file says (it adds nothing), and the hardening check names what is missing."""
    root = compose_copy(tmp_path, _drop("bot", *keys))
    ref = f"{built.settings.images.prefix}/bot:secure"
    v = judge(ref, "bot:secure", "hardening", root=root)
    detail = failed(v, "hardening")
    for text in found:
        assert text in detail, detail
    # Control: the project's own compose file, the same image, passes.
    assert judge(ref, "bot:secure", "hardening").outcome("hardening").status == "passed"


def test_a_compose_file_publishing_the_bridge_port_is_caught(
    judge: Any, built: Any, tmp_path: Path
) -> None:
    debug = {
        "services": {
            "terminal": {
                "image": "mt5forge/terminal-sim:slim",
                "ports": ["127.0.0.1:3000:3000", "18812:18812"],
            }
        }
    }
    root = compose_copy(tmp_path, **{"docker-compose.debug.yml": debug})
    ref = f"{built.settings.images.prefix}/terminal-sim:slim"
    v = judge(ref, "terminal-sim:slim", "ports.not_published", root=root)
    assert failed(v, "ports.not_published") == (
        "a compose file publishes the bridge port 18812/tcp: "
        "docker-compose.debug.yml services.terminal.ports: '18812:18812'"
    )


def test_a_container_with_the_bridge_port_published_is_caught(
    built: Any, docker_client: Any
) -> None:
    """The check on a terminal-sim container run with its bridge port published on the host
    (on loopback, at a port the engine picks): it names the binding it found."""
    settings = built.settings
    e = expectation_for(load(settings.root / "build"), "terminal-sim", "slim")
    c = docker_client.containers.run(
        f"{settings.images.prefix}/terminal-sim:slim", detach=True,
        ports={"18812/tcp": ("127.0.0.1", None)}, labels={"org.mt5forge.test": "negative"},
        environment={"MT5_LOGIN": "10000001", "MT5_PASSWORD": "neg-test-pw", "MT5_SERVER": "S"},
    )  # fmt: skip
    try:
        c.reload()
        bound = c.attrs["NetworkSettings"]["Ports"]["18812/tcp"]
        assert bound, f"the engine bound nothing: {c.status} {c.logs()[-500:]!r}"
        running = Running(expectation=e, reference=c.image.id, target=c, partner=None,
                          helper=None, canary=Canary.make(), terminal_kind="simulator",
                          backend="simulator", started=time.monotonic())  # fmt: skip
        subject = Subject(expectation=e, reference=c.image.id, attrs=c.image.attrs, saved=None,
                          running=running, scanner=None, uid=settings.runtime.uid,
                          gid=settings.runtime.gid, root=settings.root, client=docker_client,
                          helper_image="")  # fmt: skip
        with pytest.raises(Failed) as err:
            ports_not_published(subject)
        where = ", ".join(f"{b['HostIp']}:{b['HostPort']}" for b in bound)
        assert where.startswith("127.0.0.1:") and not where.endswith(":")
        assert str(err.value) == (
            f"the bridge port 18812/tcp is published on the host by this run: {where}"
        )
    finally:
        c.remove(force=True)
