"""The reference bot: log in through the bridge, report account state and the configured
symbol's tick every interval, and place and close one demo order when asked.

Entry point `mt5bot`. Settings: see mt5bot.settings. Exits 2 on invalid settings, 3 when the
account refuses the credentials (retrying would not help), 0 when stopped (SIGTERM) or after
MT5BOT_ITERATIONS cycles.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from mt5bridge import constants as C
from mt5bridge.errors import BridgeError
from mt5bridge.remote import Bridge
from mt5bridge.tls import TlsFiles

from mt5bot import logs, whereami
from mt5bot.backoff import Backoff
from mt5bot.health import STATE_FILE, HealthTracker
from mt5bot.settings import Settings, SettingsError, load

log = logging.getLogger("mt5bot")

EXIT_SETTINGS = 2
EXIT_AUTH = 3


class AuthRefused(Exception):
    pass


def make_bridge(settings: Settings) -> Bridge:
    tls = None
    if settings.tls_ca and settings.tls_cert and settings.tls_key:
        tls = TlsFiles(ca=settings.tls_ca, cert=settings.tls_cert, key=settings.tls_key)
    return Bridge(
        settings.bridge_host, settings.bridge_port, tls=tls, server_name=settings.tls_server_name
    )


def _log_in(mt5: Bridge, settings: Settings) -> None:
    # The password is never handed to logging; the redaction filter is the second line of
    # defence (for a secret echoed back in an error), not the first.
    log.debug("initialize(login=%s, server=%s)", settings.login, settings.server)
    if mt5.initialize(login=settings.login, password=settings.password, server=settings.server):
        log.info("logged in to account %s on %s", settings.login, settings.server)
        return
    code, message = mt5.last_error()
    if code == C.RES_E_AUTH_FAILED:
        raise AuthRefused(f"the terminal refused the credentials: ({code}) {message}")
    raise BridgeError(f"initialize failed: ({code}) {message}")


def _report(mt5: Bridge, settings: Settings) -> bool:
    account = mt5.account_info()
    tick = mt5.symbol_info_tick(settings.symbol)
    if account is None or tick is None:
        log.warning("no account or tick data: last_error=%s", mt5.last_error())
        return False
    log.info(
        "account %s balance=%.2f equity=%.2f margin=%.2f free=%.2f %s | %s bid=%s ask=%s",
        account.login,
        account.balance,
        account.equity,
        account.margin,
        account.margin_free,
        account.currency,
        settings.symbol,
        tick.bid,
        tick.ask,
    )
    return True


def demo_round_trip(mt5: Bridge, settings: Settings) -> bool:
    """Buy the symbol's minimum volume and close it again, on a demo account only."""
    account = mt5.account_info()
    if account is None or account.trade_mode != C.ACCOUNT_TRADE_MODE_DEMO:
        log.error("refusing the demo order: the account is not a demo account")
        return False
    info = mt5.symbol_info(settings.symbol)
    if info is None:
        log.error("refusing the demo order: unknown symbol %s", settings.symbol)
        return False
    request: dict[str, Any] = {
        "action": C.TRADE_ACTION_DEAL,
        "symbol": settings.symbol,
        "volume": info.volume_min,
        "type": C.ORDER_TYPE_BUY,
        "deviation": 20,
        "magic": 5150,
        "comment": "mt5bot demo",
        "type_filling": C.ORDER_FILLING_IOC,
        "type_time": C.ORDER_TIME_GTC,
    }
    opened = mt5.order_send(request)
    if opened is None or opened.retcode != C.TRADE_RETCODE_DONE:
        log.error("demo order refused: %s", opened.comment if opened else mt5.last_error())
        return False
    log.info(
        "demo order filled: position %s, %s lots at %s", opened.order, opened.volume, opened.price
    )
    closing = {**request, "type": C.ORDER_TYPE_SELL, "position": opened.order}
    closed = mt5.order_send(closing)
    if closed is None or closed.retcode != C.TRADE_RETCODE_DONE:
        log.error(
            "closing the demo position failed: %s", closed.comment if closed else mt5.last_error()
        )
        return False
    log.info("demo position %s closed at %s", opened.order, closed.price)
    return True


DEFAULT_BACKOFF = Backoff()


def run(settings: Settings, stop: threading.Event, backoff: Backoff = DEFAULT_BACKOFF) -> int:
    health = HealthTracker(settings.state_dir / STATE_FILE)
    mt5 = make_bridge(settings)
    logged_in = False
    demo_pending = settings.demo_order
    delays = backoff.delays()
    cycles = 0
    try:
        while not stop.is_set() and (settings.iterations == 0 or cycles < settings.iterations):
            try:
                if not logged_in:
                    _log_in(mt5, settings)
                    logged_in = True
                    health.connected = True
                    delays = backoff.delays()
                health.record(_report(mt5, settings))
                if demo_pending:
                    demo_pending = False
                    demo_round_trip(mt5, settings)
                cycles += 1
                health.write()
                stop.wait(settings.interval)
            except AuthRefused as exc:
                log.error("%s; check MT5_LOGIN, MT5_PASSWORD and MT5_SERVER", exc)
                return EXIT_AUTH
            except BridgeError as exc:
                logged_in = False
                health.connected = False
                health.record(False)
                health.write()
                delay = next(delays)
                log.warning("bridge unavailable (%s); retrying in %.1fs", exc, delay)
                stop.wait(delay)
    finally:
        mt5.close()
    return 0


USAGE = """\
Settings come only from the environment and Docker secrets (NAME_FILE reads the value from a
file, e.g. /run/secrets/mt5_password):
  MT5_LOGIN, MT5_PASSWORD, MT5_SERVER   the account (required; *_FILE variants accepted)
  MT5_BRIDGE_HOST, MT5_BRIDGE_PORT      the bridge (default 127.0.0.1:18812)
  MT5_BRIDGE_TLS_CA/_CERT/_KEY          mutual TLS for a bridge off loopback (`invoke certs`)
  MT5_BRIDGE_TLS_SERVER_NAME            name in the bridge's certificate, if not MT5_BRIDGE_HOST
  MT5BOT_SYMBOL                         symbol whose tick is reported (default EURUSD)
  MT5BOT_INTERVAL                       seconds between reports (default 10)
  MT5BOT_ITERATIONS                     stop after N reports (default 0: run until SIGTERM)
  MT5BOT_DEMO_ORDER                     true: place and close one order (demo accounts only)
  MT5BOT_LOG_LEVEL, MT5BOT_LOG_DIR      logging (secrets are redacted at every level)
  MT5BOT_STATE_DIR                      health file and whereami.txt (default /config/_meta)
Exit codes: 0 done, 2 invalid settings, 3 login refused."""


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="mt5bot",
        description="The reference trading bot: logs in through the bridge and reports account "
        "state and a symbol's tick on an interval.",
        epilog=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    try:
        settings = load()
    except SettingsError as exc:
        # Names what is wrong, never a value of a secret.
        print(f"mt5bot: {exc}", file=sys.stderr)
        return EXIT_SETTINGS
    redactor = logs.Redactor(secrets=settings.secrets, accounts=(settings.login,))
    logs.setup(redactor, level=settings.log_level, log_dir=settings.log_dir)
    path = whereami.write(settings)
    log.info("mt5bot starting; diagnostics in %s", path)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        return run(settings, stop)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
