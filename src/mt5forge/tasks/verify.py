"""``invoke verify``: the local images checked from outside; a table, records and JUnit XML."""

from __future__ import annotations

import contextlib

from invoke.context import Context
from invoke.tasks import task

from mt5forge.engine import ensure_engine
from mt5forge.errors import VerificationError
from mt5forge.report.verify import verify_report
from mt5forge.stages.verify import requests_for, verify_all
from mt5forge.tasks._common import FORMAT_HELP, check_format, err_console, names, show, task_context
from mt5forge.tasks._progress import RichProgress


@task(
    help={
        "image": "Only these images (comma-separated: terminal, bot, terminal-sim).",
        "variant": "Only these variants (comma-separated: slim, secure).",
        "ref": "Verify this local image (built by anyone) against the expectations of the one "
        "--image and --variant given.",
        "check": "Only these checks (comma-separated, e.g. secrets.layers,ports.listeners).",
        "format": FORMAT_HELP,
        "verbose": "Show debug logs and tracebacks.",
    }
)
def verify(
    c: Context,
    image: str | None = None,
    variant: str | None = None,
    ref: str | None = None,
    check: str | None = None,
    format: str = "table",
    verbose: bool = False,
) -> None:
    """Check each image from outside against build/expectations.toml: user, setuid files,
    secrets in every layer and a run-time canary, ports and listeners, who reaches the bridge,
    health and hardening, a bot paired with its terminal. Writes a verify record per image id
    and JUnit XML; exits non-zero when a check fails."""
    with task_context(verbose) as settings:
        fmt = check_format(format)
        ensure_engine(settings)
        requests = requests_for(settings, names(image), names(variant), ref)
        with contextlib.ExitStack() as stack:
            progress = stack.enter_context(RichProgress(err_console))
            result = verify_all(settings, requests, only=names(check), progress=progress,
                                fail=False)  # fmt: skip
        show(verify_report(result), fmt)
        if not result.passed:
            failed = sum(len(v.failed) for v in result.verdicts)
            raise VerificationError(f"{failed} verify check(s) failed (see the report above).")
