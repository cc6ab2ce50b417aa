"""``invoke sbom``: the stages up to ``sbom``; one validated CycloneDX 1.6 JSON per image."""

from __future__ import annotations

import contextlib
from typing import cast

from invoke.context import Context
from invoke.tasks import task

from mt5forge.engine import ensure_engine
from mt5forge.errors import SbomError
from mt5forge.report.views import sbom_report
from mt5forge.stages import Options, run_stages, select
from mt5forge.stages.sbom import SbomResult
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
        "fixture": "Use the fixture profile's artifacts (stand-ins made on this machine).",
        "offline": "Take the terminal's artifacts from the cache only.",
        "format": FORMAT_HELP,
        "verbose": "Show debug logs and tracebacks.",
    }
)
def sbom(
    c: Context,
    image: str | None = None,
    variant: str | None = None,
    fixture: bool = False,
    offline: bool = False,
    format: str = "table",
    verbose: bool = False,
) -> None:
    """Write sbom/<image>-<variant>.cdx.json: Trivy's packages plus every pinned artifact
    (sha256, upstream URL, how verified, origin) and the Windows wheels; validated strictly,
    cross-checked with the pinned requirement files. Builds first (from the cache)."""
    with task_context(verbose) as settings:
        fmt = check_format(format)
        ensure_engine(settings)
        options = Options(images=names(image), variants=names(variant), offline=offline)
        with contextlib.ExitStack() as stack:
            if fixture:
                settings = enter_fixture(stack, settings)
            progress = stack.enter_context(RichProgress(err_console))
            try:
                results = run_stages(
                    settings, select(until="sbom"), options=options, progress=progress
                )
            except SbomError as e:
                if e.results is not None:
                    show(sbom_report(cast(tuple[SbomResult, ...], e.results)), fmt)
                raise
        show(sbom_report(results["sbom"]), fmt)
