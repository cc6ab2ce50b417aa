"""Bridge servers in their own processes on 127.0.0.1, on ports the OS picks; stopped after.

Those run the simulator on the wall clock, where forex, metals and the index CFD do not trade
on Saturday and Sunday (UTC): a test that trades them uses `serve_simulator_at` instead, a
bridge server in this process whose simulator starts at a fixed time."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import simserver

SIM_LOGIN = 51234567
SIM_PASSWORD = "s3cret-Pass!word"
SIM_SERVER = "Sim-Demo"
#: Simulated start times: forex trades on a Wednesday noon and not on a Saturday noon (UTC).
WEDNESDAY_NOON = simserver.WEDNESDAY_NOON
SATURDAY_NOON = dt.datetime(2024, 1, 20, 12, 0, tzinfo=dt.UTC).timestamp()


@dataclass(frozen=True)
class RunningServer:
    port: int
    process: subprocess.Popen[str]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8")

    def wait_for_log(self, text: str, timeout: float = 5.0) -> bool:
        """Whether `text` shows up in the server's log within `timeout` (it logs a refusal
        just after acting on it, so the client can be told first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text():
                return True
            time.sleep(0.05)
        return text in self.log_text()


def sim_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5_")}
    env.update(MT5_LOGIN=str(SIM_LOGIN), MT5_PASSWORD=SIM_PASSWORD, MT5_SERVER=SIM_SERVER, **extra)
    return env


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start `mt5bridge-server --backend simulator --port 0` with extra arguments."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> RunningServer:
        log = tmp_path / f"server-{len(started)}.log"
        with log.open("w") as log_handle:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mt5bridge.server",
                    "--backend",
                    "simulator",
                    "--port",
                    "0",
                    *args,
                ],
                stdout=subprocess.PIPE,
                stderr=log_handle,
                text=True,
                env=env or sim_env(),
            )
        started.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("mt5bridge listening on "):
            proc.wait(timeout=10)
            raise RuntimeError(f"server did not start: {line!r} {log.read_text()}")
        port = int(line.split()[3].rsplit(":", 1)[1])
        return RunningServer(port=port, process=proc, log=log)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def run_server_expecting_exit(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run a server that must refuse to start; return its exit code and stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "mt5bridge.server", "--backend", "simulator", "--port", "0", *args],
        capture_output=True,
        text=True,
        env=env or sim_env(),
        timeout=30,
    )
    return proc.returncode, proc.stderr


@contextlib.contextmanager
def serve_simulator_at(start: float) -> Iterator[int]:
    """A bridge server in this process on 127.0.0.1 (over TCP, sessions and all) whose
    simulator starts at `start` (Unix seconds) and runs on at wall-clock speed; yields its port.
    """
    with simserver.serve_simulator_at(
        start, login=SIM_LOGIN, password=SIM_PASSWORD, server=SIM_SERVER
    ) as port:
        yield port
