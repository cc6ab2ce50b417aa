"""Round-trip latency and throughput: our bridge against the mt5linux way, same simulator.

One simulator bridge server runs on 127.0.0.1 with classic mode on, so both paths reach the
same simulator in the same process:
- bridge:  mt5bridge.client, named calls, results as plain data (bars as one array);
- classic: RPyC classic as mt5linux 0.1.9 does it: `conn.eval("mt5.symbol_info_tick(...)")`
  returns a proxy whose fields are read over the wire (we read bid, ask and time, as a bot
  would), and rates go through `rpyc.classic.obtain` (pickle), as mt5linux does for bars.
Bounded loops; loopback only. Not a test: it prints a table.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import mt5bridge.client as mt5
import numpy as np
import rpyc

LOGIN, PASSWORD, SERVER = 51234567, "bench-only", "Sim-Demo"
N_TICK = 2000
N_BARS = 300


def measure(fn: Callable[[], Any], n: int) -> tuple[float, float, float]:
    for _ in range(min(50, n)):
        fn()
    samples = []
    start = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    samples.sort()
    p50 = statistics.median(samples) * 1000
    p99 = samples[int(len(samples) * 0.99) - 1] * 1000
    return p50, p99, n / total


def main() -> int:
    env = dict(os.environ, MT5_LOGIN=str(LOGIN), MT5_PASSWORD=PASSWORD, MT5_SERVER=SERVER)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mt5bridge.server",
            "--backend",
            "simulator",
            "--port",
            "0",
            "--classic",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[3].rsplit(":", 1)[1])
        bridge = mt5.Bridge("127.0.0.1", port)
        assert bridge.initialize(login=LOGIN, password=PASSWORD, server=SERVER)
        classic = rpyc.classic.connect("127.0.0.1", port)
        classic.execute("import MetaTrader5 as mt5")

        def bridge_tick() -> None:
            t = bridge.symbol_info_tick("EURUSD")
            _ = (t.bid, t.ask, t.time)

        def classic_tick() -> None:
            t = classic.eval("mt5.symbol_info_tick(*('EURUSD',),**{})")
            _ = (t.bid, t.ask, t.time)

        def bridge_bars() -> None:
            r = bridge.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M1, 0, 1000)
            assert isinstance(r, np.ndarray) and len(r) == 1000

        def classic_bars() -> None:
            code = f'mt5.copy_rates_from_pos("EURUSD", {mt5.TIMEFRAME_M1}, 0, 1000)'
            r = rpyc.classic.obtain(classic.eval(code))
            assert isinstance(r, np.ndarray) and len(r) == 1000

        rows = [
            ("symbol_info_tick", "mt5bridge", measure(bridge_tick, N_TICK)),
            ("symbol_info_tick", "classic (mt5linux)", measure(classic_tick, N_TICK)),
            ("copy_rates_from_pos 1000", "mt5bridge", measure(bridge_bars, N_BARS)),
            ("copy_rates_from_pos 1000", "classic (mt5linux)", measure(classic_bars, N_BARS)),
        ]
        classic.close()
        bridge.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"{'call':<26} {'path':<20} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>9}")
    for call, path, (p50, p99, rate) in rows:
        print(f"{call:<26} {path:<20} {p50:>8.3f} {p99:>8.3f} {rate:>9.0f}")
    print(
        f"(127.0.0.1, simulator backend, rpyc {rpyc.__version__}, Python "
        f"{sys.version.split()[0]}, {N_TICK} tick calls, {N_BARS} bar calls per path)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
