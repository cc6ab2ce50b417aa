"""Round-trip latency and throughput: our bridge against the mt5linux way, same simulator; and
what the simulator's market costs.

One simulator bridge server runs on 127.0.0.1 with classic mode on, so both paths reach the
same simulator in the same process:
- bridge:  mt5bridge.remote.Bridge, named calls, results as plain data (bars as one array);
- classic: RPyC classic as mt5linux 0.1.9 does it: `conn.eval("mt5.symbol_info_tick(...)")`
  returns a proxy whose fields are read over the wire (we read bid, ask and time, as a bot
  would), and rates go through `rpyc.classic.obtain` (pickle), as mt5linux does for bars.
The simulator's own costs are measured in this process, cold (nothing cached): ticks generated
per second, and one year of M1 bars for a symbol that was never asked for before (generated
from its ticks, then aggregated). The "landed" column is the README's figure from before the
simulator became a tick-driven market (4 symbols then, 14 now). Bounded loops; loopback only.
Not a test: it prints a table.
"""

from __future__ import annotations

import datetime as dt
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
from mt5bridge.market import DEFAULT_SYMBOLS, TickStream
from mt5bridge.remote import Bridge
from mt5bridge.simulator import Simulator, SimulatorConfig

LOGIN, PASSWORD, SERVER = 51234567, "bench-only", "Sim-Demo"
N_TICK = 2000
N_BARS = 300
N_SYMBOLS = 200
TICK_DAYS = 60
YEAR = (dt.datetime(2023, 1, 1, tzinfo=dt.UTC), dt.datetime(2023, 12, 31, 23, 59, tzinfo=dt.UTC))

#: The README's numbers for the rows that existed before (p50 ms, p99 ms, calls/s).
LANDED: dict[tuple[str, str], str] = {
    ("symbol_info_tick", "mt5bridge"): "0.177 / 0.304 / 5163",
    ("symbol_info_tick", "classic (mt5linux)"): "0.890 / 3.506 / 995",
    ("copy_rates_from_pos 1000", "mt5bridge"): "0.973 / 5.721 / 802",
    ("copy_rates_from_pos 1000", "classic (mt5linux)"): "3.710 / 13.274 / 228",
}


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


def simulator_costs() -> list[tuple[str, str, str]]:
    """(what, measured, note) rows for the simulator in this process, cold."""
    rows = []
    stream = TickStream(DEFAULT_SYMBOLS[0], seed=7, cache_days=1)
    first = int(YEAR[0].timestamp()) // 86_400
    start = time.perf_counter()
    ticks = sum(len(stream.day(day)) for day in range(first, first + TICK_DAYS))
    rate = ticks / (time.perf_counter() - start)
    rows.append(("ticks generated (EURUSD)", f"{rate:,.0f} ticks/s",
                 f"{ticks:,} ticks over {TICK_DAYS} days"))  # fmt: skip
    config = SimulatorConfig(login=LOGIN, password=PASSWORD, server=SERVER, seed=7,
                             max_bars=10**7)  # fmt: skip  # "Max bars in chart: Unlimited"
    sim = Simulator(config)
    sim.initialize(login=LOGIN, password=PASSWORD, server=SERVER)
    start = time.perf_counter()
    bars = sim.copy_rates_range("GBPUSD", mt5.TIMEFRAME_M1, *YEAR)
    cold = time.perf_counter() - start
    assert bars is not None
    rows.append(("one year of M1, cold", f"{cold:.2f} s", f"{len(bars):,} bars (GBPUSD 2023)"))
    start = time.perf_counter()
    d1 = sim.copy_rates_range("GBPUSD", mt5.TIMEFRAME_D1, *YEAR)
    assert d1 is not None
    rows.append(("same year as D1, after M1", f"{(time.perf_counter() - start) * 1000:.1f} ms",
                 f"{len(d1)} bars, from the cached per-day H1"))  # fmt: skip
    return rows


def main() -> int:
    costs = simulator_costs()
    env = dict(os.environ, MT5_LOGIN=str(LOGIN), MT5_PASSWORD=PASSWORD, MT5_SERVER=SERVER)
    server = subprocess.Popen(
        [sys.executable, "-m", "mt5bridge.server", "--backend", "simulator", "--port", "0",
         "--classic", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[3].rsplit(":", 1)[1])
        bridge = Bridge("127.0.0.1", port)
        assert bridge.initialize(login=LOGIN, password=PASSWORD, server=SERVER)
        classic = rpyc.classic.connect("127.0.0.1", port)
        classic.execute("import MetaTrader5 as mt5")
        assert classic.eval(f"mt5.initialize(login={LOGIN}, password={PASSWORD!r}, "
                            f"server={SERVER!r})")  # fmt: skip
        names = [s.name for s in bridge.symbols_get()]

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

        def bridge_all_ticks() -> None:
            for name in names:
                assert bridge.symbol_info_tick(name).bid > 0

        def bridge_symbols() -> None:
            assert len(bridge.symbols_get()) == len(names)

        rows = [
            ("symbol_info_tick", "mt5bridge", measure(bridge_tick, N_TICK)),
            ("symbol_info_tick", "classic (mt5linux)", measure(classic_tick, N_TICK)),
            ("copy_rates_from_pos 1000", "mt5bridge", measure(bridge_bars, N_BARS)),
            ("copy_rates_from_pos 1000", "classic (mt5linux)", measure(classic_bars, N_BARS)),
            (f"symbol_info_tick x{len(names)}", "mt5bridge", measure(bridge_all_ticks, 50)),
            (f"symbols_get ({len(names)}x96 fields)", "mt5bridge",
             measure(bridge_symbols, N_SYMBOLS)),
        ]  # fmt: skip
        year_bridge = Bridge("127.0.0.1", port)
        assert year_bridge.initialize(login=LOGIN, password=PASSWORD, server=SERVER)
        start = time.perf_counter()
        year = year_bridge.copy_rates_range("USDCHF", mt5.TIMEFRAME_M1, *YEAR)
        year_s = time.perf_counter() - start
        note = f"{len(year):,} bars (USDCHF; the terminal's default max bars), cold"
        costs.append(("2023's M1 over the bridge", f"{year_s:.2f} s", note))
        year_bridge.close()
        classic.close()
        bridge.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"{'call':<28} {'path':<20} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>9}  landed")
    for call, path, (p50, p99, rate) in rows:
        landed = LANDED.get((call, path), "(new)")
        print(f"{call:<28} {path:<20} {p50:>8.3f} {p99:>8.3f} {rate:>9.0f}  {landed}")
    print()
    print(f"{'simulator':<32} {'measured':>16}  note")
    for what, value, note in costs:
        print(f"{what:<32} {value:>16}  {note}")
    print(
        f"(127.0.0.1, simulator backend, {len(names)} symbols, rpyc {rpyc.__version__}, Python "
        f"{sys.version.split()[0]}, {N_TICK} tick calls, {N_BARS} bar calls per path)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
