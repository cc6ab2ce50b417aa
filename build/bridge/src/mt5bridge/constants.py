"""Constants of the MetaTrader5 Python API that the simulator and bot code use.

Values are those of the `MetaTrader5` package and the MQL5 reference (ENUM_TIMEFRAMES,
ENUM_ORDER_TYPE, ENUM_TRADE_REQUEST_ACTIONS, trade server return codes, last_error codes), so that
`import mt5bridge.client as mt5` code can say `mt5.TIMEFRAME_H1` as it would with the real module.
"""

from __future__ import annotations

from typing import Final

# last_error() codes (MetaTrader5 docs, last_error).
RES_S_OK: Final = 1
RES_E_FAIL: Final = -1
RES_E_INVALID_PARAMS: Final = -2
RES_E_NO_MEMORY: Final = -3
RES_E_NOT_FOUND: Final = -4
RES_E_INVALID_VERSION: Final = -5
RES_E_AUTH_FAILED: Final = -6
RES_E_UNSUPPORTED: Final = -7
RES_E_AUTO_TRADING_DISABLED: Final = -8
RES_E_INTERNAL_FAIL: Final = -10000
RES_E_INTERNAL_FAIL_SEND: Final = -10001
RES_E_INTERNAL_FAIL_RECEIVE: Final = -10002
RES_E_INTERNAL_FAIL_INIT: Final = -10003
RES_E_INTERNAL_FAIL_CONNECT: Final = -10004
RES_E_INTERNAL_FAIL_TIMEOUT: Final = -10005

# ENUM_TIMEFRAMES: minutes for M*, 0x4000 | hours for H*, W1 and MN1 use 0x8000 and 0xC000.
TIMEFRAME_M1: Final = 1
TIMEFRAME_M2: Final = 2
TIMEFRAME_M3: Final = 3
TIMEFRAME_M4: Final = 4
TIMEFRAME_M5: Final = 5
TIMEFRAME_M6: Final = 6
TIMEFRAME_M10: Final = 10
TIMEFRAME_M12: Final = 12
TIMEFRAME_M15: Final = 15
TIMEFRAME_M20: Final = 20
TIMEFRAME_M30: Final = 30
TIMEFRAME_H1: Final = 16385
TIMEFRAME_H2: Final = 16386
TIMEFRAME_H3: Final = 16387
TIMEFRAME_H4: Final = 16388
TIMEFRAME_H6: Final = 16390
TIMEFRAME_H8: Final = 16392
TIMEFRAME_H12: Final = 16396
TIMEFRAME_D1: Final = 16408
TIMEFRAME_W1: Final = 32769
TIMEFRAME_MN1: Final = 49153

# COPY_TICKS flags.
COPY_TICKS_ALL: Final = -1
COPY_TICKS_INFO: Final = 1
COPY_TICKS_TRADE: Final = 2

# ENUM_ORDER_TYPE.
ORDER_TYPE_BUY: Final = 0
ORDER_TYPE_SELL: Final = 1
ORDER_TYPE_BUY_LIMIT: Final = 2
ORDER_TYPE_SELL_LIMIT: Final = 3
ORDER_TYPE_BUY_STOP: Final = 4
ORDER_TYPE_SELL_STOP: Final = 5
ORDER_TYPE_BUY_STOP_LIMIT: Final = 6
ORDER_TYPE_SELL_STOP_LIMIT: Final = 7
ORDER_TYPE_CLOSE_BY: Final = 8

# ENUM_ORDER_STATE.
ORDER_STATE_STARTED: Final = 0
ORDER_STATE_PLACED: Final = 1
ORDER_STATE_CANCELED: Final = 2
ORDER_STATE_PARTIAL: Final = 3
ORDER_STATE_FILLED: Final = 4

# ENUM_ORDER_TYPE_FILLING and ENUM_ORDER_TYPE_TIME.
ORDER_FILLING_FOK: Final = 0
ORDER_FILLING_IOC: Final = 1
ORDER_FILLING_RETURN: Final = 2
ORDER_TIME_GTC: Final = 0
ORDER_TIME_DAY: Final = 1
ORDER_TIME_SPECIFIED: Final = 2
ORDER_TIME_SPECIFIED_DAY: Final = 3

# ENUM_TRADE_REQUEST_ACTIONS.
TRADE_ACTION_DEAL: Final = 1
TRADE_ACTION_PENDING: Final = 5
TRADE_ACTION_SLTP: Final = 6
TRADE_ACTION_MODIFY: Final = 7
TRADE_ACTION_REMOVE: Final = 8
TRADE_ACTION_CLOSE_BY: Final = 10

# ENUM_POSITION_TYPE, ENUM_DEAL_TYPE, ENUM_DEAL_ENTRY.
POSITION_TYPE_BUY: Final = 0
POSITION_TYPE_SELL: Final = 1
DEAL_TYPE_BUY: Final = 0
DEAL_TYPE_SELL: Final = 1
DEAL_TYPE_BALANCE: Final = 2
DEAL_ENTRY_IN: Final = 0
DEAL_ENTRY_OUT: Final = 1

# Reasons (ENUM_ORDER_REASON / ENUM_DEAL_REASON / ENUM_POSITION_REASON share these values).
ORDER_REASON_CLIENT: Final = 0
ORDER_REASON_EXPERT: Final = 3
ORDER_REASON_SL: Final = 4
ORDER_REASON_TP: Final = 5
DEAL_REASON_EXPERT: Final = 3
DEAL_REASON_SL: Final = 4
DEAL_REASON_TP: Final = 5

# ENUM_ACCOUNT_TRADE_MODE and ENUM_ACCOUNT_MARGIN_MODE.
ACCOUNT_TRADE_MODE_DEMO: Final = 0
ACCOUNT_TRADE_MODE_CONTEST: Final = 1
ACCOUNT_TRADE_MODE_REAL: Final = 2
ACCOUNT_MARGIN_MODE_RETAIL_NETTING: Final = 0
ACCOUNT_MARGIN_MODE_EXCHANGE: Final = 1
ACCOUNT_MARGIN_MODE_RETAIL_HEDGING: Final = 2

# Trade server return codes (MqlTradeResult.retcode).
TRADE_RETCODE_REQUOTE: Final = 10004
TRADE_RETCODE_REJECT: Final = 10006
TRADE_RETCODE_CANCEL: Final = 10007
TRADE_RETCODE_PLACED: Final = 10008
TRADE_RETCODE_DONE: Final = 10009
TRADE_RETCODE_DONE_PARTIAL: Final = 10010
TRADE_RETCODE_ERROR: Final = 10011
TRADE_RETCODE_TIMEOUT: Final = 10012
TRADE_RETCODE_INVALID: Final = 10013
TRADE_RETCODE_INVALID_VOLUME: Final = 10014
TRADE_RETCODE_INVALID_PRICE: Final = 10015
TRADE_RETCODE_INVALID_STOPS: Final = 10016
TRADE_RETCODE_TRADE_DISABLED: Final = 10017
TRADE_RETCODE_MARKET_CLOSED: Final = 10018
TRADE_RETCODE_NO_MONEY: Final = 10019
TRADE_RETCODE_PRICE_CHANGED: Final = 10020
TRADE_RETCODE_PRICE_OFF: Final = 10021
TRADE_RETCODE_INVALID_EXPIRATION: Final = 10022
TRADE_RETCODE_ORDER_CHANGED: Final = 10023
TRADE_RETCODE_TOO_MANY_REQUESTS: Final = 10024
TRADE_RETCODE_NO_CHANGES: Final = 10025
TRADE_RETCODE_INVALID_FILL: Final = 10030
TRADE_RETCODE_CONNECTION: Final = 10031
TRADE_RETCODE_INVALID_ORDER: Final = 10035
TRADE_RETCODE_POSITION_CLOSED: Final = 10036

# Descriptions from the MQL5 reference table of trade server return codes.
RETCODE_DESCRIPTIONS: Final[dict[int, str]] = {
    TRADE_RETCODE_REQUOTE: "Requote",
    TRADE_RETCODE_REJECT: "Request rejected",
    TRADE_RETCODE_CANCEL: "Request canceled by trader",
    TRADE_RETCODE_PLACED: "Order placed",
    TRADE_RETCODE_DONE: "Request completed",
    TRADE_RETCODE_DONE_PARTIAL: "Only part of the request was completed",
    TRADE_RETCODE_ERROR: "Request processing error",
    TRADE_RETCODE_TIMEOUT: "Request canceled by timeout",
    TRADE_RETCODE_INVALID: "Invalid request",
    TRADE_RETCODE_INVALID_VOLUME: "Invalid volume in the request",
    TRADE_RETCODE_INVALID_PRICE: "Invalid price in the request",
    TRADE_RETCODE_INVALID_STOPS: "Invalid stops in the request",
    TRADE_RETCODE_TRADE_DISABLED: "Trade is disabled",
    TRADE_RETCODE_MARKET_CLOSED: "Market is closed",
    TRADE_RETCODE_NO_MONEY: "There is not enough money to complete the request",
    TRADE_RETCODE_INVALID_EXPIRATION: "Invalid order expiration date in the request",
    TRADE_RETCODE_NO_CHANGES: "No changes in request",
    TRADE_RETCODE_INVALID_FILL: "Invalid order filling type",
    TRADE_RETCODE_INVALID_ORDER: "Invalid or prohibited order type",
    TRADE_RETCODE_POSITION_CLOSED: "Position with the specified POSITION_IDENTIFIER has already "
    "been closed",
}


def timeframe_seconds(timeframe: int) -> int | None:
    """Length of one bar of `timeframe` in seconds, or None for an unknown timeframe.

    MN1 is taken as 30 days: the simulator's months are of fixed length.
    """
    if 1 <= timeframe <= 30 and timeframe in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30):
        return timeframe * 60
    if timeframe & 0xC000 == 0x4000 and (timeframe & 0x3FFF) in (1, 2, 3, 4, 6, 8, 12, 24):
        return (timeframe & 0x3FFF) * 3600
    if timeframe == TIMEFRAME_W1:
        return 7 * 86400
    if timeframe == TIMEFRAME_MN1:
        return 30 * 86400
    return None
