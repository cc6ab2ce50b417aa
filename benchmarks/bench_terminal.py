"""The terminal image at run time: `docker run` to a bridge that answers, and the bridge round
trip under Wine next to the Linux simulator's. Not a test: it prints a table.

- start: `docker run -d` of the fixture terminal (Xvfb, the stand-in terminal, the real Windows
  CPython under Wine with the real MetaTrader5 package) until the bridge logs that it listens,
  and until the image's own health check gets a status answer (`docker exec`, so that column
  includes an exec). Goal: 10 s or less. RUNS fresh containers each.
- round trip: a bot container in the terminal's network namespace (as compose pairs them)
  times `version()` and `last_error()` through mt5bridge.client, N calls each after a warm-up;
  the same script against `terminal-sim` (the bridge under Linux CPython, simulator backend).

Usage: python benchmarks/bench_terminal.py [--runs 3] [--calls 500] [--prefix mt5forge]
Needs the images built (`invoke build --fixture --image terminal,bot,terminal-sim --variant slim`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from mt5forge.tools import docker as dockertool

LABELS = {"org.mt5forge.bench": "terminal"}
SIM_ENV = {"MT5_LOGIN": "10000001", "MT5_PASSWORD": "bench-only-pw", "MT5_SERVER": "Sim"}

ROUND_TRIP = """
import json, sys, time, mt5bridge.remote as remote
n = int(sys.argv[1])
b = remote.Bridge("127.0.0.1", 18812)
out = {}
for name in ("version", "last_error"):
    fn = getattr(b, name)
    for _ in range(min(50, n)):
        fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    samples.sort()
    out[name] = [samples[len(samples) // 2] * 1000, samples[int(len(samples) * 0.99) - 1] * 1000]
out["version_value"] = str(b.version())
print(json.dumps(out))
"""


def wait_listening(c: Any, timeout: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if b"mt5bridge listening on" in c.logs():
            return time.monotonic()
        c.reload()
        if c.status != "running":
            raise SystemExit(f"{c.image.tags}: exited before its bridge listened:\n{c.logs()!r}")
        time.sleep(0.05)
    raise SystemExit(f"no bridge after {timeout:.0f} s")


def wait_healthy(c: Any, timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        code, _ = c.exec_run(["/usr/local/bin/mt5-healthcheck"])
        if code == 0:
            return time.monotonic()
        time.sleep(0.1)
    raise SystemExit(f"not healthy after {timeout:.0f} s")


def start_times(client: Any, image: str, runs: int) -> list[tuple[float, float]]:
    out = []
    for _ in range(runs):
        t0 = time.monotonic()
        c = client.containers.run(image, detach=True, labels=LABELS)
        try:
            listening = wait_listening(c) - t0
            healthy = wait_healthy(c) - t0
            out.append((listening, healthy))
        finally:
            c.remove(force=True)
    return out


def round_trip(client: Any, terminal: str, bot: str, calls: int, env: dict[str, str]) -> Any:
    c = client.containers.run(terminal, detach=True, labels=LABELS, environment=env)
    try:
        wait_listening(c)
        raw = client.containers.run(
            bot, ["python3", "-c", ROUND_TRIP, str(calls)], network_mode=f"container:{c.id}",
            remove=True, labels=LABELS,
        )  # fmt: skip
        return json.loads(raw.decode().strip().splitlines()[-1])
    finally:
        c.remove(force=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prefix", default="mt5forge")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--calls", type=int, default=500)
    args = p.parse_args()
    client = dockertool.connect()
    terminal = f"{args.prefix}/terminal:slim"
    sim = f"{args.prefix}/terminal-sim:slim"
    bot = f"{args.prefix}/bot:slim"
    labels = client.images.get(terminal).labels
    profile = labels.get("org.mt5forge.profile", "?")

    starts = start_times(client, terminal, args.runs)
    wine = round_trip(client, terminal, bot, args.calls, {})
    linux = round_trip(client, sim, bot, args.calls, SIM_ENV)

    listen = [s[0] for s in starts]
    healthy = [s[1] for s in starts]
    print(f"\nterminal image {terminal} (profile {profile}); {args.runs} fresh containers")
    print(f"{'docker run ->':<34}{'median s':>10}{'min s':>8}{'max s':>8}{'goal':>8}")
    for label, xs in (("bridge listening", listen), ("health check answered", healthy)):
        print(f"{label:<34}{statistics.median(xs):>10.2f}{min(xs):>8.2f}{max(xs):>8.2f}"
              f"{'<= 10':>8}")  # fmt: skip
    print(f"\nbridge round trip, {args.calls} calls each, from a bot in the namespace")
    print(f"{'backend':<44}{'call':<12}{'p50 ms':>8}{'p99 ms':>8}")
    for label, r in (
        ("metatrader5 (Windows CPython under Wine)", wine),
        ("simulator (Linux CPython, terminal-sim)", linux),
    ):
        for call in ("version", "last_error"):
            p50, p99 = r[call]
            print(f"{label:<44}{call:<12}{p50:>8.3f}{p99:>8.3f}")
    print(f"\nversion(): Wine {wine['version_value']}; simulator {linux['version_value']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
