"""The simulator's market: symbol specifications, one tick stream per symbol, bars made from it.

Every price the simulator shows comes from one tick stream per symbol: symbol_info_tick is its
last tick at the simulated time, copy_ticks_* are its ticks, M1 bars are its ticks per minute
(open first bid, high max, low min, close last, tick_volume the count, spread the narrowest) and
every longer timeframe is M1 bars aggregated (an H1 high is the max of its M1 highs, its volume
their sum). Bars of the current period grow as time passes.

The stream is generated on demand, one UTC day at a time, and is a pure function of (seed,
symbol, day): a day's ticks are the same on every request and in every process (numpy's PCG64
and its samplers are stable; strings are hashed with crc32, not the salted hash()), whichever
range was asked first, so history reaches any date back to the symbol's history start without a
fixed window. Within a day the log price is a Brownian bridge between two "anchors", the log
prices at the day's open and the next day's open; an anchor is a sum of value-noise octaves
(periods of 1 to 1024 days) around the symbol's typical level, so each one is computed on its
own, prices trend over weeks and months, stay in a realistic band over years, and a weekend
leaves a gap. Forex, metals and the index CFD do not trade on Saturday and Sunday; the crypto
CFD trades every day.

Replay: ticks from a CSV in the format MetaTrader 5 exports (tab-separated `<DATE> <TIME> <BID>
<ASK> <LAST> <VOLUME> <FLAGS>`) replace a symbol's generated stream; a bar export (`<DATE>
<TIME> <OPEN> <HIGH> <LOW> <CLOSE> <TICKVOL> <VOL> <SPREAD>`, or the lower-case `time,open,high,
low,close` header) becomes four ticks per bar (open, the nearer extreme, the other, close).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from mt5bridge import constants as C
from mt5bridge import terms
from mt5bridge.mt5types import RATES_DTYPE, TICKS_DTYPE

Array = np.ndarray[Any, Any]
DAY: Final = 86_400
DAY_MS: Final = DAY * 1000

_FX_FILL = terms.SYMBOL_FILLING_FOK | terms.SYMBOL_FILLING_IOC


@dataclass(frozen=True, kw_only=True)
class SymbolSpec:
    """A symbol's contract specification (as a typical demo server sets it) and its market."""

    name: str
    description: str
    path: str
    currency_base: str
    currency_profit: str
    digits: int
    level: float  # typical price: anchors move around it
    spread: int  # typical spread in points (floating around it)
    annual_vol: float  # yearly volatility of the log price
    tick_interval: float  # mean seconds between ticks
    currency_margin: str = ""  # empty: the base currency
    contract_size: float = 100_000.0
    volume_min: float = 0.01
    volume_max: float = 100.0
    volume_step: float = 0.01
    volume_limit: float = 0.0
    stops_level: int = 0
    freeze_level: int = 0
    calc_mode: int = C.SYMBOL_CALC_MODE_FOREX
    exemode: int = C.SYMBOL_TRADE_EXECUTION_MARKET
    filling_mode: int = _FX_FILL
    trade_mode: int = C.SYMBOL_TRADE_MODE_FULL
    margin_rate: float = 1.0  # multiplies the leveraged margin (crypto and indices need more)
    swap_mode: int = C.SYMBOL_SWAP_MODE_POINTS
    swap_long: float = 0.0
    swap_short: float = 0.0
    weekends: bool = False  # trades on Saturday and Sunday (crypto)
    book_depth: int = 10
    category: str = ""
    exchange: str = ""

    @property
    def point(self) -> float:
        return float(10.0**-self.digits)

    @property
    def margin_currency(self) -> str:
        return self.currency_margin or self.currency_base


def _fx(
    name: str, description: str, level: float, spread: int, vol: float, interval: float,
    swap: tuple[float, float], digits: int = 5, stops: int = 0,
    exemode: int = C.SYMBOL_TRADE_EXECUTION_MARKET,
) -> SymbolSpec:  # fmt: skip
    return SymbolSpec(
        name=name, description=description, path=f"Forex\\{name}", currency_base=name[:3],
        currency_profit=name[3:], digits=digits, level=level, spread=spread, annual_vol=vol,
        tick_interval=interval, swap_long=swap[0], swap_short=swap[1], stops_level=stops,
        volume_max=500.0, exemode=exemode,
        filling_mode=_FX_FILL if exemode == C.SYMBOL_TRADE_EXECUTION_MARKET
        else terms.SYMBOL_FILLING_FOK,
    )  # fmt: skip


#: Majors, crosses, gold, an index CFD and a crypto CFD, specified as on a typical demo server.
DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = (
    _fx("EURUSD", "Euro vs US Dollar", 1.0850, 8, 0.07, 4.0, (-7.2, 1.9)),
    _fx("GBPUSD", "Great Britain Pound vs US Dollar", 1.2700, 11, 0.08, 4.5, (-4.1, -1.6)),
    _fx("USDJPY", "US Dollar vs Japanese Yen", 148.50, 10, 0.09, 4.5, (14.3, -29.8), digits=3),
    _fx("USDCHF", "US Dollar vs Swiss Franc", 0.8800, 13, 0.07, 6.0, (6.9, -14.5)),
    _fx("AUDUSD", "Australian Dollar vs US Dollar", 0.6600, 10, 0.09, 6.0, (-3.3, -2.1)),
    _fx("USDCAD", "US Dollar vs Canadian Dollar", 1.3500, 14, 0.06, 6.0, (1.2, -8.7)),
    _fx("NZDUSD", "New Zealand Dollar vs US Dollar", 0.6100, 15, 0.09, 7.0, (-2.2, -3.3)),
    # A cross with instant execution: the request's price counts, and a requote can come.
    _fx(
        "EURGBP",
        "Euro vs Great Britain Pound",
        0.8550,
        12,
        0.05,
        7.0,
        (-6.3, 0.9),
        exemode=C.SYMBOL_TRADE_EXECUTION_INSTANT,
    ),
    _fx("EURCAD", "Euro vs Canadian Dollar", 1.4650, 18, 0.06, 8.0, (-8.9, 2.6)),
    _fx("EURJPY", "Euro vs Japanese Yen", 161.00, 17, 0.09, 5.0, (7.1, -23.6), digits=3),
    _fx(
        "GBPJPY",
        "Great Britain Pound vs Japanese Yen",
        188.50,
        25,
        0.10,
        5.0,
        (11.0, -32.5),
        digits=3,
        stops=10,
    ),
    SymbolSpec(
        name="XAUUSD",
        description="Gold vs US Dollar",
        path="Metals\\XAUUSD",
        currency_base="XAU",
        currency_profit="USD",
        currency_margin="XAU",
        digits=2,
        level=2000.0,
        spread=25,
        annual_vol=0.15,
        tick_interval=3.0,
        contract_size=100.0,
        volume_max=50.0,
        stops_level=10,
        filling_mode=terms.SYMBOL_FILLING_FOK,
        swap_long=-41.6,
        swap_short=24.8,
        category="Metals",
    ),
    SymbolSpec(
        name="US500",
        description="US 500 Cash Index CFD",
        path="Indices\\US500",
        currency_base="USD",
        currency_profit="USD",
        currency_margin="USD",
        digits=2,
        level=4800.0,
        spread=50,
        annual_vol=0.18,
        tick_interval=3.0,
        contract_size=1.0,
        volume_min=0.1,
        volume_max=250.0,
        volume_step=0.1,
        stops_level=50,
        calc_mode=C.SYMBOL_CALC_MODE_CFDLEVERAGE,
        margin_rate=5.0,
        swap_mode=C.SYMBOL_SWAP_MODE_CURRENCY_SYMBOL,
        swap_long=-1.05,
        swap_short=0.32,
        category="Indices",
    ),
    SymbolSpec(
        name="BTCUSD",
        description="Bitcoin vs US Dollar CFD",
        path="Crypto\\BTCUSD",
        currency_base="BTC",
        currency_profit="USD",
        currency_margin="BTC",
        digits=2,
        level=40000.0,
        spread=3000,
        annual_vol=0.60,
        tick_interval=2.0,
        contract_size=1.0,
        volume_min=0.01,
        volume_max=10.0,
        volume_step=0.01,
        stops_level=0,
        calc_mode=C.SYMBOL_CALC_MODE_CFDLEVERAGE,
        margin_rate=50.0,
        filling_mode=terms.SYMBOL_FILLING_IOC,
        swap_mode=C.SYMBOL_SWAP_MODE_INTEREST_CURRENT,
        swap_long=-20.0,
        swap_short=-20.0,
        weekends=True,
        category="Crypto",
    ),
)


def seed_for(seed: int, *parts: str | int) -> list[int]:
    """A numpy seed sequence entropy list that is stable across processes."""
    return [seed & 0xFFFFFFFF, *(zlib.crc32(str(p).encode()) & 0xFFFFFFFF for p in parts)]


def _lattice(seed: int, name: str, period: int, index: int) -> float:
    return float(np.random.default_rng(seed_for(seed, name, "octave", period, index)).normal())


_OCTAVES: Final = (1, 4, 16, 64, 256, 1024)


class TickStream:
    """The generated tick stream of one symbol (see the module docstring)."""

    def __init__(self, spec: SymbolSpec, seed: int, *, cache_days: int = 48) -> None:
        self.spec = spec
        self.seed = seed
        self._days: OrderedDict[int, tuple[Array, Array]] = OrderedDict()
        self._anchors: dict[int, float] = {}
        self._cache_days = cache_days
        self._sigma_day = spec.annual_vol / math.sqrt(260.0)

    def trades_on(self, day: int) -> bool:
        # 1970-01-01 (day 0) was a Thursday: weekday 5 and 6 are Saturday and Sunday.
        return self.spec.weekends or (day + 3) % 7 < 5

    def anchor(self, day: int) -> float:
        """The log price at 00:00 UTC of `day` (days since 1970)."""
        known = self._anchors.get(day)
        if known is not None:
            return known
        value = math.log(self.spec.level)
        for period in _OCTAVES:
            i, frac = divmod(day, period)
            a = _lattice(self.seed, self.spec.name, period, i)
            b = _lattice(self.seed, self.spec.name, period, i + 1)
            w = (1 - math.cos(math.pi * frac / period)) / 2  # smooth between lattice points
            amplitude = self._sigma_day * (0.7 if period == 1 else math.sqrt(period) / 2)
            value += amplitude * (a + (b - a) * w)
        if len(self._anchors) > 100_000:
            self._anchors.clear()
        self._anchors[day] = value
        return value

    def day(self, day: int) -> Array:
        """All ticks of `day`, in time order (cached: a few dozen days)."""
        return self._cached(day)[0]

    def times(self, day: int) -> Array:
        """The day's time_msc as a contiguous array: searching the structured array's field
        (a strided view) costs a copy per search."""
        return self._cached(day)[1]

    def _cached(self, day: int) -> tuple[Array, Array]:
        known = self._days.get(day)
        if known is not None:
            self._days.move_to_end(day)
            return known
        ticks = self._generate(day)
        entry = (ticks, np.ascontiguousarray(ticks["time_msc"]))
        self._days[day] = entry
        while len(self._days) > self._cache_days:
            self._days.popitem(last=False)
        return entry

    def _generate(self, day: int) -> Array:
        spec = self.spec
        if not self.trades_on(day):
            return np.zeros(0, dtype=TICKS_DTYPE)
        rng = np.random.default_rng(seed_for(self.seed, spec.name, "day", day))
        # Arrivals as a Poisson process: exponential gaps, summed, so already in order.
        mean_gap = spec.tick_interval * 1000.0
        gaps = rng.exponential(mean_gap, int(DAY_MS / mean_gap * 1.2) + 64)
        offsets = np.cumsum(gaps).astype(np.int64)
        offsets = offsets[offsets < DAY_MS]
        offsets = offsets[np.concatenate(([True], np.diff(offsets) != 0))]
        n = len(offsets)
        if n == 0:
            return np.zeros(0, dtype=TICKS_DTYPE)
        sigma_ms = self._sigma_day / math.sqrt(DAY_MS)
        steps = np.diff(offsets, prepend=0).astype(np.float64)
        walk = np.cumsum(rng.standard_normal(n) * sigma_ms * np.sqrt(steps))
        end = walk[-1] + rng.standard_normal() * sigma_ms * math.sqrt(DAY_MS - offsets[-1])
        frac = offsets / DAY_MS
        start, stop = self.anchor(day), self.anchor(day + 1)
        log_price = start + (stop - start) * frac + walk - end * frac  # the Brownian bridge
        digits, point = spec.digits, spec.point
        bid = np.round(np.exp(log_price), digits)
        spread_pts = np.maximum(1, np.round(spec.spread * np.exp(rng.normal(0, 0.25, n))))
        ask = np.round(bid + spread_pts * point, digits)
        changed_bid = np.concatenate(([True], bid[1:] != bid[:-1]))
        changed_ask = np.concatenate(([True], ask[1:] != ask[:-1]))
        keep = changed_bid | changed_ask
        ticks = np.zeros(int(keep.sum()), dtype=TICKS_DTYPE)
        times = offsets[keep] + day * DAY_MS
        ticks["time_msc"] = times
        ticks["time"] = times // 1000
        ticks["bid"] = bid[keep]
        ticks["ask"] = ask[keep]
        ticks["flags"] = (changed_bid[keep] * C.TICK_FLAG_BID) | (
            changed_ask[keep] * C.TICK_FLAG_ASK
        )
        return ticks


class ReplayStream:
    """A recorded tick stream (replay mode): the same interface as TickStream."""

    def __init__(self, spec: SymbolSpec, ticks: Array) -> None:
        self.spec = spec
        self.ticks = ticks
        self._times = np.ascontiguousarray(ticks["time_msc"])
        self._day_index = self._times // DAY_MS

    def _bounds(self, day: int) -> tuple[int, int]:
        lo, hi = np.searchsorted(self._day_index, [day, day + 1])
        return int(lo), int(hi)

    def day(self, day: int) -> Array:
        lo, hi = self._bounds(day)
        return self.ticks[lo:hi]

    def times(self, day: int) -> Array:
        lo, hi = self._bounds(day)
        return self._times[lo:hi]

    @property
    def first_ms(self) -> int:
        return int(self.ticks["time_msc"][0])


Stream = TickStream | ReplayStream


def m1_from_ticks(ticks: Array, point: float, seconds: int = 60) -> Array:
    """M1 bars of `ticks` (bid prices; see the module docstring), or bars of another length
    that divides a day (the feed builds H1 straight from ticks: the same numbers as M1
    aggregated, which the tests check, without the M1 step)."""
    if len(ticks) == 0:
        return np.zeros(0, dtype=RATES_DTYPE)
    minutes = ticks["time"] // seconds
    starts = np.concatenate(([0], np.flatnonzero(np.diff(minutes)) + 1))
    ends = np.concatenate((starts[1:], [len(ticks)])) - 1
    bars = np.zeros(len(starts), dtype=RATES_DTYPE)
    bars["time"] = minutes[starts] * seconds
    bars["open"] = ticks["bid"][starts]
    bars["high"] = np.maximum.reduceat(ticks["bid"], starts)
    bars["low"] = np.minimum.reduceat(ticks["bid"], starts)
    bars["close"] = ticks["bid"][ends]
    bars["tick_volume"] = np.diff(np.concatenate((starts, [len(ticks)])))
    spreads = np.round((ticks["ask"] - ticks["bid"]) / point).astype(np.int64)
    bars["spread"] = np.minimum.reduceat(spreads, starts)
    bars["real_volume"] = np.add.reduceat(ticks["volume"], starts)
    return bars


def bar_keys(times: Array, timeframe: int) -> Array:
    """The open time of the `timeframe` bar holding each of `times` (vectorised bar_start)."""
    if timeframe == C.TIMEFRAME_MN1:
        months = times.astype("datetime64[s]").astype("datetime64[M]")
        return months.astype("datetime64[s]").astype(np.int64)
    if timeframe == C.TIMEFRAME_W1:
        week = 7 * DAY
        return (times + 4 * DAY) // week * week - 4 * DAY
    length = terms.timeframe_seconds(timeframe)
    assert length is not None  # noqa: S101  # callers pass checked timeframes
    return times // length * length


def aggregate(bars: Array, timeframe: int) -> Array:
    """Bars of a longer `timeframe` from shorter ones: open first, high max, low min, close
    last, volumes summed, spread the narrowest."""
    if len(bars) == 0:
        return bars.copy()
    keys = bar_keys(bars["time"], timeframe)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(keys)) + 1))
    ends = np.concatenate((starts[1:], [len(bars)])) - 1
    out = np.zeros(len(starts), dtype=RATES_DTYPE)
    out["time"] = keys[starts]
    out["open"] = bars["open"][starts]
    out["high"] = np.maximum.reduceat(bars["high"], starts)
    out["low"] = np.minimum.reduceat(bars["low"], starts)
    out["close"] = bars["close"][ends]
    out["tick_volume"] = np.add.reduceat(bars["tick_volume"], starts)
    out["spread"] = np.minimum.reduceat(bars["spread"], starts)
    out["real_volume"] = np.add.reduceat(bars["real_volume"], starts)
    return out


# -- replay CSVs -------------------------------------------------------------------------------


def _parse_time(date: str, clock: str = "") -> int:
    """Unix milliseconds of MetaTrader's "2024.01.02" + "10:00:00.123", or an ISO date-time,
    or Unix seconds. Naive times are UTC (the simulated server's time)."""
    text = f"{date.strip()} {clock.strip()}".strip()
    if text.lstrip("-").replace(".", "", 1).isdigit() and not clock:
        return int(float(text) * 1000)
    if text[4:5] == ".":
        text = text.replace(".", "-", 2)
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return round(parsed.timestamp() * 1000)


def _num(text: str | None) -> float:
    return float(text) if text and text.strip() else 0.0


def load_replay_csv(path: Path, spec: SymbolSpec, *, max_rows: int = 20_000_000) -> Array:
    """Ticks from a MetaTrader 5 tick or bar export, or a `time,open,high,low,close` CSV (see
    the module docstring). Raises ValueError naming the file and row on anything malformed."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        sample = handle.readline()
        handle.seek(0)
        delimiter = "\t" if "\t" in sample else ("," if "," in sample else ";")
        reader = csv.DictReader(handle, delimiter=delimiter)
        names = {(f or "").strip().strip("<>").lower(): f for f in reader.fieldnames or ()}
        is_ticks = "bid" in names and "ask" in names
        need = {"bid", "ask", "date", "time"} if is_ticks else {"open", "high", "low", "close"}
        if not is_ticks and "time" not in names:
            need.add("time")
        missing = need - set(names)
        if missing:
            raise ValueError(f"{path}: CSV lacks column(s) {', '.join(sorted(missing))}")
        rows: list[tuple[Any, ...]] = []
        for i, raw in enumerate(reader):
            if i >= max_rows:
                raise ValueError(f"{path}: more than {max_rows} rows")
            row = {k: raw.get(v) for k, v in names.items()}
            try:
                when = _parse_time(row.get("date") or row["time"] or "",
                                   row["time"] or "" if "date" in names else "")  # fmt: skip
                if is_ticks:
                    rows.append((when, _num(row["bid"]), _num(row["ask"]), _num(row.get("last")),
                                 _num(row.get("volume")), int(_num(row.get("flags")))))  # fmt: skip
                else:
                    rows.append((when, _num(row["open"]), _num(row["high"]), _num(row["low"]),
                                 _num(row["close"]), _num(row.get("spread"))))  # fmt: skip
            except (TypeError, ValueError, KeyError) as exc:
                raise ValueError(f"{path}: row {i + 2}: {exc}") from exc
    if not rows:
        raise ValueError(f"{path}: CSV has no rows")
    return _ticks_from_rows(rows, spec, is_ticks)


def _ticks_from_rows(rows: list[tuple[Any, ...]], spec: SymbolSpec, is_ticks: bool) -> Array:
    table = np.array(rows, dtype=np.float64)
    table = table[np.argsort(table[:, 0], kind="stable")]
    point = spec.point
    if is_ticks:
        # A tick export leaves out the price that did not change: carry the last one forward.
        for col in (1, 2):
            values = table[:, col]
            idx = np.where(values > 0, np.arange(len(values)), 0)
            np.maximum.accumulate(idx, out=idx)
            table[:, col] = values[idx]
        ticks = np.zeros(len(table), dtype=TICKS_DTYPE)
        ticks["time_msc"] = table[:, 0].astype(np.int64)
        ticks["bid"], ticks["ask"], ticks["last"] = table[:, 1], table[:, 2], table[:, 3]
        ticks["volume"] = table[:, 4].astype(np.uint64)
        ticks["volume_real"] = table[:, 4]
        flags = table[:, 5].astype(np.uint32)
        ticks["flags"] = np.where(flags == 0, C.TICK_FLAG_BID | C.TICK_FLAG_ASK, flags)
    else:
        n = len(table)
        o, h, lo, c = table[:, 1], table[:, 2], table[:, 3], table[:, 4]
        spread = np.where(table[:, 5] > 0, table[:, 5], spec.spread) * point
        high_first = np.abs(h - o) < np.abs(o - lo)
        prices = np.stack((o, np.where(high_first, h, lo), np.where(high_first, lo, h), c), 1)
        offsets = np.array([0, 15_000, 30_000, 59_000], dtype=np.int64)
        ticks = np.zeros(n * 4, dtype=TICKS_DTYPE)
        ticks["time_msc"] = (table[:, 0].astype(np.int64)[:, None] + offsets[None, :]).ravel()
        ticks["bid"] = prices.ravel()
        ticks["ask"] = np.round((prices + spread[:, None]).ravel(), spec.digits)
        ticks["flags"] = C.TICK_FLAG_BID | C.TICK_FLAG_ASK
    ticks["time"] = ticks["time_msc"] // 1000
    if not np.isfinite(ticks["bid"]).all() or (ticks["bid"] <= 0).any():
        raise ValueError("replay prices must be positive numbers")
    return ticks
