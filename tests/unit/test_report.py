"""The report layer: formatters return text and never print; one place maps --format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mt5forge.errors import ConfigError
from mt5forge.fetch import Artifact
from mt5forge.report import FORMATS, Column, Report, render
from mt5forge.report.views import artifacts_report

REPORT = Report(
    title="Artifacts",
    columns=(Column(name="artifact", no_wrap=True), Column(name="size", align="right")),
    rows=(("wine-mono", "1.0 kB"), ("[fixture] python", "2.0 kB")),
    notes=("2 artifact(s) verified.",),
    data=[{"name": "wine-mono", "size": 1000}],
)


def test_table_is_text_with_rows_and_notes(capsys: pytest.CaptureFixture[str]) -> None:
    text = render(REPORT, "table", width=80)
    assert "Artifacts" in text and "wine-mono" in text and "1.0 kB" in text
    assert "[fixture] python" in text  # plain text, not rich markup
    assert text.rstrip().endswith("2 artifact(s) verified.")
    assert capsys.readouterr().out == ""  # formatters never print


def test_json_carries_the_data() -> None:
    got = json.loads(render(REPORT, "json"))
    assert got == {"title": "Artifacts", "data": [{"name": "wine-mono", "size": 1000}]}


def test_unknown_format_is_a_config_error() -> None:
    assert FORMATS == ("table", "json")
    with pytest.raises(ConfigError, match="Formats: table, json"):
        render(REPORT, "yaml")


def test_artifacts_report_keeps_profile_and_paths(tmp_path: Path) -> None:
    a = Artifact(
        name="wine-mono", version="9.4.0", filename="wine-mono-9.4.0-x86.msi", sha256="a" * 64,
        size=123_456, path=tmp_path / "x.msi", verified_by="sha256 [fixture]", cache_hit=True,
        profile="fixture", origin="fixture",
    )  # fmt: skip
    report = artifacts_report([a], "Artifacts (fixture profile)", cache_dir="/c")
    assert report.rows[0][:3] == ("wine-mono", "9.4.0", "0.12 MB")
    assert report.rows[0][5:] == ("fixture", "fixture", "hit")
    assert report.notes == ("1 artifact(s) verified, 1 from the cache, into /c.",)
    data = json.loads(render(report, "json"))["data"][0]
    assert data["path"] == str(tmp_path / "x.msi") and data["profile"] == "fixture"
