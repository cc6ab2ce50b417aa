"""Stage records: one JSON file per stage and image, keyed by the image's digest.

Each stage (``build``, ``sbom``, ``scan``, ``verify``, ``push``, ``sign``) writes what it did to
``<run_dir>/records/<hex of the image id>/<stage>.json``. A later stage finds the image in the
engine, takes its id, and reads the earlier records for exactly that id: a record for another
build of the same tag is another file, so ``invoke push`` cannot mistake an old pass for a new
image. Writes are atomic (temp file + rename), so a reader never sees half a record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mt5forge.errors import Mt5ForgeError
from mt5forge.files import atomic_write

SCHEMA = 1
"""Bumped when the common fields below change meaning."""

_IMAGE_ID = re.compile(r"^sha256:([0-9a-f]{64})$")
_STAGE = re.compile(r"^[a-z][a-z0-9-]*$")


class RecordError(Mt5ForgeError):
    """A stage record is missing, unreadable, or names another image."""

    exit_code = 14


def image_key(image_id: str) -> str:
    """The directory name for ``sha256:<hex>``: the hex digits. Anything else is an error."""
    m = _IMAGE_ID.match(image_id)
    if not m:
        raise RecordError(f"{image_id!r} is not an image id (sha256:<64 hex digits>).")
    return m.group(1)


def records_dir(run_dir: Path) -> Path:
    return run_dir / "records"


def record_path(run_dir: Path, stage: str, image_id: str) -> Path:
    if not _STAGE.match(stage):
        raise RecordError(f"{stage!r} is not a stage name.")
    return records_dir(run_dir) / image_key(image_id) / f"{stage}.json"


def write_record(
    run_dir: Path,
    stage: str,
    image_id: str,
    payload: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> Path:
    """Write ``payload`` as the ``stage`` record of ``image_id``; return its path.

    The common fields ``schema``, ``stage``, ``image_id`` and ``written`` are added and win over
    keys of the same name in ``payload``.
    """
    path = record_path(run_dir, stage, image_id)
    written = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = {**payload, "schema": SCHEMA, "stage": stage, "image_id": image_id, "written": written}
    return atomic_write(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_record(run_dir: Path, stage: str, image_id: str) -> dict[str, Any] | None:
    """The ``stage`` record of ``image_id``, or None when that stage never wrote one."""
    path = record_path(run_dir, stage, image_id)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise RecordError(f"The {stage} record {path} cannot be read: {e}") from e
    if not isinstance(data, dict) or data.get("image_id") != image_id:
        raise RecordError(f"The {stage} record {path} does not describe {image_id}.")
    return data


def iter_records(run_dir: Path, stage: str) -> Iterator[dict[str, Any]]:
    """Every ``stage`` record under ``run_dir``, oldest first."""
    if not _STAGE.match(stage):
        raise RecordError(f"{stage!r} is not a stage name.")
    found = []
    for path in records_dir(run_dir).glob(f"*/{stage}.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            found.append(data)
    yield from sorted(found, key=lambda r: str(r.get("written", "")))
