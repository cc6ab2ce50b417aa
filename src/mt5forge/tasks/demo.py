"""``invoke demo``: the main job, end to end, on the offline demo profile."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from mt5forge.base import ensure_base
from mt5forge.engine import ensure_engine
from mt5forge.tasks._common import console, task_context
from mt5forge.tasks.base import report


@task(help={"verbose": "Show debug logs and tracebacks."})
def demo(c: Context, verbose: bool = False) -> None:
    """Run the pipeline end to end on the offline demo profile (no accounts, no upstream)."""
    with task_context(verbose) as settings:
        console.rule("1/2 engine")
        status = ensure_engine(settings)
        console.print(f"Docker Engine {status.version} at {status.host}.")
        console.rule("2/2 base")
        with console.status("Making the base image...") as spinner:
            image = ensure_base(settings, progress=lambda m: spinner.update(m))
        report(image)
    console.rule("done")
    console.print("Demo profile: engine and base image ready. Later stages join as they land.")
