"""A report as a terminal table (rich), returned as text."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mt5forge.report import Report


def render(report: Report, width: int) -> str:
    table = Table(title=report.title)
    for col in report.columns:
        table.add_column(col.name, justify="right" if col.align == "right" else "left",
                         no_wrap=col.no_wrap)  # fmt: skip
    for row in report.rows:
        table.add_row(*(Text(cell) for cell in row))  # plain text: "[fixture]" is no markup
    out = io.StringIO()
    console = Console(file=out, width=width, highlight=False, color_system=None)
    console.print(table)
    for note in report.notes:
        console.print(Text(note))
    return out.getvalue()
