"""``invoke scan``: the stages up to ``scan``; Trivy's findings judged by scan-policy.toml."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from mt5forge.engine import ensure_engine
from mt5forge.report.views import scan_report
from mt5forge.stages import Options
from mt5forge.tasks._common import FORMAT_HELP, check_format, names, run_until, task_context


@task(
    help={
        "image": "Only these images (comma-separated: terminal, bot, terminal-sim).",
        "variant": "Only these variants (comma-separated: slim, secure).",
        "db": "A directory holding Trivy's database (db/trivy.db, db/metadata.json) to scan "
        "with offline (default: [scan] db_dir, else Trivy's cache).",
        "policy": "The scan policy file (default: [scan] policy, scan-policy.toml).",
        "fixture": "Use the fixture profile (stand-in artifacts; without --db, a fixture "
        "database with no advisories, labelled as such).",
        "offline": "Take the terminal's artifacts from the cache only.",
        "format": FORMAT_HELP,
        "verbose": "Show debug logs and tracebacks.",
    }
)
def scan(
    c: Context,
    image: str | None = None,
    variant: str | None = None,
    db: str | None = None,
    policy: str | None = None,
    fixture: bool = False,
    offline: bool = False,
    format: str = "table",
    verbose: bool = False,
) -> None:
    """Scan each image with Trivy and judge the findings by scan-policy.toml.

    Vulnerabilities, secrets and misconfiguration; severity bar, ignores with reasons and
    expiry, secrets always fail, database age checked. Writes Trivy JSON, SARIF, OpenVEX and a
    scan record per image."""
    overrides = {"scan": {"db_dir": db, "policy": policy}}
    with task_context(verbose, overrides=overrides) as settings:
        fmt = check_format(format)
        ensure_engine(settings)
        options = Options(images=names(image), variants=names(variant), offline=offline)
        run_until(settings, "scan", options, fixture=fixture, view=scan_report, fmt=fmt)
