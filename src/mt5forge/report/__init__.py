"""The report layer: what a stage produced, as text. Formatters return strings and never print
(pip-audit's ``_format`` is the model); :func:`render` is the one place ``--format`` is mapped to
a formatter. Only the task layer prints what comes back.

A :class:`Report` is a titled table plus notes (the lines a person reads under it) and ``data``,
the same facts as plain JSON values for machines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mt5forge.errors import ConfigError


@dataclasses.dataclass(frozen=True, kw_only=True)
class Column:
    name: str
    align: str = "left"
    """``left`` or ``right``."""
    no_wrap: bool = False
    """Never fold this column (digests, names)."""


def columns(
    *names: str, right: Sequence[str] = (), no_wrap: Sequence[str] = ()
) -> tuple[Column, ...]:
    """Columns by name: left-aligned and wrapping unless named in ``right`` / ``no_wrap``."""
    return tuple(
        Column(name=n, align="right" if n in right else "left", no_wrap=n in no_wrap) for n in names
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Report:
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()
    data: Mapping[str, Any] | Sequence[Any] = dataclasses.field(default_factory=dict)
    """The report's facts as JSON values (``--format json``)."""


Formatter = Callable[[Report, int], str]


def _formatters() -> dict[str, Formatter]:
    from mt5forge.report import jsonfmt, table

    return {"table": table.render, "json": jsonfmt.render}


FORMATS = ("table", "json")


def check_format(fmt: str) -> str:
    """``fmt`` when it is a report format; ConfigError otherwise (tasks call it before any
    work starts)."""
    if fmt not in FORMATS:
        raise ConfigError(
            f"--format {fmt!r} is not a format.", hint="Formats: " + ", ".join(FORMATS)
        )
    return fmt


def render(report: Report, fmt: str = "table", *, width: int = 130) -> str:
    """``report`` as text in ``fmt``; ConfigError for a format we do not have."""
    return _formatters()[check_format(fmt)](report, width)
