"""Every exposed call, client and simulator server in separate processes over TCP on 127.0.0.1.

That server runs on the wall clock, where forex does not trade on Saturday and Sunday (UTC): the
trading tests run on a server in this process whose simulator starts on a Wednesday, and
test_market_hours_on_the_wall_clock checks the wall-clock server against the rule."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator

import mt5bridge.client as mt5
import mt5bridge.remote as remote
import numpy as np
import pytest
import rpyc
from conftest import (
    SATURDAY_NOON,
    SIM_LOGIN,
    SIM_PASSWORD,
    SIM_SERVER,
    WEDNESDAY_NOON,
    RunningServer,
    serve_simulator_at,
)
from mt5bridge.errors import NotExposedError
from mt5bridge.handshake import client_handshake

pytestmark = pytest.mark.integration


@pytest.fixture
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    return start_server()


@pytest.fixture
def bridge(server: RunningServer) -> Iterator[remote.Bridge]:
    b = remote.Bridge("127.0.0.1", server.port)
    yield b
    b.close()


@pytest.fixture
def session(bridge: remote.Bridge) -> remote.Bridge:
    assert bridge.initialize(login=SIM_LOGIN, password=SIM_PASSWORD, server=SIM_SERVER) is True
    return bridge


def _session_at(start: float) -> Iterator[remote.Bridge]:
    with serve_simulator_at(start) as port:
        b = remote.Bridge("127.0.0.1", port)
        try:
            assert b.initialize(login=SIM_LOGIN, password=SIM_PASSWORD, server=SIM_SERVER)
            yield b
        finally:
            b.close()


@pytest.fixture
def trading() -> Iterator[remote.Bridge]:
    """A session on a simulator that starts on a Wednesday noon: EURUSD trades whatever day the
    tests run (the wall-clock server's market hours are test_market_hours_on_the_wall_clock's)."""
    yield from _session_at(WEDNESDAY_NOON)


def test_calls_before_initialize_fail_with_no_ipc(bridge: remote.Bridge) -> None:
    assert bridge.account_info() is None
    assert bridge.last_error()[0] == mt5.RES_E_INTERNAL_FAIL_CONNECT


@pytest.mark.parametrize(
    ("login", "password", "server_name"),
    [
        (SIM_LOGIN, "wrong-password", SIM_SERVER),
        (SIM_LOGIN + 1, SIM_PASSWORD, SIM_SERVER),
        (SIM_LOGIN, SIM_PASSWORD, "Other-Server"),
    ],
)
def test_bad_credentials_are_refused(
    bridge: remote.Bridge, login: int, password: str, server_name: str
) -> None:
    assert bridge.initialize(login=login, password=password, server=server_name) is False
    assert bridge.last_error() == (mt5.RES_E_AUTH_FAILED, "Terminal: Authorization failed")


def test_initialize_login_version_terminal_shutdown(session: remote.Bridge) -> None:
    assert session.login(SIM_LOGIN, password=SIM_PASSWORD, server=SIM_SERVER) is True
    assert session.login(SIM_LOGIN, password="nope", server=SIM_SERVER) is False
    assert session.last_error()[0] == mt5.RES_E_AUTH_FAILED
    assert session.login(SIM_LOGIN, password=SIM_PASSWORD, server=SIM_SERVER) is True
    version = session.version()
    assert isinstance(version, tuple) and version[0] == 500
    info = session.terminal_info()
    assert type(info).__name__ == "TerminalInfo" and info.connected is True
    assert info._asdict()["name"] == "mt5bridge simulator"
    session.shutdown()
    assert session.version() is None
    assert session.last_error()[0] == mt5.RES_E_INTERNAL_FAIL_CONNECT


def test_account_info_crosses_as_named_tuple(session: remote.Bridge) -> None:
    account = session.account_info()
    assert type(account).__name__ == "AccountInfo"
    assert (account.login, account.server, account.balance) == (SIM_LOGIN, SIM_SERVER, 10000.0)
    assert account.equity == account.balance and account.margin == 0.0
    assert not isinstance(account, rpyc.BaseNetref)


def test_symbols(session: remote.Bridge) -> None:
    assert session.symbols_total() == 14
    eur = session.symbols_get(group="EUR*,!*JPY")
    assert {s.name for s in eur} == {"EURUSD", "EURGBP", "EURCAD"}
    info = session.symbol_info("EURUSD")
    assert info.digits == 5 and info.volume_min == 0.01 and info.ask > info.bid
    assert session.symbol_select("EURUSD", False) is True
    assert session.symbol_info("EURUSD").select is False
    tick = session.symbol_info_tick("EURUSD")
    assert type(tick).__name__ == "Tick" and tick.ask > tick.bid > 0


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda b: b.symbol_info("NOPE"), (-1, "Terminal: Call failed")),
        (lambda b: b.symbol_info_tick("NOPE"), (-1, "Terminal: Call failed")),
        (
            lambda b: b.copy_rates_from_pos("NOPE", mt5.TIMEFRAME_M1, 0, 10),
            (-2, "Terminal: Invalid params"),
        ),
        (
            lambda b: b.copy_ticks_from("NOPE", 0, 10, mt5.COPY_TICKS_ALL),
            (-2, "Terminal: Invalid params"),
        ),
    ],
)
def test_unknown_symbol(
    session: remote.Bridge, call: Callable[[remote.Bridge], object], error: tuple[int, str]
) -> None:
    assert call(session) is None
    assert session.last_error() == error


def test_unknown_symbol_in_select_returns_false(session: remote.Bridge) -> None:
    assert session.symbol_select("NOPE", True) is False


def _steps_or_weekend(times: np.ndarray, step: int) -> None:
    """Bars follow one another by ``step`` seconds, except across a weekend: EURUSD does not
    trade on Saturday and Sunday, so the last bars before "now" on a Monday start on Friday."""
    assert len(times) > 1
    for before, after in zip(times[:-1].tolist(), times[1:].tolist(), strict=True):
        if after - before == step:
            continue
        b = dt.datetime.fromtimestamp(before, dt.UTC)
        a = dt.datetime.fromtimestamp(after, dt.UTC)
        assert (b.weekday(), a.weekday()) == (4, 0) and (a - b).days <= 3, (b, a)


def test_rates_cross_as_one_structured_array(session: remote.Bridge) -> None:
    rates = session.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M1, 0, 1000)
    assert isinstance(rates, np.ndarray) and rates.shape == (1000,)
    assert rates.dtype.names == (
        "time",
        "open",
        "high",
        "low",
        "close",
        "tick_volume",
        "spread",
        "real_volume",
    )
    _steps_or_weekend(rates["time"], 60)
    assert (rates["high"] >= rates["low"]).all()
    rates[0]["close"] = 0.0  # writable, as MetaTrader5's arrays are
    last = int(rates["time"][-1])
    frm = session.copy_rates_from("EURUSD", mt5.TIMEFRAME_M1, last, 10)
    assert len(frm) == 10 and int(frm["time"][-1]) == last
    start = dt.datetime.fromtimestamp(last - 600, dt.UTC)
    rng = session.copy_rates_range("EURUSD", mt5.TIMEFRAME_M1, start, last)
    assert len(rng) == int(((rates["time"] >= last - 600) & (rates["time"] <= last)).sum())
    assert rng["time"].tolist() == [t for t in rates["time"].tolist() if t >= last - 600]
    h1 = session.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_H1, 0, 24)
    _steps_or_weekend(h1["time"], 3600)
    assert session.copy_rates_from_pos("EURUSD", 7, 0, 10) is None
    assert session.last_error()[0] == mt5.RES_E_INVALID_PARAMS


def test_ticks(session: remote.Bridge) -> None:
    rates = session.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M1, 0, 10)
    start = int(rates["time"][0])
    ticks = session.copy_ticks_from("EURUSD", start, 25, mt5.COPY_TICKS_ALL)
    assert len(ticks) == 25 and "time_msc" in ticks.dtype.names
    assert (ticks["ask"] > ticks["bid"]).all()
    ranged = session.copy_ticks_range("EURUSD", start, start + 59.999, mt5.COPY_TICKS_ALL)
    assert len(ranged) == int(rates["tick_volume"][0]) and (ranged["time"] < start + 60).all()


def test_market_order_partial_close_and_history(trading: remote.Bridge) -> None:
    opened = trading.order_send(
        {
            "action": mt5.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 0.3,
            "type": mt5.ORDER_TYPE_BUY,
            "magic": 7,
            "comment": "t",
        }
    )
    assert opened.retcode == mt5.TRADE_RETCODE_DONE and opened.volume == 0.3
    assert type(opened.request).__name__ == "TradeRequest" and opened.request.magic == 7
    assert trading.positions_total() == 1
    (pos,) = trading.positions_get(symbol="EURUSD")
    assert pos.volume == 0.3 and pos.ticket == opened.order
    assert trading.account_info().margin > 0
    partial = trading.order_send(
        {
            "action": mt5.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": mt5.ORDER_TYPE_SELL,
            "position": pos.ticket,
        }
    )
    assert partial.retcode == mt5.TRADE_RETCODE_DONE
    assert trading.positions_get(ticket=pos.ticket)[0].volume == pytest.approx(0.2)
    trading.order_send(
        {
            "action": mt5.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 0.2,
            "type": mt5.ORDER_TYPE_SELL,
            "position": pos.ticket,
        }
    )
    assert trading.positions_total() == 0
    deals = trading.history_deals_get(position=pos.ticket)
    assert [d.entry for d in deals] == [mt5.DEAL_ENTRY_IN, mt5.DEAL_ENTRY_OUT, mt5.DEAL_ENTRY_OUT]
    account = trading.account_info()
    assert account.balance == pytest.approx(10000.0 + sum(d.profit for d in deals))
    assert account.equity == account.balance and account.margin == 0.0
    far = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    assert trading.history_deals_total(0, far) == 4  # and the account's deposit
    assert trading.history_orders_total(0, far) == 3
    assert len(trading.history_orders_get(0, far, group="EUR*")) == 3
    assert trading.history_orders_get(ticket=pos.ticket)[0].state == mt5.ORDER_STATE_FILLED


def test_invalid_volume_is_refused_with_the_trade_retcode(session: remote.Bridge) -> None:
    for volume in (0.0, 0.015, 1000.0):
        request = {
            "action": mt5.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": volume,
            "type": mt5.ORDER_TYPE_BUY,
        }
        result = session.order_send(request)
        assert result.retcode == mt5.TRADE_RETCODE_INVALID_VOLUME, volume
        assert session.order_check(request).retcode == mt5.TRADE_RETCODE_INVALID_VOLUME
    assert session.positions_total() == 0


def test_other_bad_trade_requests(trading: remote.Bridge) -> None:
    tick = trading.symbol_info_tick("EURUSD")
    base = {
        "action": mt5.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": mt5.ORDER_TYPE_BUY,
    }
    assert trading.order_send({**base, "symbol": "NOPE"}).retcode == mt5.TRADE_RETCODE_INVALID
    bad_sl = {**base, "sl": tick.ask + 0.01}
    assert trading.order_send(bad_sl).retcode == mt5.TRADE_RETCODE_INVALID_STOPS
    assert trading.order_send({**base, "volume": 90.0}).retcode == mt5.TRADE_RETCODE_NO_MONEY
    gone = {**base, "type": mt5.ORDER_TYPE_SELL, "position": 424242}
    assert trading.order_send(gone).retcode == mt5.TRADE_RETCODE_POSITION_CLOSED
    assert trading.order_send("not a dict") is None
    assert trading.last_error()[0] == mt5.RES_E_INVALID_PARAMS


def test_pending_order_lifecycle(trading: remote.Bridge) -> None:
    tick = trading.symbol_info_tick("EURUSD")
    request = {
        "action": mt5.TRADE_ACTION_PENDING,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": mt5.ORDER_TYPE_BUY_LIMIT,
        "price": round(tick.ask - 0.01, 5),
        "sl": round(tick.ask - 0.02, 5),
        "tp": round(tick.ask + 0.02, 5),
    }
    wrong_side = {**request, "price": round(tick.ask + 0.01, 5), "sl": 0.0, "tp": 0.0}
    assert trading.order_send(wrong_side).retcode == mt5.TRADE_RETCODE_INVALID_PRICE
    placed = trading.order_send(request)
    assert placed.retcode == mt5.TRADE_RETCODE_PLACED
    assert trading.orders_total() == 1
    (order,) = trading.orders_get(symbol="EURUSD")
    assert order.state == mt5.ORDER_STATE_PLACED and order.price_open == request["price"]
    assert trading.orders_get(group="GBP*") == ()
    moved = trading.order_send(
        {
            "action": mt5.TRADE_ACTION_MODIFY,
            "order": order.ticket,
            "price": round(tick.ask - 0.015, 5),
            "sl": 0.0,
            "tp": 0.0,
        }
    )
    assert moved.retcode == mt5.TRADE_RETCODE_DONE
    assert trading.orders_get(ticket=order.ticket)[0].price_open == round(tick.ask - 0.015, 5)
    removed = trading.order_send({"action": mt5.TRADE_ACTION_REMOVE, "order": order.ticket})
    assert removed.retcode == mt5.TRADE_RETCODE_DONE and trading.orders_total() == 0
    assert trading.history_orders_get(ticket=order.ticket)[0].state == mt5.ORDER_STATE_CANCELED


def test_sltp_check_and_calc(trading: remote.Bridge) -> None:
    opened = trading.order_send(
        {
            "action": mt5.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 1.0,
            "type": mt5.ORDER_TYPE_BUY,
        }
    )
    tick = trading.symbol_info_tick("EURUSD")
    sltp = {
        "action": mt5.TRADE_ACTION_SLTP,
        "position": opened.order,
        "sl": round(tick.bid - 0.01, 5),
        "tp": round(tick.bid + 0.01, 5),
    }
    assert trading.order_send(sltp).retcode == mt5.TRADE_RETCODE_DONE
    assert trading.positions_get()[0].sl == sltp["sl"]
    check = trading.order_check(
        {
            "action": mt5.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 1.0,
            "type": mt5.ORDER_TYPE_SELL,
        }
    )
    assert check.retcode == 0 and check.comment == "Done"
    assert check.margin > trading.account_info().margin
    margin = trading.order_calc_margin(mt5.ORDER_TYPE_BUY, "EURUSD", 1.0, 1.1)
    assert margin == pytest.approx(1100.0)  # 100,000 EUR / 100 leverage at 1.1 USD per EUR
    profit = trading.order_calc_profit(mt5.ORDER_TYPE_BUY, "EURUSD", 1.0, 1.1, 1.101)
    assert profit == pytest.approx(100.0)
    assert trading.order_calc_margin(mt5.ORDER_TYPE_BUY, "NOPE", 1.0, 1.1) is None


def _deal(symbol: str, **extra: object) -> dict[str, object]:
    return {"action": mt5.TRADE_ACTION_DEAL, "symbol": symbol, "volume": 0.01,
            "type": mt5.ORDER_TYPE_BUY, **extra}  # fmt: skip


def _forex_trades_at(t: float) -> bool:
    """The simulator's market hours for forex: Monday to Friday, UTC days."""
    return dt.datetime.fromtimestamp(t, dt.UTC).weekday() < 5


def test_market_hours_on_the_wall_clock(session: remote.Bridge) -> None:
    """The server on the wall clock trades EURUSD on weekdays only and BTCUSD every day; which
    answer is right is read from this machine's clock around the request (either, on the
    rare run whose request straddles Friday's or Sunday's midnight)."""
    before = time.time()
    fx = session.order_send(_deal("EURUSD"))
    after = time.time()
    allowed = {
        mt5.TRADE_RETCODE_DONE if _forex_trades_at(t) else mt5.TRADE_RETCODE_MARKET_CLOSED
        for t in (before, after)
    }
    assert fx.retcode in allowed, (
        fx.retcode,
        fx.comment,
        dt.datetime.fromtimestamp(before, dt.UTC),
    )
    crypto = session.order_send(_deal("BTCUSD", type_filling=mt5.ORDER_FILLING_IOC))
    assert crypto.retcode == mt5.TRADE_RETCODE_DONE, crypto.comment


@pytest.fixture
def saturday() -> Iterator[remote.Bridge]:
    yield from _session_at(SATURDAY_NOON)


def test_on_a_saturday_forex_is_closed_and_its_prices_are_fridays(saturday: remote.Bridge) -> None:
    closed = saturday.order_send(_deal("EURUSD"))
    assert (closed.retcode, closed.comment) == (mt5.TRADE_RETCODE_MARKET_CLOSED, "Market closed")
    tick = saturday.symbol_info_tick("EURUSD")
    pending = {"action": mt5.TRADE_ACTION_PENDING, "symbol": "EURUSD", "volume": 0.01,
               "type": mt5.ORDER_TYPE_BUY_LIMIT, "price": round(tick.ask - 0.01, 5)}  # fmt: skip
    assert saturday.order_send(pending).retcode == mt5.TRADE_RETCODE_MARKET_CLOSED
    assert saturday.order_check(_deal("EURUSD")).retcode == mt5.TRADE_RETCODE_MARKET_CLOSED
    assert saturday.positions_total() == 0 and saturday.orders_total() == 0
    friday_end = SATURDAY_NOON - 12 * 3600
    assert friday_end - 60 <= tick.time < friday_end  # the last tick before the close
    m1 = saturday.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M1, 0, 5)
    assert m1["time"].tolist() == [friday_end - 60 * i for i in range(5, 0, -1)]
    assert len(saturday.copy_ticks_from("EURUSD", friday_end, 10, mt5.COPY_TICKS_ALL)) == 0
    crypto = saturday.order_send(_deal("BTCUSD", type_filling=mt5.ORDER_FILLING_IOC))
    assert crypto.retcode == mt5.TRADE_RETCODE_DONE, crypto.comment
    assert saturday.symbol_info_tick("BTCUSD").time > friday_end


def test_module_level_api_has_the_metatrader5_call_shape(server: RunningServer) -> None:
    mt5.connect("127.0.0.1", server.port)
    try:
        assert mt5.initialize(login=SIM_LOGIN, password=SIM_PASSWORD, server=SIM_SERVER)
        assert mt5.symbol_info_tick("GBPUSD").bid > 0
        assert mt5.account_info().login == SIM_LOGIN
    finally:
        mt5.shutdown()


def test_calling_something_not_exposed_is_refused(
    session: remote.Bridge, server: RunningServer
) -> None:
    for name in ("eval", "__import__", "_check_credentials", "as_module"):
        with pytest.raises(NotExposedError, match="not an exposed MetaTrader5 call"):
            session.call(name, "1+1")
    assert not hasattr(mt5, "eval")
    # A raw RPyC client that passed the handshake still reaches nothing but exposed_call.
    import socket

    from rpyc.core.stream import SocketStream

    sock = socket.create_connection(("127.0.0.1", server.port))
    client_handshake(sock)
    conn = rpyc.connect_stream(SocketStream(sock), rpyc.VoidService, config={})
    try:
        with pytest.raises(AttributeError):
            _ = conn.root._backend
        with pytest.raises(AttributeError):
            _ = conn.root.exposed_call.__globals__
        # RPyC's "safe" attributes would be proxies to builtins in the server.
        with pytest.raises(AttributeError):
            _ = conn.root.__format__
        with pytest.raises(AttributeError):
            conn.sync_request(rpyc.core.consts.HANDLE_GETATTR, conn.root, "__new__")
        # A name that is not a str is refused without the server calling back into it.
        reprs: list[str] = []

        class Name:
            def __repr__(self) -> str:
                reprs.append("called")
                return "symbol_info_tick"

        # (mt5bridge.guard refuses any reference into the client before it is unboxed.)
        with pytest.raises(ValueError, match="reference into the client"):
            conn.root.call(Name(), ("T", ()), ("D", (), ()))
        assert reprs == []
        # Arguments that are proxies back into the client are refused, not dereferenced.
        with pytest.raises(ValueError, match="reference into the client"):
            conn.root.call("symbol_info_tick", ("T", ([1, 2],)), ("D", (), ()))
    finally:
        conn.close()
    assert server.wait_for_log("refused a call to 'eval'")
