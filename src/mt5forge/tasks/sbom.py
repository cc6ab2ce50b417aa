"""``invoke sbom``: the stages up to ``sbom``; one validated CycloneDX 1.6 JSON per image."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from mt5forge.engine import ensure_engine
from mt5forge.report.views import sbom_report
from mt5forge.stages import Options
from mt5forge.tasks._common import FORMAT_HELP, check_format, names, run_until, task_context


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
    """Write one validated CycloneDX 1.6 SBOM per image to sbom/ (builds first, from cache).

    Trivy's packages plus every pinned artifact (sha256, upstream URL, how verified, origin)
    and the Windows wheels; cross-checked with the pinned requirement files."""
    with task_context(verbose) as settings:
        fmt = check_format(format)
        ensure_engine(settings)
        options = Options(images=names(image), variants=names(variant), offline=offline)
        run_until(settings, "sbom", options, fixture=fixture, view=sbom_report, fmt=fmt)
