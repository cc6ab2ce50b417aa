"""Benchmark (not a test): what ``invoke watch`` costs and how soon an alert arrives.

Run: ``.venv/bin/python benchmarks/bench_watch.py [--crashes N] [--idle K]``.

1. Rules: events and stats samples per second through :class:`mt5forge.watch.Rules` (50
   containers, crash/restart cycles and samples mixed; no engine).
2. Alert text: one alert's 20 log lines redacted with three run-time secrets and an account.
3. Latency: from a real container's death (its ``die`` event's time) to the alert's arrival at a
   webhook on 127.0.0.1 through Apprise's ``json://`` path, for N crashes.
4. The watch's own cost while it follows K idle containers (one stats stream each): its CPU
   time per second of wall time and its resident memory: what the systemd unit's
   ``CPUQuota=25%`` and ``MemoryMax=256M`` must cover.

Prints one table and writes ``<run_dir>/bench/watch.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import docker
from mt5bridge.redact import Redactor
from rich.console import Console
from rich.table import Table

from mt5forge import config
from mt5forge.alerts import Alert, deliver, parse_targets, redact_lines
from mt5forge.monitor import COMPOSE_PROJECT, make_watcher
from mt5forge.watch import Event, Finding, RestartRule, Rules, Sample, Thresholds

IMAGE = "mt5forge/base:trixie"


def bench_rules(n: int = 200_000) -> float:
    rules = Rules(Thresholds(restart=RestartRule(max=5, window=600)))
    items: list[Event | Sample] = []
    for i in range(n // 4):
        c = f"c{i % 50}"
        t = i * 0.01
        items += [
            Event(time=t, container=c, name=c, action="die", exit_code=3, restarts=True),
            Event(time=t, container=c, name=c, action="start"),
            Sample(
                time=t, container=c, name=c, cpu_percent=95, memory_percent=40, memory_bytes=1 << 20
            ),
            Sample(
                time=t, container=c, name=c, cpu_percent=5, memory_percent=95, memory_bytes=1 << 20
            ),
        ]
    start = time.perf_counter()
    for item in items:
        rules.feed(item)
    return len(items) / (time.perf_counter() - start)


def bench_redaction(rounds: int = 300) -> float:
    redactor = Redactor(["pw-" + secrets.token_hex(8), "tok-" + secrets.token_hex(8), "Broker"],
                        [70412345])  # fmt: skip
    lines = [f"2026-12-02 10:00:{i:02d} bridge: order {i} filled at 1.0{i} for 70412345"
             for i in range(20)]  # fmt: skip
    start = time.perf_counter()
    for _ in range(rounds):
        redact_lines(lines, redactor)
    return (time.perf_counter() - start) / rounds * 1e3


class Receiver:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.arrived.setdefault(body["title"], time.time())
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def thread_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crashes", type=int, default=5)
    parser.add_argument("--idle", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    settings = config.load(Path(__file__).resolve().parents[1])
    console = Console()
    client = docker.from_env()
    rows: dict[str, str] = {}
    rows["rules (events+samples/s)"] = f"{bench_rules():,.0f}"
    rows["redaction of 20 log lines (ms)"] = f"{bench_redaction():.2f}"

    receiver = Receiver()
    targets = parse_targets([f"json://127.0.0.1:{receiver.server.server_address[1]}/"], {})
    pair = f"benchwatch{secrets.token_hex(3)}"
    died: dict[str, float] = {}

    def on_alert(alert: Alert) -> None:
        deliver(alert, targets, Redactor())

    watcher = make_watcher(settings, client, pair=pair, on_alert=on_alert)
    original = watcher.rules.feed

    def feed(item: Event | Sample, restart: RestartRule | None = None) -> list[Finding]:
        if isinstance(item, Event) and item.action == "die":
            died[item.name] = item.time
        return original(item, restart)

    watcher.rules.feed = feed  # type: ignore[method-assign]
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    watcher.ready.wait(30)
    labels = {COMPOSE_PROJECT: pair}
    try:
        latencies = []
        for i in range(args.crashes):
            name = f"{pair}-crash{i}"
            client.containers.run(IMAGE, ["sh", "-c", "echo bye; sleep 0.5; exit 3"], name=name,
                                  labels=labels, detach=True)  # fmt: skip
            title = f"mt5forge: {pair}/{name}: crash"
            deadline = time.monotonic() + 30
            while title not in receiver.arrived and time.monotonic() < deadline:
                time.sleep(0.02)
            latencies.append((receiver.arrived[title] - died[name]) * 1e3)
        rows[f"die -> webhook (ms, median of {args.crashes}; min-max)"] = (
            f"{statistics.median(latencies):.0f} ({min(latencies):.0f}-{max(latencies):.0f})"
        )
        for i in range(args.idle):
            client.containers.run(IMAGE, ["sleep", "600"], name=f"{pair}-idle{i}", labels=labels,
                                  detach=True)  # fmt: skip
        time.sleep(5)  # the stats streams open
        cpu0, wall0 = thread_cpu(), time.monotonic()
        time.sleep(args.seconds)
        share = (thread_cpu() - cpu0) / (time.monotonic() - wall0) * 100
        rows[f"watch CPU following {args.idle} idle containers (% of one CPU)"] = f"{share:.1f}"
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows["watch peak resident memory (MiB, this benchmark's process)"] = f"{rss:.0f}"
    finally:
        for c in client.containers.list(all=True, filters={"label": f"{COMPOSE_PROJECT}={pair}"}):
            c.remove(force=True)
        watcher.stop.set()
        thread.join(10)
        receiver.server.shutdown()

    table = Table(title="invoke watch")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for k, v in rows.items():
        table.add_row(k, v)
    console.print(table)
    out = settings.run_dir / "bench" / "watch.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    console.print(f"Numbers: {out}")


if __name__ == "__main__":
    main()
