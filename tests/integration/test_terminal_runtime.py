"""The fixture-profile terminal image at run time: it stays up, supervises, and its bridge runs
under Wine with the real MetaTrader5 package, reachable only from its own network namespace.

One terminal container is shared by the tests in file order (the 60-second check comes after
the others, so it waits only for what is left of the minute); the crash-loop and compose tests
start their own. Everything started here is removed at the end.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mt5bridge import constants as C
from waiting import wait_for

from mt5forge.pairing import run_pair
from mt5forge.tools.host import ensure_programs
from mt5forge.tools.run import call

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
LABEL = {"org.mt5forge.test": "terminal-runtime"}
BRIDGE_PORT = 18812
STATE = "/tmp/mt5forge"
# The real package's IPC failures (MetaTrader5's RES_E_INTERNAL_FAIL*): what it answers when
# no terminal speaks its protocol, as on the fixture profile.
IPC_RANGE = range(C.RES_E_INTERNAL_FAIL_TIMEOUT, C.RES_E_INTERNAL_FAIL + 1)
PROBE = (
    "import socket,sys\n"
    "s=socket.socket(); s.settimeout(3)\n"
    "try:\n    s.connect((sys.argv[1], int(sys.argv[2]))); print('CONNECTED')\n"
    "except OSError as e:\n    print('REFUSED', type(e).__name__)\n"
)
ASK = (
    "import json, mt5bridge.client as mt5, mt5bridge.remote as remote\n"
    "ok = mt5.initialize()\n"
    "err = mt5.last_error()\n"
    "print(json.dumps({'initialize': ok, 'last_error': list(err), 'status': remote.status()}))\n"
)


def logs(c: Any) -> str:
    return str(c.logs().decode(errors="replace"))


def bridge_listening(c: Any) -> bool:
    c.reload()
    assert c.status == "running", logs(c)[-3000:]
    return "mt5bridge listening on 127.0.0.1:" in logs(c)


def state_of(c: Any, name: str) -> dict[str, str]:
    code, out = c.exec_run(["cat", f"{STATE}/{name}.state"])
    assert code == 0, out
    return dict(w.split("=", 1) for w in out.decode().split() if "=" in w)


@pytest.fixture(scope="module")
def images(built: Any) -> dict[str, str]:
    """The fixture-profile images, built once per session (tests/conftest.py)."""
    prefix = built.settings.images.prefix
    return {
        "terminal": built.first["terminal:slim"].image_id,
        "bot": built.first["bot:slim"].image_id,
        "prefix": prefix,
    }


@pytest.fixture(scope="module")
def terminal(docker_client: Any, images: dict[str, str]) -> Iterator[Any]:
    c = docker_client.containers.run(images["terminal"], detach=True, labels=LABEL)
    try:
        c.started_at = time.monotonic()  # type: ignore[attr-defined]
        wait_for("the bridge under Wine", lambda: bridge_listening(c), 120)
        yield c
    finally:
        c.remove(force=True)


def run_beside(client: Any, image: str, code: str, *args: str, **kw: Any) -> str:
    out = client.containers.run(
        image, ["python3", "-c", code, *args], entrypoint=[], remove=True, labels=LABEL, **kw
    )
    return str(out.decode())


def test_run_pair_returns_the_packages_answer(built: Any) -> None:
    """mt5forge.pairing.run_pair, as `invoke demo` uses it, with the fixture terminal: the
    reference bot's refused login carries the package's error, and the bridge's status agrees."""
    result = run_pair(built.settings, terminal="terminal", terminal_variant="slim", timeout=120)
    assert result.backend == "metatrader5" and result.exit_code == 0
    assert result.last_error is not None and result.last_error[0] in IPC_RANGE
    assert result.status is not None
    assert result.status["last_error"] == list(result.last_error)
    assert result.reports == ()


def test_image_is_the_fixture_profile(docker_client: Any, images: dict[str, str]) -> None:
    """What follows is the fixture terminal's answer and must never pass for the real one."""
    labels = docker_client.images.get(images["terminal"]).labels
    assert labels["org.mt5forge.profile"] == "fixture"


def test_bridge_runs_under_wine_python(terminal: Any) -> None:
    _code, out = terminal.exec_run(["ps", "-eo", "pid,args"])
    rows = out.decode().splitlines()
    python = [r for r in rows if "python.exe" in r and "mt5bridge.server" in r]
    assert python, out.decode()
    assert "--backend metatrader5" in python[0]
    assert [r for r in rows if "terminal64.exe" in r], out.decode()
    assert "backend metatrader5" in logs(terminal)


def test_paired_bot_gets_the_real_packages_answer(
    terminal: Any, docker_client: Any, images: dict[str, str]
) -> None:
    out = run_beside(docker_client, images["bot"], ASK, network_mode=f"container:{terminal.id}")
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["initialize"] is False
    code, message = answer["last_error"]
    assert code in IPC_RANGE, answer
    assert message, answer
    status = answer["status"]
    assert status["backend"] == "metatrader5"
    assert status["package"] and status["runtime"]["wine"]
    assert status["runtime"]["python"].startswith("3.12.")
    assert status["runtime"]["platform"] == "win32"
    assert status["terminal"]["state"] == "up" and status["terminal"]["source"] == "supervisor"
    assert status["connected"] is False
    # The same error, read again through status: the bridge passes on the package's answer.
    assert status["last_error"] == [code, message]


def test_health_check_prints_the_status(terminal: Any) -> None:
    code, out = terminal.exec_run(["/usr/local/bin/mt5-healthcheck"])
    text = out.decode()
    assert code == 0, text
    assert "backend metatrader5" in text and "terminal up" in text and "wine" in text


def test_bridge_unreachable_from_host_and_third_container(
    terminal: Any, docker_client: Any, images: dict[str, str]
) -> None:
    terminal.reload()
    ip = terminal.attrs["NetworkSettings"]["IPAddress"]
    assert ip
    with socket.socket() as s:
        s.settimeout(3)
        assert s.connect_ex((ip, BRIDGE_PORT)) != 0, "the host reached the bridge"
    other = run_beside(docker_client, images["bot"], PROBE, ip, str(BRIDGE_PORT))
    assert other.startswith("REFUSED"), other
    # The probe itself works: from inside the namespace it connects.
    inside = run_beside(
        docker_client, images["bot"], PROBE, "127.0.0.1", str(BRIDGE_PORT),
        network_mode=f"container:{terminal.id}",
    )  # fmt: skip
    assert inside.startswith("CONNECTED"), inside


def test_killed_terminal_comes_back_and_the_restart_is_logged(terminal: Any) -> None:
    before = state_of(terminal, "terminal")
    assert before["state"] == "up"
    code, out = terminal.exec_run(["kill", before["pid"]])
    assert code == 0, out
    wait_for(
        "the terminal to come back",
        lambda: (
            state_of(terminal, "terminal").get("state") == "up"
            and state_of(terminal, "terminal")["pid"] != before["pid"]
        ),
        30,
    )
    text = logs(terminal)
    assert re.search(r"event=exit process=terminal code=\d+", text), text[-2000:]
    assert re.search(r"event=restart process=terminal code=\d+ attempt=1 delay=1s", text)
    after = state_of(terminal, "terminal")
    _code, ps = terminal.exec_run(["ps", "-o", "args=", "-p", after["pid"]])
    assert "terminal64.exe" in ps.decode()
    assert after["restarts"] == "1"


def test_container_still_running_after_60_s(terminal: Any) -> None:
    left = 60 - (time.monotonic() - terminal.started_at)
    if left > 0:
        time.sleep(left)
    terminal.reload()
    assert terminal.status == "running", logs(terminal)[-2000:]
    code, out = terminal.exec_run(["/usr/local/bin/mt5-healthcheck"])
    assert code == 0, out.decode()


def test_sigterm_stops_all_in_reverse_order_and_exits_0(terminal: Any) -> None:
    terminal.stop(timeout=30)
    terminal.reload()
    text = logs(terminal)
    assert terminal.attrs["State"]["ExitCode"] == 0, text[-2000:]
    assert "event=stopping code=0" in text and "event=stopped code=0" in text


def test_terminal_that_always_dies_ends_unhealthy_not_in_a_loop(
    docker_client: Any, images: dict[str, str]
) -> None:
    c = docker_client.containers.run(
        images["terminal"], detach=True, labels=LABEL,
        environment={
            # Wine cannot load it: the exit a broken install gives (c0000135 in the issue).
            "MT5_TERMINAL": "C:\\mt5forge-test\\missing.exe",
            "MT5_RESTART_MAX": "2", "MT5_RESTART_WINDOW": "600", "MT5_BACKOFF_MAX": "2",
        },
        healthcheck={"test": ["CMD", "/usr/local/bin/mt5-healthcheck"], "interval": 1_000_000_000,
                     "timeout": 10_000_000_000, "retries": 1,
                     "start_period": 1_000_000},  # 0 would inherit the image's 2 minutes
    )  # fmt: skip
    try:

        def health() -> str:
            c.reload()
            return str(c.attrs["State"]["Health"]["Status"])

        wait_for("the supervisor to give up", lambda: "event=give-up" in logs(c), 90)
        wait_for("Docker to see it unhealthy", lambda: health() == "unhealthy", 30)
        given_up = logs(c)
        time.sleep(5)  # a loop would have started it again by now
        text = logs(c)
        assert text.count("event=start process=terminal") == given_up.count(
            "event=start process=terminal"
        )
        assert text.count("event=start process=terminal") == 3, text  # first + 2 restarts
        delays = re.findall(
            r"event=restart process=terminal code=\d+ attempt=\d delay=(\d+)s", text
        )
        assert delays == ["1", "2"], text
        assert "event=give-up process=terminal" in text
        c.reload()
        assert c.status == "running"
        last = c.attrs["State"]["Health"]["Log"][-1]
        assert last["ExitCode"] == 1
        assert "unhealthy: terminal exited 3 times within 600s" in last["Output"], last
        assert state_of(c, "terminal")["state"] == "gave-up"
    finally:
        c.remove(force=True)


# --- the README's compose path ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("compose_file", ["docker-compose.yml", "docker-compose.secure.yml"])
def test_compose_brings_the_pair_up(
    compose_file: str, images: dict[str, str], docker_client: Any
) -> None:
    """`docker-compose -p NAME -f compose/FILE up -d` with secret files, as the README says:
    the terminal turns healthy (so compose starts the bot) and the bot keeps running."""
    ensure_programs(["docker-compose"])
    project = f"mt5forgetest{os.getpid()}{compose_file.count('.')}"
    with tempfile.TemporaryDirectory(prefix="compose-secrets-") as tmp:
        secrets = Path(tmp)
        secrets.chmod(0o755)
        for name, value in {
            "mt5_login": "12345678", "mt5_password": "compose-test-pw",
            "mt5_server": "mt5forge-Demo", "vnc_password": "vnc-test-pw",
        }.items():  # fmt: skip
            (secrets / name).write_text(value, encoding="utf-8")
            (secrets / name).chmod(0o444)  # the containers' UID is not ours
        (secrets / "export").mkdir()  # ./export: the log-export service writes it, as UID 1000
        (secrets / "export").chmod(0o777)
        env = {
            "MT5_SECRETS_DIR": str(secrets),
            "MT5_EXPORT_DIR": str(secrets / "export"),
            "MT5FORGE_PREFIX": images["prefix"],
            "MT5_GUI_PORT": str(free_port()),
        }
        compose = ["docker-compose", "-p", project, "-f", str(REPO / "compose" / compose_file)]
        try:
            call(*compose, "up", "-d", env=env, timeout=300)
            terminal = docker_client.containers.get(f"{project}_terminal_1")
            bot = docker_client.containers.get(f"{project}_bot_1")
            terminal.reload()
            assert terminal.attrs["State"]["Health"]["Status"] == "healthy"
            time.sleep(3)  # the bot's first attempts: it must still be running after them
            bot.reload()
            assert bot.status == "running", bot.logs().decode()[-2000:]
            assert "compose-test-pw" not in bot.logs().decode()
            assert "compose-test-pw" not in terminal.logs().decode()
        finally:
            call(*compose, "down", "-v", "--timeout", "30", env=env, timeout=300, check=False)
