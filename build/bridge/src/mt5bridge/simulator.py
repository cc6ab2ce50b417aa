"""A MetaTrader 5 terminal and trading account in memory, with the MetaTrader5 module's call shape.

It checks login, password and server against what it was started with; keeps balance, equity,
margin, positions, pending orders and history consistent under order_send (market and pending
orders, SL/TP, partial close); serves ticks and bars from a seeded random walk or a CSV; and
reports failures the way the MetaTrader5 module does: None or False plus last_error(), and
trade server return codes in OrderSendResult.retcode.

Where the real terminal's behaviour is not documented, the choice made here is said in a
comment. The account is a hedging demo account in the configured currency. Not thread-safe: the
bridge server serialises calls.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import itertools
import math
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mt5bridge import constants as C
from mt5bridge.api import EXPOSED_CALLS
from mt5bridge.market import (
    DEFAULT_SYMBOLS,
    Array,
    SymbolSpec,
    load_csv_bars,
    random_walk_bars,
    resample,
    seed_for,
    ticks_from_m1,
)
from mt5bridge.mt5types import (
    TICKS_DTYPE,
    AccountInfo,
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

SIM_BUILD = 0  # not a MetaQuotes build number: version() says "simulator" in its date field

# last_error() descriptions: the MetaTrader5 documentation's table (the real terminal's runtime
# wording may differ).
_ERROR_TEXT = {
    C.RES_S_OK: "generic success",
    C.RES_E_FAIL: "generic fail",
    C.RES_E_INVALID_PARAMS: "invalid arguments/parameters",
    C.RES_E_NOT_FOUND: "no history",
    C.RES_E_AUTH_FAILED: "authorization failed",
    C.RES_E_INTERNAL_FAIL_CONNECT: "internal IPC no ipc",
}

_REQUEST_DEFAULTS: dict[str, Any] = {
    "action": 0,
    "magic": 0,
    "order": 0,
    "symbol": "",
    "volume": 0.0,
    "price": 0.0,
    "stoplimit": 0.0,
    "sl": 0.0,
    "tp": 0.0,
    "deviation": 0,
    "type": 0,
    "type_filling": 0,
    "type_time": 0,
    "expiration": 0,
    "comment": "",
    "position": 0,
    "position_by": 0,
}
_PENDING_TYPES = (
    C.ORDER_TYPE_BUY_LIMIT,
    C.ORDER_TYPE_SELL_LIMIT,
    C.ORDER_TYPE_BUY_STOP,
    C.ORDER_TYPE_SELL_STOP,
)
_BUY_SIDE = (C.ORDER_TYPE_BUY, C.ORDER_TYPE_BUY_LIMIT, C.ORDER_TYPE_BUY_STOP)


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """The account the simulated terminal accepts, and its market."""

    login: int
    password: str = field(repr=False)
    server: str
    balance: float = 10_000.0
    currency: str = "USD"
    leverage: int = 100
    seed: int = 1
    symbols: tuple[SymbolSpec, ...] = DEFAULT_SYMBOLS
    history_bars: int = 10_000
    # Symbol name -> CSV of M1 bars; other timeframes are resampled from it.
    csv_bars: Mapping[str, Path] = field(default_factory=dict)
    account_name: str = "Simulated Account"
    company: str = "mt5bridge simulator"


@dataclass(frozen=True, kw_only=True)
class _Position:
    ticket: int
    symbol: str
    type: int
    volume: float
    price_open: float
    sl: float
    tp: float
    magic: int
    comment: str
    time_msc: int
    time_update_msc: int
    reason: int


@dataclass(frozen=True, kw_only=True)
class _Order:
    ticket: int
    symbol: str
    type: int
    volume_initial: float
    volume_current: float
    price_open: float
    sl: float
    tp: float
    magic: int
    comment: str
    state: int
    time_setup_msc: int
    time_done_msc: int
    position_id: int
    type_time: int
    type_filling: int
    reason: int


@dataclass(frozen=True, kw_only=True)
class _Deal:
    ticket: int
    order: int
    time_msc: int
    type: int
    entry: int
    magic: int
    position_id: int
    reason: int
    volume: float
    price: float
    profit: float
    symbol: str
    comment: str


class _Reject(Exception):
    """A trade request fails validation with a trade server return code."""

    def __init__(self, retcode: int) -> None:
        super().__init__(retcode)
        self.retcode = retcode


def _to_epoch(value: Any) -> float:
    """A MetaTrader5 date argument (datetime or seconds since 1970) as Unix seconds.

    Naive datetimes are taken as UTC: the MetaTrader5 documentation tells callers to build
    dates in UTC, and the container's clock is UTC.
    """
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return float(value.timestamp())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError("date must be a datetime or seconds since 1970")


def _match_group(name: str, group: str | None) -> bool:
    """MetaTrader's group filter: comma-separated wildcards, "!" excludes."""
    if not group:
        return True
    include = [p.strip() for p in group.split(",") if p.strip() and not p.strip().startswith("!")]
    exclude = [p.strip()[1:] for p in group.split(",") if p.strip().startswith("!")]
    upper = name.upper()
    included = not include or any(fnmatch.fnmatchcase(upper, p.upper()) for p in include)
    return included and not any(fnmatch.fnmatchcase(upper, p.upper()) for p in exclude)


class Simulator:
    """The terminal and account. Public methods are the MetaTrader5 functions."""

    def __init__(self, config: SimulatorConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._specs = {s.name: s for s in config.symbols}
        self._selected = {s.name: True for s in config.symbols}
        self._initialized = False
        self._logged_in = False
        self._error: tuple[int, str] = (C.RES_S_OK, _ERROR_TEXT[C.RES_S_OK])
        self._balance = float(config.balance)
        self._positions: dict[int, _Position] = {}
        self._orders: dict[int, _Order] = {}
        self._history_orders: dict[int, _Order] = {}
        self._deals: dict[int, _Deal] = {}
        self._tickets = itertools.count(100_000_001)
        self._deal_tickets = itertools.count(200_000_001)
        self._request_ids = itertools.count(1)
        self._start = float(clock())
        self._bars: dict[tuple[str, int], Array] = {}
        self._ticks: dict[str, Array] = {}
        self._csv_m1: dict[str, Array] = {
            name: load_csv_bars(Path(path)) for name, path in config.csv_bars.items()
        }
        self._bid: dict[str, float] = {}
        self._last_second: dict[str, int] = {}
        self._rngs = {
            name: np.random.default_rng(seed_for(config.seed, name, "live")) for name in self._specs
        }
        for name, spec in self._specs.items():
            m1 = self._csv_m1.get(name)
            self._bid[name] = float(m1["close"][-1]) if m1 is not None else spec.start_price
            self._last_second[name] = int(self._start)

    # -- bookkeeping -------------------------------------------------------------------------

    def _set_error(self, code: int, text: str | None = None) -> None:
        self._error = (code, text or _ERROR_TEXT.get(code, "generic fail"))

    def _ok(self) -> None:
        self._set_error(C.RES_S_OK)

    def _connected(self) -> bool:
        if not self._initialized:
            self._set_error(C.RES_E_INTERNAL_FAIL_CONNECT)
            return False
        return True

    def _account_ready(self) -> bool:
        if not self._connected():
            return False
        if not self._logged_in:
            self._set_error(C.RES_E_AUTH_FAILED)
            return False
        return True

    def _spec(self, symbol: Any) -> SymbolSpec | None:
        spec = self._specs.get(symbol) if isinstance(symbol, str) else None
        if spec is None:
            # The real terminal's code for an unknown symbol is not documented; we say
            # "invalid arguments/parameters".
            self._set_error(C.RES_E_INVALID_PARAMS, f"unknown symbol {symbol!r}")
        return spec

    def _now_msc(self) -> int:
        return int(self._clock() * 1000)

    def _check_credentials(self, login: Any, password: Any, server: Any) -> bool:
        if not isinstance(login, int) or isinstance(login, bool):
            self._set_error(C.RES_E_INVALID_PARAMS)
            return False
        cfg = self._config
        # None means "the one saved in the terminal", which is the configured one.
        ok = (
            login == cfg.login
            and (password is None or password == cfg.password)
            and (server is None or server == cfg.server)
        )
        if not ok:
            self._logged_in = False
            self._set_error(C.RES_E_AUTH_FAILED)
            return False
        self._logged_in = True
        return True

    # -- market ------------------------------------------------------------------------------

    def _advance(self, symbol: str) -> None:
        """Move the live price one random-walk step per elapsed second, then fire pending
        orders and SL/TP that the new price reaches."""
        now = int(self._clock())
        steps = min(now - self._last_second[symbol], 86_400)
        if steps <= 0:
            return
        self._last_second[symbol] = now
        spec = self._specs[symbol]
        drift = float(self._rngs[symbol].normal(0.0, spec.volatility * math.sqrt(steps)))
        self._bid[symbol] = round(self._bid[symbol] * math.exp(drift), spec.digits)
        self._trigger(symbol)

    def _prices(self, symbol: str) -> tuple[float, float]:
        spec = self._specs[symbol]
        bid = self._bid[symbol]
        return bid, round(bid + spec.spread_points * spec.point, spec.digits)

    def _rate(self, ccy: str, *, base_price: tuple[str, float] | None = None) -> float | None:
        """Units of account currency per unit of `ccy`."""
        acct = self._config.currency
        if ccy == acct:
            return 1.0
        if base_price is not None and base_price[0] == ccy:
            return base_price[1]
        direct = self._specs.get(ccy + acct)
        if direct is not None:
            return float(self._bid[direct.name])
        inverse = self._specs.get(acct + ccy)
        if inverse is not None:
            return 1.0 / self._bid[inverse.name]
        return None

    def _margin(self, spec: SymbolSpec, volume: float, price: float) -> float:
        in_base = volume * spec.contract_size / self._config.leverage
        quote_rate = self._rate(spec.currency_profit) or 0.0
        rate = self._rate(spec.currency_base, base_price=(spec.currency_base, price * quote_rate))
        return round(in_base * (rate or 0.0), 2)

    def _profit(
        self, spec: SymbolSpec, type_: int, volume: float, open_: float, close: float
    ) -> float:
        direction = 1.0 if type_ in _BUY_SIDE else -1.0
        in_quote = direction * (close - open_) * volume * spec.contract_size
        return round(in_quote * (self._rate(spec.currency_profit) or 0.0), 2)

    def _position_profit(self, pos: _Position) -> float:
        bid, ask = self._prices(pos.symbol)
        close = bid if pos.type == C.POSITION_TYPE_BUY else ask
        return self._profit(self._specs[pos.symbol], pos.type, pos.volume, pos.price_open, close)

    def _account_numbers(self) -> tuple[float, float, float, float, float]:
        profit = round(sum(self._position_profit(p) for p in self._positions.values()), 2)
        margin = round(
            sum(
                self._margin(self._specs[p.symbol], p.volume, self._prices(p.symbol)[0])
                for p in self._positions.values()
            ),
            2,
        )
        equity = round(self._balance + profit, 2)
        level = round(equity / margin * 100.0, 2) if margin else 0.0
        return profit, equity, margin, round(equity - margin, 2), level

    def _bars_for(self, symbol: str, timeframe: Any) -> Array | None:
        tf = C.timeframe_seconds(timeframe) if isinstance(timeframe, int) else None
        if tf is None:
            self._set_error(C.RES_E_INVALID_PARAMS, f"invalid timeframe {timeframe!r}")
            return None
        key = (symbol, tf)
        bars = self._bars.get(key)
        if bars is None:
            m1 = self._csv_m1.get(symbol)
            if m1 is not None:
                bars = m1 if tf == 60 else resample(m1, tf)
            else:
                bars = random_walk_bars(
                    self._specs[symbol],
                    seed=self._config.seed,
                    tf_seconds=tf,
                    count=self._config.history_bars,
                    last_bar_time=int(self._start) // tf * tf,
                )
            self._bars[key] = bars
        return bars

    def _tick_history(self, symbol: str) -> Array:
        ticks = self._ticks.get(symbol)
        if ticks is None:
            m1 = self._bars_for(symbol, C.TIMEFRAME_M1)
            assert m1 is not None  # noqa: S101  # M1 is always a valid timeframe
            ticks = ticks_from_m1(self._specs[symbol], m1, seed=self._config.seed)
            self._ticks[symbol] = ticks
        return ticks

    def _trigger(self, symbol: str) -> None:
        bid, ask = self._prices(symbol)
        for order in [o for o in self._orders.values() if o.symbol == symbol]:
            p = order.price_open
            hit = (
                (order.type == C.ORDER_TYPE_BUY_LIMIT and ask <= p)
                or (order.type == C.ORDER_TYPE_SELL_LIMIT and bid >= p)
                or (order.type == C.ORDER_TYPE_BUY_STOP and ask >= p)
                or (order.type == C.ORDER_TYPE_SELL_STOP and bid <= p)
            )
            if hit:
                self._fill_pending(order)
        for pos in [p for p in self._positions.values() if p.symbol == symbol]:
            price = bid if pos.type == C.POSITION_TYPE_BUY else ask
            buy = pos.type == C.POSITION_TYPE_BUY
            if pos.sl and (price <= pos.sl if buy else price >= pos.sl):
                self._close(pos, pos.volume, pos.sl, reason=C.DEAL_REASON_SL, magic=pos.magic)
            elif pos.tp and (price >= pos.tp if buy else price <= pos.tp):
                self._close(pos, pos.volume, pos.tp, reason=C.DEAL_REASON_TP, magic=pos.magic)

    # -- trade execution ---------------------------------------------------------------------

    def _record_order(self, **kw: Any) -> _Order:
        now = self._now_msc()
        order = _Order(
            ticket=kw.pop("ticket", None) or next(self._tickets),
            time_setup_msc=now,
            time_done_msc=now,
            state=C.ORDER_STATE_FILLED,
            type_time=C.ORDER_TIME_GTC,
            reason=C.ORDER_REASON_EXPERT,
            **kw,
        )
        self._history_orders[order.ticket] = order
        return order

    def _deal(
        self,
        *,
        order: int,
        type_: int,
        entry: int,
        pos: int,
        volume: float,
        price: float,
        profit: float,
        symbol: str,
        magic: int,
        comment: str,
        reason: int,
    ) -> _Deal:
        deal = _Deal(
            ticket=next(self._deal_tickets), order=order, time_msc=self._now_msc(), type=type_,
            entry=entry, magic=magic, position_id=pos, reason=reason, volume=volume, price=price,
            profit=profit, symbol=symbol, comment=comment,
        )  # fmt: skip
        self._deals[deal.ticket] = deal
        return deal

    def _open(
        self,
        spec: SymbolSpec,
        type_: int,
        volume: float,
        price: float,
        sl: float,
        tp: float,
        magic: int,
        comment: str,
        ticket: int | None = None,
    ) -> tuple[int, int]:
        order = self._record_order(
            ticket=ticket, symbol=spec.name, type=type_, volume_initial=volume,
            volume_current=0.0, price_open=price, sl=sl, tp=tp, magic=magic, comment=comment,
            position_id=0, type_filling=C.ORDER_FILLING_FOK,
        )  # fmt: skip
        self._history_orders[order.ticket] = replace(order, position_id=order.ticket)
        now = self._now_msc()
        # A position's ticket and identifier are the ticket of the order that opened it.
        self._positions[order.ticket] = _Position(
            ticket=order.ticket, symbol=spec.name, type=type_ % 2, volume=volume,
            price_open=price, sl=sl, tp=tp, magic=magic, comment=comment, time_msc=now,
            time_update_msc=now, reason=C.ORDER_REASON_EXPERT,
        )  # fmt: skip
        deal = self._deal(
            order=order.ticket, type_=type_ % 2, entry=C.DEAL_ENTRY_IN, pos=order.ticket,
            volume=volume, price=price, profit=0.0, symbol=spec.name, magic=magic,
            comment=comment, reason=C.DEAL_REASON_EXPERT,
        )  # fmt: skip
        return order.ticket, deal.ticket

    def _close(
        self,
        pos: _Position,
        volume: float,
        price: float,
        *,
        reason: int,
        magic: int,
        comment: str = "",
    ) -> tuple[int, int]:
        spec = self._specs[pos.symbol]
        close_type = 1 - pos.type
        profit = self._profit(spec, pos.type, volume, pos.price_open, price)
        self._balance = round(self._balance + profit, 2)
        order = self._record_order(
            symbol=pos.symbol, type=close_type, volume_initial=volume, volume_current=0.0,
            price_open=price, sl=0.0, tp=0.0, magic=magic, comment=comment,
            position_id=pos.ticket, type_filling=C.ORDER_FILLING_FOK,
        )  # fmt: skip
        deal = self._deal(
            order=order.ticket, type_=close_type, entry=C.DEAL_ENTRY_OUT, pos=pos.ticket,
            volume=volume, price=price, profit=profit, symbol=pos.symbol, magic=magic,
            comment=comment, reason=reason,
        )  # fmt: skip
        left = round(pos.volume - volume, 8)
        if left <= 0:
            del self._positions[pos.ticket]
        else:
            self._positions[pos.ticket] = replace(pos, volume=left, time_update_msc=self._now_msc())
        return order.ticket, deal.ticket

    def _fill_pending(self, order: _Order) -> None:
        del self._orders[order.ticket]
        spec = self._specs[order.symbol]
        side = C.ORDER_TYPE_BUY if order.type in _BUY_SIDE else C.ORDER_TYPE_SELL
        self._open(spec, side, order.volume_initial, order.price_open, order.sl, order.tp,
                   order.magic, order.comment, ticket=order.ticket)  # fmt: skip
        filled = replace(order, state=C.ORDER_STATE_FILLED, volume_current=0.0,
                         time_done_msc=self._now_msc(), position_id=order.ticket)  # fmt: skip
        self._history_orders[order.ticket] = filled

    def _check_volume(self, spec: SymbolSpec, volume: Any) -> float:
        if not isinstance(volume, int | float) or isinstance(volume, bool):
            raise _Reject(C.TRADE_RETCODE_INVALID_VOLUME)
        steps = volume / spec.volume_step
        if (
            volume < spec.volume_min - 1e-9
            or volume > spec.volume_max + 1e-9
            or abs(steps - round(steps)) > 1e-6
        ):
            raise _Reject(C.TRADE_RETCODE_INVALID_VOLUME)
        return round(float(volume), 8)

    @staticmethod
    def _check_stops(buy: bool, ref: float, sl: float, tp: float) -> None:
        if buy and ((sl and sl >= ref) or (tp and tp <= ref)):
            raise _Reject(C.TRADE_RETCODE_INVALID_STOPS)
        if not buy and ((sl and sl <= ref) or (tp and tp >= ref)):
            raise _Reject(C.TRADE_RETCODE_INVALID_STOPS)

    def _normalize(self, request: Any) -> TradeRequest:
        if not isinstance(request, dict):
            raise TypeError("request must be a dict")
        unknown = set(request) - set(_REQUEST_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown request field(s): {', '.join(sorted(map(str, unknown)))}")
        merged = {**_REQUEST_DEFAULTS, **request}
        return TradeRequest(**merged)

    def _plan(self, req: TradeRequest) -> tuple[Callable[[], tuple[int, int, float, float]], float]:
        """Validate `req`; return the action that executes it and the margin it adds.

        The action returns (deal, order, volume, price). Raises _Reject with a return code.
        """
        if req.action == C.TRADE_ACTION_DEAL:
            return self._plan_deal(req)
        if req.action == C.TRADE_ACTION_PENDING:
            return self._plan_pending(req)
        if req.action == C.TRADE_ACTION_SLTP:
            pos = self._positions.get(req.position)
            if pos is None:
                raise _Reject(C.TRADE_RETCODE_POSITION_CLOSED)
            self._advance(pos.symbol)
            bid, ask = self._prices(pos.symbol)
            buy = pos.type == C.POSITION_TYPE_BUY
            self._check_stops(buy, bid if buy else ask, req.sl, req.tp)
            if (req.sl, req.tp) == (pos.sl, pos.tp):
                raise _Reject(C.TRADE_RETCODE_NO_CHANGES)

            def sltp() -> tuple[int, int, float, float]:
                self._positions[pos.ticket] = replace(
                    pos, sl=float(req.sl), tp=float(req.tp), time_update_msc=self._now_msc()
                )
                return 0, 0, 0.0, 0.0

            return sltp, 0.0
        if req.action in (C.TRADE_ACTION_MODIFY, C.TRADE_ACTION_REMOVE):
            order = self._orders.get(req.order)
            if order is None:
                raise _Reject(C.TRADE_RETCODE_INVALID)
            if req.action == C.TRADE_ACTION_REMOVE:

                def remove() -> tuple[int, int, float, float]:
                    del self._orders[order.ticket]
                    self._history_orders[order.ticket] = replace(
                        order, state=C.ORDER_STATE_CANCELED, time_done_msc=self._now_msc()
                    )
                    return 0, order.ticket, 0.0, 0.0

                return remove, 0.0
            self._check_pending_price(order.symbol, order.type, req.price)
            self._check_stops(order.type in _BUY_SIDE, req.price, req.sl, req.tp)

            def modify() -> tuple[int, int, float, float]:
                self._orders[order.ticket] = replace(
                    order, price_open=float(req.price), sl=float(req.sl), tp=float(req.tp)
                )
                return 0, order.ticket, 0.0, float(req.price)

            return modify, 0.0
        raise _Reject(C.TRADE_RETCODE_INVALID)

    def _plan_deal(
        self, req: TradeRequest
    ) -> tuple[Callable[[], tuple[int, int, float, float]], float]:
        spec = self._specs.get(req.symbol)
        if spec is None:
            raise _Reject(C.TRADE_RETCODE_INVALID)
        if req.type not in (C.ORDER_TYPE_BUY, C.ORDER_TYPE_SELL):
            raise _Reject(C.TRADE_RETCODE_INVALID_ORDER)
        volume = self._check_volume(spec, req.volume)
        self._advance(spec.name)
        bid, ask = self._prices(spec.name)
        price = ask if req.type == C.ORDER_TYPE_BUY else bid
        if req.position:
            pos = self._positions.get(req.position)
            if pos is None:
                raise _Reject(C.TRADE_RETCODE_POSITION_CLOSED)
            if pos.symbol != spec.name or pos.type == req.type:
                raise _Reject(C.TRADE_RETCODE_INVALID)
            if volume > pos.volume + 1e-9:
                raise _Reject(C.TRADE_RETCODE_INVALID_VOLUME)

            def close() -> tuple[int, int, float, float]:
                order, deal = self._close(pos, volume, price, reason=C.DEAL_REASON_EXPERT,
                                          magic=req.magic, comment=req.comment)  # fmt: skip
                return deal, order, volume, price

            return close, -self._margin(spec, volume, bid)
        self._check_stops(req.type == C.ORDER_TYPE_BUY, bid, req.sl, req.tp)
        margin = self._margin(spec, volume, bid)
        if self._account_numbers()[3] - margin < 0:
            raise _Reject(C.TRADE_RETCODE_NO_MONEY)

        def open_() -> tuple[int, int, float, float]:
            order, deal = self._open(spec, req.type, volume, price, float(req.sl), float(req.tp),
                                     req.magic, req.comment)  # fmt: skip
            return deal, order, volume, price

        return open_, margin

    def _check_pending_price(self, symbol: str, type_: int, price: Any) -> None:
        self._advance(symbol)
        bid, ask = self._prices(symbol)
        if not isinstance(price, int | float) or price <= 0:
            raise _Reject(C.TRADE_RETCODE_INVALID_PRICE)
        valid = {
            C.ORDER_TYPE_BUY_LIMIT: price < ask,
            C.ORDER_TYPE_SELL_LIMIT: price > bid,
            C.ORDER_TYPE_BUY_STOP: price > ask,
            C.ORDER_TYPE_SELL_STOP: price < bid,
        }[type_]
        if not valid:
            raise _Reject(C.TRADE_RETCODE_INVALID_PRICE)

    def _plan_pending(
        self, req: TradeRequest
    ) -> tuple[Callable[[], tuple[int, int, float, float]], float]:
        spec = self._specs.get(req.symbol)
        if spec is None:
            raise _Reject(C.TRADE_RETCODE_INVALID)
        if req.type not in _PENDING_TYPES:
            raise _Reject(C.TRADE_RETCODE_INVALID_ORDER)
        volume = self._check_volume(spec, req.volume)
        self._check_pending_price(spec.name, req.type, req.price)
        self._check_stops(req.type in _BUY_SIDE, req.price, req.sl, req.tp)

        def place() -> tuple[int, int, float, float]:
            now = self._now_msc()
            order = _Order(
                ticket=next(self._tickets), symbol=spec.name, type=req.type,
                volume_initial=volume, volume_current=volume, price_open=float(req.price),
                sl=float(req.sl), tp=float(req.tp), magic=req.magic, comment=req.comment,
                state=C.ORDER_STATE_PLACED, time_setup_msc=now, time_done_msc=0, position_id=0,
                type_time=req.type_time, type_filling=req.type_filling,
                reason=C.ORDER_REASON_EXPERT,
            )  # fmt: skip
            self._orders[order.ticket] = order
            return 0, order.ticket, volume, float(req.price)

        return place, 0.0

    # -- records -----------------------------------------------------------------------------

    def _order_record(self, o: _Order) -> TradeOrder:
        current = self._prices(o.symbol)[0 if o.type % 2 else 1] if o.symbol in self._specs else 0
        return TradeOrder(
            ticket=o.ticket, time_setup=o.time_setup_msc // 1000, time_setup_msc=o.time_setup_msc,
            time_done=o.time_done_msc // 1000, time_done_msc=o.time_done_msc, time_expiration=0,
            type=o.type, type_time=o.type_time, type_filling=o.type_filling, state=o.state,
            magic=o.magic, position_id=o.position_id, position_by_id=0, reason=o.reason,
            volume_initial=o.volume_initial, volume_current=o.volume_current,
            price_open=o.price_open, sl=o.sl, tp=o.tp, price_current=current,
            price_stoplimit=0.0, symbol=o.symbol, comment=o.comment, external_id="",
        )  # fmt: skip

    def _position_record(self, p: _Position) -> TradePosition:
        bid, ask = self._prices(p.symbol)
        return TradePosition(
            ticket=p.ticket, time=p.time_msc // 1000, time_msc=p.time_msc,
            time_update=p.time_update_msc // 1000, time_update_msc=p.time_update_msc,
            type=p.type, magic=p.magic, identifier=p.ticket, reason=p.reason, volume=p.volume,
            price_open=p.price_open, sl=p.sl, tp=p.tp,
            price_current=bid if p.type == C.POSITION_TYPE_BUY else ask, swap=0.0,
            profit=self._position_profit(p), symbol=p.symbol, comment=p.comment, external_id="",
        )  # fmt: skip

    @staticmethod
    def _deal_record(d: _Deal) -> TradeDeal:
        return TradeDeal(
            ticket=d.ticket, order=d.order, time=d.time_msc // 1000, time_msc=d.time_msc,
            type=d.type, entry=d.entry, magic=d.magic, position_id=d.position_id,
            reason=d.reason, volume=d.volume, price=d.price, commission=0.0, swap=0.0,
            profit=d.profit, fee=0.0, symbol=d.symbol, comment=d.comment, external_id="",
        )  # fmt: skip

    def _history_range(self, date_from: Any, date_to: Any) -> tuple[float, float]:
        return _to_epoch(date_from), _to_epoch(date_to)

    def _open_book(
        self,
        book: dict[int, Any],
        record: Callable[[Any], Any],
        symbol: str | None,
        group: str | None,
        ticket: int | None,
    ) -> tuple[Any, ...] | None:
        """orders_get and positions_get: what is open now, after the prices have moved (which
        may fill pending orders or hit SL/TP, changing `book` itself)."""
        if not self._account_ready():
            return None
        for name in {i.symbol for i in book.values()}:
            self._advance(name)
        chosen = [
            i
            for i in book.values()
            if (symbol is None or i.symbol == symbol)
            and (ticket is None or i.ticket == ticket)
            and _match_group(i.symbol, group)
        ]
        self._ok()
        return tuple(record(i) for i in chosen)

    def _history(
        self,
        items: list[Any],
        time_of: Callable[[Any], int],
        record: Callable[[Any], Any],
        date_from: Any,
        date_to: Any,
        group: str | None,
        ticket: int | None,
        position: int | None,
    ) -> tuple[Any, ...] | None:
        """history_orders_get and history_deals_get: by ticket, by position, or by dates."""
        if not self._account_ready():
            return None
        if ticket is not None:
            chosen = [i for i in items if i.ticket == ticket]
        elif position is not None:
            chosen = [i for i in items if i.position_id == position]
        else:
            try:
                lo, hi = self._history_range(date_from, date_to)
            except TypeError:  # None included: dates are required without ticket or position
                self._set_error(C.RES_E_INVALID_PARAMS)
                return None
            chosen = [
                i for i in items if lo <= time_of(i) / 1000 <= hi and _match_group(i.symbol, group)
            ]
        self._ok()
        return tuple(record(i) for i in chosen)

    # -- the MetaTrader5 API -----------------------------------------------------------------

    def initialize(
        self,
        path: str | None = None,
        *,
        login: int | None = None,
        password: str | None = None,
        server: str | None = None,
        timeout: int | None = None,
        portable: bool = False,
    ) -> bool:
        self._initialized = True
        if login is None:
            # A terminal that has the account saved logs in to it on start.
            self._logged_in = True
            self._ok()
            return True
        if not self._check_credentials(login, password, server):
            self._initialized = False
            return False
        self._ok()
        return True

    def login(
        self,
        login: int,
        password: str | None = None,
        server: str | None = None,
        timeout: int | None = None,
    ) -> bool:
        if not self._connected():
            return False
        if not self._check_credentials(login, password, server):
            return False
        self._ok()
        return True

    def shutdown(self) -> None:
        self._initialized = False
        self._ok()

    def version(self) -> tuple[int, int, str] | None:
        if not self._connected():
            return None
        self._ok()
        return (500, SIM_BUILD, "simulator")

    def last_error(self) -> tuple[int, str]:
        return self._error

    def terminal_info(self) -> TerminalInfo | None:
        if not self._connected():
            return None
        self._ok()
        return TerminalInfo(
            community_account=False, community_connection=False, connected=self._logged_in,
            dlls_allowed=False, trade_allowed=True, tradeapi_disabled=False, email_enabled=False,
            ftp_enabled=False, notifications_enabled=False, mqid=False, build=SIM_BUILD,
            maxbars=self._config.history_bars, codepage=0, ping_last=0, community_balance=0.0,
            retransmission=0.0, company=self._config.company, name="mt5bridge simulator",
            language="English", path="", data_path="", commondata_path="",
        )  # fmt: skip

    def account_info(self) -> AccountInfo | None:
        if not self._account_ready():
            return None
        profit, equity, margin, free, level = self._account_numbers()
        cfg = self._config
        self._ok()
        return AccountInfo(
            login=cfg.login, trade_mode=C.ACCOUNT_TRADE_MODE_DEMO, leverage=cfg.leverage,
            limit_orders=200, margin_so_mode=0, trade_allowed=True, trade_expert=True,
            margin_mode=C.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING, currency_digits=2,
            fifo_close=False, balance=self._balance, credit=0.0, profit=profit, equity=equity,
            margin=margin, margin_free=free, margin_level=level, margin_so_call=50.0,
            margin_so_so=30.0, margin_initial=0.0, margin_maintenance=0.0, assets=0.0,
            liabilities=0.0, commission_blocked=0.0, name=cfg.account_name, server=cfg.server,
            currency=cfg.currency, company=cfg.company,
        )  # fmt: skip

    def symbols_total(self) -> int | None:
        if not self._connected():
            return None
        self._ok()
        return len(self._specs)

    def symbols_get(self, group: str | None = None) -> tuple[SymbolInfo, ...] | None:
        if not self._connected():
            return None
        result = tuple(self._symbol_record(n) for n in self._specs if _match_group(n, group))
        self._ok()
        return result

    def _symbol_record(self, name: str) -> SymbolInfo:
        spec = self._specs[name]
        self._advance(name)
        bid, ask = self._prices(name)
        point = spec.point
        tick_value = point * spec.contract_size * (self._rate(spec.currency_profit) or 0.0)
        return SymbolInfo(
            custom=False, chart_mode=0, select=self._selected[name], visible=self._selected[name],
            digits=spec.digits, spread=spec.spread_points, spread_float=False, trade_calc_mode=0,
            trade_mode=4, trade_stops_level=spec.stops_level, trade_freeze_level=0,
            trade_exemode=2, filling_mode=3, expiration_mode=15, order_mode=127,
            time=self._last_second[name], bid=bid, ask=ask, last=0.0, point=point,
            trade_tick_value=round(tick_value, 8), trade_tick_size=point,
            trade_contract_size=spec.contract_size, volume_min=spec.volume_min,
            volume_max=spec.volume_max, volume_step=spec.volume_step,
            currency_base=spec.currency_base, currency_profit=spec.currency_profit,
            currency_margin=spec.currency_margin, description=spec.description, path=spec.path,
            name=name,
        )  # fmt: skip

    def symbol_info(self, symbol: str) -> SymbolInfo | None:
        if not self._connected() or self._spec(symbol) is None:
            return None
        self._ok()
        return self._symbol_record(symbol)

    def symbol_info_tick(self, symbol: str) -> Tick | None:
        if not self._connected() or self._spec(symbol) is None:
            return None
        self._advance(symbol)
        bid, ask = self._prices(symbol)
        now = self._clock()
        self._ok()
        return Tick(
            time=int(now), bid=bid, ask=ask, last=0.0, volume=0, time_msc=int(now * 1000),
            flags=6, volume_real=0.0,
        )  # fmt: skip

    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        if not self._connected() or self._spec(symbol) is None:
            return False
        self._selected[symbol] = bool(enable)
        self._ok()
        return True

    def _rates(self, symbol: Any, timeframe: Any) -> Array | None:
        if not self._connected() or self._spec(symbol) is None:
            return None
        return self._bars_for(symbol, timeframe)

    def copy_rates_from(
        self, symbol: str, timeframe: int, date_from: Any, count: int
    ) -> Array | None:
        bars = self._rates(symbol, timeframe)
        if bars is None:
            return None
        if not isinstance(count, int) or count <= 0:
            self._set_error(C.RES_E_INVALID_PARAMS)
            return None
        try:
            end = int(np.searchsorted(bars["time"], _to_epoch(date_from), side="right"))
        except TypeError:
            self._set_error(C.RES_E_INVALID_PARAMS)
            return None
        self._ok()
        return bars[max(0, end - count) : end].copy()

    def copy_rates_from_pos(
        self, symbol: str, timeframe: int, start_pos: int, count: int
    ) -> Array | None:
        bars = self._rates(symbol, timeframe)
        if bars is None:
            return None
        if (
            not isinstance(count, int)
            or not isinstance(start_pos, int)
            or count <= 0
            or start_pos < 0
        ):
            self._set_error(C.RES_E_INVALID_PARAMS)
            return None
        end = max(0, len(bars) - start_pos)
        self._ok()
        return bars[max(0, end - count) : end].copy()

    def copy_rates_range(
        self, symbol: str, timeframe: int, date_from: Any, date_to: Any
    ) -> Array | None:
        bars = self._rates(symbol, timeframe)
        if bars is None:
            return None
        try:
            lo, hi = _to_epoch(date_from), _to_epoch(date_to)
        except TypeError:
            self._set_error(C.RES_E_INVALID_PARAMS)
            return None
        self._ok()
        return bars[(bars["time"] >= lo) & (bars["time"] <= hi)].copy()

    def _ticks_of(self, symbol: Any, flags: Any) -> Array | None:
        if not self._connected() or self._spec(symbol) is None:
            return None
        if flags not in (C.COPY_TICKS_ALL, C.COPY_TICKS_INFO, C.COPY_TICKS_TRADE):
            self._set_error(C.RES_E_INVALID_PARAMS)
            return None
        if flags == C.COPY_TICKS_TRADE:
            # The simulated market has no trades (no last/volume), only bid/ask changes.
            return np.zeros(0, dtype=TICKS_DTYPE)
        return self._tick_history(symbol)

    def copy_ticks_from(self, symbol: str, date_from: Any, count: int, flags: int) -> Array | None:
        ticks = self._ticks_of(symbol, flags)
        if ticks is None:
            return None
        if not isinstance(count, int) or count <= 0:
            self._set_error(C.RES_E_INVALID_PARAMS)
            return None
        try:
            start = int(np.searchsorted(ticks["time_msc"], _to_epoch(date_from) * 1000))
        except TypeError:
            self._set_error(C.RES_E_INVALID_PARAMS)
            return None
        self._ok()
        return ticks[start : start + count].copy()

    def copy_ticks_range(
        self, symbol: str, date_from: Any, date_to: Any, flags: int
    ) -> Array | None:
        ticks = self._ticks_of(symbol, flags)
        if ticks is None:
            return None
        try:
            lo, hi = _to_epoch(date_from) * 1000, _to_epoch(date_to) * 1000
        except TypeError:
            self._set_error(C.RES_E_INVALID_PARAMS)
            return None
        self._ok()
        return ticks[(ticks["time_msc"] >= lo) & (ticks["time_msc"] <= hi)].copy()

    def orders_total(self) -> int | None:
        if not self._account_ready():
            return None
        self._ok()
        return len(self._orders)

    def orders_get(
        self, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> tuple[TradeOrder, ...] | None:
        return self._open_book(self._orders, self._order_record, symbol, group, ticket)

    def positions_total(self) -> int | None:
        if not self._account_ready():
            return None
        self._ok()
        return len(self._positions)

    def positions_get(
        self, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> tuple[TradePosition, ...] | None:
        return self._open_book(self._positions, self._position_record, symbol, group, ticket)

    def order_calc_margin(
        self, action: int, symbol: str, volume: float, price: float
    ) -> float | None:
        if not self._account_ready() or self._spec(symbol) is None:
            return None
        if action not in (C.ORDER_TYPE_BUY, C.ORDER_TYPE_SELL) or volume <= 0 or price <= 0:
            self._set_error(C.RES_E_INVALID_PARAMS)
            return None
        self._ok()
        return self._margin(self._specs[symbol], float(volume), float(price))

    def order_calc_profit(
        self, action: int, symbol: str, volume: float, price_open: float, price_close: float
    ) -> float | None:
        if not self._account_ready() or self._spec(symbol) is None:
            return None
        if action not in (C.ORDER_TYPE_BUY, C.ORDER_TYPE_SELL) or volume <= 0:
            self._set_error(C.RES_E_INVALID_PARAMS)
            return None
        self._ok()
        return self._profit(self._specs[symbol], action, float(volume), price_open, price_close)

    def order_check(self, request: dict[str, Any]) -> OrderCheckResult | None:
        if not self._account_ready():
            return None
        try:
            req = self._normalize(request)
        except TypeError as exc:
            self._set_error(C.RES_E_INVALID_PARAMS, str(exc))
            return None
        profit, equity, margin, _free, _level = self._account_numbers()
        try:
            _, added = self._plan(req)
            retcode, comment = 0, "Done"
        except _Reject as rej:
            added, retcode = 0.0, rej.retcode
            comment = C.RETCODE_DESCRIPTIONS.get(rej.retcode, "Rejected")
        margin_after = round(margin + added, 2)
        self._ok()
        return OrderCheckResult(
            retcode=retcode, balance=self._balance, equity=equity, profit=profit,
            margin=margin_after, margin_free=round(equity - margin_after, 2),
            margin_level=round(equity / margin_after * 100.0, 2) if margin_after else 0.0,
            comment=comment, request=req,
        )  # fmt: skip

    def order_send(self, request: dict[str, Any]) -> OrderSendResult | None:
        if not self._account_ready():
            return None
        try:
            req = self._normalize(request)
        except TypeError as exc:
            self._set_error(C.RES_E_INVALID_PARAMS, str(exc))
            return None
        deal = order = 0
        volume = price = 0.0
        try:
            run, _ = self._plan(req)
            deal, order, volume, price = run()
            retcode = (
                C.TRADE_RETCODE_PLACED
                if req.action == C.TRADE_ACTION_PENDING
                else (C.TRADE_RETCODE_DONE)
            )
        except _Reject as rej:
            retcode = rej.retcode
        bid, ask = self._prices(req.symbol) if req.symbol in self._specs else (0.0, 0.0)
        self._ok()
        return OrderSendResult(
            retcode=retcode, deal=deal, order=order, volume=volume, price=price, bid=bid,
            ask=ask, comment=C.RETCODE_DESCRIPTIONS.get(retcode, ""),
            request_id=next(self._request_ids), retcode_external=0, request=req,
        )  # fmt: skip

    def history_orders_total(self, date_from: Any, date_to: Any) -> int | None:
        found = self.history_orders_get(date_from, date_to)
        return None if found is None else len(found)

    def history_orders_get(
        self,
        date_from: Any = None,
        date_to: Any = None,
        *,
        group: str | None = None,
        ticket: int | None = None,
        position: int | None = None,
    ) -> tuple[TradeOrder, ...] | None:
        return self._history(
            list(self._history_orders.values()), lambda o: o.time_setup_msc, self._order_record,
            date_from, date_to, group, ticket, position,
        )  # fmt: skip

    def history_deals_total(self, date_from: Any, date_to: Any) -> int | None:
        found = self.history_deals_get(date_from, date_to)
        return None if found is None else len(found)

    def history_deals_get(
        self,
        date_from: Any = None,
        date_to: Any = None,
        *,
        group: str | None = None,
        ticket: int | None = None,
        position: int | None = None,
    ) -> tuple[TradeDeal, ...] | None:
        return self._history(
            list(self._deals.values()), lambda d: d.time_msc, self._deal_record,
            date_from, date_to, group, ticket, position,
        )  # fmt: skip


def as_module(sim: Simulator, name: str = "MetaTrader5") -> types.ModuleType:
    """A module object with the simulator's API functions and the MetaTrader5 constants, to
    stand in for `import MetaTrader5` (classic mode and the benchmark's mt5linux path)."""
    module = types.ModuleType(name, "MetaTrader5 API answered by the mt5bridge simulator")
    for const in dir(C):
        if const.isupper():
            setattr(module, const, getattr(C, const))
    for call in EXPOSED_CALLS:
        setattr(module, call, getattr(sim, call))
    return module
