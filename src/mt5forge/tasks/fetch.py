"""``invoke fetch`` and ``invoke pin``."""

from __future__ import annotations

import contextlib

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task
from rich.syntax import Syntax

from mt5forge.fetch import FetchIncomplete, pin_all
from mt5forge.report.views import artifacts_report
from mt5forge.stages import Options, run_stages, select
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


@task(
    help={
        "offline": "Use the cache only; fail naming every artifact that is not in it.",
        "mirror": "Base URL serving every artifact by its upstream file name (also "
        "MT5FORGE_MIRROR / [fetch] mirror).",
        "name": "Only these artifacts (comma-separated names from manifests/).",
        "fixture": "Use the fixture profile: stand-ins made on this machine, served on "
        "127.0.0.1, fetched through the mirror override (no upstream needed).",
        "format": FORMAT_HELP,
        "verbose": "Show debug logs and tracebacks.",
    }
)
def fetch(
    c: Context,
    offline: bool = False,
    mirror: str | None = None,
    name: str | None = None,
    fixture: bool = False,
    format: str = "table",
    verbose: bool = False,
) -> None:
    """Download and verify every pinned artifact into the content-addressed cache."""
    with task_context(verbose, overrides={"fetch": {"mirror": mirror}}) as settings:
        fmt = check_format(format)
        with contextlib.ExitStack() as stack:
            if fixture:
                settings = enter_fixture(stack, settings)
            progress = stack.enter_context(RichProgress(err_console))
            failed: FetchIncomplete | None = None
            try:
                results = run_stages(
                    settings,
                    select(["fetch"]),
                    options=Options(offline=offline, artifacts=names(name)),
                    progress=progress,
                )
            except FetchIncomplete as e:
                failed = e
        if failed is not None:
            # The good ones stay in the cache; the table names each failure, then the error
            # (and its exit code) ends the task.
            show(
                artifacts_report(
                    failed.artifacts,
                    f"Artifacts ({settings.fetch.profile} profile)",
                    cache_dir=str(settings.cache_dir),
                    failures=failed.failures,
                ),
                fmt,
            )
            raise failed
        fetched = results["fetch"]
        show(
            artifacts_report(
                fetched.artifacts,
                f"Artifacts ({fetched.profile} profile)",
                cache_dir=str(settings.cache_dir),
            ),
            fmt,
        )


@task(
    help={
        "check": "Do not write; exit non-zero when upstream moved from the lock.",
        "mirror": "Base URL serving every artifact by its upstream file name.",
        "name": "Only these artifacts (comma-separated).",
        "allow-downgrade": "Accept a manifest version older than the lock's (a rollback); the "
        "lock's note and the diff say DOWNGRADE.",
        "verbose": "Show debug logs and tracebacks.",
    }
)
def pin(
    c: Context,
    check: bool = False,
    mirror: str | None = None,
    name: str | None = None,
    allow_downgrade: bool = False,
    verbose: bool = False,
) -> None:
    """Observe upstream, verify signatures, and write the lock (checksums/); shows the diff."""
    with (
        task_context(verbose, overrides={"fetch": {"mirror": mirror}}) as settings,
        RichProgress(err_console) as progress,
    ):
        selected = names(name)
        result = pin_all(
            settings,
            check=check,
            names=list(selected) if selected else None,
            progress=progress,
            allow_downgrade=allow_downgrade,
        )
    if result.diff:
        console.print(
            Syntax(
                result.diff, "diff", theme="ansi_dark", background_color="default", word_wrap=True
            )
        )
    for ch in result.changes:
        was = ch.old[:12] + "..." if ch.old else "(not pinned)"
        down = f" DOWNGRADE {ch.downgrade} (--allow-downgrade)." if ch.downgrade else ""
        console.print(f"{ch.name}: {was} -> {ch.new[:12]}...: {ch.reason}{down}")
    if check:
        if result.changes:
            raise Exit(
                f"error: upstream moved for {len(result.changes)} artifact(s) "
                f"({', '.join(ch.name for ch in result.changes)}); run `invoke pin` and review.",
                code=1,
            )
        console.print(f"The lock {result.lock_file} matches upstream ({result.profile} profile).")
    elif result.written:
        console.print(f"Wrote {result.lock_file}; review the diff above and commit it.")
    else:
        console.print(f"The lock {result.lock_file} is up to date ({result.profile} profile).")
