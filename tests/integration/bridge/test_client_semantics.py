"""The drop-in client behaves as the real package: failures by return value and last_error(),
the environment and TLS settings honoured, one session per connection, the package's helpers.
Simulator servers in their own processes on 127.0.0.1; the helpers trade EURUSD on one in this
process whose simulator starts on a Wednesday (forex does not trade at weekends)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import mt5bridge.client as mt5
import pytest
from conftest import (
    SIM_LOGIN,
    SIM_PASSWORD,
    SIM_SERVER,
    WEDNESDAY_NOON,
    RunningServer,
    serve_simulator_at,
)
from mt5bridge.remote import Bridge

from mt5forge.certs import write_bundle

pytestmark = pytest.mark.integration

CREDS = {"login": SIM_LOGIN, "password": SIM_PASSWORD, "server": SIM_SERVER}


@pytest.fixture
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    return start_server()


@pytest.fixture
def module_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], None]]:
    """Point the module-level client at a port through the environment, as users do."""

    def point(port: int) -> None:
        for name in ("MT5_BRIDGE_TLS_CA", "MT5_BRIDGE_TLS_CERT", "MT5_BRIDGE_TLS_KEY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("MT5_BRIDGE_HOST", "127.0.0.1")
        monkeypatch.setenv("MT5_BRIDGE_PORT", str(port))
        mt5.connect()

    yield point
    mt5.shutdown()
    mt5.connect()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_bridge_is_reported_as_the_package_reports_no_terminal(
    module_at: Callable[[int], None],
) -> None:
    module_at(_free_port())
    assert mt5.initialize() is False
    code, text = mt5.last_error()
    assert code == mt5.RES_E_INTERNAL_FAIL_INIT and text.startswith("IPC initialize failed, ")
    assert mt5.account_info() is None
    assert mt5.last_error() == (mt5.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
    assert mt5.symbol_select("EURUSD", True) is False
    assert mt5.shutdown() is None


def test_environment_decides_where_the_module_connects(
    server: RunningServer, module_at: Callable[[int], None]
) -> None:
    module_at(server.port)
    assert mt5.initialize(**CREDS) is True
    assert mt5.last_error() == (1, "Success")
    info = mt5.symbol_info("EURUSD")
    assert isinstance(info, mt5.SymbolInfo) and len(info) == 96
    assert isinstance(mt5.symbol_info_tick("EURUSD"), mt5.Tick)


def test_tls_settings_from_the_environment(
    start_server: Callable[..., RunningServer],
    module_at: Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    pki = write_bundle(tmp_path / "pki", server_names=("127.0.0.1",))
    tls = start_server("--tls-ca", str(pki.ca_cert), "--tls-cert", str(pki.server_cert),
                       "--tls-key", str(pki.server_key))  # fmt: skip
    module_at(tls.port)  # no client certificate yet: the handshake fails, reported, no raise
    assert mt5.initialize(**CREDS) is False
    assert mt5.last_error()[0] == mt5.RES_E_INTERNAL_FAIL_INIT
    monkeypatch.setenv("MT5_BRIDGE_TLS_CA", str(pki.ca_cert))
    monkeypatch.setenv("MT5_BRIDGE_TLS_CERT", str(pki.client_cert))
    monkeypatch.setenv("MT5_BRIDGE_TLS_KEY", str(pki.client_key))
    mt5.connect()
    assert mt5.initialize(**CREDS) is True
    assert mt5.account_info().login == SIM_LOGIN


def test_calls_with_the_wrong_shape_raise_as_the_c_functions_do(
    server: RunningServer, module_at: Callable[[int], None]
) -> None:
    module_at(server.port)
    with pytest.raises(TypeError, match="takes no arguments"):
        mt5.version(1)
    with pytest.raises(TypeError, match="takes no keyword arguments"):
        mt5.symbol_info(symbol="EURUSD")
    assert mt5.initialize(**CREDS)
    assert mt5.copy_rates_from_pos("EURUSD", "M1", 0, 10) is None
    assert mt5.last_error() == (-2, "Invalid 2nd unnamed argument")
    request = {"action": mt5.TRADE_ACTION_DEAL, "symbol": "XAUUSD", "volume": 0.01,
               "type": mt5.ORDER_TYPE_BUY, "type_filling": mt5.ORDER_FILLING_IOC}  # fmt: skip
    refused = mt5.order_send(request)
    assert (refused.retcode, refused.comment) == (10030, "Unsupported filling mode")
    assert isinstance(refused.request, mt5.TradeRequest)


def test_one_session_per_connection(server: RunningServer) -> None:
    a, b = Bridge("127.0.0.1", server.port), Bridge("127.0.0.1", server.port)
    try:
        assert a.initialize(**CREDS) is True
        # B has not initialized: the terminal being up for A does not make B connected.
        assert b.account_info() is None
        assert b.last_error() == (-10004, "No IPC connection")
        # B's refused login leaves A logged in, and A's last_error() is A's own.
        assert b.initialize(login=SIM_LOGIN, password="wrong", server=SIM_SERVER) is False
        assert b.last_error() == (-6, "Terminal: Authorization failed")
        assert a.last_error() == (1, "Success")
        assert a.account_info().login == SIM_LOGIN
        # B's shutdown ends B's session only.
        assert b.initialize(**CREDS) is True
        b.shutdown()
        assert b.account_info() is None
        assert a.account_info() is not None and a.symbol_info_tick("EURUSD") is not None
        # A client that vanishes without shutdown() leaves the others alone too.
        assert b.initialize(**CREDS) is True
        a.close()
        assert b.positions_total() == 0 and b.last_error() == (1, "Success")
    finally:
        a.close()
        b.close()


@pytest.fixture
def wednesday() -> Iterator[int]:
    """A server whose simulator starts on a Wednesday noon: EURUSD trades whatever the day."""
    with serve_simulator_at(WEDNESDAY_NOON) as port:
        yield port


def test_buy_sell_and_close_helpers(wednesday: int, module_at: Callable[[int], None]) -> None:
    module_at(wednesday)
    assert mt5.initialize(**CREDS)
    bought = mt5.Buy("EURUSD", 0.2)
    assert bought.retcode == mt5.TRADE_RETCODE_DONE and bought.request.deviation == 10
    assert bought.request.price == bought.ask  # the helper sends the current ask
    sold = mt5.Sell("EURUSD", 0.1, ticket=bought.order)  # closes part of that buy
    assert sold.retcode == mt5.TRADE_RETCODE_DONE
    (pos,) = mt5.positions_get(symbol="EURUSD")
    assert pos.volume == pytest.approx(0.1)
    mt5.Sell("EURUSD", 0.3, comment="two")
    assert mt5.positions_total() == 2
    assert mt5.Close("EURUSD") is True
    assert mt5.positions_total() == 0
    assert mt5.Close("EURUSD") is False  # nothing to close
    closing = mt5.history_deals_get(0, 2_000_000_000, group="EURUSD")[-2:]
    assert [d.entry for d in closing] == [mt5.DEAL_ENTRY_OUT, mt5.DEAL_ENTRY_OUT]


def test_replay_of_a_metatrader_tick_export_through_the_bridge(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    """`--sim-csv SYMBOL=PATH` replays a tick export: the server's clock starts at its first
    tick, so a client sees the recording, as prices and as bars, from the start."""
    lines = ["<DATE>\t<TIME>\t<BID>\t<ASK>\t<LAST>\t<VOLUME>\t<FLAGS>"]
    bids = [round(1.2 + 0.0001 * (i % 7), 5) for i in range(600)]
    for i, bid in enumerate(bids):  # ten minutes, one tick a second, from 2023.03.01 10:00
        lines.append(f"2023.03.01\t10:{i // 60:02d}:{i % 60:02d}.250\t{bid:.5f}\t"
                     f"{bid + 0.0001:.5f}\t\t\t6")  # fmt: skip
    csv = tmp_path / "EURUSD.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    server = start_server("--sim-csv", f"EURUSD={csv}")
    b = Bridge("127.0.0.1", server.port)
    try:
        assert b.initialize(**CREDS)
        tick = b.symbol_info_tick("EURUSD")
        start = 1677664800  # 2023-03-01 10:00 UTC
        assert start <= tick.time < start + 60 and tick.bid in bids
        ticks = b.copy_ticks_from("EURUSD", start, 1000, mt5.COPY_TICKS_ALL)
        assert list(ticks["bid"]) == bids[: len(ticks)] and len(ticks) >= 1
        m1 = b.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M1, 0, 10)
        assert m1["time"][0] == start and m1["open"][0] == bids[0]
    finally:
        b.close()
