"""The reference bot as a process against a simulator bridge in another process: a server
process on the wall clock, or, where the bot trades, a server in this process whose simulator
starts at a fixed time (forex does not trade at weekends, so the wall clock would decide)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from simserver import WEDNESDAY_NOON, serve_simulator_at

pytestmark = pytest.mark.integration

LOGIN, PASSWORD, SERVER = "51234567", "Zq9!secret-pw", "Sim-Demo"
SATURDAY_NOON = dt.datetime(2024, 1, 20, 12, 0, tzinfo=dt.UTC).timestamp()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MT5_", "MT5BOT_"))}
    env.update({"MT5_LOGIN": LOGIN, "MT5_PASSWORD": PASSWORD, "MT5_SERVER": SERVER, **extra})
    return env


@pytest.fixture
def bridge_port() -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mt5bridge.server", "--backend", "simulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("mt5bridge listening on"), line
    yield int(line.split()[3].rsplit(":", 1)[1])
    proc.terminate()
    proc.wait(timeout=10)
    proc.stdout.close()


def _serve_at(start: float) -> Iterator[int]:
    """A bridge server in this process on 127.0.0.1 whose simulator starts at `start`."""
    with serve_simulator_at(start, login=int(LOGIN), password=PASSWORD, server=SERVER) as port:
        yield port


@pytest.fixture
def wednesday_port() -> Iterator[int]:
    yield from _serve_at(WEDNESDAY_NOON)


@pytest.fixture
def saturday_port() -> Iterator[int]:
    yield from _serve_at(SATURDAY_NOON)


def _bot(tmp_path: Path, port: int, **extra: str) -> subprocess.CompletedProcess[str]:
    env = _env(
        MT5_BRIDGE_PORT=str(port),
        MT5BOT_STATE_DIR=str(tmp_path / "meta"),
        MT5BOT_LOG_DIR=str(tmp_path / "logs"),
        MT5BOT_INTERVAL="0.1",
        MT5BOT_ITERATIONS="3",
        MT5BOT_LOG_LEVEL="DEBUG",
        **extra,
    )
    return subprocess.run(
        [sys.executable, "-m", "mt5bot.bot"], capture_output=True, text=True, env=env, timeout=60
    )


def test_bot_logs_in_reports_and_trades_once_without_leaking(
    tmp_path: Path, wednesday_port: int
) -> None:
    result = _bot(tmp_path, wednesday_port, MT5BOT_DEMO_ORDER="true")
    assert result.returncode == 0, result.stderr
    assert "logged in to account *****567 on Sim-Demo" in result.stderr
    assert result.stderr.count("EURUSD bid=") == 3
    assert "demo order filled" in result.stderr and "closed at" in result.stderr
    written = (tmp_path / "logs" / "mt5bot.jsonl").read_text()
    assert "initialize(login=*****567, server=Sim-Demo)" in written  # DEBUG lines were written
    for text in (
        result.stdout,
        result.stderr,
        written,
        (tmp_path / "meta" / "whereami.txt").read_text(),
    ):
        assert PASSWORD not in text and LOGIN not in text
    health = subprocess.run(
        [sys.executable, "-m", "mt5bot.health", "--state-dir", str(tmp_path / "meta")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert health.returncode == 0 and health.stdout.startswith("healthy")


def test_on_a_saturday_the_demo_order_is_refused_and_the_bot_reports_on(
    tmp_path: Path, saturday_port: int
) -> None:
    result = _bot(tmp_path, saturday_port, MT5BOT_DEMO_ORDER="true")
    assert result.returncode == 0, result.stderr
    assert "demo order refused: Market closed" in result.stderr
    assert "demo order filled" not in result.stderr
    assert result.stderr.count("EURUSD bid=") == 3  # Friday's last prices, every cycle
    health = subprocess.run(
        [sys.executable, "-m", "mt5bot.health", "--state-dir", str(tmp_path / "meta")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert health.returncode == 0 and health.stdout.startswith("healthy")


def test_wrong_password_exits_with_the_auth_code(tmp_path: Path, bridge_port: int) -> None:
    result = _bot(tmp_path, bridge_port, MT5_PASSWORD="wrong")
    assert result.returncode == 3
    assert "refused the credentials" in result.stderr and "wrong" not in result.stderr


def test_missing_settings_exit_2_naming_them(tmp_path: Path) -> None:
    env = {k: v for k, v in _env().items() if k != "MT5_SERVER"}
    result = subprocess.run(
        [sys.executable, "-m", "mt5bot.bot"], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 2 and "MT5_SERVER is missing" in result.stderr
