"""A legitimate client's latency while the bridge is attacked, and what redaction costs a log line.

One simulator bridge server on 127.0.0.1 (default limits). For each scenario the benchmark
measures, for a client that does what mt5bridge's client does (hello, then RPyC), the time to
connect (TCP, hello, RPyC root) and the round trip of `symbol_info_tick`, and reads the
server's peak memory (VmHWM) after it:

- quiet: nobody else connected;
- 300 half-open: 300 connections that send nothing, or half a hello, or half a frame;
- 300 idle clients: 300 connections past the handshake that send nothing more;
- oversize flood: another client sends 64 MiB frames (over the 4 MiB cap) without pause;
- bomb flood: another client sends zlib bombs (1 GiB inflated each) without pause.

Then the cost of mt5bridge.redact per log line, without and with a secret in it.
Bounded loops; loopback only; Linux (reads /proc). Not a test: it prints tables.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import rpyc
from mt5bridge import codec
from mt5bridge.handshake import MAGIC, client_handshake
from mt5bridge.redact import Redactor
from mt5bridge.service import RPYC_CONFIG
from rpyc.core import brine, consts
from rpyc.core.stream import SocketStream

LOGIN, PASSWORD, SERVER = 51234567, "bench-only-pw", "Sim-Demo"
N_CALLS = 1000
N_CONNECTS = 50


def connect(port: int) -> Any:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    client_handshake(sock)
    sock.settimeout(None)
    conn = rpyc.connect_stream(SocketStream(sock), rpyc.VoidService, config=dict(RPYC_CONFIG))
    _ = conn.root
    return conn


def pct(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.99) - 1] * 1000


def measure(port: int) -> tuple[float, float, float, float]:
    connects = []
    for _ in range(N_CONNECTS):
        t = time.perf_counter()
        conn = connect(port)
        connects.append(time.perf_counter() - t)
        conn.close()
    conn = connect(port)
    kwargs = codec.encode({"login": LOGIN, "password": PASSWORD, "server": SERVER})
    assert conn.root.call("initialize", codec.encode(()), kwargs) == ("ok", True)
    call = conn.root.call
    args, none = codec.encode(("EURUSD",)), codec.encode({})
    calls = []
    for _ in range(N_CALLS):
        t = time.perf_counter()
        assert call("symbol_info_tick", args, none)[0] == "ok"
        calls.append(time.perf_counter() - t)
    conn.close()
    return (*pct(connects), *pct(calls))


def peak_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) / 1024  # type: ignore[index]


@contextlib.contextmanager
def half_open(port: int, count: int) -> Iterator[None]:
    socks = []
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        if i % 3 == 1:
            s.sendall(MAGIC + b"\x00")
        elif i % 3 == 2:
            client_handshake(s)
            s.sendall(struct.pack("!LB", 100, 0) + b"\x01")
        socks.append(s)
    try:
        yield
    finally:
        for s in socks:
            s.close()


@contextlib.contextmanager
def idle_clients(port: int, count: int) -> Iterator[None]:
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        client_handshake(s)
        socks.append(s)
    try:
        yield
    finally:
        for s in socks:
            s.close()


@contextlib.contextmanager
def flood(port: int, frame: Callable[[int], list[bytes]]) -> Iterator[None]:
    """Another client sending hostile frames as fast as the server takes them."""
    stop = threading.Event()

    def run() -> None:
        s = socket.create_connection(("127.0.0.1", port))
        client_handshake(s)
        seq = 0
        while not stop.is_set():
            seq += 1
            try:
                for part in frame(seq):
                    s.sendall(part)
                s.recv(65536)  # the refusal
            except OSError:
                break
        s.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.3)
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


ZEROS = bytes(1 << 20)


def oversize(seq: int) -> list[bytes]:
    size = 64 << 20
    prefix = bytes([consts.MSG_REQUEST]) + brine.TAG_TUP2 + brine.dump(seq)
    rest = [ZEROS] * 63 + [ZEROS[len(prefix) :], b"\n"]
    return [struct.pack("!LB", size, 0) + prefix, *rest]


def bomb_frames() -> Callable[[int], list[bytes]]:
    """One zlib bomb (1 GiB of zeros behind a ping request), compressed in pieces."""
    packer = zlib.compressobj(9)
    head = bytes([consts.MSG_REQUEST]) + brine.dump((1, (consts.HANDLE_PING, (1, ()))))
    parts = [packer.compress(head)]
    parts += [packer.compress(ZEROS) for _ in range(1024)]
    body = b"".join([*parts, packer.flush()])
    frame = struct.pack("!LB", len(body), 1) + body + b"\n"
    return lambda seq: [frame]


def redaction_costs() -> list[tuple[str, float]]:
    redactor = Redactor(secrets=[PASSWORD, "another-s3cret"], accounts=[LOGIN])
    lines = {
        "plain line, 100 chars": "2026-01-01 00:00:00,000 INFO bot: EURUSD bid 1.08412 ask 1.08414 "
        "spread 2 positions 3 equity 10012.40",
        "line with the password": f"2026-01-01 INFO bot: initialize(login={LOGIN}, "
        f"password={PASSWORD!r}, server={SERVER!r}) -> True",
        "500-char line, nothing to mask": "x" * 500,
    }
    rows = []
    for name, line in lines.items():
        n = 5000
        t = time.perf_counter()
        for _ in range(n):
            redactor(line)
        rows.append((name, (time.perf_counter() - t) / n * 1e6))
    return rows


def main() -> int:
    env = dict(os.environ, MT5_LOGIN=str(LOGIN), MT5_PASSWORD=PASSWORD, MT5_SERVER=SERVER)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mt5bridge.server",
            "--backend",
            "simulator",
            "--port",
            "0",
            "--log-level",
            "ERROR",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    rows = []
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[3].rsplit(":", 1)[1])
        scenarios: list[tuple[str, Callable[[], Any]]] = [
            ("quiet", contextlib.nullcontext),
            ("300 half-open", lambda: half_open(port, 300)),
            ("300 idle clients", lambda: idle_clients(port, 300)),
            ("oversize flood (64 MiB frames)", lambda: flood(port, oversize)),
            ("bomb flood (1 GiB inflated)", lambda: flood(port, bomb_frames())),
        ]
        for name, scenario in scenarios:
            with scenario():
                rows.append((name, *measure(port), peak_mib(server.pid)))
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(
        f"{'scenario':<32} {'connect p50':>11} {'p99 ms':>7} {'call p50':>9} {'p99 ms':>7} "
        f"{'server peak MiB':>15}"
    )
    for name, cp50, cp99, p50, p99, mib in rows:
        print(f"{name:<32} {cp50:>11.3f} {cp99:>7.3f} {p50:>9.3f} {p99:>7.3f} {mib:>15.1f}")
    print(
        f"(127.0.0.1, simulator, default limits, {N_CONNECTS} connects and {N_CALLS} "
        f"symbol_info_tick calls per scenario, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs)"
    )
    print()
    print(f"{'redaction':<34} {'us/line':>8}")
    for name, us in redaction_costs():
        print(f"{name:<34} {us:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
