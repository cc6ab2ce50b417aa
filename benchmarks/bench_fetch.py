"""Benchmark (not a test): sha256 throughput against sha256sum, and flat memory while fetching.

Run: ``.venv/bin/python benchmarks/bench_fetch.py [--size-mib 1024]``

1. Makes a 1 GiB file in a temp dir.
2. Hashes it with the cache's ``sha256_file`` (hashlib, 1 MiB reads) and with ``sha256sum``.
3. Serves it on 127.0.0.1 and fetches it with ``fetch_all`` (fixture profile, mirror override)
   in a child process, which reports its peak RSS before and after the fetch: the file is
   streamed in 1 MiB chunks and hashed as it arrives, so the peak must not grow with the file.
4. Deletes everything it made.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mt5forge.cache import sha256_file
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


def make_file(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with open(path, "wb") as f:
        for i in range(size // MIB):
            # Vary each block a little so the file is not one block repeated.
            f.write(i.to_bytes(8, "little") + block[8:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    size = ap.parse_args().size_mib * MIB
    console = Console()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="mt5forge-bench-") as tmp:
        root = Path(tmp)
        serve = root / "serve"
        serve.mkdir()
        blob = serve / "bench-blob.bin"
        with console.status(f"writing {size // MIB} MiB..."):
            make_file(blob, size)

        t0 = time.perf_counter()
        ours = sha256_file(blob)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        theirs = call("sha256sum", blob, timeout=600).stdout.decode().split()[0]
        t_sum = time.perf_counter() - t0
        assert ours == theirs, "sha256 disagrees with sha256sum"
        rows.append(
            (
                "sha256 (mt5forge, hashlib, 1 MiB reads)",
                f"{size / MIB / t_ours:,.0f} MiB/s",
                f"{t_ours:.2f} s",
            )
        )
        rows.append(("sha256sum (coreutils)", f"{size / MIB / t_sum:,.0f} MiB/s", f"{t_sum:.2f} s"))

        manifests = root / "manifests"
        manifests.mkdir()
        (manifests / "bench.toml").write_text(
            'name = "bench-blob"\nversion = "1"\n'
            'url = "https://bench.invalid/dl/bench-blob.bin"\n'
            '[pin]\nsource = "benchmark file made at run time"\n'
        )
        lock = root / "lock"
        lock.mkdir()
        (lock / "artifacts.lock.toml").write_text(
            f'[bench-blob]\nfilename = "bench-blob.bin"\nsha256 = "{ours}"\nsize = {size}\n'
        )
        overlay = root / "trust.toml"
        overlay.write_text('profile = "fixture"\n')
        with serve_directory(serve) as server:
            fetch = {
                "profile": "fixture",
                "mirror": server.url,
                "manifests_dir": str(manifests),
                "lock_dir": str(lock),
                "keys_dir": str(root),
                "trust_overlay": str(overlay),
                "cache_dir": str(root / "cache"),
            }
            arg = json.dumps({"root": str(REPO), "fetch": fetch})
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, arg], capture_output=True, text=True, timeout=1200
            )
            if proc.returncode != 0:
                raise SystemExit(proc.stderr)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
        assert not r["hit"] and r["size"] == size
        rows.append(
            (
                "fetch from 127.0.0.1 (download + sha256 + commit)",
                f"{size / MIB / r['seconds']:,.0f} MiB/s",
                f"{r['seconds']:.2f} s",
            )
        )
        rows.append(
            (
                "peak RSS of the fetching process before the fetch",
                f"{r['before'] / MIB:,.1f} MiB",
                "",
            )
        )
        rows.append(
            (
                "peak RSS of the fetching process after the fetch",
                f"{r['after'] / MIB:,.1f} MiB",
                f"+{(r['after'] - r['before']) / MIB:,.1f} MiB for a {size / MIB:,.0f} MiB file",
            )
        )
        flat = (r["after"] - r["before"]) < 64 * MIB
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
