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


def render(report: Report, fmt: str = "table", *, width: int = 130) -> str:
    """``report`` as text in ``fmt``; ConfigError for a format we do not have."""
    formatters = _formatters()
    if fmt not in formatters:
        raise ConfigError(
            f"--format {fmt!r} is not a format.", hint="Formats: " + ", ".join(FORMATS)
        )
    return formatters[fmt](report, width)
