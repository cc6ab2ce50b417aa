"""A report as JSON: its title and data, for machines and CI steps."""

from __future__ import annotations

import json

from mt5forge.report import Report


def render(report: Report, width: int) -> str:
    return json.dumps({"title": report.title, "data": report.data}, indent=2, default=str) + "\n"
