"""The exposed surface: the MetaTrader5 functions the bridge answers, by name, and nothing else.

These are the 32 functions of the real package's `_core` extension (its PyMethodDef table in
the pinned wheel); test_client_surface.py checks that this set is exactly that table."""

from __future__ import annotations

from typing import Final

EXPOSED_CALLS: Final[frozenset[str]] = frozenset(
    {
        "initialize",
        "login",
        "shutdown",
        "version",
        "last_error",
        "terminal_info",
        "account_info",
        "symbols_total",
        "symbols_get",
        "symbol_info",
        "symbol_info_tick",
        "symbol_select",
        "copy_rates_from",
        "copy_rates_from_pos",
        "copy_rates_range",
        "copy_ticks_from",
        "copy_ticks_range",
        "orders_total",
        "orders_get",
        "order_calc_margin",
        "order_calc_profit",
        "order_check",
        "order_send",
        "positions_total",
        "positions_get",
        "history_orders_total",
        "history_orders_get",
        "history_deals_total",
        "history_deals_get",
        "market_book_add",
        "market_book_get",
        "market_book_release",
    }
)
