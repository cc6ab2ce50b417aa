"""The bridge server: listens, checks TLS and the bridge handshake, then serves named calls.

Refusals happen in this order, each before the next step starts: plain TCP off loopback is
refused at start; a TLS handshake that does not present a certificate from the deployment CA is
dropped; a peer that does not open with the bridge hello (an RPyC classic client, say) is dropped
unless classic mode is on; a hello with another RPyC major gets an error reply and is dropped.

One event loop owns every socket, and a bounded pool of workers runs the calls. The loop does
all the waiting: accepting, the TLS handshake, reading the hello, reading request frames (see
mt5bridge.frames: capped before they are stored) and writing replies, all without blocking.
A worker gets a connection only once a whole request is in memory, and gives it back when the
reply is queued; so an idle, half-open or slow peer costs a file descriptor and a small buffer,
never a thread, and hundreds of them do not keep a legitimate client waiting. Around that:

- a cap on concurrent connections; when it is reached, the oldest connection still in its
  handshake is dropped for the new one, else the new one is refused;
- one deadline for the whole handshake (TLS and hello), one for each request frame once it has
  begun, an idle timeout, and a cap on the bytes buffered across all connections;
- an accept loop that, out of file descriptors (EMFILE and friends), drops the oldest pending
  handshake, pauses with a growing back-off and resumes by itself;
- every odd input ends in an error for that client (a refusal frame, or an exception for that
  request: mt5bridge.guard) and a log line, the client's strings escaped; no exception leaves a
  connection's handling, and the loop goes on serving the others.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import errno
import ipaddress
import logging
import math
import os
import queue
import selectors
import signal
import socket
import ssl
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rpyc  # type: ignore[import-untyped]
from rpyc.core.stream import SocketStream  # type: ignore[import-untyped]
from rpyc.utils.classic import SlaveService  # type: ignore[import-untyped]

from mt5bridge import audit, jsonlog
from mt5bridge.backends import ModuleBackend, metatrader5_backend, simulator_backend
from mt5bridge.constants import (
    ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
    ACCOUNT_MARGIN_MODE_RETAIL_NETTING,
)
from mt5bridge.envsecrets import SettingError, read_setting
from mt5bridge.errors import ConfigError, HandshakeError, NotBridgePeerError, ProtocolError
from mt5bridge.frames import DEFAULT_MAX_FRAME, Frame, FrameReader, Refused
from mt5bridge.guard import GuardedConnection, Outbox
from mt5bridge.handshake import (
    RPYC_VERSION,
    answer_hello,
    encode_frame,
    is_status_probe,
    parse_hello,
)
from mt5bridge.journal import JournalFollower, journal_dirs
from mt5bridge.redact import FORMAT, RedactingFormatter, Redactor
from mt5bridge.service import RPYC_CONFIG, BridgeService
from mt5bridge.simulator import HISTORY_START, SimulatorConfig
from mt5bridge.tls import TlsFiles, server_context

log = logging.getLogger("mt5bridge.server")

DEFAULT_PORT = 18812  # the port mt5linux users know
_CHUNK = 1 << 16
_READS_PER_TURN = 16  # 1 MiB at most from one connection before the loop serves the others
# accept() errors that mean "out of resources, try again later", not "this peer failed".
_EXHAUSTED = frozenset(
    getattr(errno, name)
    for name in ("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM", "WSAEMFILE", "WSAENOBUFS")
    if hasattr(errno, name)
)
_WANT = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


@dataclass(frozen=True, kw_only=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tls: TlsFiles | None = None
    classic: bool = False
    variant: str = "slim"
    #: The whole TLS handshake and hello, from accept() on.
    handshake_timeout: float = 10.0
    #: A connection with no request in progress and nothing to write is closed after this.
    idle_timeout: float = 900.0
    #: A request frame, once begun, must be complete within this; so must a reply be written.
    frame_timeout: float = 30.0
    max_frame: int = DEFAULT_MAX_FRAME
    max_connections: int = 400  # Windows' select() takes 512 sockets at most
    #: Bytes buffered across all connections before big partial frames wait their turn.
    max_buffered: int = 64 << 20
    workers: int = 8
    backlog: int = 512


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
    for name in ("handshake_timeout", "idle_timeout", "frame_timeout"):
        if not getattr(options, name) > 0:
            raise ConfigError(f"{name} must be positive")
    for name in ("max_frame", "max_connections", "max_buffered", "workers", "backlog"):
        if getattr(options, name) < 1:
            raise ConfigError(f"{name} must be at least 1")


class _PrefixedStream(SocketStream):  # type: ignore[misc]  # rpyc is untyped
    """A socket stream that first returns bytes already read from it (classic mode)."""

    def __init__(self, sock: socket.socket, prefix: bytes) -> None:
        super().__init__(sock)
        self._prefix = prefix

    def read(self, count: int) -> bytes:
        if not self._prefix:
            return bytes(super().read(count))
        head, self._prefix = self._prefix[:count], self._prefix[count:]
        return head + (bytes(super().read(count - len(head))) if count > len(head) else b"")


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    peer: str
    phase: str  # tls, hello, answer (worker), serve, closing
    accepted: float
    active: float
    inbuf: bytearray = field(default_factory=bytearray)
    out: bytearray = field(default_factory=bytearray)
    reader: FrameReader | None = None
    rpc: GuardedConnection | None = None
    outbox: Outbox | None = None
    busy: bool = False
    close_after_flush: bool = False
    frame_began: float = 0.0
    tls_wants: int = 0  # what a TLS handshake in progress waits for
    events: int = 0  # what the selector watches for it now (0: not registered)
    subject: str | None = None  # the client certificate's subject, under mutual TLS
    audited: bool = False  # its connect/refuse/probe record is written


class BridgeServer:
    """The event loop and its worker pool (see the module docstring)."""

    def __init__(self, backend: ModuleBackend, options: ServerOptions) -> None:
        check_options(options)
        self.backend = backend
        self.options = options
        self.ssl_context: ssl.SSLContext | None = (
            server_context(options.tls) if options.tls is not None else None
        )
        family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            if sys.platform != "win32":  # on Windows it would allow port stealing
                self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((options.host, options.port))
            self._listener.listen(options.backlog)
            self._listener.setblocking(False)
        except OSError:
            self._listener.close()
            raise
        self.server_address = self._listener.getsockname()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._done: queue.SimpleQueue[_Conn] = queue.SimpleQueue()
        self._pool = ThreadPoolExecutor(options.workers, thread_name_prefix="mt5bridge-worker")
        self._conns: dict[socket.socket, _Conn] = {}
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._accept_paused_until = 0.0
        self._accept_backoff = 0.0
        self._last_sweep = 0.0
        self._again: set[_Conn] = set()  # connections to read again next turn (see _read_frames)
        if options.classic:
            # Classic clients run `import MetaTrader5 as mt5` in the server; give them the
            # backend's module, calls serialised with ours.
            sys.modules["MetaTrader5"] = backend.locked_module()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    # ---- the loop -------------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.2) -> None:
        self._stopped.clear()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            while not self._stop.is_set():
                try:
                    self._turn(poll_interval)
                except Exception:
                    # A bug in the loop itself: log it and keep serving the others.
                    log.exception("bridge event loop: unexpected error; continuing")
                    time.sleep(0.05)
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serve_forever and wait for it to return (as socketserver's shutdown does)."""
        self._stop.set()
        self._wake()
        self._stopped.wait()

    def server_close(self) -> None:
        for conn in list(self._conns.values()):
            self._close(conn, None)
        with contextlib.suppress(Exception):
            self._selector.close()
        for sock in (self._listener, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                sock.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full: the loop is awake already
            self._wake_w.send(b"\0")

    def _turn(self, poll_interval: float) -> None:
        now = time.monotonic()
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            self._selector.register(self._listener, selectors.EVENT_READ, None)
        again, self._again = self._again, set()
        for key, mask in self._selector.select(0 if again else poll_interval):
            if key.fileobj is self._listener:
                self._accept()
            elif key.fileobj is self._wake_r:
                with contextlib.suppress(OSError):
                    while self._wake_r.recv(4096):
                        pass
            else:
                conn = self._conns.get(key.fileobj)  # type: ignore[call-overload]
                if conn is not None and not conn.busy:
                    self._guarded(conn, self._on_ready, mask)
        for conn in again:
            if conn.sock in self._conns and not conn.busy:
                self._guarded(conn, self._on_ready, selectors.EVENT_READ)
        while True:
            try:
                conn = self._done.get_nowait()
            except queue.Empty:
                break
            conn.busy = False
            self._guarded(conn, self._after_work)
        now = time.monotonic()
        if now - self._last_sweep >= min(0.1, poll_interval):
            self._last_sweep = now
            self._sweep(now)

    def _guarded(self, conn: _Conn, step: Any, *args: Any) -> None:
        """Run one step for `conn`; whatever it raises ends that connection, not the loop."""
        try:
            step(conn, *args)
        except Exception:
            log.exception("connection %s: unexpected error; connection dropped", conn.peer)
            self._close(conn, None)

    # ---- accepting ------------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(64):  # a burst at a time, then the others get a turn
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _EXHAUSTED:
                    self._pause_accepting(exc)
                    return
                log.info("accept failed: %s", exc)  # the peer gave up (ECONNABORTED)
                continue
            self._accept_backoff = 0.0
            self._admit(sock, address)

    def _pause_accepting(self, exc: OSError) -> None:
        self._accept_backoff = min(max(self._accept_backoff * 2, 0.05), 1.0)
        log.warning("accept: %s; dropping the oldest handshake and pausing accept for %.2f s",
                    exc.strerror or exc, self._accept_backoff)  # fmt: skip
        self._evict_oldest_handshake("the server is out of file descriptors")
        self._selector.unregister(self._listener)
        self._accept_paused_until = time.monotonic() + self._accept_backoff

    def _evict_oldest_handshake(self, why: str) -> bool:
        pending = [c for c in self._conns.values() if c.phase in ("tls", "hello") and not c.busy]
        if not pending:
            return False
        oldest = min(pending, key=lambda c: c.accepted)
        log.warning("dropped %s before its handshake completed: %s", oldest.peer, why)
        self._audit(oldest, "refuse", f"dropped before its handshake completed: {why}")
        self._close(oldest, None)
        return True

    def _admit(self, sock: socket.socket, address: Any) -> None:
        peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        if len(self._conns) >= self.options.max_connections and not (
            self._evict_oldest_handshake(f"{self.options.max_connections} connections is the cap")
        ):
            log.warning("refused %s: %d connections is the cap (MT5_BRIDGE_MAX_CONNECTIONS)",
                        peer, self.options.max_connections)  # fmt: skip
            cap = f"{self.options.max_connections} connections is the cap"
            audit.record("refuse", peer=peer, outcome="refused", reason=cap, level="WARNING")
            with contextlib.suppress(OSError):
                sock.close()
            return
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            phase = "hello"
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                )
                phase = "tls"
        except OSError as exc:
            log.warning("refused %s: %s", peer, exc)
            audit.record("refuse", peer=peer, outcome="refused", reason=str(exc), level="WARNING")
            with contextlib.suppress(OSError):
                sock.close()
            return
        now = time.monotonic()
        conn = _Conn(sock=sock, peer=peer, phase=phase, accepted=now, active=now)
        self._conns[sock] = conn
        self._guarded(conn, self._on_ready, selectors.EVENT_READ)

    # ---- per-connection steps (loop thread) -----------------------------------------------

    def _on_ready(self, conn: _Conn, mask: int) -> None:
        if conn.phase == "tls":
            self._tls_step(conn)
        if conn.phase in ("hello", "serve", "closing") and conn.out:
            self._flush(conn)
        if conn.phase == "hello":
            self._read_hello(conn)
        elif conn.phase == "serve" and not conn.out:
            self._read_frames(conn)
        elif conn.phase == "closing" and not conn.out:
            self._close(conn, None)
        self._watch(conn)

    def _after_work(self, conn: _Conn) -> None:
        if conn.sock not in self._conns:
            return
        if conn.outbox is not None:
            conn.out += conn.outbox.take()
        conn.active = time.monotonic()
        self._on_ready(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)

    def _tls_step(self, conn: _Conn) -> None:
        assert isinstance(conn.sock, ssl.SSLSocket)  # noqa: S101
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            conn.tls_wants = selectors.EVENT_READ
            return
        except ssl.SSLWantWriteError:
            conn.tls_wants = selectors.EVENT_WRITE
            return
        except (ssl.SSLError, OSError) as exc:
            self._audit(conn, "refuse", f"TLS handshake failed: {exc}")
            self._close(conn, f"refused {conn.peer}: TLS handshake failed: {exc}")
            return
        conn.subject = audit.subject_of(conn.sock.getpeercert())
        conn.tls_wants = 0
        conn.phase = "hello"

    def _recv(self, conn: _Conn, count: int) -> bytes | None:
        """Up to `count` bytes; None when there are none yet. EOF and errors close."""
        try:
            data = conn.sock.recv(count)
        except _WANT:
            return None
        except (ssl.SSLError, OSError) as exc:
            self._close(conn, f"connection {conn.peer} ended: {exc}")
            return None
        if not data:
            why = "closed by the peer" + (" during the handshake" if conn.phase == "hello" else "")
            self._close(conn, f"connection {conn.peer} {why}", logging.INFO)
            return None
        conn.active = time.monotonic()
        return data

    def _read_hello(self, conn: _Conn) -> None:
        while conn.phase == "hello":
            data = self._recv(conn, 4096)
            if data is None:
                return
            conn.inbuf += data
            try:
                hello, used = parse_hello(conn.inbuf)
            except NotBridgePeerError as exc:
                if self.options.classic:
                    self._hand_to_classic(conn)
                else:
                    self._audit(conn, "refuse", f"{exc} (classic mode is off)")
                    self._close(conn, f"refused {conn.peer}: {exc} (an RPyC classic client? "
                                      "classic mode is off)")  # fmt: skip
                return
            except HandshakeError as exc:
                self._refuse_hello(conn, str(exc))
                return
            if hello is None:
                if len(conn.inbuf) > 8192:  # parse_hello caps the length; belt and braces
                    self._refuse_hello(conn, "bridge hello too large")
                return
            del conn.inbuf[:used]
            conn.phase = "answer"
            self._submit(conn, self._answer, hello)

    def _refuse_hello(self, conn: _Conn, problem: str) -> None:
        log.warning("refused %s: %s", conn.peer, problem)
        self._audit(conn, "refuse", problem)
        conn.out += encode_frame({"ok": False, "error": problem})
        conn.phase = "closing"
        conn.close_after_flush = True
        self._flush(conn)

    def _read_frames(self, conn: _Conn) -> None:
        reader = conn.reader
        assert reader is not None and conn.rpc is not None  # noqa: S101
        reads = 0
        while conn.phase == "serve" and not conn.busy and not conn.out:
            try:
                item = reader.next()
            except ProtocolError as exc:
                self._close(conn, f"closed {conn.peer}: {exc}")
                return
            if isinstance(item, Frame):
                self._submit(conn, self._serve_frame, item)
                return
            if item is not None:  # refused: tell the client, keep the connection
                if item.seq is None:
                    self._close(conn, f"closed {conn.peer}: {item.reason}")
                    return
                log.warning("refused a request from %s: %s", conn.peer, item.reason)
                conn.rpc.refuse(item.seq, ValueError(f"mt5bridge refused the request: "
                                                     f"{item.reason}"))  # fmt: skip
                assert conn.outbox is not None  # noqa: S101
                conn.out += conn.outbox.take()
                self._flush(conn)
                continue
            if self._throttled(conn):
                return
            reads += 1
            if reads > _READS_PER_TURN:  # a fast sender waits for its next turn, not the others
                # Come back next turn without waiting for the selector: under TLS the rest may
                # already be decrypted inside the SSL object, where no select() sees it.
                self._again.add(conn)
                return
            was_partial = reader.partial
            data = self._recv(conn, reader.want())
            if data is None:
                return
            if not was_partial:
                conn.frame_began = time.monotonic()
            reader.feed(data)

    def _throttled(self, conn: _Conn) -> bool:
        """Whether this connection's big partial frame must wait: the bytes buffered across
        connections are over the cap. Small frames always go on."""
        assert conn.reader is not None  # noqa: S101
        if conn.reader.buffered < _CHUNK:
            return False
        total = sum(c.reader.buffered for c in self._conns.values() if c.reader is not None)
        return total > self.options.max_buffered

    def _flush(self, conn: _Conn) -> None:
        while conn.out:
            try:
                sent = conn.sock.send(conn.out[:_CHUNK])
            except _WANT:
                return
            except (ssl.SSLError, OSError) as exc:
                self._close(conn, f"connection {conn.peer} ended: {exc}", logging.INFO)
                return
            del conn.out[:sent]
            conn.active = time.monotonic()
        if conn.close_after_flush:
            self._close(conn, None)

    def _watch(self, conn: _Conn) -> None:
        """Register what the selector should wait for on `conn` (nothing while a worker has
        it, or while its big frame waits for buffer room)."""
        if conn.sock not in self._conns:
            return
        if conn.phase == "tls":
            wanted = conn.tls_wants or selectors.EVENT_READ
        elif conn.busy or conn.phase == "answer":
            wanted = 0
        elif conn.out:
            wanted = selectors.EVENT_WRITE
        elif conn.phase == "serve" and self._throttled(conn):
            wanted = 0
        else:
            wanted = selectors.EVENT_READ
        if wanted == conn.events:
            return
        if wanted == 0:
            self._selector.unregister(conn.sock)
        elif conn.events:
            self._selector.modify(conn.sock, wanted, None)
        else:
            self._selector.register(conn.sock, wanted, None)
        conn.events = wanted

    def _close(self, conn: _Conn, why: str | None, level: int = logging.WARNING) -> None:
        if why:
            log.log(level, "%s", why)
        if self._conns.pop(conn.sock, None) is None:
            return
        if not conn.audited:  # ended before any outcome was recorded: in the handshake
            self._audit(conn, "refuse", why or "closed before the handshake completed")
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(conn.sock)
        conn.events = 0
        conn.phase = "closed"
        if conn.rpc is not None:
            log.info("client %s disconnected", conn.peer)
            self._audit(conn, "disconnect", None, outcome="ok")
            self._release(conn.rpc)
        with contextlib.suppress(OSError):
            conn.sock.close()

    def _audit(
        self, conn: _Conn, event: str, reason: str | None, *, outcome: str = "refused"
    ) -> None:
        """A record in the audit trail (mt5bridge.audit) about `conn`."""
        conn.audited = event != "disconnect"
        audit.record(event, peer=conn.peer, subject=conn.subject, outcome=outcome, reason=reason,
                     level="WARNING" if outcome == "refused" else "INFO")  # fmt: skip

    def _release(self, rpc: GuardedConnection) -> None:
        """End the RPyC connection (and the client's backend session) in a worker: ending a
        session takes the backend's lock, which a long call may hold; the loop must not wait."""

        def cleanup() -> None:
            with contextlib.suppress(Exception):  # logged by the service; nothing else to do
                rpc.close()

        try:
            self._pool.submit(cleanup)
        except RuntimeError:  # the pool is shut down: the server is closing
            cleanup()

    def _sweep(self, now: float) -> None:
        """Deadlines: handshake, frame, write, idle. Also wakes throttled connections."""
        options = self.options
        for conn in list(self._conns.values()):
            if conn.busy:
                continue
            if conn.phase in ("tls", "hello") and now - conn.accepted > options.handshake_timeout:
                late = f"no bridge handshake within {options.handshake_timeout:g} s"
                if conn.phase == "hello" and conn.inbuf:  # a bridge peer, too slow: tell it
                    self._refuse_hello(conn, late)
                    self._watch(conn)
                else:
                    self._audit(conn, "refuse", late)
                    self._close(conn, f"refused {conn.peer}: {late}")
            elif conn.out and now - conn.active > options.frame_timeout:
                self._close(conn, f"closed {conn.peer}: it read nothing of its reply for "
                                  f"{options.frame_timeout:g} s")  # fmt: skip
            elif conn.phase == "serve" and conn.reader is not None and conn.reader.partial:
                if now - conn.frame_began > options.frame_timeout:
                    self._close(conn, f"closed {conn.peer}: a request frame not complete within "
                                      f"{options.frame_timeout:g} s")  # fmt: skip
                elif conn.events == 0:
                    self._watch(conn)  # throttled: room again?
            elif conn.phase == "serve" and now - conn.active > options.idle_timeout:
                self._close(conn, f"closed {conn.peer}: idle for {options.idle_timeout:g} s",
                            logging.INFO)  # fmt: skip

    # ---- worker side ----------------------------------------------------------------------

    def _submit(self, conn: _Conn, job: Any, arg: Any) -> None:
        conn.busy = True
        self._watch(conn)

        def run() -> None:
            try:
                job(conn, arg)
            except Exception:
                log.exception("connection %s: unexpected error; connection dropped", conn.peer)
                conn.phase = "closing"
                conn.close_after_flush = True
            finally:
                self._done.put(conn)
                self._wake()

        self._pool.submit(run)

    def _answer(self, conn: _Conn, hello: dict[str, Any]) -> None:
        """Worker: answer the hello (a status probe waits for the backend's status)."""
        reply, problem = answer_hello(hello, self.backend.status)
        conn.out += reply
        if problem:
            log.warning("refused %s: %s", conn.peer, problem)
            self._audit(conn, "refuse", problem)
            conn.phase, conn.close_after_flush = "closing", True
        elif is_status_probe(hello):
            log.debug("status probe from %s answered", conn.peer)
            self._audit(conn, "probe", None, outcome="ok")
            conn.phase, conn.close_after_flush = "closing", True
        else:
            conn.outbox = Outbox()
            service = BridgeService(self.backend)
            audit.bind(service, conn.peer, conn.subject)
            conn.rpc = GuardedConnection(service, conn.outbox, RPYC_CONFIG, conn.peer)
            service.on_connect(conn.rpc)
            conn.reader = FrameReader(self.options.max_frame)
            conn.reader.feed(bytes(conn.inbuf))  # bytes a client sent right after its hello
            conn.inbuf.clear()
            conn.phase = "serve"
            log.info("client %s connected", conn.peer)
            self._audit(conn, "connect", None, outcome="ok")

    def _serve_frame(self, conn: _Conn, frame: Frame) -> None:
        """Worker: inflate the frame if it came compressed, run the request, queue the reply."""
        assert conn.rpc is not None  # noqa: S101
        try:
            data = frame.opened()
            if isinstance(data, Refused):
                if data.seq is None:
                    raise ProtocolError(data.reason)
                log.warning("refused a request from %s: %s", conn.peer, data.reason)
                error = ValueError(f"mt5bridge refused the request: {data.reason}")
                conn.rpc.refuse(data.seq, error)
                keep = True
            else:
                keep = conn.rpc.handle_frame(data)
        except ProtocolError as exc:
            log.warning("closed %s: %s", conn.peer, exc)
            keep = False
        if not keep:
            conn.phase, conn.close_after_flush = "closing", True

    # ---- classic mode ---------------------------------------------------------------------

    def _hand_to_classic(self, conn: _Conn) -> None:
        """An RPyC classic client, in classic mode: it gets a thread of its own (classic mode
        runs any code a local client sends; it is loopback only and off in the secure image)."""
        prefix = bytes(conn.inbuf)
        self._conns.pop(conn.sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        conn.events = 0
        log.warning("classic-mode client %s: serving RPyC classic (executes code)", conn.peer)
        self._audit(conn, "connect", "RPyC classic client (classic mode)", outcome="ok")
        sock = conn.sock
        sock.setblocking(True)

        def serve() -> None:
            try:
                rpyc.connect_stream(_PrefixedStream(sock, prefix), SlaveService,
                                    config={}).serve_all()  # fmt: skip
            except Exception as exc:
                log.info("classic connection %s ended: %s", conn.peer, exc)
            finally:
                with contextlib.suppress(OSError):
                    sock.close()

        threading.Thread(target=serve, name=f"classic-{conn.peer}", daemon=True).start()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_D = ServerOptions()
_LIMITS: tuple[tuple[str, type, float | int, str], ...] = (
    ("handshake-timeout", float, _D.handshake_timeout, "seconds for the TLS handshake and hello"),
    ("idle-timeout", float, _D.idle_timeout, "seconds a connection may sit idle"),
    ("frame-timeout", float, _D.frame_timeout, "seconds to receive a request or send a reply"),
    ("max-frame", int, _D.max_frame, "bytes in one request frame"),
    ("max-connections", int, _D.max_connections, "connections at once"),
    ("max-buffered", int, _D.max_buffered, "bytes buffered across connections"),
    ("workers", int, _D.workers, "threads running calls"),
    ("backlog", int, _D.backlog, "listen backlog"),
)


_MARGIN_MODES = {
    "hedging": ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
    "netting": ACCOUNT_MARGIN_MODE_RETAIL_NETTING,
}
#: The latest --sim-start: a year short of what datetime holds, so the clock can run on.
_LATEST_START = dt.datetime(9998, 1, 1, tzinfo=dt.UTC).timestamp()


def _sim_speed(text: str) -> float:
    """--sim-speed / MT5_SIM_SPEED: simulated seconds per wall-clock second, above 0."""
    try:
        speed = float(text)
    except ValueError:
        speed = math.nan
    if not math.isfinite(speed) or speed <= 0:
        raise argparse.ArgumentTypeError(
            "must be a number above 0, simulated seconds per wall-clock second (flag or "
            f"MT5_SIM_SPEED), got {text!r}"
        )
    return speed


def _sim_start(text: str) -> float:
    """--sim-start / MT5_SIM_START: an ISO 8601 time (UTC when it names no offset; another
    offset is converted) or Unix seconds, from 2015-01-01 (where the generated history starts)."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                "must be an ISO 8601 time such as 2024-03-06T12:00:00Z, or Unix seconds "
                f"(flag or MT5_SIM_START), got {text!r}"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = when.timestamp()
    if not math.isfinite(seconds) or not 0 <= seconds < _LATEST_START:
        raise argparse.ArgumentTypeError(
            f"is out of range (1970 to 9997; flag or MT5_SIM_START): {text!r}"
        )
    return seconds


def _limit_var(flag: str) -> str:
    return "MT5_BRIDGE_" + flag.replace("-", "_").upper()


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
    p.add_argument(
        "--sim-margin-mode",
        type=str.lower,
        choices=tuple(_MARGIN_MODES),
        default=env("MT5_SIM_MARGIN_MODE", "hedging"),
        help="the account's position accounting (default hedging; MT5_SIM_MARGIN_MODE)",
    )
    p.add_argument(
        "--sim-speed",
        type=_sim_speed,
        default=env("MT5_SIM_SPEED", "1"),
        help="simulated seconds per wall-clock second (default 1; MT5_SIM_SPEED)",
    )
    p.add_argument(
        "--sim-start",
        type=_sim_start,
        default=env("MT5_SIM_START") or None,
        metavar="TIME",
        help="simulated time at start, where history ends: ISO 8601 (UTC unless it names an "
        "offset) or Unix seconds (default: now; MT5_SIM_START)",
    )
    p.add_argument("--log-level", type=str.upper, default=env("MT5_BRIDGE_LOG_LEVEL", "INFO"),
                   choices=_LEVELS)  # fmt: skip
    limits = p.add_argument_group("limits (each also from its MT5_BRIDGE_* variable)")
    for flag, kind, default, text in _LIMITS:
        limits.add_argument(f"--{flag}", type=kind, default=env(_limit_var(flag), str(default)),
                            help=text)  # fmt: skip
    args = p.parse_args(argv)
    if args.log_level not in _LEVELS:  # argparse checks choices on the command line only
        p.error(f"MT5_BRIDGE_LOG_LEVEL must be one of {', '.join(_LEVELS)}")
    if args.sim_margin_mode not in _MARGIN_MODES:  # the same for the variable
        p.error(f"MT5_SIM_MARGIN_MODE must be one of {', '.join(_MARGIN_MODES)}, "
                f"got {args.sim_margin_mode!r}")  # fmt: skip
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
    origin = args.sim_start
    if origin is not None and origin < HISTORY_START and not csv:
        raise ConfigError(
            "--sim-start (MT5_SIM_START) is before 2015-01-01, where the simulator's history "
            "starts; replay a CSV (--sim-csv) for earlier times"
        )
    if origin is None and args.sim_speed != 1.0 and not csv:
        origin = time.time()  # the simulator runs the wall clock itself only at speed 1
    return SimulatorConfig(login=int(login), password=password, server=server,
                           seed=args.sim_seed, balance=args.sim_balance, csv_bars=csv,
                           margin_mode=_MARGIN_MODES[args.sim_margin_mode],
                           time_origin=origin, speed=args.sim_speed)  # fmt: skip


def build_server(args: argparse.Namespace) -> BridgeServer:
    tls_parts = (args.tls_ca, args.tls_cert, args.tls_key)
    if any(tls_parts) and not all(tls_parts):
        raise ConfigError("mutual TLS needs all of --tls-ca, --tls-cert and --tls-key")
    tls = (
        TlsFiles(ca=Path(args.tls_ca), cert=Path(args.tls_cert), key=Path(args.tls_key))
        if all(tls_parts)
        else None
    )
    limits = {flag.replace("-", "_"): getattr(args, flag.replace("-", "_")) for flag, *_ in _LIMITS}
    options = ServerOptions(host=args.host, port=args.port, tls=tls, classic=args.classic,
                            variant=args.variant, **limits)  # fmt: skip
    check_options(options)  # before the backend starts a terminal or reads credentials
    backend = (
        simulator_backend(_simulator_config(args))
        if args.backend == "simulator"
        else metatrader5_backend()
    )
    return BridgeServer(backend, options)


def _known_secrets() -> tuple[list[str], list[int]]:
    """The account's password and number, when this process is given them, for redaction.
    Unreadable settings are reported where they are used, not here."""
    secrets: list[str] = []
    accounts: list[int] = []
    for name in ("MT5_PASSWORD", "MT5_LOGIN"):
        try:
            value = read_setting(name)
        except SettingError:
            continue
        if value and name == "MT5_LOGIN" and value.isdigit():
            accounts.append(int(value))
        elif value and name == "MT5_PASSWORD":
            secrets.append(value)
    return secrets, accounts


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")
    return int(value)


def _setup_logging(level: str) -> Redactor:
    """Every record redacted and on one line, whichever logger writes it (rpyc's too): to
    stderr always, and with MT5_LOG_DIR also as JSON lines (mt5bridge.jsonlog) to bridge.jsonl
    there, with the audit trail (mt5bridge.audit) beside it in audit.jsonl."""
    secrets, accounts = _known_secrets()
    redactor = Redactor(secrets, accounts)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(redactor, FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return redactor


def _setup_files(redactor: Redactor, backend: str) -> None:
    """The log files under MT5_LOG_DIR (none without it). A directory that cannot be written
    is said on stderr and the bridge runs on: trading must not stop for a full log disk."""
    log_dir = os.environ.get("MT5_LOG_DIR", "").strip()
    if not log_dir:
        return
    where = Path(log_dir)
    max_bytes = _int_env("MT5_LOG_MAX_BYTES", jsonlog.DEFAULT_MAX_BYTES)
    backups = _int_env("MT5_LOG_BACKUPS", jsonlog.DEFAULT_BACKUPS)
    try:
        files = jsonlog.file_handler(
            where / "bridge.jsonl", "bridge", redactor, max_bytes=max_bytes, backups=backups
        )
        logging.getLogger().addHandler(files)
        audit.install(audit.AuditLog(where / audit.FILE_NAME, redactor,
                                     max_bytes=2 * max_bytes, backups=max(backups, 9)))  # fmt: skip
        if backend != "metatrader5":
            return
        journal = jsonlog.file_handler(
            where / "mt5.jsonl", "mt5", redactor, max_bytes=max_bytes, backups=backups
        )
    except OSError as exc:
        log.warning("no log files in %s: %s; logging to stderr only, without an audit trail",
                    log_dir, exc)  # fmt: skip
        return
    sink = logging.getLogger("mt5.journal")
    sink.propagate = False
    sink.setLevel(logging.INFO)
    sink.addHandler(journal)
    terminal = os.environ.get("MT5_TERMINAL_PATH", "")
    if terminal:  # a daemon thread: it ends with the process, nothing to hand over
        follower = JournalFollower(journal_dirs(terminal), where, sink)
        threading.Thread(target=follower.run, args=(threading.Event(),), name="mt5-journal",
                         daemon=True).start()  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    redactor = _setup_logging(args.log_level)
    try:
        _setup_files(redactor, args.backend)
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
