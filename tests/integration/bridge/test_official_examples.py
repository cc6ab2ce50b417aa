"""The MetaTrader 5 documentation's Python examples run against the simulator through a real
bridge, with only their import line changed (official_examples/README.md).

The bridge server runs in this process on 127.0.0.1 (a BridgeServer over TCP, sessions and all)
so that its simulator can be given the documentation's demo account and a fixed start time (a
Wednesday, so the market is open whatever day the tests run). The examples reach it as users'
scripts would: `import mt5bridge.client as mt5`, configured by MT5_BRIDGE_HOST/MT5_BRIDGE_PORT.
Before they run, another client gives the account what the documentation's output shows (a
GBPUSD pending order, a USDCHF position, some GBP history). `time.sleep` is made instant (the
market-depth example would sleep 50 s); nothing else in the examples is touched.
"""

from __future__ import annotations

import datetime as dt
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mt5bridge.client as mt5
import pytest
from mt5bridge.remote import Bridge
from simserver import serve_simulator_at

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).parent / "official_examples"
DOC_IMPORT = "import MetaTrader5 as mt5"
OUR_IMPORT = "import mt5bridge.client as mt5"
DOC_LOGIN, DOC_SERVER = 25115284, "MetaQuotes-Demo"
# The documentation's examples log in to this account with two different passwords.
PASSWORD_A, PASSWORD_B = "4zatlbqx", "gqz0343lbdm"
START = dt.datetime(2024, 1, 17, 10, 0, tzinfo=dt.UTC).timestamp()


def _serve(password: str) -> Iterator[int]:
    with serve_simulator_at(START, login=DOC_LOGIN, password=password, server=DOC_SERVER) as port:
        _give_the_account_some_activity(port, password)
        yield port


def _give_the_account_some_activity(port: int, password: str) -> None:
    b = Bridge("127.0.0.1", port)
    try:
        assert b.initialize(login=DOC_LOGIN, password=password, server=DOC_SERVER)
        tick = b.symbol_info_tick("GBPUSD")
        deal = {"action": 1, "symbol": "GBPUSD", "volume": 0.1, "type": 0}
        opened = b.order_send(deal)
        assert opened.retcode == 10009
        assert b.order_send({**deal, "type": 1, "position": opened.order}).retcode == 10009
        limit = {"action": 5, "symbol": "GBPUSD", "volume": 0.1, "type": 2,
                 "price": round(tick.bid - 0.02, 5)}  # fmt: skip
        assert b.order_send(limit).retcode == 10008
        assert (
            b.order_send({"action": 1, "symbol": "USDCHF", "volume": 0.1, "type": 0}).retcode
            == 10009
        )
        # This session stays open (a bot running beside the examples); it ends with the module.
    finally:
        b.close()  # the server ends this session; the account keeps what was done


@pytest.fixture(scope="module")
def ports() -> Iterator[dict[str, int]]:
    a, b = _serve(PASSWORD_A), _serve(PASSWORD_B)
    try:
        yield {PASSWORD_A: next(a), PASSWORD_B: next(b)}
    finally:
        for gen in (a, b):
            for _ in gen:
                pass


Check = Callable[[str, dict[str, Any]], None]


def _has(*texts: str) -> Check:
    def check(out: str, ns: dict[str, Any]) -> None:
        for text in texts:
            assert text in out, text

    return check


def _rates(count: int, **fields: Any) -> Check:
    def check(out: str, ns: dict[str, Any]) -> None:
        rates = ns["rates"]
        assert len(rates) == count
        assert (rates["high"] >= rates["low"]).all()
        assert "Display dataframe with data" in out

    return check


HEADER = _has("MetaTrader5 package author:  MetaQuotes Ltd.",
              "MetaTrader5 package version:  5.0.6231")  # fmt: skip

CASES: dict[str, tuple[str, Check]] = {
    "initialize": (PASSWORD_A, _has("(500, 0, 'simulator')")),
    "version": (PASSWORD_A, _has("TerminalInfo(community_account=False")),
    "last_error": (PASSWORD_A, lambda out, ns: None),
    "login": (
        PASSWORD_A,
        _has(
            "failed to connect at account #17221085, error code: (-6, 'Terminal: Authorization "
            "failed')",
            "failed to connect at account #25115284",
        ),
    ),
    "account_info": (
        PASSWORD_B,
        _has(
            "AccountInfo(login=25115284", "account_info() as dataframe:", "server=MetaQuotes-Demo"
        ),
    ),
    "terminal_info": (PASSWORD_A, _has("terminal_info() as dataframe:", "maxbars=100000")),
    "symbols_total": (PASSWORD_A, _has("Total symbols = 14")),
    "symbols_get": (
        PASSWORD_A,
        _has(
            "Symbols:  14",
            "len(*RU*):  1",
            "EURUSD",
            "len(*,!*USD*,!*EUR*,!*JPY*,!*GBP*): 1",
            "US500 :",
        ),
    ),
    "symbol_select": (
        PASSWORD_A,
        _has(
            "EURCAD: currency_base = EUR   currency_profit = CAD",
            "symbol_info_dict() as dataframe:",
        ),
    ),
    "symbol_info": (PASSWORD_A, _has("EURJPY: spread =", "  digits = 3", "  trade_contract_size=")),
    "symbol_info_tick": (PASSWORD_A, _has("Tick(time=", "  flags=")),
    "copy_rates_from": (PASSWORD_A, _rates(10)),
    "copy_rates_from_pos": (PASSWORD_A, _rates(10)),
    # 2020-01-10 is a Friday: its 288 M5 bars; the Saturday until 13:00 has none.
    "copy_rates_range": (PASSWORD_A, _rates(288)),
    "copy_ticks_from": (PASSWORD_A, _has("Ticks received: 100000", "Display dataframe with ticks")),
    "copy_ticks_range": (PASSWORD_A, _has("Display dataframe with ticks")),
    "market_book_add": (PASSWORD_A, _has("BookInfo(type=1", "{'type': 2, 'price':")),
    "orders_total": (PASSWORD_A, _has("Total orders= 1")),
    "orders_get": (PASSWORD_A, _has("Total orders on GBPUSD: 1", 'orders_get(group="*GBP*")=1')),
    "positions_total": (PASSWORD_A, _has("Total positions= 1")),
    "positions_get": (
        PASSWORD_A,
        _has("Total positions on USDCHF = 1", 'positions_get(group="*USD*")=1'),
    ),
    "history_orders_total": (PASSWORD_A, _has("Total history orders= 4")),
    "history_orders_get": (PASSWORD_A, _has('group="*GBP*")=3')),
    "history_deals_total": (PASSWORD_A, _has("Total deals= 4")),
    "history_deals_get": (PASSWORD_A, _has('group="*GBP*")=2', 'group="*,!*EUR*,!*GBP*") = 2')),
    "order_calc_margin": (PASSWORD_A, _has("EURUSD buy 0.1 lot margin:", "GBPJPY buy 0.1 lot")),
    "order_calc_profit": (PASSWORD_A, _has("buy USDJPY 1.0 lot: profit on 300 points =>")),
    "order_check": (
        PASSWORD_A,
        _has("OrderCheckResult(retcode=0", "comment=Done", "traderequest: symbol=USDJPY"),
    ),
    "order_send": (PASSWORD_A, _has("2. order_send done,", "4. position #", " closed, ")),
}


def test_every_example_is_here() -> None:
    assert {p.name.removesuffix(".py.txt") for p in EXAMPLES.glob("*.py.txt")} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_official_example(
    name: str,
    ports: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    password, check = CASES[name]
    source = (EXAMPLES / f"{name}.py.txt").read_text(encoding="utf-8")
    assert source.count(DOC_IMPORT) == 1
    source = source.replace(DOC_IMPORT, OUR_IMPORT)
    monkeypatch.setenv("MT5_BRIDGE_HOST", "127.0.0.1")
    monkeypatch.setenv("MT5_BRIDGE_PORT", str(ports[password]))
    slept: list[float] = []
    # The example's own `time` sleeps instantly (the market-depth example waits 50 s); the
    # process's time module is left alone, so the bridge in this process keeps real back-offs.
    fast_time = types.ModuleType("time")
    fast_time.__dict__.update({k: v for k, v in vars(time).items() if not k.startswith("__")})
    fast_time.sleep = slept.append  # type: ignore[attr-defined]
    assert source.count("import time\n") <= 1
    source = source.replace("import time\n", "time = __fast_time__\n")
    mt5.connect()  # forget the previous example's connection: the environment decides
    namespace: dict[str, Any] = {"__name__": "__main__", "__fast_time__": fast_time}
    try:
        exec(compile(source, f"{name}.py", "exec"), namespace)  # noqa: S102  # the example
    except SystemExit:
        pytest.fail(f"the example quit:\n{capsys.readouterr().out}")
    finally:
        mt5.connect()
    out = capsys.readouterr().out
    HEADER(out, namespace)
    assert "failed, error code" not in out or name == "login" or name == "account_info"
    check(out, namespace)
