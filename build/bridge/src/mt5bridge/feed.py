"""One symbol's prices at a given simulated time: its last tick, its ticks and bars in a range.

Nothing after `now` is ever shown: a day's ticks are generated whole (market.TickStream) and cut
at `now`, so the current bar grows and new bars appear as time passes. Bars of minute
timeframes are aggregated from per-day M1 bars, the others from per-day H1 bars; both are made
from the day's ticks and cached for past days, which keeps a year of M1 or a decade of D1 to
one pass over the ticks.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

import numpy as np

from mt5bridge import constants as C
from mt5bridge.market import DAY, DAY_MS, Array, Stream, aggregate, m1_from_ticks
from mt5bridge.mt5types import RATES_DTYPE, TICKS_DTYPE
from mt5bridge.terms import timeframe_seconds

#: How many days back to look for the last tick (a long weekend or holiday).
_LOOKBACK_DAYS: Final = 10
_M1_CACHE_DAYS: Final = 800
_H1_CACHE_DAYS: Final = 20_000
_NO_TICKS: Final = np.zeros(0, dtype=TICKS_DTYPE)
_NO_TIMES: Final = np.zeros(0, dtype=np.int64)


class Feed:
    def __init__(self, stream: Stream, *, history_start: int) -> None:
        self.stream = stream
        self.point = stream.spec.point
        self.history_start = history_start  # Unix seconds: no data before
        self._m1: OrderedDict[int, Array] = OrderedDict()
        self._h1: OrderedDict[int, Array] = OrderedDict()

    # -- ticks -----------------------------------------------------------------------------

    def _day_ticks(self, day: int, now_ms: int) -> Array:
        return self._day(day, now_ms)[0]

    def _day(self, day: int, now_ms: int) -> tuple[Array, Array]:
        """The day's ticks up to now_ms, and their time_msc (contiguous, for searching)."""
        if day * DAY < self.history_start - DAY or day * DAY_MS > now_ms:
            return _NO_TICKS, _NO_TIMES
        ticks, times = self.stream.day(day), self.stream.times(day)
        if (day + 1) * DAY_MS > now_ms:
            end = int(np.searchsorted(times, now_ms, side="right"))
            ticks, times = ticks[:end], times[:end]
        return ticks, times

    def last_tick(self, now_ms: int) -> Array | None:
        """The last tick at or before `now_ms` (a one-element array), or None."""
        day = now_ms // DAY_MS
        for back in range(_LOOKBACK_DAYS):
            ticks = self._day_ticks(day - back, now_ms)
            if len(ticks):
                return ticks[-1:]
        return None

    def ticks(self, lo_ms: int, hi_ms: int, now_ms: int, *, limit: int | None = None) -> Array:
        """Ticks with lo_ms <= time_msc <= min(hi_ms, now_ms); at most `limit`, the first."""
        hi_ms = min(hi_ms, now_ms)
        lo_ms = max(lo_ms, (self.history_start - DAY) * 1000)
        parts: list[Array] = []
        count = 0
        for day in range(lo_ms // DAY_MS, hi_ms // DAY_MS + 1):
            ticks, times = self._day(day, now_ms)
            lo = int(np.searchsorted(times, lo_ms))
            part = ticks[lo : int(np.searchsorted(times, hi_ms, side="right"))]
            parts.append(part)
            count += len(part)
            if limit is not None and count >= limit:
                break
        out = np.concatenate(parts) if parts else np.zeros(0, dtype=TICKS_DTYPE)
        return out[:limit] if limit is not None else out

    def ticks_before(self, end_ms: int, count: int, now_ms: int) -> Array:
        """Up to `count` ticks at or before end_ms, oldest first."""
        end_ms = min(end_ms, now_ms)
        parts: list[Array] = []
        got = 0
        day = end_ms // DAY_MS
        while got < count and day * DAY >= self.history_start - DAY:
            ticks, times = self._day(day, now_ms)
            ticks = ticks[: int(np.searchsorted(times, end_ms, side="right"))]
            parts.append(ticks)
            got += len(ticks)
            day -= 1
        parts.reverse()
        out = np.concatenate(parts) if parts else np.zeros(0, dtype=TICKS_DTYPE)
        return out[max(0, len(out) - count) :]

    # -- bars ------------------------------------------------------------------------------

    def _day_bars(self, day: int, now_ms: int, level: int) -> Array:
        """M1 (level 1) or H1 (level C.TIMEFRAME_H1) bars of `day` up to now (its ticks up to
        now_ms: not to the end of now's second, which would show ticks still to come)."""
        complete = (day + 1) * DAY_MS <= now_ms
        cache = self._m1 if level == C.TIMEFRAME_M1 else self._h1
        if complete and day in cache:
            cache.move_to_end(day)
            return cache[day]
        if level == C.TIMEFRAME_H1 and complete and day in self._m1:
            bars = aggregate(self._m1[day], C.TIMEFRAME_H1)  # the same numbers, no ticks needed
        else:
            seconds = 60 if level == C.TIMEFRAME_M1 else 3600
            bars = m1_from_ticks(self._day_ticks(day, now_ms), self.point, seconds)
        if complete:
            cache[day] = bars
            if len(cache) > (_M1_CACHE_DAYS if level == C.TIMEFRAME_M1 else _H1_CACHE_DAYS):
                cache.popitem(last=False)
        return bars

    def bars(self, timeframe: int, lo_s: int, hi_s: int, now_ms: int) -> Array:
        """Bars of `timeframe` whose open time is in [lo_s, hi_s], up to now."""
        hi_s = min(hi_s, now_ms // 1000)
        length = timeframe_seconds(timeframe) or 31 * DAY
        level = C.TIMEFRAME_M1 if length < 3600 else C.TIMEFRAME_H1
        # A bar opening at or after lo_s holds no day before lo_s: those days are not needed
        # (the partial bar they would make opens before lo_s and is dropped below).
        days = range(max(lo_s, self.history_start) // DAY, hi_s // DAY + 1)
        parts = [self._day_bars(day, now_ms, level) for day in days]
        base = np.concatenate(parts) if parts else np.zeros(0, dtype=RATES_DTYPE)
        out = base if timeframe == level else aggregate(base, timeframe)
        return out[(out["time"] >= lo_s) & (out["time"] <= hi_s)]

    def bars_before(self, timeframe: int, end_s: int, count: int, now_ms: int) -> Array:
        """Up to `count` bars of `timeframe` opening at or before end_s, oldest first."""
        end_s = min(end_s, now_ms // 1000)
        length = timeframe_seconds(timeframe) or 31 * DAY
        # Weekends and holidays hold no bars: ask for more calendar time until enough.
        span = max(length * count * 7 // 5 + 2 * length, DAY)
        while True:
            lo = max(end_s - span, self.history_start - length)
            out = self.bars(timeframe, lo, end_s, now_ms)
            if len(out) >= count or lo <= self.history_start - length:
                return out[max(0, len(out) - count) :]
            span *= 2

    def day_range(self, now_ms: int) -> tuple[float, float, float, float, float]:
        """Today's open, high and low bid, yesterday's close and today's high ask (for
        SymbolInfo's session fields)."""
        day = now_ms // DAY_MS
        ticks = self._day_ticks(day, now_ms)
        prev = self.last_tick(day * DAY_MS - 1)
        close = float(prev["bid"][0]) if prev is not None else 0.0
        if not len(ticks):
            return close, close, close, close, close
        return (float(ticks["bid"][0]), float(ticks["bid"].max()), float(ticks["bid"].min()),
                close, float(ticks["ask"].max()))  # fmt: skip
