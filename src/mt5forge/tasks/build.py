"""``invoke build``: the stages up to ``build`` (base, fetch, build), a report at the end."""

from __future__ import annotations

import contextlib

from invoke.context import Context
from invoke.tasks import task

from mt5forge.engine import ensure_engine
from mt5forge.report.views import build_report
from mt5forge.stages import Options, run_stages, select
from mt5forge.tasks._common import (
    FORMAT_HELP,
    check_format,
    enter_fixture,
    err_console,
    names,
    show,
    task_context,
)
from mt5forge.tasks._progress import RichProgress


@task(
    help={
        "image": "Only these images (comma-separated: terminal, bot, terminal-sim).",
        "variant": "Only these variants (comma-separated: slim, secure).",
        "fixture": "Build from the fixture profile's artifacts (stand-ins made on this machine).",
        "offline": "Take the terminal's artifacts from the cache only.",
        "refresh": "Re-run apt-get upgrade in every image (pick up Debian security updates).",
        "no_cache": "Ignore the engine's build cache.",
        "format": FORMAT_HELP,
        "verbose": "Show debug logs and tracebacks.",
    }
)
def build(
    c: Context,
    image: str | None = None,
    variant: str | None = None,
    fixture: bool = False,
    offline: bool = False,
    refresh: bool = False,
    no_cache: bool = False,
    format: str = "table",
    verbose: bool = False,
) -> None:
    """Build the images x variants from build/; a table and a JSON build record per image."""
    with task_context(verbose) as settings:
        fmt = check_format(format)
        ensure_engine(settings)
        options = Options(
            images=names(image),
            variants=names(variant),
            offline=offline,
            refresh=refresh,
            no_cache=no_cache,
        )
        with contextlib.ExitStack() as stack:
            if fixture:
                settings = enter_fixture(stack, settings)
            progress = stack.enter_context(RichProgress(err_console))
            results = run_stages(
                settings, select(until="build"), options=options, progress=progress
            )
        show(build_report(results["build"], str(settings.run_dir / "records")), fmt)
