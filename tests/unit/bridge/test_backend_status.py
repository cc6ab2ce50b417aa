"""The status a backend reports: the simulator backend, in this process."""

from __future__ import annotations

import time

from mt5bridge.backends import simulator_backend
from mt5bridge.codec import encode
from mt5bridge.simulator import SimulatorConfig


def backend():  # type: ignore[no-untyped-def]
    return simulator_backend(SimulatorConfig(login=1001, password="pw", server="Sim"))


def test_status_is_plain_data_with_the_backends_own_error() -> None:
    b = backend()
    assert b.call("initialize", (), {"login": 1001, "password": "bad", "server": "Sim"}) is False
    status = b.status()
    assert status["last_error"] == list(b.call("last_error", (), {}))
    assert status["connected"] is False and status["backend"] == "simulator"
    encode(status)  # crosses the bridge as plain data, or raises


def test_status_does_not_wait_for_a_long_call() -> None:
    """A call holding the backend (a real initialize() can take a minute) must not stall the
    health check: status answers within its wait and says the error was not read."""
    b = backend()
    with b._lock:  # what a running call holds
        started = time.monotonic()
        status = b.status()
        took = time.monotonic() - started
    assert "busy" in status["last_error"]
    assert took < 10
    assert isinstance(b.status()["last_error"], list)
