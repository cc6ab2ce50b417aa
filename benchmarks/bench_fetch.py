"""Benchmark (not a test): fetch throughput beside what a user would do by hand, and flat memory.

Run: ``.venv/bin/python benchmarks/bench_fetch.py [--size-mib 512] [--runs 3] [--breakdown]``

1. Makes a file of ``--size-mib`` MiB in a temp dir and serves it on 127.0.0.1 (the fixture
   server, Range-capable, one thread per connection).
2. In turn, ``--runs`` times each (A B A B ..., so drift on a shared machine hits both):

   - fetch: ``fetch_all`` in a child process (a fresh cache each run), with every cap on (size
     cap = the lock's size, overall deadline): download, sha256 while streaming, compare with the
     lock, ``fsync`` and ``os.replace`` into the cache (a durable commit). The child reports its
     peak RSS before and after: the file is streamed in chunks, never held, so it stays flat;
   - by hand: ``curl -o``, then ``openssl dgst -sha256``, then ``sync``, the same file.

3. Prints the median of each, the ratio (goal: fetch >= 0.8 x by hand) and the memory rows.
   ``--breakdown`` also times the pieces of one fetch (receive, hash, write, fsync) to show
   where the time goes. Everything it made is deleted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mt5forge.fixtures import serve_directory
from mt5forge.tools.run import call

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20

CHILD = r"""
import json, sys, time
from pathlib import Path

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

from mt5forge import config
from mt5forge.fetch import fetch_all

args = json.loads(sys.argv[1])
settings = config.load(Path(args["root"]), env={}, overrides={"fetch": args["fetch"]})
before = hwm()
t0 = time.perf_counter()
[artifact] = fetch_all(settings)
seconds = time.perf_counter() - t0
print(json.dumps({"before": before, "after": hwm(), "seconds": seconds,
                  "size": artifact.size, "hit": artifact.cache_hit}))
"""


def make_file(path: Path, size: int) -> str:
    """Write ``size`` bytes of varied random data; return their sha256."""
    block = os.urandom(MIB)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(size // MIB):
            # Vary each block a little so the file is not one block repeated.
            data = i.to_bytes(8, "little") + block[8:]
            f.write(data)
            h.update(data)
    return h.hexdigest()


def fetch_once(root: Path, url: str, n: int, size: int) -> dict[str, float]:
    fetch = {
        "profile": "fixture",
        "mirror": url,
        "manifests_dir": str(root / "manifests"),
        "lock_dir": str(root / "lock"),
        "keys_dir": str(root),
        "trust_overlay": str(root / "trust.toml"),
        "cache_dir": str(root / f"cache-{n}"),
    }
    arg = json.dumps({"root": str(REPO), "fetch": fetch})
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, arg], capture_output=True, text=True, timeout=1200
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    r: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    if r["hit"] or r["size"] != size:
        raise SystemExit(f"unexpected fetch result {r}")
    shutil.rmtree(root / f"cache-{n}")
    return r


def by_hand_once(root: Path, url: str, sha: str) -> float:
    out = root / "by-hand.bin"
    t0 = time.perf_counter()
    call("curl", "-sS", "-o", out, url, timeout=1200)
    digest = call("openssl", "dgst", "-sha256", out, timeout=1200).stdout.decode()
    call("sync", timeout=1200)
    seconds = time.perf_counter() - t0
    if sha not in digest:
        raise SystemExit(f"openssl disagrees: {digest}")
    out.unlink()
    return seconds


def breakdown(url: str, dest: Path, size: int) -> list[tuple[str, str, str]]:
    """Time the pieces of a fetch on their own: receive only, + hash, + write, + fsync."""
    from mt5forge.tools.http import CHUNK, new_session

    rows = []
    session = new_session()

    def receive(hash_it: bool, write: bool, sync: bool) -> float:
        t0 = time.perf_counter()
        h = hashlib.sha256()
        with session.get(url, stream=True, timeout=(5, 60)) as resp:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) if write else -1
            try:
                while chunk := resp.raw.read1(CHUNK, decode_content=False):
                    if hash_it:
                        h.update(chunk)
                    if write:
                        os.write(fd, chunk)
                if sync:
                    os.fsync(fd)
            finally:
                if fd >= 0:
                    os.close(fd)
        return time.perf_counter() - t0

    for label, args in (
        ("receive only (read1, 1 MiB)", (False, False, False)),
        ("receive + sha256", (True, False, False)),
        ("receive + sha256 + write", (True, True, False)),
        ("receive + sha256 + write + fsync", (True, True, True)),
    ):
        t = statistics.median(receive(*args) for _ in range(3))
        rows.append((label, f"{size / MIB / t:,.0f} MiB/s", f"{t:.2f} s"))
    dest.unlink(missing_ok=True)
    t0 = time.perf_counter()
    h = hashlib.sha256()
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0]))) as s:
        path = "/" + url.split("/", 3)[3]
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        while block := s.recv(MIB):
            h.update(block)
    t = time.perf_counter() - t0
    rows.append(("raw socket recv + sha256 (no HTTP parsing)", f"{size / MIB / t:,.0f} MiB/s", ""))
    rows += _writeback_rows(dest, size)
    t0 = time.perf_counter()
    call("curl", "-sS", "-o", dest, url, timeout=1200)
    t = time.perf_counter() - t0
    dest.unlink()
    rows.append(("curl -o alone (the server's pace)", f"{size / MIB / t:,.0f} MiB/s", f"{t:.2f} s"))
    return rows


def _writeback_rows(dest: Path, size: int) -> list[tuple[str, str, str]]:
    """Write ``size`` bytes from memory then ``fsync``: as is, and starting writeback every
    8 MiB as fetch does. Where dirty pages pile up the kernel throttles the writer and the
    final fsync flushes them all; this is what made larger files slower."""
    from mt5forge.tools.http import start_writeback

    block = os.urandom(MIB)
    out = []
    for label, every in (
        ("write + fsync, no early writeback", 0),
        ("  same, writeback every 8 MiB", 8),
    ):
        times = []
        for _ in range(3):
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            t0 = time.perf_counter()
            for i in range(size // MIB):
                os.write(fd, block)
                if every and (i + 1) % every == 0:
                    start_writeback(fd, (i + 1 - every) * MIB, every * MIB)
            os.fsync(fd)
            times.append(time.perf_counter() - t0)
            os.close(fd)
            dest.unlink()
        t = statistics.median(times)
        out.append((label, f"{size / MIB / t:,.0f} MiB/s", f"median {t:.2f} s of 3"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--breakdown", action="store_true")
    args = ap.parse_args()
    size = args.size_mib * MIB
    console = Console()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="mt5forge-bench-") as tmp:
        root = Path(tmp)
        serve = root / "serve"
        serve.mkdir()
        blob = serve / "bench-blob.bin"
        with console.status(f"writing {size // MIB} MiB..."):
            sha = make_file(blob, size)
            # Neither path should pay for flushing the file just made (``sync`` would).
            call("sync", timeout=600)
        manifests = root / "manifests"
        manifests.mkdir()
        (manifests / "bench.toml").write_text(
            'name = "bench-blob"\nversion = "1"\n'
            'url = "https://bench.invalid/dl/bench-blob.bin"\n'
            '[pin]\nsource = "benchmark file made at run time"\n'
        )
        (root / "lock").mkdir()
        (root / "lock" / "artifacts.lock.toml").write_text(
            f'[bench-blob]\nfilename = "bench-blob.bin"\nsha256 = "{sha}"\n'
            f'origin = "fixture"\nsize = {size}\n'
        )
        (root / "trust.toml").write_text('profile = "fixture"\n')
        fetches: list[dict[str, float]] = []
        hand: list[float] = []
        with serve_directory(serve) as server:
            url = f"{server.url}/bench-blob.bin"
            for n in range(args.runs):
                with console.status(f"run {n + 1} of {args.runs}: fetch..."):
                    fetches.append(fetch_once(root, server.url, n, size))
                with console.status(f"run {n + 1} of {args.runs}: curl + openssl + sync..."):
                    hand.append(by_hand_once(root, url, sha))
            extra = breakdown(url, root / "breakdown.bin", size) if args.breakdown else []
    t_fetch = statistics.median(r["seconds"] for r in fetches)
    t_hand = statistics.median(hand)
    spread_f = f"{min(r['seconds'] for r in fetches):.2f}-{max(r['seconds'] for r in fetches):.2f}"
    rows.append(
        (
            "fetch: download + sha256 + durable commit (caps on)",
            f"{size / MIB / t_fetch:,.0f} MiB/s",
            f"median {t_fetch:.2f} s of {args.runs} (range {spread_f} s)",
        )
    )
    rows.append(
        (
            "by hand: curl -o, openssl dgst -sha256, sync",
            f"{size / MIB / t_hand:,.0f} MiB/s",
            f"median {t_hand:.2f} s of {args.runs} (range {min(hand):.2f}-{max(hand):.2f} s)",
        )
    )
    ratio = t_hand / t_fetch
    rows.append(("fetch / by hand (throughput)", f"{ratio:.2f} x", "goal >= 0.80 x"))
    before = max(r["before"] for r in fetches)
    after = max(r["after"] for r in fetches)
    rows.append(
        ("peak RSS of the fetching process before the fetch", f"{before / MIB:.1f} MiB", "")
    )
    rows.append(
        (
            "peak RSS of the fetching process after the fetch",
            f"{after / MIB:.1f} MiB",
            f"+{(after - before) / MIB:.1f} MiB for a {size / MIB:,.0f} MiB file",
        )
    )
    rows += extra
    flat = (after - before) < 64 * MIB
    table = Table(title=f"mt5forge fetch benchmark ({size // MIB} MiB file, 127.0.0.1 only)")
    for col in ("measure", "value", "detail"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print("memory stays flat" if flat else "[red]memory grew with the file[/red]")
    if not flat:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
