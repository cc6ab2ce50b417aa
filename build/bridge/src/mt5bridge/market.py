"""Market data for the simulator: symbol specifications, price series from a seeded random walk
or from a CSV of bars, and ticks derived from bars.

Determinism matters more than realism here: the same seed gives the same bars and ticks on every
run and every platform (numpy's PCG64 generator and its normal sampler are stable across releases),
so tests can assert on prices. Strings are hashed with crc32, not hash(), which is salted per
process.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mt5bridge.mt5types import RATES_DTYPE, TICKS_DTYPE

Array = np.ndarray[Any, Any]


@dataclass(frozen=True, kw_only=True)
class SymbolSpec:
    """What the simulator knows about a symbol."""

    name: str
    description: str
    currency_base: str
    currency_profit: str
    digits: int
    start_price: float
    spread_points: int
    contract_size: float = 100_000.0
    volume_min: float = 0.01
    volume_max: float = 100.0
    volume_step: float = 0.01
    stops_level: int = 0
    # Standard deviation of the log-price change over one second.
    volatility: float = 0.00005

    @property
    def point(self) -> float:
        return float(10.0**-self.digits)

    @property
    def currency_margin(self) -> str:
        return self.currency_base

    @property
    def path(self) -> str:
        kind = "Metals" if self.currency_base in ("XAU", "XAG") else "Forex"
        return f"{kind}\\{self.name}"


DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec(
        name="EURUSD",
        description="Euro vs US Dollar",
        currency_base="EUR",
        currency_profit="USD",
        digits=5,
        start_price=1.08000,
        spread_points=10,
    ),
    SymbolSpec(
        name="GBPUSD",
        description="Great Britain Pound vs US Dollar",
        currency_base="GBP",
        currency_profit="USD",
        digits=5,
        start_price=1.27000,
        spread_points=12,
    ),
    SymbolSpec(
        name="USDJPY",
        description="US Dollar vs Japanese Yen",
        currency_base="USD",
        currency_profit="JPY",
        digits=3,
        start_price=150.000,
        spread_points=12,
    ),
    SymbolSpec(
        name="XAUUSD",
        description="Gold vs US Dollar",
        currency_base="XAU",
        currency_profit="USD",
        digits=2,
        start_price=2000.00,
        spread_points=30,
        contract_size=100.0,
        volatility=0.0001,
    ),
)


def seed_for(seed: int, *parts: str | int) -> list[int]:
    """A numpy seed sequence entropy list that is stable across processes."""
    return [seed & 0xFFFFFFFF, *(zlib.crc32(str(p).encode()) for p in parts)]


def random_walk_bars(
    spec: SymbolSpec, *, seed: int, tf_seconds: int, count: int, last_bar_time: int
) -> Array:
    """`count` bars of `tf_seconds` ending with the bar that opens at `last_bar_time`, whose close
    is the symbol's start price (so bars and live ticks meet)."""
    rng = np.random.default_rng(seed_for(seed, spec.name, tf_seconds))
    sigma = spec.volatility * math.sqrt(tf_seconds)
    steps = rng.normal(0.0, sigma, count)
    log_close = np.cumsum(steps)
    closes = spec.start_price * np.exp(log_close - log_close[-1])
    opens = np.empty(count)
    opens[0] = closes[0] * math.exp(-steps[0])
    opens[1:] = closes[:-1]
    wick = np.abs(rng.normal(0.0, sigma / 2.0, (2, count)))
    highs = np.maximum(opens, closes) * (1.0 + wick[0])
    lows = np.minimum(opens, closes) * (1.0 - wick[1])
    bars = np.zeros(count, dtype=RATES_DTYPE)
    bars["time"] = last_bar_time - tf_seconds * np.arange(count - 1, -1, -1, dtype=np.int64)
    bars["open"] = np.round(opens, spec.digits)
    bars["high"] = np.round(highs, spec.digits)
    bars["low"] = np.round(lows, spec.digits)
    bars["close"] = np.round(closes, spec.digits)
    bars["tick_volume"] = rng.integers(1, 200, count) * max(1, tf_seconds // 60)
    bars["spread"] = spec.spread_points
    return bars


def _parse_time(text: str) -> int:
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    parsed = dt.datetime.fromisoformat(text.replace(".", "-", 2) if text[4:5] == "." else text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp())


def load_csv_bars(path: Path) -> Array:
    """Bars from a CSV with a header naming at least time, open, high, low, close.

    `time` is Unix seconds or an ISO date-time (naive means UTC; MetaTrader's "2024.01.02 10:00"
    export form is accepted). tick_volume, spread and real_volume are optional. Rows are sorted
    by time.
    """
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = {f.strip().lower() for f in reader.fieldnames or ()}
        missing = {"time", "open", "high", "low", "close"} - fields
        if missing:
            raise ValueError(f"{path}: CSV lacks column(s) {', '.join(sorted(missing))}")
        rows = [{k.strip().lower(): v for k, v in row.items() if k} for row in reader]
    bars = np.zeros(len(rows), dtype=RATES_DTYPE)
    for i, row in enumerate(rows):
        try:
            bars[i] = (
                _parse_time(row["time"]),
                float(row["open"]),
                float(row["high"]),
                float(row["low"]),
                float(row["close"]),
                int(float(row.get("tick_volume") or 0)),
                int(float(row.get("spread") or 0)),
                int(float(row.get("real_volume") or 0)),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: row {i + 2}: {exc}") from exc
    if not len(bars):
        raise ValueError(f"{path}: CSV has no rows")
    return np.sort(bars, order="time")


def resample(bars: Array, tf_seconds: int) -> Array:
    """Aggregate bars into bars of `tf_seconds` (open first, high max, low min, close last)."""
    keys = bars["time"] // tf_seconds
    starts = np.concatenate(([0], np.flatnonzero(np.diff(keys)) + 1))
    ends = np.concatenate((starts[1:], [len(bars)])) - 1
    out = np.zeros(len(starts), dtype=RATES_DTYPE)
    out["time"] = keys[starts] * tf_seconds
    out["open"] = bars["open"][starts]
    out["high"] = np.maximum.reduceat(bars["high"], starts)
    out["low"] = np.minimum.reduceat(bars["low"], starts)
    out["close"] = bars["close"][ends]
    out["tick_volume"] = np.add.reduceat(bars["tick_volume"], starts)
    out["spread"] = bars["spread"][starts]
    out["real_volume"] = np.add.reduceat(bars["real_volume"], starts)
    return out


def ticks_from_m1(spec: SymbolSpec, m1: Array, *, seed: int, per_minute: int = 6) -> Array:
    """Ticks inside each M1 bar: `per_minute` ticks that run from the bar's open to its close,
    with seeded noise kept inside the bar's high and low."""
    n = len(m1)
    if n == 0:
        return np.zeros(0, dtype=TICKS_DTYPE)
    rng = np.random.default_rng(seed_for(seed, spec.name, "ticks"))
    frac = np.linspace(0.0, 1.0, per_minute)
    mids = m1["open"][:, None] + (m1["close"] - m1["open"])[:, None] * frac[None, :]
    noise = rng.normal(0.0, spec.point * 2, (n, per_minute))
    noise[:, 0] = 0.0
    noise[:, -1] = 0.0
    bids = np.clip(mids + noise, m1["low"][:, None], m1["high"][:, None]).ravel()
    offsets_ms = (np.arange(per_minute) * (60_000 // per_minute)).astype(np.int64)
    times_ms = (m1["time"].astype(np.int64)[:, None] * 1000 + offsets_ms[None, :]).ravel()
    ticks = np.zeros(n * per_minute, dtype=TICKS_DTYPE)
    ticks["time"] = times_ms // 1000
    ticks["time_msc"] = times_ms
    ticks["bid"] = np.round(bids, spec.digits)
    ticks["ask"] = np.round(bids + spec.spread_points * spec.point, spec.digits)
    # TICK_FLAG_BID | TICK_FLAG_ASK: both prices changed.
    ticks["flags"] = 6
    return ticks
