"""``invoke build``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

from invoke.context import Context
from invoke.tasks import task
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from mt5forge.build import BuildResult, StepEvent, Target, build_all, targets
from mt5forge.config import Settings
from mt5forge.engine import ensure_engine
from mt5forge.fetch import fetch_all
from mt5forge.fixtures import fixture_session
from mt5forge.tasks._common import console, task_context


class StepPrinter:
    """One bar per image x variant, and one line per step that ran (cached steps only count)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[Target, TaskID] = {}
        self.last = time.monotonic()

    def start(self, target: Target) -> None:
        self.tasks[target] = self.progress.add_task(str(target), total=None)
        self.last = time.monotonic()

    def step(self, event: StepEvent) -> None:
        now = time.monotonic()
        spent, self.last = now - self.last, now
        task_id = self.tasks[event.target]
        self.progress.update(
            task_id,
            total=event.total,
            completed=event.number,
            description=f"{event.target} {event.instruction[:60]}",
        )
        # Labels are one metadata step each (docker build --label); they are not worth a line.
        if event.cached is False and not event.instruction.startswith("LABEL "):
            self.progress.console.print(
                f"  {event.target} step {event.number}/{event.total} ran in {spent:.1f} s: "
                f"{event.instruction[:90]}"
            )


def _size(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n < 1e9 else f"{n / 1e9:.2f} GB"


def summary(results: Sequence[BuildResult]) -> Table:
    table = Table(title="Images built")
    for col in ("image", "variant", "digest", "size", "layers", "seconds", "cache hits"):
        table.add_column(col, justify="right" if col in ("size", "layers", "seconds") else "left")
    for r in results:
        hits = f"{r.cached}/{r.steps}" + (" (all)" if r.all_cached else "")
        table.add_row(
            r.target.image,
            r.target.variant,
            r.image_id[:19],
            _size(r.size),
            str(r.layers),
            f"{r.seconds:.1f}",
            hits,
        )
    return table


def _names(value: str | None) -> list[str] | None:
    return [n.strip() for n in value.split(",") if n.strip()] if value else None


@task(
    help={
        "image": "Only these images (comma-separated: terminal, bot, terminal-sim).",
        "variant": "Only these variants (comma-separated: slim, secure).",
        "fixture": "Build from the fixture profile's artifacts (stand-ins made on this machine).",
        "offline": "Take the terminal's artifacts from the cache only.",
        "refresh": "Re-run apt-get upgrade in every image (pick up Debian security updates).",
        "no_cache": "Ignore the engine's build cache.",
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
    verbose: bool = False,
) -> None:
    """Build the images x variants from build/; a table and a JSON build record per image."""
    with task_context(verbose) as settings:
        ensure_engine(settings)
        build_and_report(
            settings,
            images=_names(image),
            variants=_names(variant),
            fixture=fixture,
            offline=offline,
            refresh=refresh,
            no_cache=no_cache,
        )


def build_and_report(
    settings: Settings,
    *,
    images: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    fixture: bool = False,
    offline: bool = False,
    refresh: bool = False,
    no_cache: bool = False,
) -> list[BuildResult]:
    """Fetch the terminal's artifacts when it is built, build with progress, print the table."""
    with contextlib.ExitStack() as stack:
        plan = targets(settings, images, variants)
        artifacts = None
        if any(t.image == "terminal" for t in plan):
            if fixture:
                with console.status("Making the fixture profile (wixl, mingw, gpg)..."):
                    _, settings = stack.enter_context(fixture_session(settings))
            with console.status("Fetching and verifying the terminal's artifacts..."):
                artifacts = fetch_all(settings, offline=offline)
            console.print(
                f"{len(artifacts)} artifact(s) verified ({artifacts[0].profile} profile)."
                if artifacts
                else "No artifacts."
            )
        bars = stack.enter_context(
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,  # the table below says what each bar ended with
            )
        )
        printer = StepPrinter(bars)
        results = build_all(
            settings,
            images=images,
            variants=variants,
            refresh=refresh,
            no_cache=no_cache,
            artifacts=artifacts,
            progress=printer.step,
            on_start=printer.start,
        )
    # Logs and CI are not terminals (80 columns): widen so no cell folds.
    width = console.width
    if not console.is_terminal:
        console.width = max(width, 130)
    try:
        console.print(summary(results))
    finally:
        console.width = width
    rebuilt = [r for r in results if not r.all_cached]
    if not rebuilt:
        console.print(
            f"Nothing rebuilt: every step of all {len(results)} image(s) came from the cache."
        )
    else:
        console.print(f"Rebuilt steps in: {', '.join(str(r.target) for r in rebuilt)}.")
    console.print(f"Build records: {settings.run_dir / 'records'}/<image id>/build.json")
    return results
