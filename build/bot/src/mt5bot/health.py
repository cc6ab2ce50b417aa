"""Health state the bot writes each cycle, and the `mt5bot-health` command HEALTHCHECK runs.

Healthy means: connected to the bridge, a successful call recently, and an error rate over the
recent calls below the threshold. The state file holds no secrets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_FILE = "health.json"


@dataclass(frozen=True, kw_only=True)
class HealthState:
    connected: bool
    last_ok: float | None
    calls: int
    errors: int
    error_rate: float
    updated: float


class HealthTracker:
    def __init__(self, path: Path, window: int = 50) -> None:
        self._path = path
        self._recent: deque[bool] = deque(maxlen=window)
        self._calls = 0
        self._errors = 0
        self._last_ok: float | None = None
        self.connected = False

    def record(self, ok: bool) -> None:
        self._calls += 1
        self._recent.append(ok)
        if ok:
            self._last_ok = time.time()
        else:
            self._errors += 1

    def state(self) -> HealthState:
        failed = sum(1 for ok in self._recent if not ok)
        rate = failed / len(self._recent) if self._recent else 0.0
        return HealthState(
            connected=self.connected,
            last_ok=self._last_ok,
            calls=self._calls,
            errors=self._errors,
            error_rate=round(rate, 4),
            updated=time.time(),
        )

    def write(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.state())), encoding="utf-8")
        os.replace(tmp, self._path)  # atomic: the health command never reads half a file


def judge(state: HealthState, *, now: float, max_age: float, max_error_rate: float) -> list[str]:
    """Why the bot is unhealthy (empty: healthy)."""
    problems = []
    if not state.connected:
        problems.append("not connected to the bridge")
    if state.last_ok is None:
        problems.append("no successful call yet")
    elif now - state.last_ok > max_age:
        problems.append(
            f"last successful call {now - state.last_ok:.0f}s ago (limit {max_age:.0f}s)"
        )
    if state.error_rate > max_error_rate:
        problems.append(f"error rate {state.error_rate:.0%} over the limit {max_error_rate:.0%}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mt5bot-health", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default=os.environ.get("MT5BOT_STATE_DIR", "/config/_meta"))
    parser.add_argument("--max-age", type=float, default=120.0, help="seconds since last success")
    parser.add_argument("--max-error-rate", type=float, default=0.5)
    args = parser.parse_args(argv)
    path = Path(args.state_dir) / STATE_FILE
    try:
        state = HealthState(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        print(f"unhealthy: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    problems = judge(
        state, now=time.time(), max_age=args.max_age, max_error_rate=args.max_error_rate
    )
    if problems:
        print("unhealthy: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"healthy: {state.calls} calls, error rate {state.error_rate:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
