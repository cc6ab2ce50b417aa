"""The `MetaTrader5` module, answered through a bridge: change the import, nothing else.

    import mt5bridge.client as mt5          # instead of: import MetaTrader5 as mt5

    if not mt5.initialize(login=..., password=..., server=...):
        print("initialize() failed, error code =", mt5.last_error())
    rates = mt5.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M1, 0, 1000)

The surface is the real package's, and only that: its functions, its constants with their
values, its record types (SymbolInfo, TradePosition, ... with the real field order),
`__author__`, `__version__` and its Buy/Sell/Close helpers. tests/integration/bridge/
test_client_surface.py compares it with the pinned wheel's and fails on any difference. One name
is added:

    connect(host=None, port=None, *, tls=None, server_name=None, timeout=60.0)
        Point the module at a bridge. Whatever is not given comes from the environment:
        MT5_BRIDGE_HOST (127.0.0.1), MT5_BRIDGE_PORT (18812), MT5_BRIDGE_TLS_CA/_CERT/_KEY
        (mutual TLS, all three or none) and MT5_BRIDGE_TLS_SERVER_NAME. Without connect() the
        module uses the environment alone. The connection opens on the next call.

Failures come back as the real package reports them, never as exceptions: a bridge that cannot
be reached makes initialize() return False with last_error() (-10003, "IPC initialize failed,
..."), other calls None/False with (-10004, "No IPC connection"). Calls with the wrong shape raise
TypeError as the real C functions do (arguments to a no-argument function, keywords to a
positional-only one). The bridge's own state (not a MetaTrader5 call) is
mt5bridge.remote.status(). Each client connection is its own session on the bridge: another
client's shutdown() or failed login leaves this one's alone.
"""

# No `from __future__ import annotations`: it would add an `annotations` name to the surface.
import os as _os
import threading as _threading
from typing import Any as _Any

from mt5bridge import remote as _remote
from mt5bridge import terms as _terms
from mt5bridge.constants import *  # noqa: F403  # exactly the real package's constants
from mt5bridge.constants import PACKAGE_AUTHOR as _PACKAGE_AUTHOR
from mt5bridge.constants import PACKAGE_VERSION as _PACKAGE_VERSION
from mt5bridge.errors import BridgeError as _BridgeError
from mt5bridge.mt5types import (
    AccountInfo,
    BookInfo,
    OrderCheckResult,
    OrderSendResult,
    SymbolInfo,
    TerminalInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
    TradeRequest,
)
from mt5bridge.tls import TlsFiles as _TlsFiles

__version__ = _PACKAGE_VERSION
__author__ = _PACKAGE_AUTHOR

# The record types are module attributes of the real package too (re-exported, not used here).
_RECORDS = (AccountInfo, BookInfo, OrderCheckResult, OrderSendResult, SymbolInfo, TerminalInfo,
            Tick, TradeDeal, TradeOrder, TradePosition, TradeRequest)  # fmt: skip

_state_lock = _threading.Lock()
_settings: dict[str, _Any] = {}
_bridge: _remote.Bridge | None = None
# The error a bridge failure left, reported by last_error() instead of asking the bridge.
_local_error: tuple[int, str] | None = None


def connect(
    host: str | None = None,
    port: int | None = None,
    *,
    tls: _TlsFiles | None = None,
    server_name: str | None = None,
    timeout: float = 60.0,
) -> None:
    """Point the module at a bridge (see the module docstring); closes any earlier one."""
    global _bridge, _settings, _local_error
    with _state_lock:
        old, _bridge = _bridge, None
        _settings = {"host": host, "port": port, "tls": tls, "server_name": server_name,
                     "timeout": timeout}  # fmt: skip
        _local_error = None
    if old is not None:
        old.close()


def _current() -> _remote.Bridge:
    global _bridge
    with _state_lock:
        if _bridge is None:
            env = _os.environ
            s = _settings
            _bridge = _remote.Bridge(
                s.get("host") or env.get("MT5_BRIDGE_HOST", _remote.DEFAULT_HOST),
                s.get("port") or _remote.port_from_env(env),
                tls=s.get("tls") or _remote.tls_from_env(env),
                server_name=s.get("server_name") or env.get("MT5_BRIDGE_TLS_SERVER_NAME"),
                timeout=s.get("timeout") or 60.0,
            )
        return _bridge


# What each function returns when the terminal (here: the bridge) does not answer.
_FALSE_ON_FAILURE = frozenset(
    {"initialize", "login", "symbol_select", "market_book_add", "market_book_release"}
)


def _call(name: str, args: tuple[_Any, ...], kwargs: dict[str, _Any]) -> _Any:
    global _local_error
    failed: _Any = False if name in _FALSE_ON_FAILURE else None
    try:
        bridge = _current()
        result = bridge.call(name, *args, **kwargs)
    except _BridgeError as exc:
        if name == "initialize":
            code = RES_E_INTERNAL_FAIL_INIT  # noqa: F405
            text = _terms.ERROR_TEXT[code] % f"bridge unreachable ({exc})"
        else:
            code = RES_E_INTERNAL_FAIL_CONNECT  # noqa: F405
            text = _terms.ERROR_TEXT[code]
        _local_error = (code, text)
        return failed
    _local_error = None
    return result


def _no_args(name: str, args: tuple[_Any, ...], kwargs: dict[str, _Any]) -> None:
    # The real functions are METH_NOARGS: CPython's own TypeError for anything passed.
    if args or kwargs:
        given = len(args) + len(kwargs)
        raise TypeError(f"{name}() takes no arguments ({given} given)")


def _positional(name: str, kwargs: dict[str, _Any]) -> None:
    # The real functions are METH_VARARGS without keywords.
    if kwargs:
        raise TypeError(f"{name}() takes no keyword arguments")


def initialize(*args: _Any, **kwargs: _Any) -> _Any:
    return _call("initialize", args, kwargs)


def login(*args: _Any, **kwargs: _Any) -> _Any:
    return _call("login", args, kwargs)


def shutdown(*args: _Any, **kwargs: _Any) -> _Any:
    global _local_error
    _no_args("shutdown", args, kwargs)
    with _state_lock:
        bridge = _bridge
    if bridge is None or not bridge.connected:
        _local_error = (RES_S_OK, _terms.ERROR_TEXT[RES_S_OK])  # noqa: F405
        return None
    return _call("shutdown", (), {})


def last_error(*args: _Any, **kwargs: _Any) -> _Any:
    _no_args("last_error", args, kwargs)
    if _local_error is not None:
        return _local_error
    result = _call("last_error", (), {})
    if result is None:
        return _local_error
    return result


def version(*args: _Any, **kwargs: _Any) -> _Any:
    _no_args("version", args, kwargs)
    return _call("version", (), {})


def terminal_info(*args: _Any, **kwargs: _Any) -> _Any:
    _no_args("terminal_info", args, kwargs)
    return _call("terminal_info", (), {})


def account_info(*args: _Any, **kwargs: _Any) -> _Any:
    _no_args("account_info", args, kwargs)
    return _call("account_info", (), {})


def symbols_total(*args: _Any, **kwargs: _Any) -> _Any:
    _no_args("symbols_total", args, kwargs)
    return _call("symbols_total", (), {})


def positions_total(*args: _Any, **kwargs: _Any) -> _Any:
    _no_args("positions_total", args, kwargs)
    return _call("positions_total", (), {})


def orders_total(*args: _Any, **kwargs: _Any) -> _Any:
    _no_args("orders_total", args, kwargs)
    return _call("orders_total", (), {})


def symbols_get(*args: _Any, **kwargs: _Any) -> _Any:
    return _call("symbols_get", args, kwargs)


def positions_get(*args: _Any, **kwargs: _Any) -> _Any:
    return _call("positions_get", args, kwargs)


def orders_get(*args: _Any, **kwargs: _Any) -> _Any:
    return _call("orders_get", args, kwargs)


def history_orders_get(*args: _Any, **kwargs: _Any) -> _Any:
    return _call("history_orders_get", args, kwargs)


def history_deals_get(*args: _Any, **kwargs: _Any) -> _Any:
    return _call("history_deals_get", args, kwargs)


def order_check(*args: _Any, **kwargs: _Any) -> _Any:
    return _call("order_check", args, kwargs)


def order_send(*args: _Any, **kwargs: _Any) -> _Any:
    return _call("order_send", args, kwargs)


def symbol_info(*args: _Any, **kwargs: _Any) -> _Any:
    _positional("symbol_info", kwargs)
    return _call("symbol_info", args, {})


def symbol_info_tick(*args: _Any, **kwargs: _Any) -> _Any:
    _positional("symbol_info_tick", kwargs)
    return _call("symbol_info_tick", args, {})


def symbol_select(*args: _Any, **kwargs: _Any) -> _Any:
    _positional("symbol_select", kwargs)
    return _call("symbol_select", args, {})


def copy_rates_from(*args: _Any, **kwargs: _Any) -> _Any:
    _positional("copy_rates_from", kwargs)
    return _call("copy_rates_from", args, {})


def copy_rates_from_pos(*args: _Any, **kwargs: _Any) -> _Any:
    _positional("copy_rates_from_pos", kwargs)
    return _call("copy_rates_from_pos", args, {})


def copy_rates_range(*args: _Any, **kwargs: _Any) -> _Any:
    _positional("copy_rates_range", kwargs)
    return _call("copy_rates_range", args, {})


def copy_ticks_from(*args: _Any, **kwargs: _Any) -> _Any:
    _positional("copy_ticks_from", kwargs)
    return _call("copy_ticks_from", args, {})


def copy_ticks_range(*args: _Any, **kwargs: _Any) -> _Any:
    _positional("copy_ticks_range", kwargs)
    return _call("copy_ticks_range", args, {})


def history_orders_total(*args: _Any, **kwargs: _Any) -> _Any:
    _positional("history_orders_total", kwargs)
    return _call("history_orders_total", args, {})


def history_deals_total(*args: _Any, **kwargs: _Any) -> _Any:
    _positional("history_deals_total", kwargs)
    return _call("history_deals_total", args, {})


def order_calc_margin(*args: _Any, **kwargs: _Any) -> _Any:
    _positional("order_calc_margin", kwargs)
    return _call("order_calc_margin", args, {})


def order_calc_profit(*args: _Any, **kwargs: _Any) -> _Any:
    _positional("order_calc_profit", kwargs)
    return _call("order_calc_profit", args, {})


def market_book_add(*args: _Any, **kwargs: _Any) -> _Any:
    _positional("market_book_add", kwargs)
    return _call("market_book_add", args, {})


def market_book_get(*args: _Any, **kwargs: _Any) -> _Any:
    _positional("market_book_get", kwargs)
    return _call("market_book_get", args, {})


def market_book_release(*args: _Any, **kwargs: _Any) -> _Any:
    _positional("market_book_release", kwargs)
    return _call("market_book_release", args, {})


# -- the package's own helpers, re-implemented from their documented behaviour ---------------
# Market orders at the current price with a deviation of 10 points; without a price, up to ten
# attempts while the server answers with a requote or "off quotes".

_RETRY_CODES = (TRADE_RETCODE_REQUOTE, TRADE_RETCODE_PRICE_OFF)  # noqa: F405
_ATTEMPTS = 10


def _market_order(
    side: int, symbol: _Any, volume: _Any, price: _Any, comment: _Any, ticket: _Any
) -> _Any:
    request: dict[str, _Any] = {"action": TRADE_ACTION_DEAL, "symbol": symbol,  # noqa: F405
                                "volume": volume, "type": side, "price": price,
                                "deviation": 10}  # fmt: skip
    if comment is not None:
        request["comment"] = comment
    if ticket is not None:
        request["position"] = ticket
    return order_send(request)


def _at_market(side: int, symbol: _Any, volume: _Any, comment: _Any, ticket: _Any) -> _Any:
    result: _Any = None
    for _ in range(_ATTEMPTS):
        tick = symbol_info_tick(symbol)
        price = tick.ask if side == ORDER_TYPE_BUY else tick.bid  # noqa: F405
        result = _market_order(side, symbol, volume, price, comment, ticket)
        if result is None or result.retcode not in _RETRY_CODES:
            break
    return result


def Buy(symbol: _Any, volume: _Any, price: _Any = None, *, comment: _Any = None,
        ticket: _Any = None) -> _Any:  # fmt: skip
    """Market buy; with `ticket`, closes that sell position. The package's helper."""
    if price is not None:
        return _market_order(ORDER_TYPE_BUY, symbol, volume, price, comment, ticket)  # noqa: F405
    return _at_market(ORDER_TYPE_BUY, symbol, volume, comment, ticket)  # noqa: F405


def Sell(symbol: _Any, volume: _Any, price: _Any = None, *, comment: _Any = None,
         ticket: _Any = None) -> _Any:  # fmt: skip
    """Market sell; with `ticket`, closes that buy position. The package's helper."""
    if price is not None:
        return _market_order(ORDER_TYPE_SELL, symbol, volume, price, comment, ticket)  # noqa: F405
    return _at_market(ORDER_TYPE_SELL, symbol, volume, comment, ticket)  # noqa: F405


def Close(symbol: _Any, *, comment: _Any = None, ticket: _Any = None) -> _Any:
    """Close the symbol's positions (or the one `ticket`): True when all closed, "Partially"
    when some did, False when none, None when the terminal did not answer. The package's
    helper, which walks only buy and sell positions and retries requotes."""
    positions = positions_get(ticket=ticket) if ticket is not None else positions_get(symbol=symbol)
    tried = done = 0
    for pos in positions:
        if pos.type not in (ORDER_TYPE_BUY, ORDER_TYPE_SELL):  # noqa: F405
            continue
        tried += 1
        closing = ORDER_TYPE_SELL if pos.type == ORDER_TYPE_BUY else ORDER_TYPE_BUY  # noqa: F405
        for _ in range(_ATTEMPTS):
            tick = symbol_info_tick(symbol)
            if tick is None:
                return None
            price = tick.bid if closing == ORDER_TYPE_SELL else tick.ask  # noqa: F405
            result = _market_order(closing, symbol, pos.volume, price, comment, pos.ticket)
            if result is None:
                return None
            if result.retcode not in _RETRY_CODES:
                if result.retcode == TRADE_RETCODE_DONE:  # noqa: F405
                    done += 1
                break
    if done > 0:
        return True if done == tried else "Partially"
    return False
