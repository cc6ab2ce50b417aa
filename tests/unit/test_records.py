"""Stage records: keyed by image id, atomic, and never confused with another image's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mt5forge import records
from mt5forge.records import RecordError

IMAGE = "sha256:" + "1" * 64
OTHER = "sha256:" + "2" * 64


def test_write_then_read(tmp_path: Path) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    path = records.write_record(tmp_path, "build", IMAGE, {"size": 5, "stage": "x"}, now=when)
    assert path == tmp_path / "records" / ("1" * 64) / "build.json"
    got = records.read_record(tmp_path, "build", IMAGE)
    assert got is not None
    assert got["size"] == 5
    assert got["stage"] == "build"  # the common fields win
    assert got["image_id"] == IMAGE
    assert got["written"] == "2026-01-02T03:04:05Z"
    assert got["schema"] == records.SCHEMA
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_absent_record_is_none_and_another_image_is_refused(tmp_path: Path) -> None:
    assert records.read_record(tmp_path, "scan", IMAGE) is None
    records.write_record(tmp_path, "build", IMAGE, {})
    path = records.record_path(tmp_path, "build", OTHER)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"image_id": IMAGE}))
    with pytest.raises(RecordError, match="does not describe"):
        records.read_record(tmp_path, "build", OTHER)


@pytest.mark.parametrize("bad", ["latest", "sha256:abc", "mt5forge/bot:slim", "sha256:" + "G" * 64])
def test_only_image_ids_are_keys(tmp_path: Path, bad: str) -> None:
    with pytest.raises(RecordError):
        records.write_record(tmp_path, "build", bad, {})


def test_stage_names_cannot_escape(tmp_path: Path) -> None:
    with pytest.raises(RecordError):
        records.record_path(tmp_path, "../build", IMAGE)


def test_iter_records_oldest_first(tmp_path: Path) -> None:
    records.write_record(tmp_path, "build", OTHER, {"n": 2}, now=datetime(2026, 2, 1, tzinfo=UTC))
    records.write_record(tmp_path, "build", IMAGE, {"n": 1}, now=datetime(2026, 1, 1, tzinfo=UTC))
    records.write_record(tmp_path, "scan", IMAGE, {"n": 3})
    assert [r["n"] for r in records.iter_records(tmp_path, "build")] == [1, 2]
