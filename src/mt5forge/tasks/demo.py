"""``invoke demo``: the main job, end to end, on the offline demo profile."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task
from rich.table import Table

from mt5forge.base import ensure_base
from mt5forge.engine import ensure_engine
from mt5forge.pairing import run_pair
from mt5forge.tasks._common import console, task_context
from mt5forge.tasks.base import report
from mt5forge.tasks.build import build_and_report

STEPS = 4


@task(help={"verbose": "Show debug logs and tracebacks."})
def demo(c: Context, verbose: bool = False) -> None:
    """Run the pipeline end to end on the offline demo profile (no accounts, no upstream)."""
    with task_context(verbose) as settings:
        console.rule(f"1/{STEPS} engine")
        status = ensure_engine(settings)
        console.print(f"Docker Engine {status.version} at {status.host}.")

        console.rule(f"2/{STEPS} base")
        with console.status("Making the base image...") as spinner:
            image = ensure_base(settings, progress=lambda m: spinner.update(m))
        report(image)

        console.rule(f"3/{STEPS} fetch + build (fixture profile)")
        results = build_and_report(settings, fixture=True)

        console.rule(f"4/{STEPS} pair a bot with its terminal")
        with console.status("Starting terminal-sim and a secure bot in its network namespace..."):
            pair = run_pair(settings)
        for line in pair.reports:
            console.print(f"  {line.split(' INFO ', 1)[-1]}")

    console.rule("done")
    table = Table(title="Demo profile: what ran")
    table.add_column("stage")
    table.add_column("result")
    table.add_row("engine", f"Docker Engine {status.version}")
    table.add_row("base", f"{image.reference} from {image.source} ({image.image_id[:19]})")
    table.add_row(
        "fetch",
        "fixture artifacts (stand-ins made here, served on 127.0.0.1), verified through the "
        "mirror override; not upstream files",
    )
    table.add_row("build", f"{len(results)} image(s): " + ", ".join(str(r.target) for r in results))
    table.add_row(
        "pair",
        f"{pair.bot_image} in the namespace of {pair.terminal_image} ({pair.backend} backend): "
        f"logged in, {len(pair.reports)} account+tick reports, no secret in its log",
    )
    console.print(table)
