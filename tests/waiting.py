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
