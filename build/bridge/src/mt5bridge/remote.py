"""An explicit connection to a bridge server: the Bridge class and the bridge's own status.

mt5bridge.client is the drop-in `MetaTrader5` module and reports bridge failures as the real
package reports a missing terminal (False/None and last_error()). Code that wants to handle a
lost bridge itself (the reference bot reconnects with backoff) uses a Bridge: its MetaTrader5
calls have the same names and arguments, but bridge failures (cannot connect, connection lost,
handshake refused) raise BridgeError subclasses. Results are local values either way: the real
package's record types (mt5bridge.mt5types), numpy structured arrays, numbers and strings.
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
from mt5bridge.api import EXPOSED_CALLS
from mt5bridge.errors import (
    BridgeConnectionError,
    BridgeError,
    HandshakeError,
    NotExposedError,
    RemoteError,
)
from mt5bridge.handshake import RPYC_VERSION, client_handshake
from mt5bridge.mt5types import RECORD_TYPES
from mt5bridge.service import ERR, OK, PASSTHROUGH_ERRORS, RPYC_CONFIG
from mt5bridge.tls import TlsFiles, client_context

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 18812


def tls_from_env(env: Mapping[str, str]) -> TlsFiles | None:
    """Mutual TLS files from MT5_BRIDGE_TLS_CA, _CERT and _KEY (all three or none)."""
    parts = [env.get(f"MT5_BRIDGE_TLS_{p}") for p in ("CA", "CERT", "KEY")]
    if any(parts) and not all(parts):
        raise BridgeError("mutual TLS needs MT5_BRIDGE_TLS_CA, _CERT and _KEY together")
    if not all(parts):
        return None
    ca, cert, key = (Path(p) for p in parts if p)
    return TlsFiles(ca=ca, cert=cert, key=key)


def port_from_env(env: Mapping[str, str]) -> int:
    port_text = env.get("MT5_BRIDGE_PORT", str(DEFAULT_PORT))
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BridgeError(f"MT5_BRIDGE_PORT must be a port number, got {port_text!r}")
    return int(port_text)


def localize(value: Any) -> Any:
    """Named tuples decoded off the wire, as the package's own record types when their name and
    fields are the real ones (so isinstance() against mt5.SymbolInfo holds); nested too."""
    if isinstance(value, tuple):
        items = tuple(localize(v) for v in value)
        fields = getattr(value, "_fields", None)
        if fields is None:
            return items
        cls = RECORD_TYPES.get(type(value).__name__)
        if cls is not None and tuple(cls._fields) == tuple(fields):
            return cls(*items)
        return type(value)(*items)
    return value


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
        return cls(
            env.get("MT5_BRIDGE_HOST", DEFAULT_HOST),
            port_from_env(env),
            tls=tls_from_env(env),
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
            return localize(codec.decode(reply[1]))
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

    def __getattr__(self, name: str) -> Any:
        """The exposed MetaTrader5 calls as methods: ``bridge.symbol_info("EURUSD")``. Their
        arguments are checked where the real package checks them: by the backend."""
        if name in EXPOSED_CALLS:

            def call(*args: Any, **kwargs: Any) -> Any:
                return self.call(name, *args, **kwargs)

            call.__name__ = name
            return call
        raise AttributeError(name)


def status(bridge: Bridge | None = None) -> dict[str, Any]:
    """The bridge's own state (Bridge.status) of `bridge`, or of a Bridge configured from the
    MT5_BRIDGE_* environment: not a MetaTrader5 call, so it lives here, not in the client."""
    own = bridge is None
    target = Bridge.from_env() if bridge is None else bridge
    try:
        return target.status()
    finally:
        if own:
            target.close()
