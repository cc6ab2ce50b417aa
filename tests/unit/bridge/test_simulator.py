from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mt5bridge import constants as C
from mt5bridge.simulator import Simulator, SimulatorConfig


class Clock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _sim(clock: Clock | None = None, **kw: object) -> Simulator:
    sim = Simulator(
        SimulatorConfig(login=1001, password="pw", server="Sim", **kw),  # type: ignore[arg-type]
        clock=clock or Clock(),
    )
    assert sim.initialize(login=1001, password="pw", server="Sim")
    return sim


def test_same_seed_same_market_other_seed_other_market() -> None:
    a = _sim().copy_rates_from_pos("EURUSD", C.TIMEFRAME_M5, 0, 50)
    b = _sim().copy_rates_from_pos("EURUSD", C.TIMEFRAME_M5, 0, 50)
    c = _sim(seed=2).copy_rates_from_pos("EURUSD", C.TIMEFRAME_M5, 0, 50)
    assert (a == b).all() and not (a["close"] == c["close"]).all()


def test_live_price_moves_with_time_only() -> None:
    clock = Clock()
    sim = _sim(clock)
    t1, t2 = sim.symbol_info_tick("EURUSD"), sim.symbol_info_tick("EURUSD")
    assert t1 == t2
    clock.now += 5
    assert sim.symbol_info_tick("EURUSD").bid != t1.bid


def test_stop_loss_closes_the_position_at_its_price() -> None:
    clock = Clock()
    sim = _sim(clock)
    tick = sim.symbol_info_tick("EURUSD")
    sl = round(tick.bid - 0.00001, 5)
    res = sim.order_send(
        {
            "action": C.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 1.0,
            "type": C.ORDER_TYPE_BUY,
            "sl": sl,
            "tp": round(tick.bid + 1, 5),
        }
    )
    assert res.retcode == C.TRADE_RETCODE_DONE
    for _ in range(600):
        clock.now += 1
        sim.symbol_info_tick("EURUSD")
        if not sim.positions_get():
            break
    assert sim.positions_total() == 0
    deal = sim.history_deals_get(position=res.order)[-1]
    assert deal.reason == C.DEAL_REASON_SL and deal.price == sl
    assert sim.account_info().balance == pytest.approx(10_000 + deal.profit)


def test_pending_buy_stop_fills_when_price_reaches_it() -> None:
    clock = Clock()
    sim = _sim(clock)
    ask = sim.symbol_info_tick("EURUSD").ask
    placed = sim.order_send(
        {
            "action": C.TRADE_ACTION_PENDING,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": C.ORDER_TYPE_BUY_STOP,
            "price": round(ask + 0.00002, 5),
        }
    )
    assert placed.retcode == C.TRADE_RETCODE_PLACED
    while sim.orders_total():
        clock.now += 1
        sim.symbol_info_tick("EURUSD")
        assert clock.now < 1_700_100_000, "price never reached the stop"
    (pos,) = sim.positions_get()
    assert pos.ticket == placed.order and pos.price_open == round(ask + 0.00002, 5)
    assert sim.history_orders_get(ticket=placed.order)[0].state == C.ORDER_STATE_FILLED


def test_margin_and_profit_convert_to_account_currency() -> None:
    sim = _sim()
    jpy_bid = sim.symbol_info_tick("USDJPY").bid
    assert sim.order_calc_margin(C.ORDER_TYPE_BUY, "USDJPY", 1.0, jpy_bid) == 1000.0
    profit = sim.order_calc_profit(C.ORDER_TYPE_SELL, "USDJPY", 1.0, 150.0, 149.0)
    assert profit == pytest.approx(100_000 / jpy_bid, abs=0.01)  # account money: cents


def test_csv_bars_feed_rates_resampling_and_live_price(tmp_path: Path) -> None:
    csv = tmp_path / "eurusd.csv"
    rows = ["time,open,high,low,close,tick_volume", "2024.01.02 10:00:00,1.1,1.2,1.0,1.1,0"]
    start = 1_704_189_600  # 2024-01-02 10:00 UTC, as the first row says in MetaTrader's form
    for i in range(1, 120):
        rows.append(f"{start + 60 * i},1.1,1.2,1.0,{1.1 + i / 10000:.5f},{i}")
    csv.write_text("\n".join(rows) + "\n")
    sim = _sim(csv_bars={"EURUSD": csv})
    m1 = sim.copy_rates_from_pos("EURUSD", C.TIMEFRAME_M1, 0, 500)
    assert len(m1) == 120 and m1["close"][-1] == pytest.approx(1.1119)
    h1 = sim.copy_rates_from_pos("EURUSD", C.TIMEFRAME_H1, 0, 10)
    assert len(h1) == 2 and h1["tick_volume"][0] == sum(range(60))
    assert sim.symbol_info_tick("EURUSD").bid == pytest.approx(1.1119)
    assert isinstance(m1, np.ndarray)


def test_csv_without_required_columns_is_refused(tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("time,open\n1,2\n")
    with pytest.raises(ValueError, match="lacks column"):
        _sim(csv_bars={"EURUSD": csv})
