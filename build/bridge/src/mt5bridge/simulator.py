"""A MetaTrader 5 terminal and trading account in memory, with the MetaTrader5 module's call shape.

Prices come from one tick stream per symbol (mt5bridge.market, mt5bridge.feed): live prices,
ticks and bars of every timeframe are views of it at the simulated time, so bars grow and new
ones appear as time passes, and history reaches any date back to `history_start`, the same on
every request for one seed. The simulated time is the wall clock, or `time_origin` plus the
elapsed wall time times `speed` (replay mode starts it at the first recorded tick).

Trading follows the trade server: market orders fill at the current bid/ask (market execution:
the request's price is not needed); pending orders (limit, stop, stop limit; expiring by
type_time), stop losses and take profits are checked against every tick that arrives (they fill
at that tick's price, so a gap slips); partial close, close-by, netting (one position per
symbol, reversals) and hedging accounts; swaps at rollover; stop out at 30% margin level;
order_calc_margin and order_calc_profit use the same formulas as the account's margin and the
deals' profits; filling types and stops levels are checked against the symbol; the market is
closed at weekends except for crypto; history keeps every order and deal, starting with the
account's balance deposit. It checks login, password and server against
what it was started with. Failures are reported the way the MetaTrader5 module does: None or
False plus last_error() with the package's texts, and trade return codes in retcode.

Where the real terminal's behaviour is not documented, the choice made here is said in a
comment. Not thread-safe: the bridge's backend serialises calls (and keeps one session per
client on top of this one terminal).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import itertools
import math
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np

from mt5bridge import constants as C
from mt5bridge import terms
from mt5bridge.api import EXPOSED_CALLS
from mt5bridge.feed import Feed
from mt5bridge.market import (
    DEFAULT_SYMBOLS,
    Array,
    ReplayStream,
    Stream,
    SymbolSpec,
    TickStream,
    load_replay_csv,
    seed_for,
)
from mt5bridge.mt5types import (
    TICKS_DTYPE,
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

SIM_BUILD: Final = 0  # not a MetaQuotes build number: version() says "simulator" in its date field
MAXBARS: Final = 100_000  # the terminal's default "Max bars in chart"
#: Margin levels (percent) of the simulated account: margin call and stop out.
MARGIN_CALL_LEVEL: Final = 50.0
STOP_OUT_LEVEL: Final = 30.0
#: The most ticks one copy_ticks_from answers (about 48 MB): a bound on memory and on the
#: reply, where the terminal pages its tick history too.
MAX_TICKS: Final = 1_000_000
HISTORY_START: Final = int(dt.datetime(2015, 1, 1, tzinfo=dt.UTC).timestamp())

_INT_FIELDS = ("action", "magic", "order", "deviation", "type", "type_filling", "type_time",
               "position", "position_by")  # fmt: skip
_FLOAT_FIELDS = ("volume", "price", "stoplimit", "sl", "tp")
_REQUEST_DEFAULTS: dict[str, Any] = {f: 0 for f in TradeRequest._fields} | {
    "symbol": "", "comment": "", **{f: 0.0 for f in _FLOAT_FIELDS}
}  # fmt: skip
_PENDING_TYPES = (C.ORDER_TYPE_BUY_LIMIT, C.ORDER_TYPE_SELL_LIMIT, C.ORDER_TYPE_BUY_STOP,
                  C.ORDER_TYPE_SELL_STOP, C.ORDER_TYPE_BUY_STOP_LIMIT,
                  C.ORDER_TYPE_SELL_STOP_LIMIT)  # fmt: skip
_STOP_LIMIT = (C.ORDER_TYPE_BUY_STOP_LIMIT, C.ORDER_TYPE_SELL_STOP_LIMIT)
_BUY_SIDE = (C.ORDER_TYPE_BUY, C.ORDER_TYPE_BUY_LIMIT, C.ORDER_TYPE_BUY_STOP,
             C.ORDER_TYPE_BUY_STOP_LIMIT)  # fmt: skip
_COPY_FLAGS = (C.COPY_TICKS_ALL, C.COPY_TICKS_INFO, C.COPY_TICKS_TRADE)


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """The account the simulated terminal accepts, and its market."""

    login: int
    password: str = field(repr=False)
    server: str
    balance: float = 10_000.0
    currency: str = "USD"
    leverage: int = 100
    margin_mode: int = C.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
    seed: int = 1
    symbols: tuple[SymbolSpec, ...] = DEFAULT_SYMBOLS
    history_start: int = HISTORY_START
    #: The terminal's "Max bars in chart": no copy_rates_* answer is longer.
    max_bars: int = MAXBARS
    #: Symbol name -> CSV to replay (MetaTrader 5 tick or bar export; see mt5bridge.market).
    csv_bars: Mapping[str, Path] = field(default_factory=dict)
    #: Simulated time at start (Unix seconds); None: the wall clock, or the first replayed tick.
    time_origin: float | None = None
    speed: float = 1.0
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
    swap: float = 0.0  # accrued at rollovers, in account currency
    swap_until_ms: int = 0  # rollovers up to here are in `swap`


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
    position_by_id: int = 0
    type_time: int = C.ORDER_TIME_GTC
    type_filling: int = C.ORDER_FILLING_FOK
    reason: int = C.ORDER_REASON_EXPERT
    price_stoplimit: float = 0.0
    expiration_ms: int = 0  # 0: good till cancelled


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
    swap: float = 0.0


class _Reject(Exception):
    """A trade request fails validation with a trade server return code."""

    def __init__(self, retcode: int) -> None:
        super().__init__(retcode)
        self.retcode = retcode


class _BadArgument(Exception):
    """An argument the real package refuses before asking the terminal: (-2, text)."""


def _to_epoch(value: Any, what: str) -> float:
    """A MetaTrader5 date argument (datetime or seconds since 1970) as Unix seconds.

    Naive datetimes are taken as UTC: the MetaTrader5 documentation tells callers to build
    dates in UTC (the simulated server's time is UTC).
    """
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return float(value.timestamp())
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
        # NaN, infinities and dates past year 6000 are refused, not computed with.
        if not 0.0 <= seconds < _LAST_DATE:
            raise _BadArgument(what)
        return seconds
    raise _BadArgument(what)


_LAST_DATE: Final = 2.0**37


def _int_arg(value: Any, what: str) -> int:
    if type(value) is not int and not isinstance(value, np.integer):
        raise _BadArgument(what)
    return int(value)


def _match_group(name: str, group: str | None) -> bool:
    """MetaTrader's group filter: comma-separated wildcards, "!" excludes."""
    if not group:
        return True
    parts = [p.strip() for p in group.split(",") if p.strip()]
    include = [p for p in parts if not p.startswith("!")]
    exclude = [p[1:] for p in parts if p.startswith("!")]
    upper = name.upper()
    included = not include or any(fnmatch.fnmatchcase(upper, p.upper()) for p in include)
    return included and not any(fnmatch.fnmatchcase(upper, p.upper()) for p in exclude)


class Simulator:
    """The terminal and account. Public methods are the MetaTrader5 functions."""

    def __init__(self, config: SimulatorConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._specs = {s.name: s for s in config.symbols}
        self._selected = dict.fromkeys(self._specs, True)
        self._books: set[str] = set()
        self._initialized = False
        self._logged_in = False
        self._error: tuple[int, str] = (C.RES_S_OK, terms.ERROR_TEXT[C.RES_S_OK])
        streams: dict[str, Stream] = {}
        for name, spec in self._specs.items():
            path = config.csv_bars.get(name)
            streams[name] = (
                ReplayStream(spec, load_replay_csv(Path(path), spec))
                if path is not None
                else TickStream(spec, config.seed)
            )
        unknown = set(config.csv_bars) - set(self._specs)
        if unknown:
            raise ValueError(f"replay CSV for unknown symbol(s): {', '.join(sorted(unknown))}")
        origin = config.time_origin
        replays = [s.first_ms for s in streams.values() if isinstance(s, ReplayStream)]
        if origin is None and replays:
            origin = min(replays) / 1000.0
        self._wall_start = float(clock())
        self._origin = origin
        history_start = config.history_start
        if replays:
            history_start = min(history_start, min(replays) // 1000)
        self._feeds = {n: Feed(s, history_start=history_start) for n, s in streams.items()}
        self._balance = float(config.balance)
        self._positions: dict[int, _Position] = {}
        self._orders: dict[int, _Order] = {}
        self._history_orders: dict[int, _Order] = {}
        self._deals: dict[int, _Deal] = {}
        self._tickets = itertools.count(100_000_001)
        self._deal_tickets = itertools.count(200_000_001)
        self._request_ids = itertools.count(1)
        start_ms = self._now_msc()
        self._checked_ms = dict.fromkeys(self._specs, start_ms)
        # The account's history opens with its deposit, as a demo account's does.
        deposit = _Deal(ticket=next(self._deal_tickets), order=0, time_msc=start_ms - 60_000,
                        type=C.DEAL_TYPE_BALANCE, entry=C.DEAL_ENTRY_IN, magic=0, position_id=0,
                        reason=C.DEAL_REASON_CLIENT, volume=0.0, price=0.0,
                        profit=self._balance, symbol="", comment="Deposit")  # fmt: skip
        self._deals[deposit.ticket] = deposit

    # -- time and errors ---------------------------------------------------------------------

    def _now(self) -> float:
        wall = float(self._clock())
        if self._origin is None:
            return wall
        return self._origin + (wall - self._wall_start) * self._config.speed

    def _now_msc(self) -> int:
        return int(self._now() * 1000)

    def _set_error(self, code: int, text: str | None = None) -> None:
        self._error = (code, text or terms.ERROR_TEXT.get(code, terms.ERROR_TEXT[-1]))

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

    def _symbol(self, symbol: Any, code: int = C.RES_E_FAIL) -> SymbolSpec | None:
        """The spec of `symbol`, or None with the package's error: a non-string is an invalid
        argument; a name the terminal does not know is "Terminal: Call failed" (-1) for
        symbol_info and friends, "Terminal: Invalid params" (-2) for history requests."""
        if not isinstance(symbol, str):
            self._set_error(C.RES_E_INVALID_PARAMS, terms.invalid_argument("symbol"))
            return None
        spec = self._specs.get(symbol)
        if spec is None:
            self._set_error(code)
        return spec

    def _check_credentials(self, login: Any, password: Any, server: Any) -> bool:
        if type(login) is not int:
            self._set_error(C.RES_E_INVALID_PARAMS, terms.invalid_argument("login"))
            return False
        for name, value in (("password", password), ("server", server)):
            if value is not None and not isinstance(value, str):
                self._set_error(C.RES_E_INVALID_PARAMS, terms.invalid_argument(name))
                return False
        cfg = self._config
        # None means "the one saved in the terminal", which is the configured one.
        ok = (
            login == cfg.login
            and (password is None or password == cfg.password)
            and (server is None or server == cfg.server)
        )
        if not ok:
            # A refused login leaves the terminal on the account it had (and connected).
            self._set_error(C.RES_E_AUTH_FAILED)
            return False
        self._logged_in = True
        return True

    # -- prices ------------------------------------------------------------------------------

    def _tick(self, symbol: str) -> Array:
        """The last tick (one-element array); the first recorded one before a replay starts."""
        feed = self._feeds[symbol]
        now_ms = self._now_msc()
        tick = feed.last_tick(now_ms)
        if tick is None:
            stream = feed.stream
            if isinstance(stream, ReplayStream):
                return stream.ticks[:1]
            tick = feed.last_tick(now_ms + 7 * 86_400_000)  # far before history_start only
            if tick is None:
                raise RuntimeError(f"no prices for {symbol}")
        return tick

    def _prices(self, symbol: str) -> tuple[float, float]:
        tick = self._tick(symbol)
        return float(tick["bid"][0]), float(tick["ask"][0])

    def _advance(self, symbol: str) -> None:
        """Run the ticks that arrived since the last check through the pending orders and
        SL/TP of `symbol`, each event at the tick that triggers it."""
        now_ms = self._now_msc()
        since = self._checked_ms[symbol]
        if now_ms <= since:
            return
        self._checked_ms[symbol] = now_ms
        watched = any(o.symbol == symbol for o in self._orders.values()) or any(
            p.symbol == symbol and (p.sl or p.tp) for p in self._positions.values()
        )
        if watched:
            self._run_events(symbol, since, now_ms)
        for pos in [p for p in self._positions.values() if p.symbol == symbol]:
            self._accrue_swap(pos, now_ms)

    def _run_events(self, symbol: str, since: int, now_ms: int) -> None:
        ticks = self._feeds[symbol].ticks(since + 1, now_ms, now_ms)
        start = 0
        for _ in range(10_000):  # each round fills or closes one thing
            if start >= len(ticks):
                break
            event = self._first_event(symbol, ticks[start:])
            if event is None:
                break
            index, action = event
            action(ticks[start + index])
            start += index + 1
        for order in [o for o in self._orders.values() if o.symbol == symbol]:
            if order.expiration_ms and order.expiration_ms <= now_ms:
                self._expire(order)  # expired while no tick came (a weekend)

    def _first_event(self, symbol: str, ticks: Array) -> tuple[int, Callable[[Any], None]] | None:
        bid, ask = ticks["bid"], ticks["ask"]
        best: tuple[int, Callable[[Any], None]] | None = None

        def consider(hits: Array, action: Callable[[Any], None]) -> None:
            nonlocal best
            if hits.any():
                i = int(np.argmax(hits))
                if best is None or i < best[0]:
                    best = (i, action)

        for order in [o for o in self._orders.values() if o.symbol == symbol]:
            p = order.price_open
            hits = {
                C.ORDER_TYPE_BUY_LIMIT: ask <= p, C.ORDER_TYPE_SELL_LIMIT: bid >= p,
                C.ORDER_TYPE_BUY_STOP: ask >= p, C.ORDER_TYPE_SELL_STOP: bid <= p,
                C.ORDER_TYPE_BUY_STOP_LIMIT: ask >= p, C.ORDER_TYPE_SELL_STOP_LIMIT: bid <= p,
            }[order.type]  # fmt: skip
            fire = self._stop_limit if order.type in _STOP_LIMIT else self._fill_pending
            if order.expiration_ms:
                # Expiry is an event too: at the first tick at or after it, before a fill there.
                expired = ticks["time_msc"] >= order.expiration_ms
                consider(expired, functools.partial(self._expire, order))
                hits = hits & ~expired
            consider(hits, functools.partial(fire, order))
        for pos in [p for p in self._positions.values() if p.symbol == symbol]:
            price = bid if pos.type == C.POSITION_TYPE_BUY else ask
            buy = pos.type == C.POSITION_TYPE_BUY
            if pos.sl:
                hits = price <= pos.sl if buy else price >= pos.sl
                consider(hits, functools.partial(self._stop_out, pos, reason=C.DEAL_REASON_SL))
            if pos.tp:
                hits = price >= pos.tp if buy else price <= pos.tp
                consider(hits, functools.partial(self._stop_out, pos, reason=C.DEAL_REASON_TP))
        return best

    def _accrue_swap(self, pos: _Position, until_ms: int) -> _Position:
        """Charge the rollovers (00:00 server time) between the position's last charge and
        `until_ms`: one per night after a trading day, three after Wednesday (the weekend's,
        swap_rollover3days); crypto every night, once. At the current rates (our choice: the
        rates at each past rollover are not kept)."""
        first = pos.swap_until_ms // 86_400_000 + 1
        last = until_ms // 86_400_000
        if last < first:
            return pos
        spec = self._specs[pos.symbol]
        nights = 0
        for midnight in range(first, last + 1):
            weekday = (midnight - 1 + 3) % 7  # of the day that ended; 0 is Monday
            if spec.weekends:
                nights += 1
            elif weekday < 5:
                nights += 3 if weekday == C.DAY_OF_WEEK_WEDNESDAY - 1 else 1
        charged = replace(pos, swap=round(pos.swap + nights * self._swap_night(pos), 2),
                          swap_until_ms=last * 86_400_000)  # fmt: skip
        if pos.ticket in self._positions:
            self._positions[pos.ticket] = charged
        return charged

    def _swap_night(self, pos: _Position) -> float:
        """One night's swap of `pos` in account currency, by the symbol's swap mode."""
        spec = self._specs[pos.symbol]
        rate = spec.swap_long if pos.type == C.POSITION_TYPE_BUY else spec.swap_short
        to_account = self._rate(spec.currency_profit) or 0.0
        if spec.swap_mode == C.SYMBOL_SWAP_MODE_POINTS:
            return rate * spec.point * spec.contract_size * pos.volume * to_account
        if spec.swap_mode == C.SYMBOL_SWAP_MODE_CURRENCY_SYMBOL:
            base = self._rate(spec.currency_base)
            return rate * pos.volume * (base if base is not None else to_account)
        if spec.swap_mode == C.SYMBOL_SWAP_MODE_INTEREST_CURRENT:
            value = self._prices(pos.symbol)[0] * spec.contract_size * pos.volume
            return value * rate / 100.0 / 360.0 * to_account
        return 0.0

    def _expire(self, order: _Order, tick: Any = None) -> None:
        if order.ticket not in self._orders:
            return
        del self._orders[order.ticket]
        self._history_orders[order.ticket] = replace(
            order, state=C.ORDER_STATE_EXPIRED, time_done_msc=order.expiration_ms
        )

    def _stop_limit(self, order: _Order, tick: Any) -> None:
        """A stop-limit order whose stop price is reached places its limit order."""
        if order.ticket not in self._orders:
            return
        del self._orders[order.ticket]
        when = int(tick["time_msc"])
        self._history_orders[order.ticket] = replace(
            order, state=C.ORDER_STATE_FILLED, volume_current=0.0, time_done_msc=when
        )
        kind = C.ORDER_TYPE_BUY_LIMIT if order.type in _BUY_SIDE else C.ORDER_TYPE_SELL_LIMIT
        limit = replace(order, ticket=next(self._tickets), type=kind,
                        price_open=order.price_stoplimit, price_stoplimit=0.0,
                        time_setup_msc=when, time_done_msc=0)  # fmt: skip
        self._orders[limit.ticket] = limit
        self._history_orders[limit.ticket] = limit

    def _stop_out(self, pos: _Position, tick: Any, *, reason: int) -> None:
        if pos.ticket not in self._positions:
            return
        price = float(tick["bid"] if pos.type == C.POSITION_TYPE_BUY else tick["ask"])
        order_reason = C.ORDER_REASON_SL if reason == C.DEAL_REASON_SL else C.ORDER_REASON_TP
        self._close(
            self._positions[pos.ticket],
            pos.volume,
            price,
            reason=reason,
            order_reason=order_reason,
            magic=pos.magic,
            when=int(tick["time_msc"]),
            comment=f"[{'sl' if reason == C.DEAL_REASON_SL else 'tp'} {price}]",
        )

    def _rate(self, ccy: str) -> float | None:
        """Units of account currency per unit of `ccy`, at the current bid."""
        acct = self._config.currency
        if ccy == acct:
            return 1.0
        direct = self._specs.get(ccy + acct)
        if direct is not None:
            return self._prices(direct.name)[0]
        inverse = self._specs.get(acct + ccy)
        if inverse is not None:
            return 1.0 / self._prices(inverse.name)[0]
        return None

    def _margin(self, spec: SymbolSpec, volume: float, price: float) -> float:
        """Initial margin in account currency. Forex: lots x contract / leverage in the margin
        currency; CFD (leverage): lots x contract x price / leverage in the profit currency;
        both times the symbol's margin rate."""
        leverage = self._config.leverage
        if spec.calc_mode == C.SYMBOL_CALC_MODE_FOREX:
            base = volume * spec.contract_size / leverage
            acct = self._config.currency
            rate: float | None
            if spec.margin_currency == spec.currency_base and spec.currency_profit == acct:
                rate = price  # the symbol is its own conversion pair: at the given price
            else:
                rate = self._rate(spec.margin_currency)
            if rate is None:
                rate = price * (self._rate(spec.currency_profit) or 0.0)
            return round(base * rate * spec.margin_rate, 2)
        value = volume * spec.contract_size * price / leverage
        return round(value * (self._rate(spec.currency_profit) or 0.0) * spec.margin_rate, 2)

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

    def _used_margin(self) -> float:
        """Each position's margin at its open price (so order_calc_margin at the fill price is
        what opening adds). Hedging: opposite positions on a symbol are charged once, the
        larger side's."""
        sides: dict[tuple[str, int], float] = {}
        for p in self._positions.values():
            m = self._margin(self._specs[p.symbol], p.volume, p.price_open)
            sides[(p.symbol, p.type)] = sides.get((p.symbol, p.type), 0.0) + m
        if self._config.margin_mode != C.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING:
            return round(sum(sides.values()), 2)
        symbols = {s for s, _ in sides}
        return round(sum(max(sides.get((s, 0), 0.0), sides.get((s, 1), 0.0)) for s in symbols), 2)

    def _account_numbers(self) -> tuple[float, float, float, float, float]:
        self._advance_all()
        return self._numbers()

    def _stop_out_check(self) -> None:
        """Below the stop-out level the server closes the most losing position, then the
        next, until the level is back. Checked whenever the account or its book is looked at
        (our choice: not on every tick of every symbol)."""
        numbers = self._numbers()
        while numbers[2] and numbers[4] < STOP_OUT_LEVEL and self._positions:
            worst = min(self._positions.values(), key=self._position_profit)
            bid, ask = self._prices(worst.symbol)
            price = bid if worst.type == C.POSITION_TYPE_BUY else ask
            self._close(worst, worst.volume, price, reason=C.DEAL_REASON_SO,
                        order_reason=C.ORDER_REASON_SO, magic=worst.magic,
                        when=self._now_msc(), comment=f"[so {numbers[4]:.2f}%]")  # fmt: skip
            numbers = self._numbers()

    def _numbers(self) -> tuple[float, float, float, float, float]:
        """(profit, equity, margin, free margin, margin level) at the current prices."""
        profit = round(sum(self._position_profit(p) + p.swap for p in self._positions.values()), 2)
        margin = self._used_margin()
        equity = round(self._balance + profit, 2)
        level = round(equity / margin * 100.0, 2) if margin else 0.0
        return profit, equity, margin, round(equity - margin, 2), level

    # -- trade execution ---------------------------------------------------------------------

    def _record_order(self, when: int, **kw: Any) -> _Order:
        order = _Order(ticket=next(self._tickets), time_setup_msc=when, time_done_msc=when,
                       state=C.ORDER_STATE_FILLED, **kw)  # fmt: skip
        self._history_orders[order.ticket] = order
        return order

    def _deal(self, **kw: Any) -> _Deal:
        deal = _Deal(ticket=next(self._deal_tickets), **kw)
        self._deals[deal.ticket] = deal
        return deal

    def _execute(
        self, spec: SymbolSpec, side: int, volume: float, price: float, *, sl: float, tp: float,
        magic: int, comment: str, when: int, position: int = 0, filling: int = 0,
        order: _Order | None = None,
    ) -> tuple[int, int]:  # fmt: skip
        """A deal of `side` for `volume` at `price`: opens, adds to, reduces, closes or reverses
        a position as the account's mode says. Returns (order ticket, deal ticket)."""
        if order is None:
            order = self._record_order(
                when, symbol=spec.name, type=side, volume_initial=volume, volume_current=0.0,
                price_open=price, sl=sl, tp=tp, magic=magic, comment=comment, position_id=0,
                type_filling=filling,
            )  # fmt: skip
        target = self._positions.get(position) if position else None
        if target is None and self._config.margin_mode != C.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING:
            target = next((p for p in self._positions.values() if p.symbol == spec.name), None)
        if target is not None and target.type != side:
            return self._reduce(target, volume, price, order, when=when)
        if target is not None:  # netting: same direction adds, at the average price
            target = self._accrue_swap(target, when)
            total = round(target.volume + volume, 8)
            avg = round((target.price_open * target.volume + price * volume) / total, spec.digits)
            self._positions[target.ticket] = replace(
                target, volume=total, price_open=avg, time_update_msc=when,
                sl=sl or target.sl, tp=tp or target.tp,
            )  # fmt: skip
            pos_id = target.ticket
        else:
            pos_id = order.ticket  # a position's ticket is the ticket of the order that opened it
            self._positions[pos_id] = _Position(
                ticket=pos_id, symbol=spec.name, type=side, volume=volume, price_open=price,
                sl=sl, tp=tp, magic=magic, comment=comment, time_msc=when,
                time_update_msc=when, reason=C.POSITION_REASON_EXPERT, swap_until_ms=when,
            )  # fmt: skip
        self._history_orders[order.ticket] = replace(order, position_id=pos_id)
        deal = self._deal(order=order.ticket, time_msc=when, type=side, entry=C.DEAL_ENTRY_IN,
                          magic=magic, position_id=pos_id, reason=C.DEAL_REASON_EXPERT,
                          volume=volume, price=price, profit=0.0, symbol=spec.name,
                          comment=comment)  # fmt: skip
        return order.ticket, deal.ticket

    def _reduce(
        self, pos: _Position, volume: float, price: float, order: _Order, *, when: int,
        reason: int = C.DEAL_REASON_EXPERT,
    ) -> tuple[int, int]:  # fmt: skip
        spec = self._specs[pos.symbol]
        # The book's current state (a plan may hold an older copy), its swap charged to `when`.
        pos = self._accrue_swap(self._positions.get(pos.ticket, pos), when)
        closed = min(volume, pos.volume)
        profit = self._profit(spec, pos.type, closed, pos.price_open, price)
        swap = round(pos.swap * closed / pos.volume, 2)  # the closed part's share
        pos = replace(pos, swap=pos.swap - swap)
        self._balance = round(self._balance + profit + swap, 2)
        left = round(pos.volume - closed, 8)
        rest = round(volume - closed, 8)
        entry = C.DEAL_ENTRY_INOUT if rest > 0 else C.DEAL_ENTRY_OUT
        self._history_orders[order.ticket] = replace(order, position_id=pos.ticket)
        deal = self._deal(order=order.ticket, time_msc=when, type=1 - pos.type, entry=entry,
                          magic=order.magic, position_id=pos.ticket, reason=reason,
                          volume=volume, price=price, profit=profit, symbol=pos.symbol,
                          comment=order.comment, swap=swap)  # fmt: skip
        if left > 0:
            self._positions[pos.ticket] = replace(pos, volume=left, time_update_msc=when)
        else:
            del self._positions[pos.ticket]
            if rest > 0:  # netting reversal: the rest opens the other way, same identifier
                self._positions[pos.ticket] = replace(
                    pos, type=1 - pos.type, volume=rest, price_open=price, sl=0.0, tp=0.0,
                    time_update_msc=when, swap=0.0,
                )  # fmt: skip
        return order.ticket, deal.ticket

    def _close(
        self, pos: _Position, volume: float, price: float, *, reason: int, order_reason: int,
        magic: int, when: int, comment: str = "",
    ) -> tuple[int, int]:  # fmt: skip
        order = self._record_order(
            when, symbol=pos.symbol, type=1 - pos.type, volume_initial=volume,
            volume_current=0.0, price_open=price, sl=0.0, tp=0.0, magic=magic, comment=comment,
            position_id=pos.ticket, reason=order_reason,
        )  # fmt: skip
        return self._reduce(pos, volume, price, order, when=when, reason=reason)

    def _fill_pending(self, order: _Order, tick: Any) -> None:
        if order.ticket not in self._orders:
            return
        del self._orders[order.ticket]
        spec = self._specs[order.symbol]
        side = C.ORDER_TYPE_BUY if order.type in _BUY_SIDE else C.ORDER_TYPE_SELL
        when = int(tick["time_msc"])
        price = float(tick["ask"] if side == C.ORDER_TYPE_BUY else tick["bid"])
        # A limit fills at its price or better; a stop at the tick that reaches it.
        if order.type in (C.ORDER_TYPE_BUY_LIMIT, C.ORDER_TYPE_SELL_LIMIT):
            price = min(price, order.price_open) if side == 0 else max(price, order.price_open)
        filled = replace(order, state=C.ORDER_STATE_FILLED, volume_current=0.0,
                         time_done_msc=when)  # fmt: skip
        self._history_orders[order.ticket] = filled
        self._execute(
            spec,
            side,
            order.volume_initial,
            price,
            sl=order.sl,
            tp=order.tp,
            magic=order.magic,
            comment=order.comment,
            when=when,
            order=filled,
        )

    def _check_volume(self, spec: SymbolSpec, volume: float) -> float:
        if not math.isfinite(volume):
            raise _Reject(C.TRADE_RETCODE_INVALID_VOLUME)
        steps = volume / spec.volume_step
        if (
            volume < spec.volume_min - 1e-9
            or volume > spec.volume_max + 1e-9
            or abs(steps - round(steps)) > 1e-6
        ):
            raise _Reject(C.TRADE_RETCODE_INVALID_VOLUME)
        return round(float(volume), 8)

    def _check_stops(self, spec: SymbolSpec, buy: bool, bid: float, ask: float,
                     sl: float, tp: float) -> None:  # fmt: skip
        """SL/TP on the right side of the price that would close the position, at least the
        symbol's stops level away from it."""
        ref = bid if buy else ask
        gap = spec.stops_level * spec.point - 1e-12
        if buy and ((sl and sl > ref - gap) or (tp and tp < ref + gap)):
            raise _Reject(C.TRADE_RETCODE_INVALID_STOPS)
        if not buy and ((sl and sl < ref + gap) or (tp and tp > ref - gap)):
            raise _Reject(C.TRADE_RETCODE_INVALID_STOPS)

    @staticmethod
    def _check_filling(spec: SymbolSpec, filling: int) -> None:
        """Market orders: FOK and IOC only where the symbol's filling_mode has them; RETURN
        with market and exchange execution (the MQL5 reference's rule); nothing else."""
        allowed = {
            C.ORDER_FILLING_FOK: bool(spec.filling_mode & terms.SYMBOL_FILLING_FOK),
            C.ORDER_FILLING_IOC: bool(spec.filling_mode & terms.SYMBOL_FILLING_IOC),
            C.ORDER_FILLING_RETURN: spec.exemode in (C.SYMBOL_TRADE_EXECUTION_MARKET,
                                                     C.SYMBOL_TRADE_EXECUTION_EXCHANGE),
        }.get(filling, False)  # fmt: skip
        if not allowed:
            raise _Reject(C.TRADE_RETCODE_INVALID_FILL)

    def _market_open(self, spec: SymbolSpec) -> None:
        if not self._feeds[spec.name].stream.spec.weekends:
            day = int(self._now()) // 86_400
            if (day + 3) % 7 >= 5:
                raise _Reject(C.TRADE_RETCODE_MARKET_CLOSED)
        if spec.trade_mode == C.SYMBOL_TRADE_MODE_DISABLED:
            raise _Reject(C.TRADE_RETCODE_TRADE_DISABLED)

    def _normalize(self, request: Any) -> TradeRequest:
        """The request as the package reads it: known fields only, each of its type, or
        _BadArgument with the field's name."""
        if not isinstance(request, dict):
            raise _BadArgument(terms.INVALID_ARGUMENTS)
        merged = dict(_REQUEST_DEFAULTS)
        for key in TradeRequest._fields:
            if key not in request:
                continue
            value = request[key]
            if key in _INT_FIELDS:
                ok = type(value) is int or isinstance(value, np.integer)
            elif key in _FLOAT_FIELDS:
                ok = (isinstance(value, int | float | np.number) and not isinstance(value, bool)
                      and math.isfinite(value))  # fmt: skip
            elif key == "expiration":
                ok = type(value) is int or isinstance(value, dt.datetime)
            else:
                ok = isinstance(value, str)
            if not ok:
                raise _BadArgument(terms.invalid_argument(key))
            if key in _FLOAT_FIELDS:
                value = float(value)
            elif key in _INT_FIELDS:
                value = int(value)
            merged[key] = value
        return TradeRequest(**merged)

    Plan = tuple[Callable[[], tuple[int, int, float, float]], float]

    def _plan(self, req: TradeRequest) -> Plan:
        """Validate `req`; return the action that executes it and the margin it adds.

        The action returns (deal, order, volume, price). Raises _Reject with a return code.
        """
        if req.action == C.TRADE_ACTION_DEAL:
            return self._plan_deal(req)
        if req.action == C.TRADE_ACTION_PENDING:
            return self._plan_pending(req)
        if req.action == C.TRADE_ACTION_SLTP:
            return self._plan_sltp(req)
        if req.action in (C.TRADE_ACTION_MODIFY, C.TRADE_ACTION_REMOVE):
            return self._plan_modify(req)
        if req.action == C.TRADE_ACTION_CLOSE_BY:
            return self._plan_close_by(req)
        raise _Reject(C.TRADE_RETCODE_INVALID)

    def _plan_sltp(self, req: TradeRequest) -> Plan:
        pos = self._positions.get(req.position)
        if pos is None:
            self._advance_all()
            raise _Reject(C.TRADE_RETCODE_POSITION_CLOSED)
        self._advance(pos.symbol)
        if pos.ticket not in self._positions:
            raise _Reject(C.TRADE_RETCODE_POSITION_CLOSED)
        spec = self._specs[pos.symbol]
        bid, ask = self._prices(pos.symbol)
        self._check_stops(spec, pos.type == C.POSITION_TYPE_BUY, bid, ask, req.sl, req.tp)
        if (req.sl, req.tp) == (pos.sl, pos.tp):
            raise _Reject(C.TRADE_RETCODE_NO_CHANGES)

        def sltp() -> tuple[int, int, float, float]:
            self._positions[pos.ticket] = replace(
                pos, sl=req.sl, tp=req.tp, time_update_msc=self._now_msc()
            )
            return 0, 0, 0.0, 0.0

        return sltp, 0.0

    def _plan_modify(self, req: TradeRequest) -> Plan:
        order = self._orders.get(req.order)
        if order is not None:
            self._advance(order.symbol)
        order = self._orders.get(req.order)
        if order is None:
            raise _Reject(C.TRADE_RETCODE_INVALID_ORDER)
        if req.action == C.TRADE_ACTION_REMOVE:

            def remove() -> tuple[int, int, float, float]:
                del self._orders[order.ticket]
                self._history_orders[order.ticket] = replace(
                    order, state=C.ORDER_STATE_CANCELED, time_done_msc=self._now_msc()
                )
                return 0, order.ticket, 0.0, 0.0

            return remove, 0.0
        spec = self._specs[order.symbol]
        self._check_pending_price(spec, order.type, req.price, req.stoplimit)
        self._check_stops(spec, order.type in _BUY_SIDE, req.price, req.price, req.sl, req.tp)

        def modify() -> tuple[int, int, float, float]:
            self._orders[order.ticket] = replace(order, price_open=req.price, sl=req.sl,
                                                 tp=req.tp)  # fmt: skip
            return 0, order.ticket, order.volume_current, req.price

        return modify, 0.0

    def _plan_close_by(self, req: TradeRequest) -> Plan:
        if self._config.margin_mode != C.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING:
            raise _Reject(C.TRADE_RETCODE_INVALID_ORDER)
        self._advance_all()
        pos, by = self._positions.get(req.position), self._positions.get(req.position_by)
        if pos is None or by is None:
            raise _Reject(C.TRADE_RETCODE_POSITION_CLOSED)
        if pos.symbol != by.symbol or pos.type == by.type:
            raise _Reject(C.TRADE_RETCODE_INVALID)

        def close_by() -> tuple[int, int, float, float]:
            when = self._now_msc()
            volume = min(pos.volume, by.volume)
            order = self._record_order(
                when, symbol=pos.symbol, type=C.ORDER_TYPE_CLOSE_BY, volume_initial=volume,
                volume_current=0.0, price_open=0.0, sl=0.0, tp=0.0, magic=req.magic,
                comment=req.comment, position_id=pos.ticket, position_by_id=by.ticket,
            )  # fmt: skip
            # Each position closes at the other's open price (MetaTrader's close-by rule).
            _, deal = self._reduce(pos, volume, by.price_open, order, when=when)
            self._reduce(self._positions.get(by.ticket, by), volume, pos.price_open, order,
                         when=when)  # fmt: skip
            for d in (deal, deal + 1):
                if d in self._deals:
                    self._deals[d] = replace(self._deals[d], entry=C.DEAL_ENTRY_OUT_BY)
            return deal, order.ticket, volume, by.price_open

        return close_by, 0.0

    def _advance_all(self) -> None:
        for name in {p.symbol for p in self._positions.values()} | {
            o.symbol for o in self._orders.values()
        }:
            self._advance(name)
        if self._positions:
            self._stop_out_check()

    def _plan_deal(self, req: TradeRequest) -> Plan:
        spec = self._specs.get(req.symbol)
        if spec is None:
            raise _Reject(C.TRADE_RETCODE_INVALID)
        if req.type not in (C.ORDER_TYPE_BUY, C.ORDER_TYPE_SELL):
            raise _Reject(C.TRADE_RETCODE_INVALID_ORDER)
        volume = self._check_volume(spec, req.volume)
        self._check_filling(spec, req.type_filling)
        self._market_open(spec)
        self._advance(spec.name)
        bid, ask = self._prices(spec.name)
        price = ask if req.type == C.ORDER_TYPE_BUY else bid
        if spec.exemode in (C.SYMBOL_TRADE_EXECUTION_INSTANT, C.SYMBOL_TRADE_EXECUTION_REQUEST):
            # Instant execution: at the price asked, or a requote when the market has moved
            # more than `deviation` points from it (filled at the market's price within it).
            if req.price <= 0:
                raise _Reject(C.TRADE_RETCODE_INVALID_PRICE)
            if abs(req.price - price) > req.deviation * spec.point + 1e-9:
                raise _Reject(C.TRADE_RETCODE_REQUOTE)
        if req.position:
            pos = self._positions.get(req.position)
            if pos is None:
                raise _Reject(C.TRADE_RETCODE_POSITION_CLOSED)
            if pos.symbol != spec.name or pos.type == req.type:
                raise _Reject(C.TRADE_RETCODE_INVALID)
            if volume > pos.volume + 1e-9:
                raise _Reject(C.TRADE_RETCODE_INVALID_CLOSE_VOLUME)

            def close() -> tuple[int, int, float, float]:
                order, deal = self._close(pos, volume, price, reason=C.DEAL_REASON_EXPERT,
                                          order_reason=C.ORDER_REASON_EXPERT, magic=req.magic,
                                          when=self._now_msc(), comment=req.comment)  # fmt: skip
                return deal, order, volume, price

            return close, -self._margin(spec, volume, bid)
        self._check_stops(spec, req.type == C.ORDER_TYPE_BUY, bid, ask, req.sl, req.tp)
        margin = self._margin(spec, volume, price)
        if self._account_numbers()[3] - margin < 0:
            raise _Reject(C.TRADE_RETCODE_NO_MONEY)

        def open_() -> tuple[int, int, float, float]:
            order, deal = self._execute(spec, req.type, volume, price, sl=req.sl, tp=req.tp,
                                        magic=req.magic, comment=req.comment,
                                        when=self._now_msc(), filling=req.type_filling)  # fmt: skip
            return deal, order, volume, price

        return open_, margin

    def _check_pending_price(
        self, spec: SymbolSpec, type_: int, price: float, stoplimit: float = 0.0
    ) -> None:
        """The MQL5 rules: limits below the ask (buy) / above the bid (sell), stops beyond
        them, each at least the stops level away; a stop limit's limit price is on the near
        side of its stop price."""
        self._advance(spec.name)
        bid, ask = self._prices(spec.name)
        gap = spec.stops_level * spec.point
        if price <= 0:
            raise _Reject(C.TRADE_RETCODE_INVALID_PRICE)
        valid = {
            C.ORDER_TYPE_BUY_LIMIT: price <= ask - gap,
            C.ORDER_TYPE_SELL_LIMIT: price >= bid + gap,
            C.ORDER_TYPE_BUY_STOP: price >= ask + gap,
            C.ORDER_TYPE_SELL_STOP: price <= bid - gap,
            C.ORDER_TYPE_BUY_STOP_LIMIT: price >= ask + gap and 0 < stoplimit <= price - gap,
            C.ORDER_TYPE_SELL_STOP_LIMIT: price <= bid - gap and stoplimit >= price + gap,
        }[type_]
        if not valid or price in (bid, ask):
            raise _Reject(C.TRADE_RETCODE_INVALID_PRICE)

    def _expiration_ms(self, req: TradeRequest) -> int:
        """When a pending order of `req` expires (0: never), or INVALID_EXPIRATION."""
        now_ms = self._now_msc()
        day_end = (now_ms // 86_400_000 + 1) * 86_400_000
        if req.type_time == C.ORDER_TIME_GTC:
            return 0
        if req.type_time == C.ORDER_TIME_DAY:
            return day_end
        if req.type_time not in (C.ORDER_TIME_SPECIFIED, C.ORDER_TIME_SPECIFIED_DAY):
            raise _Reject(C.TRADE_RETCODE_INVALID_EXPIRATION)
        try:
            at = int(_to_epoch(req.expiration, "expiration") * 1000)
        except _BadArgument:
            raise _Reject(C.TRADE_RETCODE_INVALID_EXPIRATION) from None
        if req.type_time == C.ORDER_TIME_SPECIFIED_DAY:
            at = (at // 86_400_000 + 1) * 86_400_000
        if at <= now_ms:
            raise _Reject(C.TRADE_RETCODE_INVALID_EXPIRATION)
        return at

    def _plan_pending(self, req: TradeRequest) -> Plan:
        spec = self._specs.get(req.symbol)
        if spec is None:
            raise _Reject(C.TRADE_RETCODE_INVALID)
        if req.type not in _PENDING_TYPES:
            raise _Reject(C.TRADE_RETCODE_INVALID_ORDER)
        volume = self._check_volume(spec, req.volume)
        self._market_open(spec)
        self._check_pending_price(spec, req.type, req.price, req.stoplimit)
        entry = req.stoplimit if req.type in _STOP_LIMIT else req.price
        self._check_stops(spec, req.type in _BUY_SIDE, entry, entry, req.sl, req.tp)
        expiration_ms = self._expiration_ms(req)

        def place() -> tuple[int, int, float, float]:
            now = self._now_msc()
            order = _Order(
                ticket=next(self._tickets), symbol=spec.name, type=req.type,
                volume_initial=volume, volume_current=volume, price_open=req.price, sl=req.sl,
                tp=req.tp, magic=req.magic, comment=req.comment, state=C.ORDER_STATE_PLACED,
                time_setup_msc=now, time_done_msc=0, position_id=0, type_time=req.type_time,
                type_filling=req.type_filling, expiration_ms=expiration_ms,
                price_stoplimit=req.stoplimit if req.type in _STOP_LIMIT else 0.0,
            )  # fmt: skip
            self._orders[order.ticket] = order
            self._history_orders[order.ticket] = order
            return 0, order.ticket, volume, req.price

        return place, 0.0

    # -- records -----------------------------------------------------------------------------

    def _order_record(self, o: _Order) -> TradeOrder:
        bid, ask = self._prices(o.symbol)
        return TradeOrder(
            ticket=o.ticket, time_setup=o.time_setup_msc // 1000, time_setup_msc=o.time_setup_msc,
            time_done=o.time_done_msc // 1000, time_done_msc=o.time_done_msc,
            time_expiration=o.expiration_ms // 1000,
            type=o.type, type_time=o.type_time, type_filling=o.type_filling, state=o.state,
            magic=o.magic, position_id=o.position_id, position_by_id=o.position_by_id,
            reason=o.reason, volume_initial=o.volume_initial, volume_current=o.volume_current,
            price_open=o.price_open, sl=o.sl, tp=o.tp, price_current=bid if o.type % 2 else ask,
            price_stoplimit=o.price_stoplimit, symbol=o.symbol, comment=o.comment,
            external_id="",
        )  # fmt: skip

    def _position_record(self, p: _Position) -> TradePosition:
        bid, ask = self._prices(p.symbol)
        return TradePosition(
            ticket=p.ticket, time=p.time_msc // 1000, time_msc=p.time_msc,
            time_update=p.time_update_msc // 1000, time_update_msc=p.time_update_msc,
            type=p.type, magic=p.magic, identifier=p.ticket, reason=p.reason, volume=p.volume,
            price_open=p.price_open, sl=p.sl, tp=p.tp,
            price_current=bid if p.type == C.POSITION_TYPE_BUY else ask, swap=p.swap,
            profit=self._position_profit(p), symbol=p.symbol, comment=p.comment, external_id="",
        )  # fmt: skip

    @staticmethod
    def _deal_record(d: _Deal) -> TradeDeal:
        return TradeDeal(
            ticket=d.ticket, order=d.order, time=d.time_msc // 1000, time_msc=d.time_msc,
            type=d.type, entry=d.entry, magic=d.magic, position_id=d.position_id,
            reason=d.reason, volume=d.volume, price=d.price, commission=0.0, swap=d.swap,
            profit=d.profit, fee=0.0, symbol=d.symbol, comment=d.comment, external_id="",
        )  # fmt: skip

    def _open_book(
        self, book: dict[int, Any], record: Callable[[Any], Any], args: tuple[Any, ...],
        symbol: Any, group: Any, ticket: Any,
    ) -> tuple[Any, ...] | None:  # fmt: skip
        """orders_get and positions_get: what is open now, after the prices have moved (which
        may fill pending orders or hit SL/TP, changing `book` itself)."""
        if args:
            self._set_error(C.RES_E_INVALID_PARAMS, terms.UNNAMED_NOT_ALLOWED)
            return None
        for name, value in (("symbol", symbol), ("group", group)):
            if value is not None and not isinstance(value, str):
                self._set_error(C.RES_E_INVALID_PARAMS, terms.invalid_argument(name))
                return None
        if ticket is not None and type(ticket) is not int:
            self._set_error(C.RES_E_INVALID_PARAMS, terms.invalid_argument("ticket"))
            return None
        if not self._account_ready():
            return None
        self._advance_all()
        chosen = [
            i for i in book.values()
            if (symbol is None or i.symbol == symbol) and (ticket is None or i.ticket == ticket)
            and _match_group(i.symbol, group)
        ]  # fmt: skip
        self._ok()
        return tuple(record(i) for i in chosen)

    def _history(
        self, items: list[Any], time_of: Callable[[Any], int], record: Callable[[Any], Any],
        args: tuple[Any, ...], group: Any, ticket: Any, position: Any,
    ) -> tuple[Any, ...] | None:  # fmt: skip
        """history_orders_get and history_deals_get: by ticket, by position, or by dates."""
        if not self._account_ready():
            return None
        self._advance_all()
        try:
            if ticket is not None:
                wanted = _int_arg(ticket, terms.invalid_argument("ticket"))
                chosen = [i for i in items if i.ticket == wanted]
            elif position is not None:
                wanted = _int_arg(position, terms.invalid_argument("position"))
                chosen = [i for i in items if i.position_id == wanted]
            else:
                if len(args) != 2:
                    raise _BadArgument(terms.INVALID_ARGUMENT_COUNT)
                lo = _to_epoch(args[0], terms.ORDINAL_ARGUMENT[1])
                hi = _to_epoch(args[1], terms.ORDINAL_ARGUMENT[2])
                if group is not None and not isinstance(group, str):
                    raise _BadArgument(terms.invalid_argument("group"))
                chosen = [
                    i
                    for i in items
                    if lo <= time_of(i) / 1000 <= hi and _match_group(i.symbol, group)
                ]
        except _BadArgument as exc:
            self._set_error(C.RES_E_INVALID_PARAMS, str(exc))
            return None
        self._ok()
        return tuple(record(i) for i in chosen)

    # -- the MetaTrader5 API -----------------------------------------------------------------

    def initialize(
        self,
        path: Any = None,
        *,
        login: Any = None,
        password: Any = None,
        server: Any = None,
        timeout: Any = None,
        portable: Any = False,
    ) -> bool:
        if path is not None and not isinstance(path, str):
            self._set_error(C.RES_E_INVALID_PARAMS, terms.invalid_argument("path"))
            return False
        if timeout is not None and type(timeout) is not int:
            self._set_error(C.RES_E_INVALID_PARAMS, terms.invalid_argument("timeout"))
            return False
        if login is None:
            # A terminal that has the account saved logs in to it on start.
            self._initialized = self._logged_in = True
            self._ok()
            return True
        if not self._check_credentials(login, password, server):
            return False
        self._initialized = True
        self._ok()
        return True

    def login(self, login: Any = None, password: Any = None, server: Any = None,
              timeout: Any = None) -> bool:  # fmt: skip
        if login is None:
            self._set_error(C.RES_E_INVALID_PARAMS, terms.invalid_argument("login"))
            return False
        if not self._connected() or not self._check_credentials(login, password, server):
            return False
        self._ok()
        return True

    def shutdown(self) -> None:
        self._initialized = False
        self._books.clear()
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
            maxbars=self._config.max_bars, codepage=0, ping_last=0, community_balance=0.0,
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
            limit_orders=200, margin_so_mode=C.ACCOUNT_STOPOUT_MODE_PERCENT, trade_allowed=True,
            trade_expert=True, margin_mode=cfg.margin_mode, currency_digits=2, fifo_close=False,
            balance=self._balance, credit=0.0, profit=profit, equity=equity, margin=margin,
            margin_free=free, margin_level=level, margin_so_call=MARGIN_CALL_LEVEL,
            margin_so_so=STOP_OUT_LEVEL, margin_initial=0.0, margin_maintenance=0.0,
            assets=0.0, liabilities=0.0, commission_blocked=0.0, name=cfg.account_name,
            server=cfg.server, currency=cfg.currency, company=cfg.company,
        )  # fmt: skip

    def symbols_total(self) -> int | None:
        if not self._connected():
            return None
        self._ok()
        return len(self._specs)

    def symbols_get(self, group: Any = None) -> tuple[SymbolInfo, ...] | None:
        if group is not None and not isinstance(group, str):
            self._set_error(C.RES_E_INVALID_PARAMS, terms.invalid_argument("group"))
            return None
        if not self._connected():
            return None
        result = tuple(self._symbol_record(n) for n in self._specs if _match_group(n, group))
        self._ok()
        return result

    def _symbol_record(self, name: str) -> SymbolInfo:
        spec = self._specs[name]
        tick = self._tick(name)
        bid, ask = float(tick["bid"][0]), float(tick["ask"][0])
        day_open, high, low, prev_close, ask_high = self._feeds[name].day_range(self._now_msc())
        spread = round((ask - bid) / spec.point)
        tick_value = spec.point * spec.contract_size * (self._rate(spec.currency_profit) or 0.0)
        change = round((bid - prev_close) / prev_close * 100, 4) if prev_close else 0.0
        zero = 0.0
        return SymbolInfo(
            custom=False, chart_mode=C.SYMBOL_CHART_MODE_BID, select=self._selected[name],
            visible=self._selected[name], session_deals=0, session_buy_orders=0,
            session_sell_orders=0, volume=0, volumehigh=0, volumelow=0,
            time=int(tick["time"][0]), digits=spec.digits, spread=spread, spread_float=True,
            ticks_bookdepth=spec.book_depth, trade_calc_mode=spec.calc_mode,
            trade_mode=spec.trade_mode, start_time=0, expiration_time=0,
            trade_stops_level=spec.stops_level, trade_freeze_level=spec.freeze_level,
            trade_exemode=spec.exemode, swap_mode=spec.swap_mode,
            swap_rollover3days=C.DAY_OF_WEEK_WEDNESDAY, margin_hedged_use_leg=False,
            expiration_mode=15, filling_mode=spec.filling_mode,
            order_mode=terms.SYMBOL_ORDER_MODE_ALL, order_gtc_mode=C.SYMBOL_ORDERS_GTC,
            option_mode=0, option_right=0, bid=bid, bidhigh=high, bidlow=low, ask=ask,
            askhigh=ask_high, asklow=round(low + spread * spec.point, spec.digits), last=zero,
            lasthigh=zero, lastlow=zero, volume_real=zero, volumehigh_real=zero,
            volumelow_real=zero, option_strike=zero, point=spec.point,
            trade_tick_value=round(tick_value, 8), trade_tick_value_profit=round(tick_value, 8),
            trade_tick_value_loss=round(tick_value, 8), trade_tick_size=spec.point,
            trade_contract_size=spec.contract_size, trade_accrued_interest=zero,
            trade_face_value=zero, trade_liquidity_rate=zero, volume_min=spec.volume_min,
            volume_max=spec.volume_max, volume_step=spec.volume_step,
            volume_limit=spec.volume_limit, swap_long=spec.swap_long, swap_short=spec.swap_short,
            margin_initial=zero, margin_maintenance=zero, session_volume=zero,
            session_turnover=zero, session_interest=zero, session_buy_orders_volume=zero,
            session_sell_orders_volume=zero, session_open=day_open, session_close=prev_close,
            session_aw=zero, session_price_settlement=zero, session_price_limit_min=zero,
            session_price_limit_max=zero, margin_hedged=spec.contract_size / 2,
            price_change=change, price_volatility=zero, price_theoretical=zero,
            price_greeks_delta=zero, price_greeks_theta=zero, price_greeks_gamma=zero,
            price_greeks_vega=zero, price_greeks_rho=zero, price_greeks_omega=zero,
            price_sensitivity=zero, basis="", category=spec.category,
            currency_base=spec.currency_base, currency_profit=spec.currency_profit,
            currency_margin=spec.margin_currency, bank="", description=spec.description,
            exchange=spec.exchange, formula="", isin="", name=name, page="", path=spec.path,
        )  # fmt: skip

    def symbol_info(self, symbol: Any) -> SymbolInfo | None:
        if not self._connected() or self._symbol(symbol) is None:
            return None
        self._ok()
        return self._symbol_record(symbol)

    def symbol_info_tick(self, symbol: Any) -> Tick | None:
        if not self._connected() or self._symbol(symbol) is None:
            return None
        self._advance(symbol)
        t = self._tick(symbol)[0]
        self._ok()
        return Tick(time=int(t["time"]), bid=float(t["bid"]), ask=float(t["ask"]),
                    last=float(t["last"]), volume=int(t["volume"]), time_msc=int(t["time_msc"]),
                    flags=int(t["flags"]), volume_real=float(t["volume_real"]))  # fmt: skip

    def symbol_select(self, symbol: Any, enable: Any = True) -> bool:
        if not isinstance(enable, bool):
            self._set_error(C.RES_E_INVALID_PARAMS, terms.ORDINAL_ARGUMENT[2])
            return False
        if not self._connected() or self._symbol(symbol) is None:
            return False
        self._selected[symbol] = enable
        self._ok()
        return True

    def _rates_args(self, symbol: Any, timeframe: Any) -> SymbolSpec | None:
        if not isinstance(symbol, str):
            self._set_error(C.RES_E_INVALID_PARAMS, terms.ORDINAL_ARGUMENT[1])
            return None
        if not terms.is_timeframe(timeframe):
            self._set_error(C.RES_E_INVALID_PARAMS, terms.ORDINAL_ARGUMENT[2])
            return None
        if not self._connected():
            return None
        return self._symbol(symbol, C.RES_E_INVALID_PARAMS)

    def _rates_done(self, bars: Array) -> Array | None:
        # A range without bars (a weekend, before history_start) is an empty array: what a bot
        # can iterate. (Our choice: the terminal's answer there is not documented.)
        self._ok()
        return bars.copy()

    def copy_rates_from(self, symbol: Any, timeframe: Any, date_from: Any,
                        count: Any) -> Array | None:  # fmt: skip
        if self._rates_args(symbol, timeframe) is None:
            return None
        try:
            end = int(_to_epoch(date_from, terms.ORDINAL_ARGUMENT[3]))
            n = _int_arg(count, terms.INVALID_ARGUMENTS)
        except _BadArgument as exc:
            self._set_error(C.RES_E_INVALID_PARAMS, str(exc))
            return None
        if n <= 0:
            self._set_error(C.RES_E_INVALID_PARAMS)
            return None
        bars = self._feeds[symbol].bars_before(timeframe, end, min(n, self._config.max_bars),
                                               self._now_msc())  # fmt: skip
        return self._rates_done(bars)

    def copy_rates_from_pos(self, symbol: Any, timeframe: Any, start_pos: Any,
                            count: Any) -> Array | None:  # fmt: skip
        if self._rates_args(symbol, timeframe) is None:
            return None
        try:
            start = _int_arg(start_pos, terms.ORDINAL_ARGUMENT[3])
            n = _int_arg(count, terms.INVALID_ARGUMENTS)
        except _BadArgument as exc:
            self._set_error(C.RES_E_INVALID_PARAMS, str(exc))
            return None
        if n <= 0 or start < 0:
            self._set_error(C.RES_E_INVALID_PARAMS)
            return None
        now_ms = self._now_msc()
        bars = self._feeds[symbol].bars_before(
            timeframe, now_ms // 1000, min(start + n, self._config.max_bars), now_ms
        )
        return self._rates_done(bars[: max(0, len(bars) - start)][-n:])

    def copy_rates_range(self, symbol: Any, timeframe: Any, date_from: Any,
                         date_to: Any) -> Array | None:  # fmt: skip
        if self._rates_args(symbol, timeframe) is None:
            return None
        try:
            lo = int(_to_epoch(date_from, terms.ORDINAL_ARGUMENT[3]))
            hi = int(_to_epoch(date_to, terms.INVALID_ARGUMENTS))
        except _BadArgument as exc:
            self._set_error(C.RES_E_INVALID_PARAMS, str(exc))
            return None
        now_ms = self._now_msc()
        hi = min(hi, now_ms // 1000)
        # Only the last max_bars bars exist, as in the terminal: never build more than those
        # (half again their span, and four days, cover weekends and holidays).
        length = terms.timeframe_seconds(timeframe) or 31 * 86_400
        lo = max(lo, hi - length * self._config.max_bars * 3 // 2 - 4 * 86_400)
        bars = self._feeds[symbol].bars(timeframe, lo, hi, now_ms)
        return self._rates_done(bars[-self._config.max_bars :])

    def _ticks_args(self, symbol: Any, flags: Any) -> SymbolSpec | None:
        if not isinstance(symbol, str):
            self._set_error(C.RES_E_INVALID_PARAMS, terms.ORDINAL_ARGUMENT[1])
            return None
        if type(flags) is not int or flags not in _COPY_FLAGS:
            # The package has texts for its 1st to 3rd unnamed arguments only; flags is the
            # 4th, so a bad one gets its generic text (no 'Invalid "flags" argument' in _core).
            self._set_error(C.RES_E_INVALID_PARAMS, terms.INVALID_ARGUMENTS)
            return None
        if not self._connected():
            return None
        return self._symbol(symbol, C.RES_E_INVALID_PARAMS)

    @staticmethod
    def _by_flags(ticks: Array, flags: int) -> Array:
        if flags == C.COPY_TICKS_INFO:
            mask = (ticks["flags"] & (C.TICK_FLAG_BID | C.TICK_FLAG_ASK)) != 0
        elif flags == C.COPY_TICKS_TRADE:
            mask = (ticks["flags"] & (C.TICK_FLAG_LAST | C.TICK_FLAG_VOLUME)) != 0
        else:
            return ticks
        selected: Array = ticks[mask]
        return selected

    def copy_ticks_from(self, symbol: Any, date_from: Any, count: Any,
                        flags: Any) -> Array | None:  # fmt: skip
        if self._ticks_args(symbol, flags) is None:
            return None
        try:
            lo = int(_to_epoch(date_from, terms.ORDINAL_ARGUMENT[2]) * 1000)
            n = _int_arg(count, terms.ORDINAL_ARGUMENT[3])
        except _BadArgument as exc:
            self._set_error(C.RES_E_INVALID_PARAMS, str(exc))
            return None
        if n <= 0:
            self._set_error(C.RES_E_INVALID_PARAMS)
            return None
        n = min(n, MAX_TICKS)
        now_ms = self._now_msc()
        feed = self._feeds[symbol]
        out: list[Array] = []
        got = 0
        while got < n and lo <= now_ms:
            # Day by day, so a huge count does not generate years of ticks at once.
            hi = (lo // 86_400_000 + 1) * 86_400_000 - 1
            part = self._by_flags(feed.ticks(lo, hi, now_ms), flags)
            out.append(part)
            got += len(part)
            lo = hi + 1
        ticks = np.concatenate(out)[:n] if out else np.zeros(0, dtype=TICKS_DTYPE)
        self._ok()
        return ticks

    def copy_ticks_range(self, symbol: Any, date_from: Any, date_to: Any,
                         flags: Any) -> Array | None:  # fmt: skip
        if self._ticks_args(symbol, flags) is None:
            return None
        try:
            lo = int(_to_epoch(date_from, terms.ORDINAL_ARGUMENT[2]) * 1000)
            hi = int(_to_epoch(date_to, terms.ORDINAL_ARGUMENT[3]) * 1000)
        except _BadArgument as exc:
            self._set_error(C.RES_E_INVALID_PARAMS, str(exc))
            return None
        if hi - lo > 31 * 86_400_000:
            # The terminal pages tick history too; a month per call keeps memory bounded.
            self._set_error(C.RES_E_INVALID_PARAMS, "Terminal: Invalid params (range over 31 days)")
            return None
        ticks = self._by_flags(self._feeds[symbol].ticks(lo, hi, self._now_msc()), flags)
        self._ok()
        return ticks

    def orders_total(self) -> int | None:
        if not self._account_ready():
            return None
        self._advance_all()
        self._ok()
        return len(self._orders)

    def orders_get(self, *args: Any, symbol: Any = None, group: Any = None,
                   ticket: Any = None) -> tuple[TradeOrder, ...] | None:  # fmt: skip
        return self._open_book(self._orders, self._order_record, args, symbol, group, ticket)

    def positions_total(self) -> int | None:
        if not self._account_ready():
            return None
        self._advance_all()
        self._ok()
        return len(self._positions)

    def positions_get(self, *args: Any, symbol: Any = None, group: Any = None,
                      ticket: Any = None) -> tuple[TradePosition, ...] | None:  # fmt: skip
        return self._open_book(self._positions, self._position_record, args, symbol, group,
                               ticket)  # fmt: skip

    def _calc_args(self, action: Any, symbol: Any, numbers: tuple[Any, ...]) -> bool:
        if type(action) is not int or action not in (C.ORDER_TYPE_BUY, C.ORDER_TYPE_SELL):
            self._set_error(C.RES_E_INVALID_PARAMS, terms.ORDINAL_ARGUMENT[1])
            return False
        if not isinstance(symbol, str):
            self._set_error(C.RES_E_INVALID_PARAMS, terms.ORDINAL_ARGUMENT[2])
            return False
        for i, value in enumerate(numbers, start=3):
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                self._set_error(C.RES_E_INVALID_PARAMS,
                                terms.ORDINAL_ARGUMENT.get(i, terms.INVALID_ARGUMENTS))  # fmt: skip
                return False
        return self._account_ready() and self._symbol(symbol) is not None

    def order_calc_margin(self, action: Any, symbol: Any, volume: Any,
                          price: Any) -> float | None:  # fmt: skip
        if not self._calc_args(action, symbol, (volume, price)):
            return None
        self._ok()
        return self._margin(self._specs[symbol], float(volume), float(price))

    def order_calc_profit(self, action: Any, symbol: Any, volume: Any, price_open: Any,
                          price_close: Any) -> float | None:  # fmt: skip
        if not self._calc_args(action, symbol, (volume, price_open, price_close)):
            return None
        self._ok()
        spec = self._specs[symbol]
        return self._profit(spec, action, float(volume), float(price_open), float(price_close))

    def _request(self, request: Any) -> TradeRequest | None:
        try:
            req = self._normalize(request)
        except _BadArgument as exc:
            self._set_error(C.RES_E_INVALID_PARAMS, str(exc))
            return None
        return req if self._account_ready() else None

    def order_check(self, request: Any) -> OrderCheckResult | None:
        req = self._request(request)
        if req is None:
            return None
        profit, equity, margin, _free, _level = self._account_numbers()
        try:
            _, added = self._plan(req)
            retcode = 0
        except _Reject as rej:
            added, retcode = 0.0, rej.retcode
        margin_after = round(margin + added, 2)
        self._ok()
        return OrderCheckResult(
            retcode=retcode, balance=self._balance, equity=equity, profit=profit,
            margin=margin_after, margin_free=round(equity - margin_after, 2),
            margin_level=round(equity / margin_after * 100.0, 2) if margin_after else 0.0,
            comment=terms.RETCODE_COMMENT.get(retcode, "Rejected"), request=req,
        )  # fmt: skip

    def order_send(self, request: Any) -> OrderSendResult | None:
        req = self._request(request)
        if req is None:
            return None
        deal = order = 0
        volume = price = 0.0
        try:
            run, _ = self._plan(req)
            deal, order, volume, price = run()
            retcode = (
                C.TRADE_RETCODE_PLACED
                if req.action == C.TRADE_ACTION_PENDING
                else C.TRADE_RETCODE_DONE
            )
        except _Reject as rej:
            retcode = rej.retcode
        bid, ask = self._prices(req.symbol) if req.symbol in self._specs else (0.0, 0.0)
        self._ok()
        return OrderSendResult(
            retcode=retcode, deal=deal, order=order, volume=volume, price=price, bid=bid,
            ask=ask, comment=terms.RETCODE_COMMENT.get(retcode, "Rejected"),
            request_id=next(self._request_ids), retcode_external=0, request=req,
        )  # fmt: skip

    def history_orders_total(self, date_from: Any, date_to: Any) -> int | None:
        found = self.history_orders_get(date_from, date_to)
        return None if found is None else len(found)

    def history_orders_get(self, *args: Any, group: Any = None, ticket: Any = None,
                           position: Any = None) -> tuple[TradeOrder, ...] | None:  # fmt: skip
        return self._history(list(self._history_orders.values()), lambda o: o.time_setup_msc,
                             self._order_record, args, group, ticket, position)  # fmt: skip

    def history_deals_total(self, date_from: Any, date_to: Any) -> int | None:
        found = self.history_deals_get(date_from, date_to)
        return None if found is None else len(found)

    def history_deals_get(self, *args: Any, group: Any = None, ticket: Any = None,
                          position: Any = None) -> tuple[TradeDeal, ...] | None:  # fmt: skip
        return self._history(list(self._deals.values()), lambda d: d.time_msc,
                             self._deal_record, args, group, ticket, position)  # fmt: skip

    # -- market depth ------------------------------------------------------------------------

    def market_book_add(self, symbol: Any) -> bool:
        if not self._connected() or self._symbol(symbol) is None:
            return False
        self._books.add(symbol)
        self._ok()
        return True

    def market_book_release(self, symbol: Any) -> bool:
        if not self._connected() or self._symbol(symbol) is None:
            return False
        self._books.discard(symbol)
        self._ok()
        return True

    def market_book_get(self, symbol: Any) -> tuple[BookInfo, ...] | None:
        """Depth of Market around the current tick: sell levels from the highest price down
        to the ask, then buy levels from the bid down, as the terminal lists them. Volumes are
        a function of (seed, symbol, tick time), so the book changes with every tick."""
        if not self._connected() or self._symbol(symbol) is None:
            return None
        if symbol not in self._books:
            # Not subscribed with market_book_add: the terminal has no book to give.
            self._set_error(C.RES_E_FAIL)
            return None
        spec = self._specs[symbol]
        self._advance(symbol)
        t = self._tick(symbol)[0]
        bid, ask, depth = float(t["bid"]), float(t["ask"]), spec.book_depth
        rng = np.random.default_rng(seed_for(self._config.seed, symbol, "book", int(t["time_msc"])))
        sizes = np.round(rng.gamma(2.0, 1.0, (2, depth)) * (1 + np.arange(depth)) * 2, 2) + 0.01
        step = max(1, spec.spread // 4) * spec.point
        levels: list[BookInfo] = []
        for i in range(depth - 1, -1, -1):
            vol = round(float(sizes[0, i]), 2)
            levels.append(BookInfo(type=C.BOOK_TYPE_SELL, price=round(ask + i * step, spec.digits),
                                   volume=round(vol), volume_dbl=vol))  # fmt: skip
        for i in range(depth):
            vol = round(float(sizes[1, i]), 2)
            levels.append(BookInfo(type=C.BOOK_TYPE_BUY, price=round(bid - i * step, spec.digits),
                                   volume=round(vol), volume_dbl=vol))  # fmt: skip
        self._ok()
        return tuple(levels)


def as_module(sim: Simulator, name: str = "MetaTrader5") -> types.ModuleType:
    """A module object with the simulator's API functions and the MetaTrader5 constants, to
    stand in for `import MetaTrader5` (classic mode and the benchmark's mt5linux path)."""
    module = types.ModuleType(name, "MetaTrader5 API answered by the mt5bridge simulator")
    for const in C.__all__:
        setattr(module, const, getattr(C, const))
    for call in EXPOSED_CALLS:
        setattr(module, call, getattr(sim, call))
    return module
