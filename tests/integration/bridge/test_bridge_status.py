"""The bridge's `status` call and the health probe, against a real server process (simulator)
and the image's own health check script."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import SIM_LOGIN, SIM_PASSWORD, SIM_SERVER, RunningServer, sim_env
from mt5bridge.handshake import MAGIC, RPYC_VERSION
from mt5bridge.remote import Bridge

REPO = Path(__file__).resolve().parents[3]
HEALTHCHECK = REPO / "build" / "common" / "mt5-healthcheck"


def healthcheck(port: int, state_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5_")}
    env.update(MT5_BRIDGE_PORT=str(port), MT5_STATE_DIR=str(state_dir))
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, text=True, timeout=30
    )


def test_status_reports_the_backend_and_its_own_last_error(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server()
    bridge = Bridge("127.0.0.1", server.port)
    try:
        before = bridge.status()
        assert before["backend"] == "simulator"
        assert before["connected"] is False
        assert before["terminal"]["state"] == "simulated"
        assert before["runtime"]["python"] == ".".join(map(str, sys.version_info[:3]))
        assert bridge.initialize(login=SIM_LOGIN, password="wrong", server=SIM_SERVER) is False
        refused = bridge.status()
        # The backend's last_error, as the bot would read it, not a value the bridge made up.
        assert refused["last_error"] == list(bridge.last_error())
        assert refused["connected"] is False
        assert bridge.initialize(login=SIM_LOGIN, password=SIM_PASSWORD, server=SIM_SERVER)
        assert bridge.status()["connected"] is True
        bridge.shutdown()
        assert bridge.status()["connected"] is False
    finally:
        bridge.close()


def test_terminal_state_comes_from_the_supervisor_file(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    """The simulator has no terminal; the reader the metatrader5 backend uses is checked here."""
    from mt5bridge.status import read_terminal_state

    state = tmp_path / "terminal.state"
    assert read_terminal_state(str(state))["state"] == "unknown"
    state.write_text("state=up pid=42 since=1 restarts=2 evil=$(x) updated=3\n")
    got = read_terminal_state(str(state))
    assert got == {"state": "up", "pid": 42, "since": 1, "restarts": 2, "updated": 3,
                   "source": "supervisor"}  # fmt: skip


def test_health_probe_prints_the_status_and_opens_no_session(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = start_server("--log-level", "DEBUG")
    done = healthcheck(server.port, tmp_path / "state")
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()[:2]
    assert first.startswith("healthy: ") and "backend simulator" in first
    assert "connected no" in first
    assert json.loads(second)["backend"] == "simulator"
    assert server.wait_for_log("status probe from")
    # A probe never becomes an RPyC session (the server logs "client ... connected" for those).
    assert " connected" not in server.log_text(), server.log_text()


def test_health_is_unhealthy_with_the_supervisors_reason(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = start_server()
    state = tmp_path / "state"
    state.mkdir()
    (state / "gave-up").write_text("terminal exited 6 times within 600s\n")
    done = healthcheck(server.port, state)
    assert done.returncode == 1
    assert "unhealthy: terminal exited 6 times within 600s" in done.stderr


def test_health_is_unhealthy_when_no_bridge_answers(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = healthcheck(port, tmp_path)
    assert done.returncode == 1 and "unhealthy: bridge on 127.0.0.1" in done.stderr


def test_status_probe_still_needs_a_matching_hello(
    start_server: Callable[..., RunningServer],
) -> None:
    """A probe from another RPyC major is refused like any hello, and learns no status."""
    server = start_server(env=sim_env())
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        body = json.dumps({"protocol": 1, "rpyc": "5.3.1", "status": True}).encode()
        sock.sendall(MAGIC + struct.pack(">H", len(body)) + body)
        assert sock.recv(4) == MAGIC
        (length,) = struct.unpack(">H", sock.recv(2))
        reply = json.loads(sock.recv(length))
    assert reply["ok"] is False and "status" not in reply
    assert RPYC_VERSION in reply["error"]
