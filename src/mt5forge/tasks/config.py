"""``invoke config``."""

from __future__ import annotations

import dataclasses

from invoke.context import Context
from invoke.tasks import task
from rich.table import Table

from mt5forge.tasks._common import console, task_context


@task(help={"verbose": "Show debug logs and tracebacks."})
def show_config(c: Context, verbose: bool = False) -> None:
    """Print the effective settings (defaults <- mt5forge.toml <- MT5FORGE_* variables)."""
    with task_context(verbose) as settings:
        table = Table("setting", "value", title=f"settings (root {settings.root})")
        for section in dataclasses.fields(settings):
            value = getattr(settings, section.name)
            if not dataclasses.is_dataclass(value):
                continue
            for field in dataclasses.fields(value):
                table.add_row(f"{section.name}.{field.name}", repr(getattr(value, field.name)))
    console.print(table)
