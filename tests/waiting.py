"""Polling with a deadline, for tests that wait on a real container or process."""

from __future__ import annotations

import time
from typing import Any


def wait_for(what: str, check: Any, timeout: float, every: float = 0.5) -> Any:
    """Call ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def wait_for_bridge(container: Any, what: str, timeout: float = 300) -> None:
    """Wait until the container's bridge says it listens; one that stops first fails at once,
    with its log."""

    def listening() -> bool:
        logs = container.logs()
        if b"mt5bridge listening on" in logs:
            return True
        container.reload()
        assert container.status in ("created", "running"), (
            f"{what} {container.status}: {logs.decode()[-2000:]}"
        )
        return False

    wait_for(f"{what}'s bridge to listen", listening, timeout, every=0.3)
