"""``invoke base``."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from mt5forge.engine import ensure_engine
from mt5forge.report.views import base_report
from mt5forge.stages import Options, run_stages, select
from mt5forge.tasks._common import (
    FORMAT_HELP,
    check_format,
    err_console,
    show,
    task_context,
)
from mt5forge.tasks._progress import RichProgress


@task(
    help={
        "source": "debootstrap (build from Debian's archive) or registry (pull by digest).",
        "refresh": "Rebuild even when an image from the same inputs exists (security updates).",
        "format": FORMAT_HELP,
        "verbose": "Show debug logs and tracebacks.",
    }
)
def base(
    c: Context,
    source: str | None = None,
    refresh: bool = False,
    format: str = "table",
    verbose: bool = False,
) -> None:
    """Produce the pinned Debian trixie base image; same inputs reuse the existing image."""
    with task_context(verbose, overrides={"base": {"source": source}}) as settings:
        fmt = check_format(format)
        ensure_engine(settings)
        with RichProgress(err_console) as progress:
            results = run_stages(
                settings, select(["base"]), options=Options(refresh_base=refresh), progress=progress
            )
        show(base_report(results["base"]), fmt)
