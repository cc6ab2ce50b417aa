"""Stage records: keyed by image id, atomic, and never confused with another image's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mt5forge import records
from mt5forge.files import atomic_write
from mt5forge.records import RecordError

IMAGE = "sha256:" + "1" * 64
OTHER = "sha256:" + "2" * 64


def test_write_then_read(tmp_path: Path) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    path = records.write_record(tmp_path, "probe", IMAGE, {"size": 5, "stage": "x"}, now=when)
    assert path == tmp_path / "records" / ("1" * 64) / "probe.json"
    got = records.read_record(tmp_path, "probe", IMAGE)
    assert got is not None
    assert got["size"] == 5
    assert got.stage == "probe"  # the common fields win
    assert "stage" not in got.data
    assert got.image_id == IMAGE
    assert got.written == "2026-01-02T03:04:05Z"
    assert got.schema == records.SCHEMA
    assert got.passed is True
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_absent_record_is_none_and_another_image_is_refused(tmp_path: Path) -> None:
    assert records.read_record(tmp_path, "probe", IMAGE) is None
    records.write_record(tmp_path, "probe", IMAGE, {})
    path = records.record_path(tmp_path, "probe", OTHER)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"image_id": IMAGE}))
    with pytest.raises(RecordError, match="does not describe"):
        records.read_record(tmp_path, "probe", OTHER)


@pytest.mark.parametrize("bad", ["latest", "sha256:abc", "mt5forge/bot:slim", "sha256:" + "G" * 64])
def test_only_image_ids_are_keys(tmp_path: Path, bad: str) -> None:
    with pytest.raises(RecordError):
        records.write_record(tmp_path, "probe", bad, {})


def test_stage_names_cannot_escape(tmp_path: Path) -> None:
    with pytest.raises(RecordError):
        records.record_path(tmp_path, "../build", IMAGE)


def test_iter_records_oldest_first(tmp_path: Path) -> None:
    records.write_record(tmp_path, "probe", OTHER, {"n": 2}, now=datetime(2026, 2, 1, tzinfo=UTC))
    records.write_record(tmp_path, "probe", IMAGE, {"n": 1}, now=datetime(2026, 1, 1, tzinfo=UTC))
    records.write_record(tmp_path, "probe-two", IMAGE, {"n": 3})
    assert [r["n"] for r in records.iter_records(tmp_path, "probe")] == [1, 2]


BUILD = {"image": "bot", "variant": "slim", "reference": "x/bot:slim", "profile": "fixture",
         "labels": {}}  # fmt: skip


def test_a_build_record_is_typed_and_needs_its_fields(tmp_path: Path) -> None:
    records.write_record(tmp_path, "build", IMAGE, BUILD)
    got = records.read_record(tmp_path, "build", IMAGE)
    assert isinstance(got, records.BuildRecord)
    assert (got.image, got.variant, got.profile) == ("bot", "slim", "fixture")
    with pytest.raises(RecordError, match="needs profile"):
        records.write_record(tmp_path, "build", OTHER, {k: v for k, v in BUILD.items()
                                                        if k != "profile"})  # fmt: skip


def test_require_returns_the_passing_records(tmp_path: Path) -> None:
    records.write_record(tmp_path, "build", IMAGE, BUILD)
    records.write_record(tmp_path, "probe", IMAGE, {"findings": 0})
    got = records.require(tmp_path, IMAGE, ["build", "probe"])
    assert set(got) == {"build", "probe"}


def test_require_names_missing_failing_and_mismatched_stages_at_once(tmp_path: Path) -> None:
    records.write_record(tmp_path, "build", IMAGE, BUILD)
    records.write_record(tmp_path, "probe", IMAGE, {"findings": 3}, passed=False)
    # A record copied over from another image: it must not count for this one.
    records.write_record(tmp_path, "probe-three", OTHER, {})
    src = records.record_path(tmp_path, "probe-three", OTHER)
    dest = records.record_path(tmp_path, "probe-three", IMAGE)
    dest.write_bytes(src.read_bytes())
    with pytest.raises(RecordError) as info:
        records.require(tmp_path, IMAGE, ["build", "probe-two", "probe", "probe-three"])
    message = str(info.value)
    assert "no record from probe-two" in message
    assert "failed: probe" in message
    assert "mismatched or unreadable: probe-three" in message
    assert "build" not in message.split("gate:")[1].split("Run")[0]


def test_require_refuses_a_record_of_an_older_schema(tmp_path: Path) -> None:
    path = records.write_record(tmp_path, "probe", IMAGE, {})
    data = json.loads(path.read_text())
    data["schema"] = records.SCHEMA + 1
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match="mismatched or unreadable: probe"):
        records.require(tmp_path, IMAGE, ["probe"])


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    """files.atomic_write, which records and the lock use: a write that fails half way (here a
    string that cannot be encoded) leaves the previous content and no temp file behind."""
    target = tmp_path / "artifacts.lock.toml"
    atomic_write(target, "old\n")
    with pytest.raises(UnicodeEncodeError):
        atomic_write(target, "new \ud800\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["artifacts.lock.toml"]
