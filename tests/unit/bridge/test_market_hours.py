"""The simulator's market hours at pinned clocks: forex, metals and the index CFD trade Monday to
Friday (UTC days), the crypto CFD every day. Each moment is one that broke a test run on the
wall clock, or a boundary next to one: a weekend, Sunday night, Monday just after midnight,
Friday's last minutes, a month and a year turning. In process, on a clock the test sets, so
these hold whatever day they run."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import numpy as np
import pytest
from mt5bridge import constants as C
from mt5bridge.simulator import Simulator, SimulatorConfig

DAY = 86_400


def _at(*parts: int) -> float:
    return dt.datetime(*parts, tzinfo=dt.UTC).timestamp()


def _day(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _sim(clock: Clock) -> Simulator:
    sim = Simulator(SimulatorConfig(login=1001, password="pw", server="Sim"), clock=clock)
    assert sim.initialize(login=1001, password="pw", server="Sim")
    return sim


def _deal(symbol: str, kind: int = C.ORDER_TYPE_BUY, **extra: Any) -> dict[str, Any]:
    # IOC: the one filling type every default symbol has (BTCUSD has no FOK).
    return {"action": C.TRADE_ACTION_DEAL, "symbol": symbol, "volume": 0.01, "type": kind,
            "type_filling": C.ORDER_FILLING_IOC, **extra}  # fmt: skip


#: (moment, whether forex trades then)
MOMENTS = {
    "saturday-noon": (_at(2026, 12, 5, 12), False),
    "sunday-23:30": (_at(2026, 12, 6, 23, 30), False),
    "monday-00:03": (_at(2026, 12, 7, 0, 3), True),
    "monday-00:00:30-after-new-year": (_at(2027, 1, 4, 0, 0, 30), True),
    "friday-23:58": (_at(2026, 12, 4, 23, 58), True),
    "wednesday-noon": (_at(2026, 12, 2, 12), True),
    "new-years-day-00:03-a-friday": (_at(2027, 1, 1, 0, 3), True),
    "first-of-june-on-a-saturday": (_at(2024, 6, 1, 0, 3), False),
}


def _steps_or_the_weekend(times: np.ndarray, step: int, *, weekends: bool) -> None:
    """Bars `step` seconds apart, but for one jump over a whole weekend where the symbol does
    not trade then: from the bar that ends at Saturday 00:00 to Monday 00:00."""
    assert len(times) > 1
    for before, after in zip(times[:-1].tolist(), times[1:].tolist(), strict=True):
        if after - before == step:
            continue
        saturday = before + step
        assert not weekends, (_day(before), _day(after))
        assert saturday % DAY == 0 and _day(saturday).weekday() == 5, (_day(before), _day(after))
        assert after == saturday + 2 * DAY, (_day(before), _day(after))


@pytest.mark.parametrize("symbol", ["EURUSD", "XAUUSD", "US500", "BTCUSD"])
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_trading_and_prices_follow_the_market_hours(moment: str, symbol: str) -> None:
    now, forex_trades = MOMENTS[moment]
    sim = _sim(Clock(now))
    info = sim.symbol_info(symbol)
    weekends = symbol == "BTCUSD"
    trades = forex_trades or weekends
    filling = C.ORDER_FILLING_FOK if symbol == "XAUUSD" else C.ORDER_FILLING_IOC
    sent = sim.order_send(_deal(symbol, type_filling=filling, volume=info.volume_min))
    want = C.TRADE_RETCODE_DONE if trades else C.TRADE_RETCODE_MARKET_CLOSED
    assert sent.retcode == want, sent.comment
    below = round(info.ask * 0.9, info.digits)
    limit = {"action": C.TRADE_ACTION_PENDING, "symbol": symbol, "volume": info.volume_min,
             "type": C.ORDER_TYPE_BUY_LIMIT, "price": below}  # fmt: skip
    placed = sim.order_send(limit)
    assert placed.retcode == (C.TRADE_RETCODE_PLACED if trades else C.TRADE_RETCODE_MARKET_CLOSED)
    assert sim.order_check(_deal(symbol, type_filling=filling, volume=info.volume_min)).retcode == (
        0 if trades else C.TRADE_RETCODE_MARKET_CLOSED
    )

    tick = sim.symbol_info_tick(symbol)
    assert tick.time <= now and _day(tick.time).weekday() < (7 if weekends else 5)
    if trades:
        assert now - tick.time < 60  # ticks come every few seconds while it trades
    else:  # the last tick of Friday: nothing came since
        assert len(sim.copy_ticks_range(symbol, tick.time + 1, now, C.COPY_TICKS_ALL)) == 0
        assert now - tick.time < 3 * DAY
    assert info.bidlow <= info.bid <= info.bidhigh and info.session_close > 0

    m1 = sim.copy_rates_from_pos(symbol, C.TIMEFRAME_M1, 0, 1000)
    assert len(m1) == 1000 and m1["time"][-1] == tick.time // 60 * 60
    _steps_or_the_weekend(m1["time"], 60, weekends=weekends)
    h1 = sim.copy_rates_from_pos(symbol, C.TIMEFRAME_H1, 0, 72)
    assert len(h1) == 72 and h1["time"][-1] == tick.time // 3600 * 3600
    _steps_or_the_weekend(h1["time"], 3600, weekends=weekends)
    d1 = sim.copy_rates_from_pos(symbol, C.TIMEFRAME_D1, 0, 10)
    days = [_day(t) for t in d1["time"].tolist()]
    assert days[-1].date() == _day(tick.time).date()
    if not weekends:
        assert all(d.weekday() < 5 for d in days)
        assert all(
            (b - a).days == (3 if a.weekday() == 4 else 1) for a, b in itertools.pairwise(days)
        )
    else:
        assert all((b - a).days == 1 for a, b in itertools.pairwise(days))
    # Ranges, not positions, for the long bars: they cover only the days they need.
    w1 = sim.copy_rates_range(symbol, C.TIMEFRAME_W1, now - 15 * DAY, now)
    assert len(w1) >= 2 and all(_day(t).weekday() == 6 for t in w1["time"].tolist())
    assert w1["time"][-1] <= tick.time < w1["time"][-1] + 7 * DAY
    month = _day(tick.time).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    mn1 = sim.copy_rates_range(symbol, C.TIMEFRAME_MN1, month, now)
    assert mn1["time"].tolist() == [month.timestamp()]  # none for a month not traded yet


def test_from_friday_night_to_monday_morning() -> None:
    """A position and a day order from Friday 23:58: the day order expires at Saturday 00:00
    with no tick to carry it; the weekend refuses trades but keeps the position, which is
    charged Friday's rollover once and nothing for Saturday and Sunday; Monday trades."""
    clock = Clock(_at(2026, 12, 4, 23, 58))
    sim = _sim(clock)
    opened = sim.order_send(_deal("EURUSD", volume=1.0))
    assert opened.retcode == C.TRADE_RETCODE_DONE
    ask = sim.symbol_info_tick("EURUSD").ask
    day_order = sim.order_send({"action": C.TRADE_ACTION_PENDING, "symbol": "EURUSD",
                                "volume": 0.1, "type": C.ORDER_TYPE_BUY_LIMIT,
                                "price": round(ask - 0.05, 5),
                                "type_time": C.ORDER_TIME_DAY})  # fmt: skip
    assert day_order.retcode == C.TRADE_RETCODE_PLACED

    clock.now = _at(2026, 12, 5, 0, 1)  # Saturday
    assert sim.orders_total() == 0
    (expired,) = sim.history_orders_get(ticket=day_order.order)
    assert expired.state == C.ORDER_STATE_EXPIRED and expired.time_done == _at(2026, 12, 5)
    closing = _deal("EURUSD", C.ORDER_TYPE_SELL, volume=1.0, position=opened.order)
    assert sim.order_send(closing).retcode == C.TRADE_RETCODE_MARKET_CLOSED
    (pos,) = sim.positions_get()
    night = pos.swap
    assert night == pytest.approx(-7.2)  # EURUSD swap_long, points on 1 lot: one night

    clock.now = _at(2026, 12, 6, 23, 59, 59)  # Sunday night: still closed, no more swap
    assert sim.order_send(closing).retcode == C.TRADE_RETCODE_MARKET_CLOSED
    assert sim.positions_get()[0].swap == night

    clock.now = _at(2026, 12, 7, 0, 3)  # Monday
    tick = sim.symbol_info_tick("EURUSD")
    assert _day(tick.time).weekday() == 0
    assert sim.positions_get()[0].swap == night  # Sunday's midnight is no rollover
    closed = sim.order_send(closing)
    assert closed.retcode == C.TRADE_RETCODE_DONE and closed.price == tick.bid
    (deal,) = sim.history_deals_get(ticket=closed.deal)
    assert deal.swap == night and _day(deal.time).weekday() == 0
