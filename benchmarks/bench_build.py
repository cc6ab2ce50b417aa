"""Benchmark (not a test): cold and warm build time per image, and the slim terminal's size
against a naive single-stage build of the same terminal.

Run: ``.venv/bin/python benchmarks/bench_build.py`` (the build CA bundle defaults to the host's).

1. Fetches the fixture profile's artifacts (stand-ins with the upstream file names).
2. Cold: ``build_all(no_cache=True)``: every step of every image runs (apt downloads included).
3. Warm: ``build_all()`` twice right after; the second is reported. The first build after a
   ``no_cache`` one is not a clean warm figure: the legacy builder may match a cached step of an
   older build whose next step differs and re-run from there (seen here), so it only settles.
4. Naive: one stage, ``FROM`` the same base: Debian's Wine with its recommends (64-bit, like
   the slim image: this mirror's i386 indexes fail to download, so wine32 is left out, which
   flatters the naive image), Xvfb, the prefix made by wineboot, the same MSIs, CPython
   installer and mt5setup.exe; no stripping, no cleanup beyond apt's lists.
Prints one table and writes the numbers to ``<run_dir>/bench/build.json``. The images are kept
(tagged under the configured prefix); the naive one is ``<prefix>/bench:naive-terminal``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mt5forge import config
from mt5forge.engine import ensure_engine
from mt5forge.fixtures import fixture_session
from mt5forge.images import terminal_artifacts
from mt5forge.stages import Options, run_stages, select
from mt5forge.stages.build import build_all
from mt5forge.tools import docker as dockertool

NAIVE_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN apt-get update && apt-get -y upgrade && \\
    DEBIAN_FRONTEND=noninteractive apt-get install -y wine wine64 xvfb xauth && \\
    rm -rf /var/lib/apt/lists/*
RUN useradd -m -u 1000 mt5
COPY artifacts/ /installers/
USER mt5
ENV WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
RUN xvfb-run -a sh -c 'wineboot --init && wineserver -w' && \\
    for m in /installers/*.msi; do xvfb-run -a sh -c "wine msiexec /i $m /qn; wineserver -w"; \\
    done && \\
    xvfb-run -a sh -c 'wine /installers/python-*.exe /quiet; wineserver -w' && \\
    xvfb-run -a sh -c 'wine /installers/mt5setup.exe /auto; wineserver -w'
CMD ["bash"]
"""


def naive_terminal(settings: Any, artifacts: list[Any], base: str) -> tuple[float, int, str]:
    ctx = settings.run_dir / "bench" / "naive-context"
    if ctx.exists():
        shutil.rmtree(ctx)
    (ctx / "artifacts").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(NAIVE_DOCKERFILE, encoding="utf-8")
    for a in terminal_artifacts(artifacts).values():
        shutil.copy2(a.path, ctx / "artifacts" / a.filename)
    client = dockertool.connect(timeout=3600)
    ref = f"{settings.images.prefix}/bench:naive-terminal"
    started = time.monotonic()
    for event in client.api.build(
        path=str(ctx), tag=ref, buildargs={"BASE": base}, rm=True, forcerm=True,
        nocache=True, decode=True,
    ):  # fmt: skip
        if "error" in event:
            raise SystemExit(f"naive build failed: {event['error']}")
    seconds = time.monotonic() - started
    image = client.images.get(ref)
    return seconds, int(image.attrs["Size"]), image.id


def main() -> int:
    console = Console()
    settings = config.load(Path(__file__).resolve().parents[1])
    if not settings.build.ca_bundle:
        console.print(
            "note: no [build] ca_bundle; pip in the build needs one behind TLS interception"
        )
    ensure_engine(settings)
    with fixture_session(settings) as (_, fx):
        inputs = run_stages(fx, select(["base", "fetch"]), options=Options())
        base, artifacts = inputs["base"], list(inputs["fetch"].artifacts)
        console.print("cold build (no cache) of every image...")
        t0 = time.monotonic()
        cold = build_all(fx, base=base, artifacts=artifacts, no_cache=True)
        cold_total = time.monotonic() - t0
        console.print("settling build (cache lookups after a no-cache build)...")
        build_all(fx, base=base, artifacts=artifacts)
        console.print("warm build (unchanged inputs)...")
        t0 = time.monotonic()
        warm = build_all(fx, base=base, artifacts=artifacts)
        warm_total = time.monotonic() - t0
        console.print("naive single-stage terminal (no cache)...")
        naive_s, naive_size, naive_id = naive_terminal(fx, artifacts, base.reference)

    table = Table(title="Build benchmark (fixture profile; 2-core machine)")
    for col in ("image", "variant", "cold s", "warm s", "warm cache hits", "size", "layers"):
        table.add_column(col, justify="left" if col in ("image", "variant") else "right")
    rows = []
    for c, w in zip(cold, warm, strict=True):
        rows.append({
            "image": c.target.image, "variant": c.target.variant,
            "cold_seconds": round(c.seconds, 1), "warm_seconds": round(w.seconds, 1),
            "warm_cached": f"{w.cached}/{w.steps}", "size": w.size, "layers": w.layers,
            "image_id": w.image_id,
        })  # fmt: skip
        table.add_row(
            c.target.image, c.target.variant, f"{c.seconds:.1f}", f"{w.seconds:.1f}",
            f"{w.cached}/{w.steps}", f"{w.size / 1e6:.0f} MB", str(w.layers),
        )  # fmt: skip
    table.add_row("all", "", f"{cold_total:.1f}", f"{warm_total:.1f}", "", "", "")
    table.add_row("naive terminal", "single stage", f"{naive_s:.1f}", "", "",
                  f"{naive_size / 1e6:.0f} MB", "")  # fmt: skip
    console.print(table)
    slim = next(w for w in warm if (w.target.image, w.target.variant) == ("terminal", "slim"))
    ratio = slim.size / naive_size
    verdict = "meets" if ratio < 0.5 and slim.size < 1.5e9 else "MISSES"
    console.print(
        f"slim terminal {slim.size / 1e6:.0f} MB vs naive {naive_size / 1e6:.0f} MB: "
        f"{ratio:.0%} of naive ({verdict} the target: under half, and under 1.5 GB)"
    )
    out = settings.run_dir / "bench" / "build.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "profile": "fixture",
                "images": rows,
                "cold_total_seconds": round(cold_total, 1),
                "warm_total_seconds": round(warm_total, 1),
                "naive_terminal": {
                    "seconds": round(naive_s, 1),
                    "size": naive_size,
                    "image_id": naive_id,
                },
                "slim_vs_naive": round(ratio, 3),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    console.print(f"numbers in {out}")
    return 0 if verdict == "meets" else 1


if __name__ == "__main__":
    sys.exit(main())
