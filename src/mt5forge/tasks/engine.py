"""``invoke engine``."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from mt5forge.engine import ensure_engine
from mt5forge.tasks._common import console, task_context
from mt5forge.tools.host import PIPELINE_PROGRAMS, ensure_programs


@task(help={"verbose": "Show debug logs and tracebacks."})
def engine(c: Context, verbose: bool = False) -> None:
    """Make sure a Docker Engine answers (on Debian as root: install and start one)."""
    with task_context(verbose) as settings:
        status = ensure_engine(settings)
    if status.started:
        installed = f", installed {', '.join(status.installed)}" if status.installed else ""
        console.print(
            f"Started Docker Engine {status.version} at {status.host}{installed}; "
            f"its log is {status.log_file}."
        )
    else:
        console.print(f"Docker Engine {status.version} answers at {status.host}.")


@task(help={"verbose": "Show debug logs and tracebacks."})
def tools(c: Context, verbose: bool = False) -> None:
    """Make sure the host programs the pipeline uses are installed (Debian as root: install)."""
    with task_context(verbose):
        installed = ensure_programs(PIPELINE_PROGRAMS)
    if installed:
        console.print(f"Installed {', '.join(installed)}.")
    console.print(f"Host programs present: {', '.join(PIPELINE_PROGRAMS)}.")
