"""Benchmark (not a test): sbom and scan seconds per image, cold and with a warm Trivy cache.

Run: ``.venv/bin/python benchmarks/bench_scan.py [--runs N]``.

1. The stages up to ``build`` on the fixture profile (all from the build cache when built before).
2. Cold: a fresh, empty Trivy cache directory (``[scan] cache_dir``) holding only a fixture
   vulnerability database: Trivy reads every layer of the image. ``sbom`` then ``scan``.
3. Warm: the same again with the cache just filled (Trivy skips layers it has analysed).

Each figure is the median of ``--runs`` runs (min and max beside it). The database is a fixture
(made-up advisories, mt5forge.fixtures.trivydb): the timings are Trivy's work on the real
images, not a statement about real advisories. Prints one table and writes
``<run_dir>/bench/scan.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mt5forge import config
from mt5forge.engine import ensure_engine
from mt5forge.fixtures import fixture_session
from mt5forge.fixtures.trivydb import Advisory, write_db
from mt5forge.stages import run_stages, select
from mt5forge.stages.sbom import sbom_all
from mt5forge.stages.scan import scan_all

ADVISORY = Advisory(id="CVE-2099-0001", source_package="zlib", fixed_version="0", severity="LOW")
"""Made up, LOW (below the policy's bar): the vulnerability scan has something to match."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    settings = config.load(Path(__file__).resolve().parents[1])
    ensure_engine(settings)
    console = Console()
    rows: list[dict[str, Any]] = []
    with fixture_session(settings) as (_, fs):
        results = run_stages(fs, select(until="build"))
        bench = fs.run_dir / "bench" / "scan"
        for b in results["build"]:
            figures: dict[str, list[float]] = {
                k: [] for k in ("sbom cold", "scan cold", "sbom warm", "scan warm")
            }
            for _ in range(args.runs):
                cache = bench / "trivy-cache"
                shutil.rmtree(cache, ignore_errors=True)
                write_db(cache, [ADVISORY])
                s = dataclasses.replace(
                    fs,
                    scan=dataclasses.replace(fs.scan, cache_dir=str(cache), db_dir=""),
                    sbom=dataclasses.replace(fs.sbom, dir=str(bench / "sbom")),
                )
                for phase in ("cold", "warm"):
                    start = time.monotonic()
                    sboms = sbom_all(s, built=[b], artifacts=results["fetch"].artifacts)
                    figures[f"sbom {phase}"].append(time.monotonic() - start)
                    start = time.monotonic()
                    scan_all(s, built=[b], sboms=sboms)
                    figures[f"scan {phase}"].append(time.monotonic() - start)
            row: dict[str, Any] = {"image": str(b.target), "size_mb": round(b.size / 1e6)}
            for k, v in figures.items():
                row[k] = {"min": min(v), "median": statistics.median(v), "max": max(v)}
            rows.append(row)
            console.print(f"{b.target}: done")
    table = Table(title=f"sbom and scan seconds per image (median of {args.runs}; min-max)")
    for col in ("image", "size", "sbom cold", "sbom warm", "scan cold", "scan warm"):
        table.add_column(col, justify="left" if col == "image" else "right")
    for r in rows:

        def cell(key: str, r: dict[str, Any] = r) -> str:
            f = r[key]
            return f"{f['median']:.1f} ({f['min']:.1f}-{f['max']:.1f})"

        table.add_row(r["image"], f"{r['size_mb']} MB", cell("sbom cold"), cell("sbom warm"),
                      cell("scan cold"), cell("scan warm"))  # fmt: skip
    console.print(table)
    out = settings.run_dir / "bench" / "scan.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    console.print(f"Numbers: {out}")


if __name__ == "__main__":
    main()
