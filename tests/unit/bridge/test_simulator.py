"""The simulator as a market: one tick stream per symbol, bars aggregated from it, time, history
on demand, trading semantics, depth and replay. In process, on a clock the test moves."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mt5bridge import constants as C
from mt5bridge.simulator import Simulator, SimulatorConfig

WEDNESDAY_NOON = dt.datetime(2024, 1, 17, 12, 0, tzinfo=dt.UTC).timestamp()


class Clock:
    def __init__(self, start: float = WEDNESDAY_NOON) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _sim(clock: Clock | None = None, **kw: Any) -> Simulator:
    sim = Simulator(
        SimulatorConfig(login=1001, password="pw", server="Sim", **kw), clock=clock or Clock()
    )
    assert sim.initialize(login=1001, password="pw", server="Sim")
    return sim


def _buy(sim: Simulator, symbol: str = "EURUSD", volume: float = 1.0, **extra: Any) -> Any:
    return sim.order_send({"action": C.TRADE_ACTION_DEAL, "symbol": symbol, "volume": volume,
                           "type": C.ORDER_TYPE_BUY, **extra})  # fmt: skip


def _sell(sim: Simulator, symbol: str = "EURUSD", volume: float = 1.0, **extra: Any) -> Any:
    return sim.order_send({"action": C.TRADE_ACTION_DEAL, "symbol": symbol, "volume": volume,
                           "type": C.ORDER_TYPE_SELL, **extra})  # fmt: skip


# -- the tick stream and its bars -------------------------------------------------------------


def test_same_seed_same_market_other_seed_other_market() -> None:
    a = _sim().copy_rates_from_pos("EURUSD", C.TIMEFRAME_M5, 0, 50)
    b = _sim().copy_rates_from_pos("EURUSD", C.TIMEFRAME_M5, 0, 50)
    c = _sim(seed=2).copy_rates_from_pos("EURUSD", C.TIMEFRAME_M5, 0, 50)
    assert len(a) == 50 and (a == b).all() and not (a["close"] == c["close"]).all()


@pytest.mark.parametrize(
    "timeframe", [C.TIMEFRAME_M5, C.TIMEFRAME_M15, C.TIMEFRAME_H1, C.TIMEFRAME_H4, C.TIMEFRAME_D1]
)
def test_every_timeframe_is_the_m1_bars_aggregated(timeframe: int) -> None:
    sim = _sim()
    lo = dt.datetime(2024, 1, 8, tzinfo=dt.UTC)
    hi = dt.datetime(2024, 1, 12, 23, 59, tzinfo=dt.UTC)
    m1 = sim.copy_rates_range("EURUSD", C.TIMEFRAME_M1, lo, hi)
    bars = sim.copy_rates_range("EURUSD", timeframe, lo, hi)
    assert len(bars) > 1
    length = int(bars["time"][1] - bars["time"][0])
    for bar in bars:
        inside = m1[(m1["time"] >= bar["time"]) & (m1["time"] < bar["time"] + length)]
        assert bar["open"] == inside["open"][0] and bar["close"] == inside["close"][-1]
        assert bar["high"] == inside["high"].max() and bar["low"] == inside["low"].min()
        assert bar["tick_volume"] == inside["tick_volume"].sum()


def test_m1_bars_are_the_ticks_per_minute() -> None:
    sim = _sim()
    m1 = sim.copy_rates_from_pos("EURUSD", C.TIMEFRAME_M1, 5, 3)
    start, end = int(m1["time"][0]), int(m1["time"][-1]) + 60
    ticks = sim.copy_ticks_range("EURUSD", start, end - 0.001, C.COPY_TICKS_ALL)
    assert len(ticks) == m1["tick_volume"].sum()
    for bar in m1:
        inside = ticks[(ticks["time"] >= bar["time"]) & (ticks["time"] < bar["time"] + 60)]
        assert (bar["open"], bar["close"]) == (inside["bid"][0], inside["bid"][-1])
        assert (bar["high"], bar["low"]) == (inside["bid"].max(), inside["bid"].min())


def test_weeks_open_on_sunday_and_months_on_the_first() -> None:
    sim = _sim()
    w1 = sim.copy_rates_from_pos("EURUSD", C.TIMEFRAME_W1, 0, 3)
    assert all(dt.datetime.fromtimestamp(int(t), dt.UTC).weekday() == 6 for t in w1["time"])
    mn1 = sim.copy_rates_range("EURUSD", C.TIMEFRAME_MN1, dt.datetime(2023, 1, 1),
                               dt.datetime(2023, 3, 31))  # fmt: skip
    days = [dt.datetime.fromtimestamp(int(t), dt.UTC) for t in mn1["time"]]
    assert len(mn1) == 3 and all(d.day == 1 and d.hour == 0 for d in days)
    d1 = sim.copy_rates_range("EURUSD", C.TIMEFRAME_D1, dt.datetime(2023, 2, 1),
                              dt.datetime(2023, 2, 28))  # fmt: skip
    assert mn1["high"][1] == d1["high"].max() and mn1["tick_volume"][1] == d1["tick_volume"].sum()


def test_new_bars_appear_as_time_passes_and_the_current_one_grows() -> None:
    clock = Clock()
    sim = _sim(clock)
    before = sim.copy_rates_from_pos("EURUSD", C.TIMEFRAME_M1, 0, 3)
    clock.now += 180
    after = sim.copy_rates_from_pos("EURUSD", C.TIMEFRAME_M1, 0, 3)
    assert after["time"][-1] > before["time"][-1] and after["time"][-1] <= clock.now
    assert sim.symbol_info_tick("EURUSD").time <= clock.now
    h1_before = sim.copy_rates_from_pos("EURUSD", C.TIMEFRAME_H1, 0, 1)[0]
    clock.now += 600
    h1_after = sim.copy_rates_from_pos("EURUSD", C.TIMEFRAME_H1, 0, 1)[0]
    assert h1_after["time"] == h1_before["time"]
    assert h1_after["tick_volume"] > h1_before["tick_volume"]


def test_no_bar_shows_a_tick_from_later_in_the_current_second() -> None:
    """At a moment inside a second, a tick later in that second has not come yet: the current
    bar and the day's range are made of the ticks up to now, as symbol_info_tick is (they took
    the whole second, so a bar could close at a price no tick had shown yet)."""
    ticks = _sim().copy_ticks_range("EURUSD", WEDNESDAY_NOON - 600, WEDNESDAY_NOON,
                                     C.COPY_TICKS_ALL)  # fmt: skip
    later = next(t for t in ticks[::-1] if t["time_msc"] % 1000 and t["time"] % 60)
    now_ms = int(later["time_msc"]) - 1  # just before it, in the same second
    sim = _sim(Clock(now_ms / 1000))
    tick = sim.symbol_info_tick("EURUSD")
    assert tick.time_msc < later["time_msc"]
    (bar,) = sim.copy_rates_from_pos("EURUSD", C.TIMEFRAME_M1, 0, 1)
    shown = sim.copy_ticks_range("EURUSD", int(bar["time"]), now_ms / 1000, C.COPY_TICKS_ALL)
    assert bar["tick_volume"] == len(shown) and bar["close"] == tick.bid == shown["bid"][-1]
    midnight = WEDNESDAY_NOON - 12 * 3600
    today = sim.copy_ticks_range("EURUSD", midnight, now_ms / 1000, C.COPY_TICKS_ALL)
    info = sim.symbol_info("EURUSD")
    assert (info.bidhigh, info.bidlow) == (today["bid"].max(), today["bid"].min())


def test_history_years_back_is_the_same_whatever_was_asked_first() -> None:
    start = dt.datetime(2020, 1, 6, tzinfo=dt.UTC)
    end = dt.datetime(2020, 1, 10, 23, 0, tzinfo=dt.UTC)
    a = _sim()
    first = a.copy_rates_range("GBPUSD", C.TIMEFRAME_H1, start, end)
    b = _sim(Clock(WEDNESDAY_NOON + 86_400 * 30))
    b.copy_rates_from_pos("GBPUSD", C.TIMEFRAME_M1, 0, 5000)  # other requests in between
    second = b.copy_rates_range("GBPUSD", C.TIMEFRAME_H1, start, end)
    assert len(first) == 5 * 24 and (first == second).all()
    assert 1.0 < first["close"].mean() < 1.6  # a plausible cable


def test_weekends_are_closed_for_forex_and_open_for_crypto() -> None:
    sim = _sim()
    sat = dt.datetime(2024, 1, 13, tzinfo=dt.UTC)
    sun_end = dt.datetime(2024, 1, 14, 23, 59, tzinfo=dt.UTC)
    assert len(sim.copy_rates_range("EURUSD", C.TIMEFRAME_H1, sat, sun_end)) == 0
    assert len(sim.copy_rates_range("BTCUSD", C.TIMEFRAME_H1, sat, sun_end)) == 48


def test_tick_flags_say_which_price_changed() -> None:
    sim = _sim()
    ticks = sim.copy_ticks_from("EURUSD", WEDNESDAY_NOON - 3600, 500, C.COPY_TICKS_ALL)
    assert len(ticks) == 500 and ticks["time_msc"][0] >= (WEDNESDAY_NOON - 3600) * 1000
    bid_changed = np.diff(ticks["bid"]) != 0
    ask_changed = np.diff(ticks["ask"]) != 0
    flags = ticks["flags"][1:]
    assert ((flags & C.TICK_FLAG_BID != 0) == bid_changed).all()
    assert ((flags & C.TICK_FLAG_ASK != 0) == ask_changed).all()
    info = sim.copy_ticks_from("EURUSD", WEDNESDAY_NOON - 3600, 100, C.COPY_TICKS_INFO)
    assert len(info) == 100
    # CFDs on a demo server have no exchange trades: no LAST/VOLUME ticks.
    assert len(sim.copy_ticks_from("EURUSD", WEDNESDAY_NOON - 3600, 100,
                                   C.COPY_TICKS_TRADE)) == 0  # fmt: skip


def test_symbol_info_has_the_real_record_and_a_demo_servers_specs() -> None:
    sim = _sim()
    assert sim.symbols_total() == 14
    names = {s.name for s in sim.symbols_get()}
    assert {"EURUSD", "GBPUSD", "USDJPY", "EURGBP", "XAUUSD", "US500", "BTCUSD"} <= names
    gold = sim.symbol_info("XAUUSD")
    assert len(gold) == 96 and gold.digits == 2 and gold.trade_contract_size == 100.0
    assert gold.filling_mode == 1 and gold.trade_stops_level == 10
    jpy = sim.symbol_info("USDJPY")
    assert jpy.point == 0.001 and jpy.swap_rollover3days == C.DAY_OF_WEEK_WEDNESDAY
    eur = sim.symbol_info("EURUSD")
    assert eur.bidlow <= eur.bid <= eur.bidhigh and eur.spread == round((eur.ask - eur.bid) * 1e5)
    assert eur.trade_exemode == C.SYMBOL_TRADE_EXECUTION_MARKET


# -- trading ----------------------------------------------------------------------------------


def _wait(clock: Clock, sim: Simulator, done: Any, limit: int = 5 * 86_400) -> None:
    start = clock.now
    while not done():
        clock.now += 30
        sim.symbol_info_tick("EURUSD")
        assert clock.now - start < limit, "the market never got there"


def test_stop_loss_fires_on_the_tick_that_crosses_it() -> None:
    clock = Clock()
    sim = _sim(clock)
    tick = sim.symbol_info_tick("EURUSD")
    sl = round(tick.bid - 0.0003, 5)
    res = _buy(sim, sl=sl, tp=round(tick.bid + 0.05, 5))
    assert res.retcode == C.TRADE_RETCODE_DONE
    _wait(clock, sim, lambda: not sim.positions_get())
    deal = sim.history_deals_get(position=res.order)[-1]
    assert deal.reason == C.DEAL_REASON_SL and deal.entry == C.DEAL_ENTRY_OUT
    crossing = sim.copy_ticks_range("EURUSD", deal.time_msc / 1000, deal.time_msc / 1000,
                                    C.COPY_TICKS_ALL)  # fmt: skip
    assert deal.price == crossing["bid"][-1] <= sl  # at the market, which may gap past the SL
    assert sim.account_info().balance == pytest.approx(10_000 + deal.profit)
    assert sim.history_orders_get(position=res.order)[-1].reason == C.ORDER_REASON_SL


def test_pending_buy_stop_fills_when_the_ask_reaches_it() -> None:
    clock = Clock()
    sim = _sim(clock)
    ask = sim.symbol_info_tick("EURUSD").ask
    price = round(ask + 0.0003, 5)
    placed = sim.order_send({"action": C.TRADE_ACTION_PENDING, "symbol": "EURUSD", "volume": 0.1,
                             "type": C.ORDER_TYPE_BUY_STOP, "price": price})  # fmt: skip
    assert placed.retcode == C.TRADE_RETCODE_PLACED
    _wait(clock, sim, lambda: sim.orders_total() == 0)
    (pos,) = sim.positions_get()
    assert pos.ticket == placed.order and pos.price_open >= price
    assert sim.history_orders_get(ticket=placed.order)[0].state == C.ORDER_STATE_FILLED


def _pending(sim: Simulator, kind: int, price: float, **extra: Any) -> Any:
    return sim.order_send({"action": C.TRADE_ACTION_PENDING, "symbol": "EURUSD", "volume": 0.1,
                           "type": kind, "price": round(price, 5), **extra})  # fmt: skip


def test_a_stop_limit_places_its_limit_when_the_stop_is_reached() -> None:
    clock = Clock()
    sim = _sim(clock)
    ask = sim.symbol_info_tick("EURUSD").ask
    wrong = _pending(sim, C.ORDER_TYPE_BUY_STOP_LIMIT, ask + 0.0003, stoplimit=ask + 0.0005)
    assert wrong.retcode == C.TRADE_RETCODE_INVALID_PRICE  # its limit above its stop
    placed = _pending(sim, C.ORDER_TYPE_BUY_STOP_LIMIT, ask + 0.0003,
                      stoplimit=round(ask + 0.0001, 5))  # fmt: skip
    assert placed.retcode == C.TRADE_RETCODE_PLACED
    _wait(clock, sim, lambda: not sim.orders_get(ticket=placed.order))
    stop = sim.history_orders_get(ticket=placed.order)[0]
    assert stop.state == C.ORDER_STATE_FILLED and stop.price_stoplimit == round(ask + 0.0001, 5)
    (limit,) = sim.orders_get() or sim.history_orders_get(0, 2e9)[-1:]
    assert limit.type == C.ORDER_TYPE_BUY_LIMIT and limit.price_open == stop.price_stoplimit


def test_pending_orders_expire_as_their_type_time_says() -> None:
    clock = Clock()
    sim = _sim(clock)
    far = sim.symbol_info_tick("EURUSD").ask + 0.05
    day = _pending(sim, C.ORDER_TYPE_BUY_STOP, far, type_time=C.ORDER_TIME_DAY)
    soon = _pending(sim, C.ORDER_TYPE_BUY_STOP, far, type_time=C.ORDER_TIME_SPECIFIED,
                    expiration=int(clock.now) + 600)  # fmt: skip
    past = _pending(sim, C.ORDER_TYPE_BUY_STOP, far, type_time=C.ORDER_TIME_SPECIFIED,
                    expiration=int(clock.now) - 1)  # fmt: skip
    assert past.retcode == C.TRADE_RETCODE_INVALID_EXPIRATION
    assert sim.orders_get(ticket=soon.order)[0].time_expiration == int(clock.now) + 600
    clock.now += 900
    assert [o.ticket for o in sim.orders_get()] == [day.order]
    expired = sim.history_orders_get(ticket=soon.order)[0]
    assert expired.state == C.ORDER_STATE_EXPIRED and expired.time_done == expired.time_expiration
    clock.now += 86_400  # past midnight
    assert sim.orders_total() == 0
    assert sim.history_orders_get(ticket=day.order)[0].state == C.ORDER_STATE_EXPIRED


def test_hedging_keeps_both_sides_netting_nets_and_reverses() -> None:
    hedge = _sim()
    _buy(hedge, volume=1.0)
    _sell(hedge, volume=0.4)
    assert sorted(p.type for p in hedge.positions_get()) == [0, 1]
    net = _sim(margin_mode=C.ACCOUNT_MARGIN_MODE_RETAIL_NETTING)
    assert net.account_info().margin_mode == C.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
    first = _buy(net, volume=1.0)
    _sell(net, volume=0.4)
    (pos,) = net.positions_get()
    assert pos.type == C.POSITION_TYPE_BUY and pos.volume == pytest.approx(0.6)
    _sell(net, volume=1.0)
    (pos,) = net.positions_get()
    assert pos.type == C.POSITION_TYPE_SELL and pos.volume == pytest.approx(0.4)
    assert pos.identifier == first.order
    entries = [d.entry for d in net.history_deals_get(position=first.order)]
    assert entries == [C.DEAL_ENTRY_IN, C.DEAL_ENTRY_OUT, C.DEAL_ENTRY_INOUT]


def test_partial_close_and_close_by() -> None:
    sim = _sim()
    long = _buy(sim, volume=1.0)
    closed = _sell(sim, volume=0.3, position=long.order)
    assert closed.retcode == C.TRADE_RETCODE_DONE
    assert sim.positions_get(ticket=long.order)[0].volume == pytest.approx(0.7)
    too_much = _sell(sim, volume=0.8, position=long.order)
    assert too_much.retcode == C.TRADE_RETCODE_INVALID_CLOSE_VOLUME
    short = _sell(sim, volume=0.7)
    by = sim.order_send({"action": C.TRADE_ACTION_CLOSE_BY, "position": long.order,
                         "position_by": short.order})  # fmt: skip
    assert by.retcode == C.TRADE_RETCODE_DONE and sim.positions_total() == 0
    outs = [d for d in sim.history_deals_get(0, 2e9) if d.entry == C.DEAL_ENTRY_OUT_BY]
    assert len(outs) == 2


def test_calc_margin_and_profit_agree_with_what_order_send_does() -> None:
    clock = Clock()
    sim = _sim(clock)
    for symbol in ("EURUSD", "USDJPY", "EURGBP", "XAUUSD", "US500", "BTCUSD"):
        info = sim.symbol_info(symbol)
        volume = info.volume_min * 10
        tick = sim.symbol_info_tick(symbol)
        expected = sim.order_calc_margin(C.ORDER_TYPE_BUY, symbol, volume, tick.ask)
        before = sim.account_info().margin
        filling = C.ORDER_FILLING_FOK if info.filling_mode & 1 else C.ORDER_FILLING_IOC
        opened = _buy(sim, symbol, volume, type_filling=filling, price=tick.ask)
        assert opened.retcode == C.TRADE_RETCODE_DONE, (symbol, opened.comment)
        assert sim.account_info().margin - before == pytest.approx(expected, abs=0.02), symbol
        clock.now += 300
        closed = _sell(sim, symbol, volume, position=opened.order, type_filling=filling,
                       price=sim.symbol_info_tick(symbol).bid)  # fmt: skip
        calc = sim.order_calc_profit(C.ORDER_TYPE_BUY, symbol, volume, opened.price, closed.price)
        deal = sim.history_deals_get(ticket=closed.deal)[0]
        assert deal.profit == pytest.approx(calc, abs=0.01), symbol


def test_filling_type_the_symbol_lacks_is_refused() -> None:
    sim = _sim()
    assert _buy(sim, "XAUUSD", 0.01, type_filling=C.ORDER_FILLING_IOC).retcode == 10030
    assert _buy(sim, "BTCUSD", 0.01, type_filling=C.ORDER_FILLING_FOK).retcode == 10030
    assert _buy(sim, "BTCUSD", 0.01, type_filling=C.ORDER_FILLING_IOC).retcode == 10009
    refused = _buy(sim, "XAUUSD", 0.01, type_filling=C.ORDER_FILLING_IOC)
    assert refused.comment == "Unsupported filling mode"


def test_instant_execution_requotes_a_stale_price() -> None:
    clock = Clock()
    sim = _sim(clock)
    info = sim.symbol_info("EURGBP")
    assert info.trade_exemode == C.SYMBOL_TRADE_EXECUTION_INSTANT and info.filling_mode == 1
    stale = sim.symbol_info_tick("EURGBP")
    assert _buy(sim, "EURGBP", 0.1).retcode == C.TRADE_RETCODE_INVALID_PRICE  # no price
    while sim.symbol_info_tick("EURGBP").ask == stale.ask:
        clock.now += 60
    moved = abs(sim.symbol_info_tick("EURGBP").ask - stale.ask) / info.point
    requote = _buy(sim, "EURGBP", 0.1, price=stale.ask, deviation=int(moved) - 1)
    assert requote.retcode == C.TRADE_RETCODE_REQUOTE and requote.comment == "Requote"
    assert requote.ask == sim.symbol_info_tick("EURGBP").ask  # the new price comes back
    done = _buy(sim, "EURGBP", 0.1, price=stale.ask, deviation=int(moved) + 1)
    assert done.retcode == C.TRADE_RETCODE_DONE and done.price == requote.ask


def test_stops_level_and_market_hours() -> None:
    clock = Clock()
    sim = _sim(clock)
    tick = sim.symbol_info_tick("XAUUSD")  # stops level 10 points
    near = _buy(sim, "XAUUSD", 0.01, sl=round(tick.bid - 0.05, 2))
    assert near.retcode == C.TRADE_RETCODE_INVALID_STOPS
    clock.now = dt.datetime(2024, 1, 20, 12, tzinfo=dt.UTC).timestamp()  # a Saturday
    assert _buy(sim).retcode == C.TRADE_RETCODE_MARKET_CLOSED
    assert _buy(sim, "BTCUSD", 0.01, type_filling=C.ORDER_FILLING_IOC).retcode == 10009


def test_swaps_accrue_at_rollover_triple_after_wednesday() -> None:
    clock = Clock()  # Wednesday noon
    sim = _sim(clock)
    opened = _buy(sim, volume=1.0)  # EURUSD: swap_long -7.2 points
    clock.now += 12 * 3600 - 1
    assert sim.positions_get()[0].swap == 0.0  # before the first rollover
    clock.now += 36 * 3600  # past Thursday 00:00 (x3, the weekend's) and Friday 00:00
    (pos,) = sim.positions_get()
    assert pos.swap == pytest.approx(-7.2 * 4)
    account = sim.account_info()
    assert account.equity == pytest.approx(account.balance + pos.profit + pos.swap, abs=0.011)
    half = _sell(sim, volume=0.5, position=opened.order)
    deal = sim.history_deals_get(ticket=half.deal)[0]
    assert deal.swap == pytest.approx(-14.4)
    assert sim.positions_get()[0].swap == pytest.approx(-14.4)
    assert sim.account_info().balance == pytest.approx(10_000 + deal.profit + deal.swap)


def test_stop_out_closes_the_worst_position_below_the_level() -> None:
    clock = Clock()
    sim = _sim(clock, balance=1_000.0, leverage=500)
    # Where EURUSD goes in the next days (the same seed is the same market): bet against it.
    later = _sim(Clock(WEDNESDAY_NOON + 14 * 86_400)).symbol_info_tick("EURUSD").bid
    losing = _sell if later > sim.symbol_info_tick("EURUSD").bid else _buy
    # 1000 USD at 1:500 carries about 4.6 lots of EURUSD: a 0.2% move takes most of it.
    big = losing(sim, volume=4.4)
    small = _buy(sim, "USDJPY", 0.01)
    assert big.retcode == small.retcode == C.TRADE_RETCODE_DONE
    while sim.positions_total() == 2:
        clock.now += 1800
        assert clock.now < WEDNESDAY_NOON + 14 * 86_400, "the market never got there"
    deal = sim.history_deals_get(position=big.order)[-1]
    assert deal.reason == C.DEAL_REASON_SO and deal.profit < 0
    assert [p.ticket for p in sim.positions_get()] == [small.order]
    assert sim.account_info().margin_level >= 30.0


def test_history_opens_with_the_deposit() -> None:
    (deposit,) = _sim().history_deals_get(0, 2e9)
    assert deposit.type == C.DEAL_TYPE_BALANCE and deposit.profit == 10_000.0


# -- depth, errors, replay --------------------------------------------------------------------


def test_market_depth_moves_with_the_price() -> None:
    clock = Clock()
    sim = _sim(clock)
    assert sim.market_book_get("EURUSD") is None  # not subscribed
    assert sim.market_book_add("EURUSD") is True
    book = sim.market_book_get("EURUSD")
    tick = sim.symbol_info_tick("EURUSD")
    sells = [b for b in book if b.type == C.BOOK_TYPE_SELL]
    buys = [b for b in book if b.type == C.BOOK_TYPE_BUY]
    assert len(sells) == len(buys) == 10 and type(book[0]).__name__ == "BookInfo"
    assert [b.price for b in book] == sorted((b.price for b in book), reverse=True)
    assert sells[-1].price == tick.ask and buys[0].price == tick.bid
    clock.now += 3600
    later = sim.market_book_get("EURUSD")
    assert later != book and later[10].price == sim.symbol_info_tick("EURUSD").bid
    assert sim.market_book_release("EURUSD") is True
    assert sim.market_book_get("EURUSD") is None


def test_errors_are_the_packages() -> None:
    sim = Simulator(SimulatorConfig(login=1, password="pw", server="S"), clock=Clock())
    assert sim.account_info() is None and sim.last_error() == (-10004, "No IPC connection")
    assert sim.initialize(login=1, password="bad", server="S") is False
    assert sim.last_error() == (-6, "Terminal: Authorization failed")
    assert sim.initialize(login="1") is False
    assert sim.last_error() == (-2, 'Invalid "login" argument')
    assert sim.initialize(login=1, password="pw", server="S") is True
    assert sim.last_error() == (1, "Success")
    assert sim.symbol_info("NOPE") is None and sim.last_error() == (-1, "Terminal: Call failed")
    assert sim.copy_rates_from_pos("EURUSD", 7, 0, 10) is None
    assert sim.last_error() == (-2, "Invalid 2nd unnamed argument")
    assert sim.order_send({"action": 1, "symbol": 5}) is None
    assert sim.last_error() == (-2, 'Invalid "symbol" argument')
    assert sim.order_send({"action": 1, "symbol": "EURUSD", "volume": "1"}) is None
    assert sim.last_error() == (-2, 'Invalid "volume" argument')
    assert sim.positions_get("EURUSD") is None
    assert sim.last_error() == (-2, "Unnamed arguments not allowed")


def test_hostile_requests_are_bounded_and_refused_cleanly() -> None:
    sim = _sim()
    week_ago = WEDNESDAY_NOON - 7 * 86_400
    assert len(sim.copy_ticks_from("EURUSD", week_ago, 10**12, C.COPY_TICKS_ALL)) <= 1_000_000
    bars = sim.copy_rates_range("EURUSD", C.TIMEFRAME_M1, 0, 2**36)
    assert len(bars) == 100_000 and bars["time"][-1] <= WEDNESDAY_NOON
    assert sim.copy_ticks_range("EURUSD", 0, 2**36, C.COPY_TICKS_ALL) is None  # over a month
    for bad in (float("nan"), float("inf"), -1, 2**80, "2024-01-01", None, True):
        assert sim.copy_rates_from("EURUSD", C.TIMEFRAME_M1, bad, 10) is None, bad
        assert sim.last_error()[0] == C.RES_E_INVALID_PARAMS
        assert sim.copy_ticks_from("EURUSD", bad, 10, C.COPY_TICKS_ALL) is None, bad
    for count in (0, -5, 1.5, "10", None):
        assert sim.copy_rates_from_pos("EURUSD", C.TIMEFRAME_M1, 0, count) is None, count
    assert sim.copy_ticks_from("EURUSD", week_ago, 10, 12345) is None
    assert sim.last_error() == (-2, "Invalid arguments")
    assert sim.order_send([("action", 1)]) is None
    assert sim.last_error() == (-2, "Invalid arguments")
    assert sim.order_send({"action": 99, "symbol": "EURUSD"}).retcode == C.TRADE_RETCODE_INVALID
    huge = {"action": 1, "symbol": "EURUSD", "volume": 1e300, "type": 0}
    assert sim.order_send(huge).retcode == C.TRADE_RETCODE_INVALID_VOLUME
    nan = {"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "sl": float("nan")}
    assert sim.order_send(nan) is None and sim.last_error() == (-2, 'Invalid "sl" argument')
    assert sim.positions_total() == 0


def test_a_refused_login_keeps_the_terminal_on_its_account() -> None:
    sim = _sim()
    assert sim.login(1001, password="wrong", server="Sim") is False
    assert sim.account_info() is not None


def _tick_export(path: Path, start: dt.datetime, n: int) -> list[float]:
    lines = ["<DATE>\t<TIME>\t<BID>\t<ASK>\t<LAST>\t<VOLUME>\t<FLAGS>"]
    bids = [round(1.1 + 0.0001 * ((i * 7) % 13), 5) for i in range(n)]
    for i, bid in enumerate(bids):
        t = start + dt.timedelta(seconds=5 * i, milliseconds=120)
        lines.append(f"{t:%Y.%m.%d}\t{t:%H:%M:%S}.{t.microsecond // 1000:03d}\t{bid:.5f}\t"
                     f"{bid + 0.0001:.5f}\t\t\t6")  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return bids


def test_replay_feeds_recorded_ticks_in_metatrader_export_format(tmp_path: Path) -> None:
    csv = tmp_path / "EURUSD_ticks.csv"
    start = dt.datetime(2023, 3, 1, 10, 0, tzinfo=dt.UTC)
    bids = _tick_export(csv, start, 240)  # 20 minutes of ticks
    clock = Clock(1_000_000.0)
    sim = _sim(clock, csv_bars={"EURUSD": csv}, speed=60.0)
    # The simulated time starts at the first recorded tick.
    assert sim.symbol_info_tick("EURUSD").bid == bids[0]
    clock.now += 5  # five wall seconds at 60x: five simulated minutes
    tick = sim.symbol_info_tick("EURUSD")
    assert tick.bid == bids[60] and tick.time == int(start.timestamp()) + 300
    m1 = sim.copy_rates_from_pos("EURUSD", C.TIMEFRAME_M1, 0, 100)
    assert len(m1) == 6 and m1["tick_volume"][0] == 12
    assert m1["high"][0] == max(bids[:12]) and m1["close"][0] == bids[11]
    assert sim.symbol_info_tick("GBPUSD").time <= tick.time  # the others follow the same clock


def test_replay_accepts_a_bar_export_and_refuses_bad_files(tmp_path: Path) -> None:
    bars = tmp_path / "bars.csv"
    bars.write_text("<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
                    "2023.03.01\t10:00:00\t1.1\t1.2\t1.0\t1.15\t10\t0\t8\n"
                    "2023.03.01\t10:01:00\t1.15\t1.16\t1.14\t1.155\t10\t0\t8\n")  # fmt: skip
    sim = _sim(Clock(1_000_000.0), csv_bars={"EURUSD": bars}, time_origin=1677665000.0)
    (m1a, m1b) = sim.copy_rates_from_pos("EURUSD", C.TIMEFRAME_M1, 0, 10)
    assert (m1a["open"], m1a["high"], m1a["low"], m1a["close"]) == (1.1, 1.2, 1.0, 1.15)
    assert m1b["close"] == 1.155
    bad = tmp_path / "bad.csv"
    bad.write_text("time,open\n1,2\n")
    with pytest.raises(ValueError, match="lacks column"):
        _sim(csv_bars={"EURUSD": bad})
    worse = tmp_path / "worse.csv"
    worse.write_text("<DATE>\t<TIME>\t<BID>\t<ASK>\n2023.03.01\tnoon\t1\t2\n")
    with pytest.raises(ValueError, match="row 2"):
        _sim(csv_bars={"EURUSD": worse})
