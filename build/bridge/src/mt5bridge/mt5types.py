"""The record types the MetaTrader5 API returns, with the real package's names and field order.

Generated from the pinned MetaTrader5 wheel (5.0.6231): the package defines them in its C
extension `_core` as struct sequences, so the names and field order were read out of that
binary's PyStructSequence tables (see tests/integration/bridge/wheel_surface.py, which reads them
again from the downloaded wheel; test_client_surface.py fails on any difference). Comments are the
package's own docstrings. The client hands out these classes (named tuples: `_asdict()`, field
access, tuple order as the real ones), so `isinstance(x, mt5.SymbolInfo)` holds.
"""

from __future__ import annotations

from collections import namedtuple

#: This is a structure for storing terminal information (22 fields).
TerminalInfo = namedtuple(
    "TerminalInfo",
    (
        "community_account community_connection connected dlls_allowed trade_allowed "
        "tradeapi_disabled email_enabled ftp_enabled notifications_enabled mqid build maxbars "
        "codepage ping_last community_balance retransmission company name language path data_path "
        "commondata_path"
    ),
)

#: This is a structure for storing account information (28 fields).
AccountInfo = namedtuple(
    "AccountInfo",
    (
        "login trade_mode leverage limit_orders margin_so_mode trade_allowed trade_expert "
        "margin_mode currency_digits fifo_close balance credit profit equity margin margin_free "
        "margin_level margin_so_call margin_so_so margin_initial margin_maintenance assets "
        "liabilities commission_blocked name server currency company"
    ),
)

#: This is a structure for storing symbol information (96 fields).
SymbolInfo = namedtuple(
    "SymbolInfo",
    (
        "custom chart_mode select visible session_deals session_buy_orders session_sell_orders "
        "volume volumehigh volumelow time digits spread spread_float ticks_bookdepth "
        "trade_calc_mode trade_mode start_time expiration_time trade_stops_level "
        "trade_freeze_level trade_exemode swap_mode swap_rollover3days margin_hedged_use_leg "
        "expiration_mode filling_mode order_mode order_gtc_mode option_mode option_right bid "
        "bidhigh bidlow ask askhigh asklow last lasthigh lastlow volume_real volumehigh_real "
        "volumelow_real option_strike point trade_tick_value trade_tick_value_profit "
        "trade_tick_value_loss trade_tick_size trade_contract_size trade_accrued_interest "
        "trade_face_value trade_liquidity_rate volume_min volume_max volume_step volume_limit "
        "swap_long swap_short margin_initial margin_maintenance session_volume session_turnover "
        "session_interest session_buy_orders_volume session_sell_orders_volume session_open "
        "session_close session_aw session_price_settlement session_price_limit_min "
        "session_price_limit_max margin_hedged price_change price_volatility price_theoretical "
        "price_greeks_delta price_greeks_theta price_greeks_gamma price_greeks_vega "
        "price_greeks_rho price_greeks_omega price_sensitivity basis category currency_base "
        "currency_profit currency_margin bank description exchange formula isin name page path"
    ),
)

#: This is a structure for storing latest symbol prices (8 fields).
Tick = namedtuple(
    "Tick",
    ("time bid ask last volume time_msc flags volume_real"),
)

#: This is a structure for storing Depth of Market information (4 fields).
BookInfo = namedtuple(
    "BookInfo",
    ("type price volume volume_dbl"),
)

#: Trade order structure (24 fields).
TradeOrder = namedtuple(
    "TradeOrder",
    (
        "ticket time_setup time_setup_msc time_done time_done_msc time_expiration type type_time "
        "type_filling state magic position_id position_by_id reason volume_initial volume_current "
        "price_open sl tp price_current price_stoplimit symbol comment external_id"
    ),
)

#: Trade position structure (19 fields).
TradePosition = namedtuple(
    "TradePosition",
    (
        "ticket time time_msc time_update time_update_msc type magic identifier reason volume "
        "price_open sl tp price_current swap profit symbol comment external_id"
    ),
)

#: Trade deal structure (18 fields).
TradeDeal = namedtuple(
    "TradeDeal",
    (
        "ticket order time time_msc type entry magic position_id reason volume price commission "
        "swap profit fee symbol comment external_id"
    ),
)

#: Trade request structure (17 fields).
TradeRequest = namedtuple(
    "TradeRequest",
    (
        "action magic order symbol volume price stoplimit sl tp deviation type type_filling "
        "type_time expiration comment position position_by"
    ),
)

#: order_check result structure (9 fields).
OrderCheckResult = namedtuple(
    "OrderCheckResult",
    ("retcode balance equity profit margin margin_free margin_level comment request"),
)

#: order_send result structure (11 fields).
OrderSendResult = namedtuple(
    "OrderSendResult",
    ("retcode deal order volume price bid ask comment request_id retcode_external request"),
)

#: Every record type, by name (the client's surface and its result mapping use it).
RECORD_TYPES = {
    cls.__name__: cls
    for cls in (
        TerminalInfo, AccountInfo, SymbolInfo, Tick, BookInfo, TradeOrder, TradePosition,
        TradeDeal, TradeRequest, OrderCheckResult, OrderSendResult,
    )
}  # fmt: skip

# numpy dtypes of the structured arrays copy_rates_* and copy_ticks_* return (the real package's).
RATES_DTYPE = [
    ("time", "<i8"),
    ("open", "<f8"),
    ("high", "<f8"),
    ("low", "<f8"),
    ("close", "<f8"),
    ("tick_volume", "<u8"),
    ("spread", "<i4"),
    ("real_volume", "<u8"),
]
TICKS_DTYPE = [
    ("time", "<i8"),
    ("bid", "<f8"),
    ("ask", "<f8"),
    ("last", "<f8"),
    ("volume", "<u8"),
    ("time_msc", "<i8"),
    ("flags", "<u4"),
    ("volume_real", "<f8"),
]
