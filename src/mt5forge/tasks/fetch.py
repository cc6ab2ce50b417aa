"""``invoke fetch`` and ``invoke pin``."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from mt5forge.fetch import Artifact, fetch_all, pin_all
from mt5forge.fixtures import fixture_session
from mt5forge.tasks._common import console, task_context


class RichProgress:
    """Draws one download bar per artifact (size, speed, time left) for the core's callbacks."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def start(self, name: str, total: int | None, completed: int) -> None:
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=total, completed=completed)
        else:
            self.progress.reset(self.tasks[name], total=total, completed=completed)

    def advance(self, name: str, n: int) -> None:
        self.progress.advance(self.tasks[name], n)

    def finish(self, name: str, status: str) -> None:
        if name in self.tasks:
            self.progress.update(self.tasks[name], description=f"{name} ({status})")


def _bars() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def summary(artifacts: Sequence[Artifact], title: str) -> Table:
    table = Table(title=title)
    for col in ("artifact", "version", "size", "sha256", "verified by", "profile", "cache"):
        table.add_column(col, no_wrap=col in ("artifact", "sha256"))
    for a in artifacts:
        table.add_row(
            a.name,
            a.version,
            f"{a.size / 1e6:.2f} MB" if a.size >= 100_000 else f"{a.size / 1e3:.1f} kB",
            a.sha256[:12],
            Text(a.verified_by),  # plain text: "[fixture]" is not rich markup
            a.profile,
            "hit" if a.cache_hit else "downloaded",
        )
    return table


def _names(name: str | None) -> list[str] | None:
    return [n.strip() for n in name.split(",") if n.strip()] if name else None


@task(
    help={
        "offline": "Use the cache only; fail naming every artifact that is not in it.",
        "mirror": "Base URL serving every artifact by its upstream file name (also "
        "MT5FORGE_MIRROR / [fetch] mirror).",
        "name": "Only these artifacts (comma-separated names from manifests/).",
        "fixture": "Use the fixture profile: stand-ins made on this machine, served on "
        "127.0.0.1, fetched through the mirror override (no upstream needed).",
        "verbose": "Show debug logs and tracebacks.",
    }
)
def fetch(
    c: Context,
    offline: bool = False,
    mirror: str | None = None,
    name: str | None = None,
    fixture: bool = False,
    verbose: bool = False,
) -> None:
    """Download and verify every pinned artifact into the content-addressed cache."""
    with task_context(verbose, overrides={"fetch": {"mirror": mirror}}) as settings:
        with contextlib.ExitStack() as stack:
            if fixture:
                with console.status("Making the fixture profile (wixl, mingw, gpg)..."):
                    _, settings = stack.enter_context(fixture_session(settings))
            bars = stack.enter_context(_bars())
            artifacts = fetch_all(
                settings, offline=offline, names=_names(name), progress=RichProgress(bars)
            )
        profile = artifacts[0].profile if artifacts else settings.fetch.profile
        # Logs and CI are not terminals: give the table room instead of folding every cell
        # ("how verified" cut to "sha256…"). Console.print(width=) cannot widen past the
        # console's own width (it takes the min), so print through a wider console.
        out = console
        if not console.is_terminal:
            out = Console(file=console.file, highlight=False, width=max(console.width, 200))
        out.print(summary(artifacts, f"Artifacts ({profile} profile)"))
        hits = sum(a.cache_hit for a in artifacts)
        console.print(
            f"{len(artifacts)} artifact(s) verified, {hits} from the cache, into "
            f"{settings.cache_dir}."
        )


@task(
    help={
        "check": "Do not write; exit non-zero when upstream moved from the lock.",
        "mirror": "Base URL serving every artifact by its upstream file name.",
        "name": "Only these artifacts (comma-separated).",
        "verbose": "Show debug logs and tracebacks.",
    }
)
def pin(
    c: Context,
    check: bool = False,
    mirror: str | None = None,
    name: str | None = None,
    verbose: bool = False,
) -> None:
    """Observe upstream, verify signatures, and write the lock (checksums/); shows the diff."""
    with (
        task_context(verbose, overrides={"fetch": {"mirror": mirror}}) as settings,
        _bars() as bars,
    ):
        result = pin_all(settings, check=check, names=_names(name), progress=RichProgress(bars))
    if result.diff:
        console.print(
            Syntax(
                result.diff, "diff", theme="ansi_dark", background_color="default", word_wrap=True
            )
        )
    for ch in result.changes:
        was = ch.old[:12] + "..." if ch.old else "(not pinned)"
        console.print(f"{ch.name}: {was} -> {ch.new[:12]}...: {ch.reason}")
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
