"""A bridge server with the simulator backend, in the test's own process, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator

from mt5bridge.backends import simulator_backend
from mt5bridge.server import BridgeServer, ServerOptions
from mt5bridge.simulator import SimulatorConfig

#: A weekday noon (UTC): forex, metals and the index trade then, whatever day the tests run.
WEDNESDAY_NOON = dt.datetime(2024, 1, 17, 12, 0, tzinfo=dt.UTC).timestamp()


@contextlib.contextmanager
def serve_simulator_at(start: float, *, login: int, password: str, server: str) -> Iterator[int]:
    """A bridge server (over TCP, sessions and all) whose simulator starts at `start` (Unix
    seconds) and runs on at wall-clock speed; yields its port and stops it afterwards."""
    config = SimulatorConfig(login=login, password=password, server=server, time_origin=start)
    bridge = BridgeServer(simulator_backend(config), ServerOptions(host="127.0.0.1", port=0))
    thread = threading.Thread(target=bridge.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield bridge.port
    finally:
        bridge.shutdown()
        bridge.server_close()
        thread.join(timeout=10)
