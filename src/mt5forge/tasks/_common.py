"""What every task shares: settings, logging, the console, and turning our errors into exits."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from invoke.exceptions import Exit
from rich.console import Console
from rich.logging import RichHandler

from mt5forge import config
from mt5forge.config import Settings
from mt5forge.errors import GateError, Mt5ForgeError
from mt5forge.fixtures import fixture_session
from mt5forge.report import FORMATS, Report, check_format, render
from mt5forge.stages import Options, run_stages, select
from mt5forge.tasks._progress import RichProgress

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def project_root() -> Path:
    """The directory holding mt5forge.toml: the current one, or the nearest parent with it."""
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / config.CONFIG_FILE).is_file():
            return d
    return here


def setup_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger("mt5forge")
    root.handlers[:] = [RichHandler(console=err_console, show_path=verbose, show_time=verbose)]
    root.setLevel(level)
    root.propagate = False


@contextlib.contextmanager
def task_context(
    verbose: bool = False, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> Iterator[Settings]:
    """Load settings and turn expected failures into one paragraph and a non-zero exit.

    With ``-v`` the traceback is shown too; without it, never for our own errors.
    """
    setup_logging(verbose or bool(os.environ.get("MT5FORGE_VERBOSE")))
    try:
        yield config.load(project_root(), overrides=overrides)
    except Mt5ForgeError as e:
        if verbose:
            err_console.print_exception()
        raise Exit(f"error: {e}", code=e.exit_code) from None
    except KeyboardInterrupt:
        raise Exit("interrupted", code=130) from None


FORMAT_HELP = "Output format of the report: " + " or ".join(FORMATS) + " (default table)."


def show(report: Report, fmt: str = "table") -> None:
    """Print ``report`` in ``fmt``: the only place a task prints a report.

    Logs and CI are not terminals (80 columns): tables get room there instead of folding
    every cell.
    """
    width = console.width if console.is_terminal else max(console.width, 220)
    console.file.write(render(report, fmt, width=width))
    console.file.flush()


def names(value: str | None) -> tuple[str, ...] | None:
    """A comma-separated option as a tuple (None when not given)."""
    return tuple(n.strip() for n in value.split(",") if n.strip()) if value else None


def enter_fixture(stack: contextlib.ExitStack, settings: Settings) -> Settings:
    """Make (or reuse) the fixture profile, serve it on 127.0.0.1 for as long as ``stack``
    lives, and return settings that fetch through it (``--fixture``, the demo)."""
    with console.status("Making the fixture profile (wixl, mingw, gpg)..."):
        _, fixture_settings = stack.enter_context(fixture_session(settings))
    return fixture_settings


def run_until(
    settings: Settings,
    until: str,
    options: Options,
    *,
    fixture: bool,
    view: Callable[[Any], Report],
    fmt: str,
) -> dict[str, Any]:
    """Run PIPELINE up to ``until`` (on the fixture profile when asked), drawing progress,
    and print ``view`` of its result. A gate that refuses still has its report printed (what
    failed is what the user needs to read) before the error ends the task."""
    with contextlib.ExitStack() as stack:
        if fixture:
            settings = enter_fixture(stack, settings)
        progress = stack.enter_context(RichProgress(err_console))
        try:
            results = run_stages(settings, select(until=until), options=options, progress=progress)
        except GateError as e:
            if e.results is not None:
                show(view(e.results), fmt)
            raise
    show(view(results[until]), fmt)
    return results


__all__ = [
    "FORMAT_HELP",
    "check_format",
    "console",
    "enter_fixture",
    "err_console",
    "names",
    "project_root",
    "run_until",
    "setup_logging",
    "show",
    "task_context",
]
