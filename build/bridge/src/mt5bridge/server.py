"""The bridge server: listens, checks TLS and the bridge handshake, then serves named calls.

Refusals happen in this order, each before the next step starts: plain TCP off loopback is
refused at start; a TLS handshake that does not present a certificate from the deployment CA is
dropped; a peer that does not open with the bridge hello (an RPyC classic client, say) is dropped
unless classic mode is on; a hello with another RPyC major gets an error reply and is dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rpyc  # type: ignore[import-untyped]
from rpyc.core.stream import SocketStream  # type: ignore[import-untyped]
from rpyc.utils.classic import SlaveService  # type: ignore[import-untyped]

from mt5bridge.backends import ModuleBackend, metatrader5_backend, simulator_backend
from mt5bridge.envsecrets import SettingError, read_setting
from mt5bridge.errors import ConfigError, HandshakeError, NotBridgePeerError
from mt5bridge.handshake import MAGIC, RPYC_VERSION, is_status_probe, server_handshake
from mt5bridge.service import RPYC_CONFIG, BridgeService
from mt5bridge.simulator import SimulatorConfig
from mt5bridge.tls import TlsFiles, server_context

log = logging.getLogger("mt5bridge.server")

DEFAULT_PORT = 18812  # the port mt5linux users know


@dataclass(frozen=True, kw_only=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tls: TlsFiles | None = None
    classic: bool = False
    variant: str = "slim"
    handshake_timeout: float = 10.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_options(options: ServerOptions) -> None:
    """Refuse the configurations that would publish the account: see the module docstring."""
    if options.tls is None and not is_loopback(options.host):
        raise ConfigError(
            f"refusing to listen on {options.host} without mutual TLS: whoever reaches the "
            "bridge can trade the account; listen on 127.0.0.1 (bot in the terminal's network "
            "namespace) or give --tls-ca, --tls-cert and --tls-key (see `invoke certs`)"
        )
    if options.classic and options.variant == "secure":
        raise ConfigError("classic mode (mt5linux compatibility) is refused in the secure variant")
    if options.classic and options.tls is not None:
        raise ConfigError("classic mode serves plain loopback only; mt5linux clients speak no TLS")
    if options.variant not in ("slim", "secure"):
        raise ConfigError(f"unknown variant {options.variant!r}; expected slim or secure")


def _peek_magic(sock: socket.socket) -> bytes:
    """The first bytes the client sent, left in the socket buffer."""
    deadline = time.monotonic() + (sock.gettimeout() or 10.0)
    data = b""
    while len(data) < len(MAGIC) and time.monotonic() < deadline:
        data = sock.recv(len(MAGIC), socket.MSG_PEEK)
        if not data:
            break
        if len(data) < len(MAGIC):
            time.sleep(0.005)
    return data


class BridgeServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = sys.platform != "win32"  # on Windows it would allow port stealing

    def __init__(self, backend: ModuleBackend, options: ServerOptions) -> None:
        check_options(options)
        self.backend = backend
        self.options = options
        self.ssl_context: ssl.SSLContext | None = (
            server_context(options.tls) if options.tls is not None else None
        )
        family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
        self.address_family = family
        super().__init__((options.host, options.port), _Handler)
        if options.classic:
            # Classic clients run `import MetaTrader5 as mt5` in the server; give them the
            # backend's module, calls serialised with ours.
            sys.modules["MetaTrader5"] = backend.locked_module()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(socketserver.BaseRequestHandler):
    server: BridgeServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        options = self.server.options
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(options.handshake_timeout)
        try:
            if options.classic and _peek_magic(sock) != MAGIC:
                log.warning("classic-mode client %s: serving RPyC classic (executes code)", peer)
                sock.settimeout(None)
                conn = rpyc.connect_stream(SocketStream(sock), SlaveService, config={})
                conn.serve_all()
                return
            if self.server.ssl_context is not None:
                try:
                    sock = self.server.ssl_context.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    log.warning("refused %s: TLS handshake failed: %s", peer, exc)
                    return
            try:
                hello = server_handshake(sock, status=self.server.backend.status)
            except NotBridgePeerError as exc:
                log.warning(
                    "refused %s: %s (an RPyC classic client? classic mode is off)", peer, exc
                )
                return
            except HandshakeError as exc:  # a version mismatch: the client was told why
                log.warning("refused %s: %s", peer, exc)
                return
            except (OSError, TimeoutError) as exc:
                log.warning("refused %s: no bridge handshake: %s", peer, exc)
                return
            if is_status_probe(hello):
                log.debug("status probe from %s answered", peer)
                return
            sock.settimeout(None)
            log.info("client %s connected", peer)
            service = BridgeService(self.server.backend)
            conn = rpyc.connect_stream(SocketStream(sock), service, config=dict(RPYC_CONFIG))
            try:
                conn.serve_all()
            finally:
                log.info("client %s disconnected", peer)
        except (OSError, EOFError) as exc:
            log.info("connection %s ended: %s", peer, exc)
        except Exception:
            # Whatever a peer sends, the server goes on serving the others.
            log.exception("connection %s: unexpected error; connection dropped", peer)
        finally:
            with contextlib.suppress(OSError):
                sock.close()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="mt5bridge-server", description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("metatrader5", "simulator"),
                   default=env("MT5_BRIDGE_BACKEND", "metatrader5"))  # fmt: skip
    p.add_argument("--host", default=env("MT5_BRIDGE_HOST", "127.0.0.1"))
    # String defaults from the environment go through `type` too, so a malformed variable
    # gets argparse's "invalid int value" and exit 2, not a traceback.
    p.add_argument("--port", type=int, default=env("MT5_BRIDGE_PORT", str(DEFAULT_PORT)),
                   help="0 picks a free port; the chosen one is printed")  # fmt: skip
    p.add_argument("--tls-ca", default=env("MT5_BRIDGE_TLS_CA"))
    p.add_argument("--tls-cert", default=env("MT5_BRIDGE_TLS_CERT"))
    p.add_argument("--tls-key", default=env("MT5_BRIDGE_TLS_KEY"))
    p.add_argument(
        "--classic",
        action="store_true",
        default=_env_flag("MT5_BRIDGE_CLASSIC"),
        help="also serve mt5linux (RPyC classic) clients: they can run any code",
    )
    p.add_argument("--variant", default=env("MT5_IMAGE_VARIANT", "slim"))
    p.add_argument("--sim-seed", type=int, default=env("MT5_SIM_SEED", "1"))
    p.add_argument("--sim-balance", type=float, default=env("MT5_SIM_BALANCE", "10000"))
    p.add_argument("--sim-csv", action="append", default=[], metavar="SYMBOL=PATH",
                   help="M1 bars for SYMBOL from a CSV (repeatable)")  # fmt: skip
    p.add_argument("--log-level", type=str.upper, default=env("MT5_BRIDGE_LOG_LEVEL", "INFO"),
                   choices=_LEVELS)  # fmt: skip
    args = p.parse_args(argv)
    if args.log_level not in _LEVELS:  # argparse checks choices on the command line only
        p.error(f"MT5_BRIDGE_LOG_LEVEL must be one of {', '.join(_LEVELS)}")
    return args


def _simulator_config(args: argparse.Namespace) -> SimulatorConfig:
    login = read_setting("MT5_LOGIN")
    password = read_setting("MT5_PASSWORD")
    server = read_setting("MT5_SERVER")
    missing = [n for n, v in (("MT5_LOGIN", login), ("MT5_PASSWORD", password),
                              ("MT5_SERVER", server)) if not v]  # fmt: skip
    if missing:
        raise ConfigError(
            "the simulator needs the account it accepts: set "
            + ", ".join(f"{n} (or {n}_FILE)" for n in missing)
        )
    assert login is not None and password is not None and server is not None  # noqa: S101
    if not login.isdigit():
        raise ConfigError("MT5_LOGIN must be the account number (digits only)")
    csv = {}
    for item in args.sim_csv:
        symbol, sep, path = item.partition("=")
        if not sep:
            raise ConfigError(f"--sim-csv expects SYMBOL=PATH, got {item!r}")
        csv[symbol] = Path(path)
    return SimulatorConfig(login=int(login), password=password, server=server,
                           seed=args.sim_seed, balance=args.sim_balance, csv_bars=csv)  # fmt: skip


def build_server(args: argparse.Namespace) -> BridgeServer:
    tls_parts = (args.tls_ca, args.tls_cert, args.tls_key)
    if any(tls_parts) and not all(tls_parts):
        raise ConfigError("mutual TLS needs all of --tls-ca, --tls-cert and --tls-key")
    tls = (
        TlsFiles(ca=Path(args.tls_ca), cert=Path(args.tls_cert), key=Path(args.tls_key))
        if all(tls_parts)
        else None
    )
    options = ServerOptions(host=args.host, port=args.port, tls=tls, classic=args.classic,
                            variant=args.variant)  # fmt: skip
    check_options(options)  # before the backend starts a terminal or reads credentials
    backend = (
        simulator_backend(_simulator_config(args))
        if args.backend == "simulator"
        else metatrader5_backend()
    )
    return BridgeServer(backend, options)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        server = build_server(args)
    except (ConfigError, SettingError, OSError, ValueError, ImportError) as exc:
        log.error("%s", exc)
        return 2

    def _stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    mode = "mutual TLS" if server.options.tls else "plain TCP"
    # Tests and scripts read this line to learn the port when --port 0 was given.
    print(f"mt5bridge listening on {server.options.host}:{server.port} "
          f"({mode}, backend {server.backend.name}, rpyc {RPYC_VERSION})", flush=True)  # fmt: skip
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
