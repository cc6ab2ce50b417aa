"""What structured logging and the audit trail cost: records formatted per second, audit
records appended per second, a whole-file export pass, and the bridge's call latency with the
log files and audit trail on and off.

- `jsonlog.line`: one record of 4 fields, redacted with a password and an account known
  (the bridge's and bot's case), and with nothing known;
- `AuditLog.record`: one O_APPEND write per record, with rotation checks, to a temp directory;
- `Exporter.pass_once`: a 5 MB source file (its default rotation size) exported whole, then
  100 lines appended to it (the steady state: only those are read and redacted);
- a simulator bridge process on 127.0.0.1, MT5_LOG_DIR unset and set: `symbol_info_tick`
  latency and a connect + initialize + close cycle (which writes 3 audit records).
Bounded loops, loopback only. Not a test: it prints a table.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mt5bridge import jsonlog, logexport
from mt5bridge.audit import AuditLog
from mt5bridge.redact import Redactor
from mt5bridge.remote import Bridge

LOGIN, PASSWORD, SERVER = 51234567, "bench-only-Pass", "Sim-Demo"
FIELDS = {"peer": "127.0.0.1:50123", "outcome": "ok", "message": "client connected", "n": 7}


def rate(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def p50_ms(fn: Callable[[], Any], n: int) -> float:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def bridge_row(log_dir: str | None) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5_")}
    env.update(MT5_LOGIN=str(LOGIN), MT5_PASSWORD=PASSWORD, MT5_SERVER=SERVER)
    if log_dir:
        env["MT5_LOG_DIR"] = log_dir
    proc = subprocess.Popen(
        [sys.executable, "-m", "mt5bridge.server", "--backend", "simulator", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[3].rsplit(":", 1)[1])
        bridge = Bridge("127.0.0.1", port)
        bridge.initialize(login=LOGIN, password=PASSWORD, server=SERVER)
        tick = p50_ms(lambda: bridge.symbol_info_tick("EURUSD"), 2000)
        bridge.close()

        def cycle() -> None:
            b = Bridge("127.0.0.1", port)
            b.initialize(login=LOGIN, password=PASSWORD, server=SERVER)
            b.close()

        return tick, p50_ms(cycle, 100)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> None:
    known = Redactor([PASSWORD], [LOGIN])
    nothing = Redactor()
    rows: list[tuple[str, str]] = []
    n = 20_000
    for label, redactor in (("secrets known", known), ("nothing known", nothing)):

        def one(r: Redactor = redactor) -> str:
            return jsonlog.line("bridge", "INFO", "connect", FIELDS, redact=r)

        rows.append((f"jsonlog.line, {label}", f"{rate(one, n):,.0f} records/s"))
    with tempfile.TemporaryDirectory() as tmp:
        trail = AuditLog(Path(tmp) / "audit.jsonl", known)
        r = rate(lambda: trail.record("login", peer="127.0.0.1:5", outcome="ok", account=LOGIN), n)
        trail.close()
        rows.append(("AuditLog.record (O_APPEND write)", f"{r:,.0f} records/s"))
        src = Path(tmp) / "src"
        src.mkdir()
        line = jsonlog.line("bot", "INFO", "tick", FIELDS, redact=nothing)
        (src / "mt5bot.jsonl").write_text((line + "\n") * (jsonlog.DEFAULT_MAX_BYTES // len(line)))
        exporter = logexport.Exporter([("bot", src)], Path(tmp) / "export", known)
        t = time.perf_counter()
        exporter.pass_once()
        rows.append(("export pass, one 5 MB file, first", f"{time.perf_counter() - t:.2f} s"))
        with (src / "mt5bot.jsonl").open("a") as f:
            f.write((line + "\n") * 100)
        t = time.perf_counter()
        exporter.pass_once()
        rows.append(("export pass, 100 lines more", f"{(time.perf_counter() - t) * 1000:.1f} ms"))
        off = bridge_row(None)
        on = bridge_row(str(Path(tmp) / "logs"))
    rows.append(("symbol_info_tick p50, logs off / on", f"{off[0]:.3f} / {on[0]:.3f} ms"))
    rows.append(("connect+initialize+close p50, off / on", f"{off[1]:.2f} / {on[1]:.2f} ms"))
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
