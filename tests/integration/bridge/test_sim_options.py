"""The simulator's account and clock options reach it through the server process: margin mode,
start time and speed, from flags and from MT5_SIM_* variables. Real server processes on
127.0.0.1, the real client over TCP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import mt5bridge.client as mt5
import mt5bridge.remote as remote
import pytest
from conftest import (
    SIM_LOGIN,
    SIM_PASSWORD,
    SIM_SERVER,
    RunningServer,
    run_server_expecting_exit,
    sim_env,
)
from waiting import wait_for

pytestmark = pytest.mark.integration

# A Wednesday noon, half a minute into the bar: FX trades, whatever day the tests run on.
START = dt.datetime(2024, 3, 6, 12, 0, 30, tzinfo=dt.UTC)
START_S = int(START.timestamp())


def _session(server: RunningServer) -> remote.Bridge:
    bridge = remote.Bridge("127.0.0.1", server.port)
    assert bridge.initialize(login=SIM_LOGIN, password=SIM_PASSWORD, server=SIM_SERVER) is True
    return bridge


def _buy(bridge: remote.Bridge, volume: float, kind: int = mt5.ORDER_TYPE_BUY) -> None:
    request = {"action": mt5.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": volume, "type": kind}
    result = bridge.order_send(request)
    assert result.retcode == mt5.TRADE_RETCODE_DONE, result


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--sim-margin-mode", "netting", "--sim-start", START.isoformat()), {}),
        ((), {"MT5_SIM_MARGIN_MODE": "NETTING", "MT5_SIM_START": str(START_S)}),
    ],
    ids=["flags", "environment"],
)
def test_netting_account_nets_positions(
    start_server: Callable[..., RunningServer], args: tuple[str, ...], env: dict[str, str]
) -> None:
    bridge = _session(start_server(*args, env=sim_env(**env)))
    try:
        assert bridge.account_info().margin_mode == mt5.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
        _buy(bridge, 0.1)
        _buy(bridge, 0.2)
        (position,) = bridge.positions_get(symbol="EURUSD")
        assert position.type == mt5.POSITION_TYPE_BUY
        assert position.volume == pytest.approx(0.3)
        _buy(bridge, 0.5, mt5.ORDER_TYPE_SELL)  # a reversal: still one position, the other way
        (reversed_,) = bridge.positions_get(symbol="EURUSD")
        assert reversed_.type == mt5.POSITION_TYPE_SELL
        assert reversed_.volume == pytest.approx(0.2)
        assert reversed_.identifier == position.identifier
    finally:
        bridge.close()


def test_hedging_stays_the_default(start_server: Callable[..., RunningServer]) -> None:
    """The control for the test above: the same orders on the default account hedge."""
    bridge = _session(start_server("--sim-start", START.isoformat()))
    try:
        assert bridge.account_info().margin_mode == mt5.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
        _buy(bridge, 0.1)
        _buy(bridge, 0.2)
        assert len(bridge.positions_get(symbol="EURUSD")) == 2
    finally:
        bridge.close()


def test_history_ends_at_the_start_time(start_server: Callable[..., RunningServer]) -> None:
    # A millionth of real speed: the simulated clock stays within the start's minute however
    # slowly this machine runs the test.
    server = start_server("--sim-start", "2024-03-06T12:00:30Z", "--sim-speed", "1e-6")
    bridge = _session(server)
    try:
        bars = bridge.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M1, 0, 10)
        assert len(bars) == 10
        assert int(bars["time"][-1]) == START_S - 30  # the bar in progress opened at 12:00
        later = bridge.copy_rates_range("EURUSD", mt5.TIMEFRAME_M1, START, START + dt.timedelta(1))
        assert later is None or len(later) == 0  # nothing after the start exists yet
        tick = bridge.symbol_info_tick("EURUSD")
        assert START_S - 30 <= tick.time <= START_S
        ticks = bridge.copy_ticks_from("EURUSD", START_S - 30, 100_000, mt5.COPY_TICKS_ALL)
        assert len(ticks) > 0 and int(ticks["time_msc"][-1]) <= START_S * 1000 + 1
        deposit = bridge.history_deals_get(0, START + dt.timedelta(1))[0]
        assert deposit.comment == "Deposit" and deposit.time < START_S
    finally:
        bridge.close()


def test_speed_runs_the_simulated_clock_faster(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server("--sim-start", START.isoformat(), "--sim-speed", "3600")
    bridge = _session(server)
    try:
        # An hour of market per second: the clock passes 13:00 long before wait_for gives up;
        # at speed 1 it would take an hour.
        one_hour_on = START_S + 3600
        wait_for(
            "simulated time an hour past the start",
            lambda: bridge.symbol_info_tick("EURUSD").time >= one_hour_on,
            timeout=120,
        )
    finally:
        bridge.close()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--sim-margin-mode", "exchange"), {}, "invalid choice: 'exchange'"),
        ((), {"MT5_SIM_MARGIN_MODE": "exchange"}, "MT5_SIM_MARGIN_MODE must be one of"),
        (("--sim-speed", "0"), {}, "--sim-speed: must be a number above 0"),
        ((), {"MT5_SIM_SPEED": "fast"}, "--sim-speed: must be a number above 0"),
        (("--sim-start", "yesterday"), {}, "--sim-start: must be an ISO 8601 time"),
        ((), {"MT5_SIM_START": "1e20"}, "--sim-start: is out of range"),
        (("--sim-start", "2010-01-01"), {}, "before 2015-01-01"),
    ],
)
def test_malformed_simulator_options_exit_2_with_a_message(
    args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    code, err = run_server_expecting_exit(*args, env=sim_env(**env))
    assert code == 2 and message in err and "Traceback" not in err
