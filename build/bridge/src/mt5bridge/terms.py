"""Words and tables the MetaTrader5 package uses but does not export as constants.

last_error() texts are the ones compiled into the real package's `_core` extension (read from
the pinned wheel's binary, where they sit beside the codes they answer for); trade return-code
comments are the short server comments a demo server sends in OrderSendResult.comment; the
SYMBOL_FILLING_* and SYMBOL_EXPIRATION_* flags are MQL5's (the Python package leaves them out
although SymbolInfo.filling_mode and expiration_mode are made of them).
"""

from __future__ import annotations

from typing import Final

from mt5bridge import constants as C

#: last_error() texts of the real package, by code.
ERROR_TEXT: Final[dict[int, str]] = {
    C.RES_S_OK: "Success",
    C.RES_E_FAIL: "Terminal: Call failed",
    C.RES_E_INVALID_PARAMS: "Terminal: Invalid params",
    C.RES_E_NO_MEMORY: "Terminal: Out of memory",
    C.RES_E_NOT_FOUND: "Terminal: Not found",
    C.RES_E_INVALID_VERSION: (
        "Terminal: Incompatible versions, please install the latest version of Terminal and "
        "Python module"
    ),
    C.RES_E_AUTH_FAILED: "Terminal: Authorization failed",
    C.RES_E_UNSUPPORTED: "Terminal: Unsupported function",
    C.RES_E_AUTO_TRADING_DISABLED: "Auto-Trading using Python API disabled in Terminal",
    C.RES_E_INTERNAL_FAIL: "IPC call failed",
    C.RES_E_INTERNAL_FAIL_SEND: "IPC send failed",
    C.RES_E_INTERNAL_FAIL_RECEIVE: "IPC recv failed",
    C.RES_E_INTERNAL_FAIL_INIT: "IPC initialize failed, %s",
    C.RES_E_INTERNAL_FAIL_CONNECT: "No IPC connection",
    C.RES_E_INTERNAL_FAIL_TIMEOUT: "IPC timeout",
}


def invalid_argument(name: str) -> str:
    """The real package's text for a bad named argument or request field."""
    return f'Invalid "{name}" argument'


#: The package's text for the n-th (1-based) bad positional argument.
ORDINAL_ARGUMENT: Final = {1: "Invalid 1st unnamed argument", 2: "Invalid 2nd unnamed argument",
                           3: "Invalid 3rd unnamed argument"}  # fmt: skip
INVALID_ARGUMENTS: Final = "Invalid arguments"
INVALID_ARGUMENT_COUNT: Final = "Invalid number of arguments"
UNNAMED_NOT_ALLOWED: Final = "Unnamed arguments not allowed"

#: OrderSendResult/OrderCheckResult comments by trade return code.
RETCODE_COMMENT: Final[dict[int, str]] = {
    0: "Done",
    C.TRADE_RETCODE_REQUOTE: "Requote",
    C.TRADE_RETCODE_REJECT: "Request rejected",
    C.TRADE_RETCODE_CANCEL: "Request canceled by trader",
    C.TRADE_RETCODE_PLACED: "Request executed",
    C.TRADE_RETCODE_DONE: "Request executed",
    C.TRADE_RETCODE_DONE_PARTIAL: "Request executed partially",
    C.TRADE_RETCODE_ERROR: "Request processing error",
    C.TRADE_RETCODE_INVALID: "Invalid request",
    C.TRADE_RETCODE_INVALID_VOLUME: "Invalid volume",
    C.TRADE_RETCODE_INVALID_PRICE: "Invalid price",
    C.TRADE_RETCODE_INVALID_STOPS: "Invalid stops",
    C.TRADE_RETCODE_TRADE_DISABLED: "Trade disabled",
    C.TRADE_RETCODE_MARKET_CLOSED: "Market closed",
    C.TRADE_RETCODE_NO_MONEY: "No money",
    C.TRADE_RETCODE_PRICE_OFF: "Off quotes",
    C.TRADE_RETCODE_INVALID_EXPIRATION: "Invalid expiration",
    C.TRADE_RETCODE_NO_CHANGES: "No changes",
    C.TRADE_RETCODE_INVALID_FILL: "Unsupported filling mode",
    C.TRADE_RETCODE_LIMIT_ORDERS: "Orders limit reached",
    C.TRADE_RETCODE_INVALID_ORDER: "Invalid order",
    C.TRADE_RETCODE_POSITION_CLOSED: "Position doesn't exist",
    C.TRADE_RETCODE_INVALID_CLOSE_VOLUME: "Invalid close volume",
    C.TRADE_RETCODE_LONG_ONLY: "Long positions only allowed",
    C.TRADE_RETCODE_SHORT_ONLY: "Short positions only allowed",
    C.TRADE_RETCODE_CLOSE_ONLY: "Position closing only allowed",
}

# MQL5 ENUM_SYMBOL_INFO_INTEGER flag sets (not exported by the Python package).
SYMBOL_FILLING_FOK: Final = 1
SYMBOL_FILLING_IOC: Final = 2
SYMBOL_FILLING_BOC: Final = 4
SYMBOL_EXPIRATION_GTC: Final = 1
SYMBOL_EXPIRATION_DAY: Final = 2
SYMBOL_EXPIRATION_SPECIFIED: Final = 4
SYMBOL_EXPIRATION_SPECIFIED_DAY: Final = 8
#: SYMBOL_ORDER_MODE: market, limit, stop, stop limit, SL, TP, close by.
SYMBOL_ORDER_MODE_ALL: Final = 127

_MINUTES: Final = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
_HOURS: Final = (1, 2, 3, 4, 6, 8, 12, 24)


def timeframe_seconds(timeframe: int) -> int | None:
    """Length of one bar of a fixed-length `timeframe` in seconds (M1 to W1); MN1 and unknown
    values give None (months are calendar months: see market.bar_keys)."""
    if timeframe in _MINUTES:
        return timeframe * 60
    if timeframe & 0xC000 == 0x4000 and (timeframe & 0x3FFF) in _HOURS:
        return (timeframe & 0x3FFF) * 3600
    if timeframe == C.TIMEFRAME_W1:
        return 7 * 86400
    return None


def is_timeframe(timeframe: object) -> bool:
    return type(timeframe) is int and (
        timeframe_seconds(timeframe) is not None or timeframe == C.TIMEFRAME_MN1
    )
