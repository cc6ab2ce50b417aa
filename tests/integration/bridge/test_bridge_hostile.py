"""A running bridge attacked over raw sockets: oversized and compressed frames, bombs through the
codec, references into the client, refused request kinds, malformed RPyC, slow and silent
peers, connection floods, file-descriptor exhaustion and forged log lines. Each attack ends in
a clear error for that peer and a log line, and a legitimate client is served throughout.

Real server processes (conftest), real sockets; nothing is mocked.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import socket
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import rpyc
from conftest import SIM_LOGIN, SIM_PASSWORD, SIM_SERVER, RunningServer
from mt5bridge import codec
from mt5bridge.handshake import MAGIC, client_handshake
from mt5bridge.service import RPYC_CONFIG
from mt5bridge.tls import TlsFiles, client_context
from rpyc.core import brine, consts
from rpyc.core.stream import SocketStream

from mt5forge.certs import write_bundle

pytestmark = pytest.mark.integration

# A record line as the bridge writes it; any other line must be a traceback's indented line.
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


class RawPeer:
    """A client that writes RPyC frames by hand, so it can write the ones RPyC would not."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def hello(self) -> RawPeer:
        client_handshake(self.sock)
        return self

    def frame(self, body: bytes, *, compressed: int = 0, length: int | None = None) -> None:
        size = len(body) if length is None else length
        self.sock.sendall(struct.pack("!LB", size, compressed) + body + b"\n")

    def request(self, seq: int, handler: int, boxed: Any) -> None:
        self.frame(bytes([consts.MSG_REQUEST]) + brine.dump((seq, (handler, boxed))))

    def reply(self) -> tuple[int, int, Any]:
        """(message type, sequence number, payload) of the next frame from the server."""
        length, compressed = struct.unpack("!LB", self._exact(5))
        body = self._exact(length + 1)[:-1]
        if compressed:
            body = zlib.decompress(body)
        seq, payload = brine.load(body[1:])
        return body[0], seq, payload

    def error_text(self, seq: int) -> str:
        """The exception the server answered request `seq` with, as text."""
        msg, got, payload = self.reply()
        assert (msg, got) == (consts.MSG_EXCEPTION, seq), (msg, got, payload)
        (_module, name), args, _attrs, _tb = payload
        return f"{name}: {' '.join(str(a) for a in args)}"

    def ping(self, seq: int, data: str = "still here") -> bool:
        self.request(seq, consts.HANDLE_PING, (consts.LABEL_VALUE, (data,)))
        msg, got, payload = self.reply()
        return (msg, got, payload) == (consts.MSG_REPLY, seq, (consts.LABEL_VALUE, data))

    def closed(self, timeout: float = 10.0) -> bool:
        """Whether the server closes this connection within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except OSError:
            return True
        return True

    def _exact(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError("server closed the connection")
            data += chunk
        return bytes(data)

    def close(self) -> None:
        self.sock.close()


def legit(port: int, timeout: float = 10.0, tls: TlsFiles | None = None) -> Any:
    """An RPyC connection as the bridge client opens one (hello first, then RPyC)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls is not None:
        sock = client_context(tls).wrap_socket(sock, server_hostname="127.0.0.1")
    client_handshake(sock)
    sock.settimeout(None)
    config = dict(RPYC_CONFIG, sync_request_timeout=timeout)
    return rpyc.connect_stream(SocketStream(sock), rpyc.VoidService, config=config)


def initialize(conn: Any) -> Any:
    kwargs = {"login": SIM_LOGIN, "password": SIM_PASSWORD, "server": SIM_SERVER}
    return conn.root.call("initialize", codec.encode(()), codec.encode(kwargs))


def assert_served(port: int, timeout: float = 10.0, tls: TlsFiles | None = None) -> None:
    conn = legit(port, timeout, tls)
    try:
        assert initialize(conn) == ("ok", True)
    finally:
        conn.close()


def rss_peak_kib(server: RunningServer) -> int:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1])  # type: ignore[index]


def threads(server: RunningServer) -> int:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(re.search(r"Threads:\s+(\d+)", status)[1])  # type: ignore[index]


def assert_one_record_per_line(server: RunningServer) -> None:
    for line in server.log_text().splitlines():
        assert RECORD.match(line) or line.startswith("    | "), f"forged or stray line: {line!r}"


@pytest.fixture
def peers() -> Iterator[list[Any]]:
    opened: list[Any] = []
    yield opened
    for peer in opened:
        with contextlib.suppress(Exception):
            peer.close()


# ---- frames ------------------------------------------------------------------------------


def test_oversized_frame_is_refused_from_its_header_and_never_held(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server("--max-frame", "65536")
    peer = RawPeer(server.port).hello()
    before = rss_peak_kib(server)
    # 200 MiB claimed and sent: the server reads and throws it away, keeping none of it.
    size = 200 << 20
    prefix = bytes([consts.MSG_REQUEST]) + brine.TAG_TUP2 + brine.dump(41)
    peer.sock.sendall(struct.pack("!LB", size, 0) + prefix)
    zeros = bytes(1 << 20)
    left = size - len(prefix)
    while left:
        chunk = zeros[: min(left, len(zeros))]
        peer.sock.sendall(chunk)
        left -= len(chunk)
    peer.sock.sendall(b"\n")
    text = peer.error_text(41)
    assert "over the bridge's cap of 65536 bytes" in text and "MT5_BRIDGE_MAX_FRAME" in text
    assert peer.ping(42)  # the connection goes on
    assert rss_peak_kib(server) - before < 32 << 10  # far below the 200 MiB sent
    assert server.wait_for_log("request frame of 209715200 bytes is over")
    peer.close()
    assert_served(server.port)


def test_compressed_bomb_inflates_only_up_to_the_cap(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server("--max-frame", "1048576")
    peer = RawPeer(server.port).hello()
    before = rss_peak_kib(server)
    inner = bytes([consts.MSG_REQUEST]) + brine.dump((7, (consts.HANDLE_PING, (1, ("x",)))))
    bomb = zlib.compress(inner + bytes(128 << 20), 9)  # 128 MiB inflated, 128 KiB on the wire
    assert len(bomb) < 1 << 20
    peer.frame(bomb, compressed=1)
    assert "inflates to over 1048576 bytes" in peer.error_text(7)
    assert rss_peak_kib(server) - before < 32 << 10
    # A compressed request within the cap is served, as RPyC clients send large ones.
    body = bytes([consts.MSG_REQUEST]) + brine.dump((8, (consts.HANDLE_PING, (1, ("y" * 5000,)))))
    peer.frame(zlib.compress(body), compressed=1)
    assert peer.reply() == (consts.MSG_REPLY, 8, (consts.LABEL_VALUE, "y" * 5000))
    assert server.wait_for_log("refused a request from 127.0.0.1")


@pytest.mark.parametrize(
    ("frame", "log"),
    [
        (struct.pack("!LB", 4, 7) + b"abcd\n", "compression flag 7"),
        (struct.pack("!LB", 4, 0) + b"abcdX", "does not end where its header says"),
        (
            struct.pack("!LB", 3, 0) + bytes([consts.MSG_REPLY]) + b"\x00\x00\n",
            "expected a request",
        ),
        (
            struct.pack("!LB", 5, 0) + bytes([consts.MSG_REQUEST]) + b"\xff\xfe\xfd\xfc\n",
            "undecodable",
        ),
        (struct.pack("!LB", 6, 1) + b"notzlb\n", "closed 127.0.0.1"),
    ],
)
def test_malformed_rpyc_closes_that_connection_only(
    start_server: Callable[..., RunningServer], frame: bytes, log: str
) -> None:
    server = start_server()
    other = legit(server.port)
    assert initialize(other) == ("ok", True)
    peer = RawPeer(server.port).hello()
    peer.sock.sendall(frame)
    assert peer.closed()
    assert server.wait_for_log(log)
    # The client that was already there, and a new one, are both served.
    assert other.root.call("account_info", codec.encode(()), codec.encode({}))[0] == "ok"
    other.close()
    assert_served(server.port)
    assert "Traceback" not in server.log_text()


def test_codec_bombs_through_a_real_call_get_a_codec_error(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server()
    conn = legit(server.port)
    try:
        initialize(conn)
        shape_bomb = ("A", "<f8", (10**9, 10**9, 10**9), b"")
        reply = conn.root.call("copy_rates_from_pos", ("T", (shape_bomb,)), ("D", (), ()))
        assert reply[:2] == ("err", "Codec") and "elements" in reply[2]
        name_bomb = ("N", "T" * 10_000, ("a",), (1,))
        reply = conn.root.call("symbol_info", ("T", (name_bomb,)), ("D", (), ()))
        assert reply[:2] == ("err", "Codec")
        assert conn.root.call("account_info", ("T", ()), ("D", (), ()))[0] == "ok"
    finally:
        conn.close()
    assert server.wait_for_log("call from 127.0.0.1")
    assert "T" * 300 not in server.log_text()  # the peer's name is cut in the log


# ---- no callbacks into the client --------------------------------------------------------


class Tripwire:
    """Records any use the server could make of a reference to it."""

    used: list[str]

    def __init__(self) -> None:
        self.used = []

    def __call__(self, *args: Any) -> str:
        self.used.append("call")
        return "EURUSD"

    def __str__(self) -> str:
        self.used.append("str")
        return "EURUSD"

    def __repr__(self) -> str:
        self.used.append("repr")
        return "'EURUSD'"


@pytest.mark.parametrize("where", ["name", "args", "kwargs"])
def test_references_into_the_client_are_refused_before_use(
    start_server: Callable[..., RunningServer], where: str
) -> None:
    server = start_server()
    conn = legit(server.port)
    wire = Tripwire()
    calls = {
        "name": lambda: conn.root.call(wire, ("T", ()), ("D", (), ())),
        "args": lambda: conn.root.call("symbol_info", ("T", (wire,)), ("D", (), ())),
        "kwargs": lambda: conn.root.call("symbol_info", ("T", ()), ("D", ("symbol",), (wire,))),
    }
    try:
        with pytest.raises(ValueError, match="reference into the client"):
            calls[where]()
        assert wire.used == []
        # The connection stays usable.
        assert initialize(conn) == ("ok", True)
    finally:
        conn.close()
    assert server.wait_for_log("arguments must be plain values")


@pytest.mark.parametrize(
    ("handler", "boxed"),
    [
        (consts.HANDLE_SETATTR, (consts.LABEL_VALUE, (None, "x", 1))),
        (consts.HANDLE_PICKLE, (consts.LABEL_VALUE, (None, 2))),
        (consts.HANDLE_INSTANCECHECK, (consts.LABEL_VALUE, (None, ("builtins.int", 1, 0)))),
        (consts.HANDLE_CMP, (consts.LABEL_VALUE, (1, 2))),
        (consts.HANDLE_DIR, (consts.LABEL_VALUE, (None,))),
        (99, (consts.LABEL_VALUE, ())),
    ],
)
def test_request_kinds_the_bridge_does_not_need_are_refused(
    start_server: Callable[..., RunningServer], handler: int, boxed: Any
) -> None:
    server = start_server()
    peer = RawPeer(server.port).hello()
    peer.request(5, handler, boxed)
    assert "is not served by the bridge" in peer.error_text(5)
    assert peer.ping(6)
    assert server.wait_for_log(f"request kind {handler} is not served")


def test_setattr_and_unexposed_names_are_refused_and_logged_on_one_line(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server()
    conn = legit(server.port)
    forged = "x\n2030-01-01 00:00:00,000 CRITICAL mt5bridge.server: forged\u2028line"
    try:
        with pytest.raises(ValueError, match="not served by the bridge"):
            setattr(conn.root, "call", 1)  # noqa: B010  # a real setattr request
        with pytest.raises(AttributeError):
            getattr(conn.root, forged)
        reply = conn.root.call(forged, ("T", ()), ("D", (), ()))
        assert reply[:2] == ("err", "NotExposed")
    finally:
        conn.close()
    assert server.wait_for_log("request getattr from")
    assert server.wait_for_log("not an exposed MetaTrader5 call")
    assert_one_record_per_line(server)


def test_references_held_by_a_client_are_capped(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server()
    conn = legit(server.port)
    held = []
    try:
        with pytest.raises(ValueError, match="references to server objects"):
            for _ in range(100):
                held.append(conn.root.call)  # each getattr is a new server-side object
        assert 10 < len(held) < 100
        del held[:]
        assert initialize(conn)[0] == "ok"
    finally:
        conn.close()
    assert server.wait_for_log("references already")


# ---- the handshake ----------------------------------------------------------------------


def test_hello_dripped_slowly_hits_one_overall_deadline(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server("--handshake-timeout", "1")
    peer = RawPeer(server.port)
    hello = MAGIC + struct.pack(">H", 40) + b'{"protocol": 1, "rpyc": "6.0.2", "x": 1}'
    answer = b""
    dripped = 0
    for byte in hello:  # a byte every 0.2 s: each read is quick, the whole is not
        try:
            dripped += 1
            peer.sock.sendall(bytes([byte]))
            time.sleep(0.2)
            peer.sock.setblocking(False)
            answer += peer.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            break
        finally:
            peer.sock.setblocking(True)
        if answer:
            break
    assert answer.startswith(MAGIC) and b"no bridge handshake within 1 s" in answer
    assert peer.closed(timeout=5)
    assert dripped < len(hello)  # it answered before the hello was whole: one deadline
    assert server.wait_for_log("no bridge handshake within 1 s")


@pytest.mark.parametrize(
    ("hello", "log"),
    [
        (MAGIC + b"\xff\xff", "bridge hello too large"),
        (MAGIC + struct.pack(">H", 4000) + b"[" * 4000, "malformed bridge hello"),
        (MAGIC + struct.pack(">H", 5) + b"\xff\xfe{}x", "malformed bridge hello"),
        (MAGIC + struct.pack(">H", 2) + b"[]", "malformed bridge hello"),
    ],
)
def test_malformed_hello_gets_a_refusal_frame(
    start_server: Callable[..., RunningServer], hello: bytes, log: str
) -> None:
    server = start_server()
    peer = RawPeer(server.port)
    peer.sock.sendall(hello)
    data = peer.sock.recv(4096)
    assert data.startswith(MAGIC) and b'"ok":false' in data and log.encode() in data
    assert peer.closed()
    assert server.wait_for_log(log)
    assert_served(server.port)


def test_hello_fields_cannot_forge_log_lines(start_server: Callable[..., RunningServer]) -> None:
    server = start_server()
    peer = RawPeer(server.port)
    forged = "5.0\n2030-01-01 00:00:00,000 CRITICAL mt5bridge.server: account drained\r"
    body = json.dumps({"protocol": 1, "rpyc": forged}).encode()
    peer.sock.sendall(MAGIC + struct.pack(">H", len(body)) + body)
    assert b"rpyc major version mismatch" in peer.sock.recv(4096)
    assert server.wait_for_log("rpyc major version mismatch")
    assert_one_record_per_line(server)


def test_idle_connection_is_closed_after_the_idle_timeout(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server("--idle-timeout", "1")
    peer = RawPeer(server.port).hello()
    assert peer.ping(1)
    assert peer.closed(timeout=10)
    assert server.wait_for_log("idle for 1 s")


def test_request_frame_dripped_slowly_hits_the_frame_deadline(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server("--frame-timeout", "1")
    peer = RawPeer(server.port).hello()
    peer.sock.sendall(struct.pack("!LB", 1000, 0) + b"\x01")  # and no more
    assert peer.closed(timeout=10)
    assert server.wait_for_log("a request frame not complete within 1 s")


# ---- floods -------------------------------------------------------------------------------


def _flood(port: int, count: int, peers: list[Any]) -> None:
    """`count` connections that never finish: silent, a partial hello, or a partial frame."""
    for i in range(count):
        peer = RawPeer(port)
        peers.append(peer)
        if i % 3 == 1:
            peer.sock.sendall(MAGIC + b"\x00")
        elif i % 3 == 2:
            peer.hello()
            peer.sock.sendall(struct.pack("!LB", 100, 0) + b"\x01\x11")


def test_hundreds_of_idle_and_half_open_connections_do_not_keep_a_client_waiting(
    start_server: Callable[..., RunningServer], peers: list[Any]
) -> None:
    # Two workers and a long handshake deadline: with a thread (or worker) per connection,
    # the legitimate client would wait behind 300 stalled peers for 60 s.
    server = start_server("--workers", "2", "--handshake-timeout", "60", "--frame-timeout", "60")
    before = threads(server)
    _flood(server.port, 300, peers)
    assert peers[-1].closed(timeout=0.5) is False  # the flood is really held open
    # 20 s on a busy machine is still far below the 60 s a client would wait behind the flood
    # with a thread (or a worker) per stalled peer.
    for _ in range(3):
        assert_served(server.port, timeout=20)
    assert "refused" not in server.log_text()
    # Bounded workers, not a thread per peer: what ran before the flood, and the 2 workers.
    assert threads(server) <= before + 2


def test_half_open_tls_connections_do_not_keep_a_client_waiting(
    start_server: Callable[..., RunningServer], tmp_path: Path, peers: list[Any]
) -> None:
    bundle = write_bundle(tmp_path / "deploy", server_names=("127.0.0.1",))
    server = start_server("--tls-ca", str(bundle.ca_cert), "--tls-cert",
                          str(bundle.server_cert), "--tls-key", str(bundle.server_key),
                          "--workers", "2", "--handshake-timeout", "60")  # fmt: skip
    for i in range(150):
        peer = RawPeer(server.port)
        peers.append(peer)
        if i % 2:
            peer.sock.sendall(b"\x16\x03\x01\x00\xff\x01")  # the start of a ClientHello
    client = TlsFiles(ca=bundle.ca_cert, cert=bundle.client_cert, key=bundle.client_key)
    assert_served(server.port, timeout=20, tls=client)  # the handshake deadline is 60 s


def test_large_request_over_tls_is_served_whole(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    # Over 1 MiB: the loop reads it over several turns (it takes at most 16 reads from one
    # connection per turn), through TLS, and the echo comes back whole.
    bundle = write_bundle(tmp_path / "deploy", server_names=("127.0.0.1",))
    server = start_server("--tls-ca", str(bundle.ca_cert), "--tls-cert",
                          str(bundle.server_cert), "--tls-key", str(bundle.server_key))  # fmt: skip
    client = TlsFiles(ca=bundle.ca_cert, cert=bundle.client_cert, key=bundle.client_key)
    conn = legit(server.port, timeout=20, tls=client)
    try:
        data = os.urandom(1_200_000).hex()  # 2.4 MB, about 1.3 MB compressed on the wire
        for _ in range(3):
            conn.ping(data, timeout=20)
        assert initialize(conn) == ("ok", True)
    finally:
        conn.close()


def test_connection_cap_drops_pending_handshakes_first_then_refuses(
    start_server: Callable[..., RunningServer], peers: list[Any]
) -> None:
    server = start_server("--max-connections", "20")
    for _ in range(20):
        peers.append(RawPeer(server.port))  # silent: still in the handshake
    time.sleep(0.3)
    assert_served(server.port, timeout=20)
    assert server.wait_for_log("before its handshake completed: 20 connections is the cap")
    for peer in peers:
        peer.close()
    del peers[:]
    for _ in range(20):
        peers.append(RawPeer(server.port).hello())  # past the handshake: kept
    late = RawPeer(server.port)
    assert late.closed(timeout=5)
    assert server.wait_for_log("connections is the cap (MT5_BRIDGE_MAX_CONNECTIONS)")
    assert all(peer.ping(1) for peer in peers[:3])


def test_listen_backlog_absorbs_a_burst_while_the_server_is_busy(
    start_server: Callable[..., RunningServer], peers: list[Any]
) -> None:
    server = start_server()
    # Stopped, the server accepts nothing: the kernel queues what the backlog allows (it was
    # 5; a connection past it waits for SYN retries, seconds, and misses this timeout).
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        for _ in range(200):
            peers.append(RawPeer(server.port, timeout=0.5))
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    for peer in peers[::20]:
        peer.sock.settimeout(10)
        assert peer.hello().ping(1)


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs prlimit (Linux)")
def test_accept_backs_off_when_out_of_file_descriptors_and_recovers(
    start_server: Callable[..., RunningServer], peers: list[Any]
) -> None:
    server = start_server("--handshake-timeout", "60")
    # The server process gets few descriptors; the flood then exhausts them for real.
    resource.prlimit(server.process.pid, resource.RLIMIT_NOFILE, (48, 48))
    for _ in range(80):
        peers.append(RawPeer(server.port))
    assert server.wait_for_log("Too many open files", timeout=10)
    assert server.wait_for_log("pausing accept")
    for peer in peers:
        peer.close()
    del peers[:]
    time.sleep(1.5)
    assert_served(server.port, timeout=5)
    assert server.process.poll() is None


# ---- secrets in the bridge's own log -----------------------------------------------------


def test_bridge_log_masks_the_account_password_in_its_forms(
    start_server: Callable[..., RunningServer],
) -> None:
    import base64
    import urllib.parse

    server = start_server("--log-level", "DEBUG")
    conn = legit(server.port)
    forms = [
        SIM_PASSWORD,
        SIM_PASSWORD.upper(),
        urllib.parse.quote(SIM_PASSWORD, safe=""),
        base64.b64encode(SIM_PASSWORD.encode()).decode(),
        SIM_PASSWORD.encode().hex(),
        " ".join(SIM_PASSWORD),
        f"{SIM_LOGIN:,}",
    ]
    try:
        for form in [*forms, "client_secret=abc123xyz", 'MY_PASSWORD="q w e"']:
            with pytest.raises(AttributeError):
                getattr(conn.root, f"probe {form} end")
    finally:
        conn.close()
    assert server.wait_for_log("disconnected")
    text = server.log_text()
    assert text.count("request getattr from") >= len(forms) + 2  # each probe was logged
    for leak in [*forms, str(SIM_LOGIN), "abc123xyz", "q w e"]:
        assert leak not in text
