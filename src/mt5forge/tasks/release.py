"""``invoke release`` and ``invoke rebuild``: the pipeline with publishing at the end."""

from __future__ import annotations

import contextlib

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from mt5forge.engine import ensure_engine
from mt5forge.errors import VerificationError
from mt5forge.release import run_rebuild, run_release
from mt5forge.report.publish import release_report
from mt5forge.report.views import summary_report
from mt5forge.stages import Options
from mt5forge.tasks._common import (
    FORMAT_HELP,
    check_format,
    console,
    enter_fixture,
    err_console,
    names,
    show,
    task_context,
)
from mt5forge.tasks._progress import RichProgress

_HELP = {
    "image": "Only these images (comma-separated: terminal, bot, terminal-sim).",
    "variant": "Only these variants (comma-separated: slim, secure).",
    "registry": "host:port to push to (default: [registry] address).",
    "fixture": "Use the fixture profile (stand-in artifacts; pushes only to 127.0.0.1).",
    "format": FORMAT_HELP,
    "verbose": "Show debug logs and tracebacks.",
}


@task(help=_HELP)
def release(
    c: Context,
    image: str | None = None,
    variant: str | None = None,
    registry: str | None = None,
    fixture: bool = False,
    format: str = "table",
    verbose: bool = False,
) -> None:
    """Fetch, build, sbom, scan, verify, push, sign in one command; a table per image.

    The table: id, digest, tags, gates, signatures. Nothing is pushed if any gate fails;
    non-zero if anything failed."""
    with task_context(verbose) as settings:
        fmt = check_format(format)
        ensure_engine(settings)
        options = Options(images=names(image), variants=names(variant))
        with contextlib.ExitStack() as stack:
            if fixture:
                settings = enter_fixture(stack, settings)
            with RichProgress(err_console) as progress:
                out = run_release(settings, options, registry=registry, progress=progress)
        show(release_report(out.pushed, out.signed, out.gates, out.checks), fmt)
        if not out.passed:
            raise VerificationError("A signature check failed after the push (see above).")


@task(help=_HELP)
def rebuild(
    c: Context,
    image: str | None = None,
    variant: str | None = None,
    registry: str | None = None,
    fixture: bool = False,
    format: str = "table",
    verbose: bool = False,
) -> None:
    """Scheduled rebuild: publish only when a package changed or a fixable CVE closed.

    A build ID from the inputs (lock, manifests, build/, base digest, apt snapshot); the same
    ID as the last release builds nothing ("no change"). Otherwise build fresh with apt
    upgrade, diff the packages against the last release, push and sign only on a change."""
    with task_context(verbose) as settings:
        fmt = check_format(format)
        ensure_engine(settings)
        options = Options(images=names(image), variants=names(variant))
        with contextlib.ExitStack() as stack:
            if fixture:
                settings = enter_fixture(stack, settings)
            with RichProgress(err_console) as progress:
                out = run_rebuild(settings, options, registry=registry, progress=progress)
        d = out.decision
        console.print(
            f"Build ID {d.build_id[:16]} (last release {d.previous[:16] or 'none'}), decided "
            f"in {d.seconds:.1f} s."
        )
        for name, diff in out.diffs.items():
            console.print(f"{name}: " + ("no package changed" if diff.empty else "packages:"))
            for line in diff.lines():
                console.print(f"  {line}")
            for closed in out.closed.get(name, ()):
                console.print(f"  closed: {closed}")
        if out.published is None:
            console.print("no change")
            return
        p = out.published
        show(release_report(p.pushed, p.signed, p.gates, p.checks), fmt)
        if not p.passed:
            raise Exit("A signature check failed after the push (see above).", code=1)
        show(summary_report("Rebuild", [("verdict", out.verdict)]), fmt)
