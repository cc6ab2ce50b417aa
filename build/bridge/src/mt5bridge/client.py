"""The bridge client, with the call shape of the `MetaTrader5` module.

    import mt5bridge.client as mt5

    mt5.connect("127.0.0.1", 18812)          # optional: defaults come from MT5_BRIDGE_* vars
    if not mt5.initialize(login=..., password=..., server=...):
        print(mt5.last_error())
    print(mt5.status())                      # extra: the bridge's own state (see status())
    rates = mt5.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M1, 0, 1000)  # a numpy array

Results are local values: named tuples with the terminal's field names, numpy structured arrays,
plain numbers and strings. Nothing returned is a proxy into the server. Bridge failures (cannot
connect, connection lost, handshake refused) raise BridgeError subclasses; MetaTrader5 failures
are reported as the MetaTrader5 module reports them, through return values and last_error().
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import rpyc  # type: ignore[import-untyped]
from rpyc.core.stream import SocketStream  # type: ignore[import-untyped]

from mt5bridge import codec
from mt5bridge.constants import *  # noqa: F403  # the MetaTrader5 constants, as the real module has
from mt5bridge.errors import (
    BridgeConnectionError,
    BridgeError,
    HandshakeError,
    NotExposedError,
    RemoteError,
)
from mt5bridge.handshake import RPYC_VERSION, client_handshake
from mt5bridge.service import ERR, OK, PASSTHROUGH_ERRORS, RPYC_CONFIG
from mt5bridge.tls import TlsFiles, client_context

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 18812


class Bridge:
    """One connection to a bridge server. Reconnects on the next call after a loss."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        tls: TlsFiles | None = None,
        server_name: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self._tls = tls
        self._server_name = server_name or host
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._conn: Any = None
        self._remote_call: Any = None
        self._remote_status: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Bridge:
        """A Bridge configured by MT5_BRIDGE_HOST, _PORT, _TLS_CA, _TLS_CERT, _TLS_KEY and
        _TLS_SERVER_NAME."""
        env = os.environ if environ is None else environ
        parts = [env.get(f"MT5_BRIDGE_TLS_{p}") for p in ("CA", "CERT", "KEY")]
        if any(parts) and not all(parts):
            raise BridgeError("mutual TLS needs MT5_BRIDGE_TLS_CA, _CERT and _KEY together")
        tls = None
        if all(parts):
            ca, cert, key = (Path(p) for p in parts if p)
            tls = TlsFiles(ca=ca, cert=cert, key=key)
        port_text = env.get("MT5_BRIDGE_PORT", str(DEFAULT_PORT))
        if not port_text.isdigit():
            raise BridgeError(f"MT5_BRIDGE_PORT must be a port number, got {port_text!r}")
        return cls(
            env.get("MT5_BRIDGE_HOST", DEFAULT_HOST),
            int(port_text),
            tls=tls,
            server_name=env.get("MT5_BRIDGE_TLS_SERVER_NAME"),
        )

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def connect(self) -> None:
        """Open the connection now (calls open it on demand anyway)."""
        with self._lock:
            self._connect_locked()

    def _connect_locked(self) -> None:
        if self.connected:
            return
        where = f"{self.host}:{self.port}"
        try:
            raw = socket.create_connection((self.host, self.port), timeout=self._connect_timeout)
        except OSError as exc:
            raise BridgeConnectionError(f"cannot reach the bridge at {where}: {exc}") from exc
        sock: socket.socket = raw
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = client_context(self._tls).wrap_socket(raw, server_hostname=self._server_name)
            client_handshake(sock, rpyc_version=RPYC_VERSION)
            sock.settimeout(None)
            config = dict(RPYC_CONFIG, sync_request_timeout=self._timeout)
            conn = rpyc.connect_stream(SocketStream(sock), rpyc.VoidService, config=config)
            self._remote_call = conn.root.call
            self._remote_status = conn.root.status
            self._conn = conn
        except HandshakeError:
            sock.close()
            raise
        except (ssl.SSLError, OSError, EOFError) as exc:
            sock.close()
            raise BridgeConnectionError(
                f"the bridge at {where} refused or dropped the connection: {exc}"
            ) from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None
                    self._remote_call = None
                    self._remote_status = None

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run the exposed MetaTrader5 call `name` on the server and return its result."""
        payload_args = codec.encode(args)
        payload_kwargs = codec.encode(kwargs)
        with self._lock:
            self._connect_locked()
            try:
                reply = self._remote_call(name, payload_args, payload_kwargs)
            except (EOFError, OSError, TimeoutError) as exc:
                self._drop()
                raise BridgeConnectionError(f"lost the bridge during {name}: {exc}") from exc
        return self._unwrap(name, reply)

    def status(self) -> dict[str, Any]:
        """Extra (not in the MetaTrader5 module): the bridge's own state, as plain data.

        Keys: ``backend`` ("metatrader5" or "simulator"), ``bridge`` and ``protocol`` (the
        server's mt5bridge version), ``package`` (the backend module's version), ``runtime``
        (Python version, platform, Wine version when under Wine), ``terminal`` (the
        supervisor's state of the terminal process: ``state`` is up, restarting, gave-up,
        unknown or simulated), ``connected`` (whether the last initialize/login/shutdown
        through this bridge left it connected) and ``last_error`` (``[code, message]``, the
        backend's own ``last_error()`` at the time of the call).
        """
        with self._lock:
            self._connect_locked()
            try:
                reply = self._remote_status()
            except (EOFError, OSError, TimeoutError) as exc:
                self._drop()
                raise BridgeConnectionError(f"lost the bridge during status: {exc}") from exc
        result = self._unwrap("status", reply)
        if type(result) is not dict:
            raise BridgeError("malformed reply to status")
        return result

    def _unwrap(self, name: str, reply: Any) -> Any:
        if type(reply) is not tuple or not reply:
            raise BridgeError(f"malformed reply to {name}")
        if reply[0] == OK and len(reply) == 2:
            return codec.decode(reply[1])
        if reply[0] == ERR and len(reply) == 3:
            kind, message = str(reply[1]), str(reply[2])
            if kind == "NotExposed":
                raise NotExposedError(message)
            if kind == "TypeError":
                raise TypeError(message)
            if kind == "ValueError":
                raise ValueError(message)
            assert kind not in PASSTHROUGH_ERRORS  # noqa: S101
            raise RemoteError(kind, message)
        raise BridgeError(f"malformed reply to {name}")

    def _drop(self) -> None:
        conn, self._conn, self._remote_call = self._conn, None, None
        self._remote_status = None
        if conn is not None:
            # Already broken; closing is best effort.
            with contextlib.suppress(Exception):
                conn.close()

    # The MetaTrader5 API. Signatures are open (*args, **kwargs) on purpose: the server's
    # backend (the real package or the simulator) decides what is valid, as the real one would.
    def initialize(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("initialize", *args, **kwargs)

    def login(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("login", *args, **kwargs)

    def shutdown(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("shutdown", *args, **kwargs)

    def version(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("version", *args, **kwargs)

    def last_error(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("last_error", *args, **kwargs)

    def terminal_info(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("terminal_info", *args, **kwargs)

    def account_info(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("account_info", *args, **kwargs)

    def symbols_total(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("symbols_total", *args, **kwargs)

    def symbols_get(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("symbols_get", *args, **kwargs)

    def symbol_info(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("symbol_info", *args, **kwargs)

    def symbol_info_tick(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("symbol_info_tick", *args, **kwargs)

    def symbol_select(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("symbol_select", *args, **kwargs)

    def copy_rates_from(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("copy_rates_from", *args, **kwargs)

    def copy_rates_from_pos(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("copy_rates_from_pos", *args, **kwargs)

    def copy_rates_range(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("copy_rates_range", *args, **kwargs)

    def copy_ticks_from(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("copy_ticks_from", *args, **kwargs)

    def copy_ticks_range(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("copy_ticks_range", *args, **kwargs)

    def orders_total(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("orders_total", *args, **kwargs)

    def orders_get(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("orders_get", *args, **kwargs)

    def order_calc_margin(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("order_calc_margin", *args, **kwargs)

    def order_calc_profit(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("order_calc_profit", *args, **kwargs)

    def order_check(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("order_check", *args, **kwargs)

    def order_send(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("order_send", *args, **kwargs)

    def positions_total(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("positions_total", *args, **kwargs)

    def positions_get(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("positions_get", *args, **kwargs)

    def history_orders_total(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("history_orders_total", *args, **kwargs)

    def history_orders_get(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("history_orders_get", *args, **kwargs)

    def history_deals_total(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("history_deals_total", *args, **kwargs)

    def history_deals_get(self, *args: Any, **kwargs: Any) -> Any:
        return self.call("history_deals_get", *args, **kwargs)


# -- module-level API: one default connection, as the MetaTrader5 module has one terminal ----

_default: Bridge | None = None
_default_lock = threading.Lock()


def connect(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    tls: TlsFiles | None = None,
    server_name: str | None = None,
    timeout: float = 60.0,
) -> Bridge:
    """Point the module-level functions at a bridge (replacing any earlier connection)."""
    global _default
    bridge = Bridge(host, port, tls=tls, server_name=server_name, timeout=timeout)
    bridge.connect()
    with _default_lock:
        old, _default = _default, bridge
    if old is not None:
        old.close()
    return bridge


def disconnect() -> None:
    global _default
    with _default_lock:
        old, _default = _default, None
    if old is not None:
        old.close()


def bridge() -> Bridge:
    """The default connection; configured from the environment on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Bridge.from_env()
        return _default


def status() -> dict[str, Any]:
    """Extra, like connect(): the bridge's own state; see Bridge.status."""
    return bridge().status()


def initialize(*args: Any, **kwargs: Any) -> Any:
    return bridge().initialize(*args, **kwargs)


def login(*args: Any, **kwargs: Any) -> Any:
    return bridge().login(*args, **kwargs)


def shutdown(*args: Any, **kwargs: Any) -> Any:
    return bridge().shutdown(*args, **kwargs)


def version(*args: Any, **kwargs: Any) -> Any:
    return bridge().version(*args, **kwargs)


def last_error(*args: Any, **kwargs: Any) -> Any:
    return bridge().last_error(*args, **kwargs)


def terminal_info(*args: Any, **kwargs: Any) -> Any:
    return bridge().terminal_info(*args, **kwargs)


def account_info(*args: Any, **kwargs: Any) -> Any:
    return bridge().account_info(*args, **kwargs)


def symbols_total(*args: Any, **kwargs: Any) -> Any:
    return bridge().symbols_total(*args, **kwargs)


def symbols_get(*args: Any, **kwargs: Any) -> Any:
    return bridge().symbols_get(*args, **kwargs)


def symbol_info(*args: Any, **kwargs: Any) -> Any:
    return bridge().symbol_info(*args, **kwargs)


def symbol_info_tick(*args: Any, **kwargs: Any) -> Any:
    return bridge().symbol_info_tick(*args, **kwargs)


def symbol_select(*args: Any, **kwargs: Any) -> Any:
    return bridge().symbol_select(*args, **kwargs)


def copy_rates_from(*args: Any, **kwargs: Any) -> Any:
    return bridge().copy_rates_from(*args, **kwargs)


def copy_rates_from_pos(*args: Any, **kwargs: Any) -> Any:
    return bridge().copy_rates_from_pos(*args, **kwargs)


def copy_rates_range(*args: Any, **kwargs: Any) -> Any:
    return bridge().copy_rates_range(*args, **kwargs)


def copy_ticks_from(*args: Any, **kwargs: Any) -> Any:
    return bridge().copy_ticks_from(*args, **kwargs)


def copy_ticks_range(*args: Any, **kwargs: Any) -> Any:
    return bridge().copy_ticks_range(*args, **kwargs)


def orders_total(*args: Any, **kwargs: Any) -> Any:
    return bridge().orders_total(*args, **kwargs)


def orders_get(*args: Any, **kwargs: Any) -> Any:
    return bridge().orders_get(*args, **kwargs)


def order_calc_margin(*args: Any, **kwargs: Any) -> Any:
    return bridge().order_calc_margin(*args, **kwargs)


def order_calc_profit(*args: Any, **kwargs: Any) -> Any:
    return bridge().order_calc_profit(*args, **kwargs)


def order_check(*args: Any, **kwargs: Any) -> Any:
    return bridge().order_check(*args, **kwargs)


def order_send(*args: Any, **kwargs: Any) -> Any:
    return bridge().order_send(*args, **kwargs)


def positions_total(*args: Any, **kwargs: Any) -> Any:
    return bridge().positions_total(*args, **kwargs)


def positions_get(*args: Any, **kwargs: Any) -> Any:
    return bridge().positions_get(*args, **kwargs)


def history_orders_total(*args: Any, **kwargs: Any) -> Any:
    return bridge().history_orders_total(*args, **kwargs)


def history_orders_get(*args: Any, **kwargs: Any) -> Any:
    return bridge().history_orders_get(*args, **kwargs)


def history_deals_total(*args: Any, **kwargs: Any) -> Any:
    return bridge().history_deals_total(*args, **kwargs)


def history_deals_get(*args: Any, **kwargs: Any) -> Any:
    return bridge().history_deals_get(*args, **kwargs)
