"""Stage records: one JSON file per stage and image, keyed by the image's id.

Each stage that judges an image (``build`` now; ``sbom``, ``scan``, ``verify``, ``push``,
``sign`` as they land) writes what it did to
``<run_dir>/records/<hex of the image id>/<stage>.json``.
A later stage finds the image in the engine, takes its id, and asks :func:`require` for the
records of exactly that id: a record for another build of the same tag is another file, so
``invoke push`` cannot mistake an old pass for a new image. Writes are atomic (temp file +
rename), so a reader never sees half a record.

Records are typed at the edge: :func:`read_record` returns a :class:`StageRecord` (or the
subclass registered for the stage, e.g. :class:`BuildRecord`), never a loose dict.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from mt5forge.errors import RecordError
from mt5forge.files import atomic_write

__all__ = [
    "SCHEMA",
    "BuildRecord",
    "PushRecord",
    "RecordError",
    "SbomRecord",
    "ScanRecord",
    "SignRecord",
    "StageRecord",
    "VerifyRecord",
    "image_key",
    "iter_records",
    "read_record",
    "record_path",
    "require",
    "write_record",
]

SCHEMA = 1
"""Bumped when the common fields below change meaning."""

_IMAGE_ID = re.compile(r"^sha256:([0-9a-f]{64})$")
_STAGE = re.compile(r"^[a-z][a-z0-9-]*$")
_COMMON = ("schema", "stage", "image_id", "written", "passed")


@dataclasses.dataclass(frozen=True, kw_only=True)
class StageRecord:
    """What every record says; ``data`` holds the stage's own fields."""

    stage: str
    image_id: str
    passed: bool
    """Whether the image passed this stage. A build that finished passed."""
    written: str
    """UTC time the record was written (RFC 3339)."""
    schema: int = SCHEMA
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    path: Path | None = None

    required: ClassVar[tuple[str, ...]] = ()
    """Keys of ``data`` a record of this stage must have."""

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuildRecord(StageRecord):
    required: ClassVar[tuple[str, ...]] = ("image", "variant", "reference", "profile", "labels")

    @property
    def image(self) -> str:
        return str(self.data["image"])

    @property
    def variant(self) -> str:
        return str(self.data["variant"])

    @property
    def reference(self) -> str:
        return str(self.data["reference"])

    @property
    def profile(self) -> str:
        """``upstream`` or ``fixture``: a fixture image stays refusable by later gates."""
        return str(self.data["profile"])


@dataclasses.dataclass(frozen=True, kw_only=True)
class SbomRecord(StageRecord):
    required: ClassVar[tuple[str, ...]] = ("image", "variant", "reference", "sbom", "problems")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScanRecord(StageRecord):
    required: ClassVar[tuple[str, ...]] = (
        "image",
        "variant",
        "reference",
        "database",
        "policy",
        "findings",
        "problems",
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class VerifyRecord(StageRecord):
    """Every check put to the image, its outcome, and which terminal answered."""

    required: ClassVar[tuple[str, ...]] = ("image", "variant", "reference", "terminal", "checks")

    @property
    def terminal(self) -> str:
        """``simulator``, ``fixture terminal`` or ``real terminal``."""
        return str(self.data["terminal"])


@dataclasses.dataclass(frozen=True, kw_only=True)
class PushRecord(StageRecord):
    """Where the image went: the repository, the manifest digest it was pushed by, its tags."""

    required: ClassVar[tuple[str, ...]] = ("image", "variant", "repository", "digest", "tags")

    @property
    def repository(self) -> str:
        return str(self.data["repository"])

    @property
    def digest(self) -> str:
        return str(self.data["digest"])

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(str(t) for t in self.data["tags"])


@dataclasses.dataclass(frozen=True, kw_only=True)
class SignRecord(StageRecord):
    """The signatures made on a pushed digest: one entry per format (``gpg``, ``cosign``)."""

    required: ClassVar[tuple[str, ...]] = ("image", "variant", "repository", "digest", "signatures")


#: The record type of each stage; a stage without an entry reads as a plain StageRecord.
RECORD_TYPES: dict[str, type[StageRecord]] = {
    "build": BuildRecord,
    "sbom": SbomRecord,
    "scan": ScanRecord,
    "verify": VerifyRecord,
    "push": PushRecord,
    "sign": SignRecord,
}


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
    passed: bool = True,
    now: datetime | None = None,
) -> Path:
    """Write ``payload`` as the ``stage`` record of ``image_id``; return its path.

    The common fields ``schema``, ``stage``, ``image_id``, ``written`` and ``passed`` are added
    and win over keys of the same name in ``payload``.
    """
    path = record_path(run_dir, stage, image_id)
    kind = RECORD_TYPES.get(stage, StageRecord)
    missing = [k for k in kind.required if k not in payload]
    if missing:
        raise RecordError(f"A {stage} record needs {', '.join(missing)}.")
    written = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = {
        **payload,
        "schema": SCHEMA,
        "stage": stage,
        "image_id": image_id,
        "written": written,
        "passed": passed,
    }
    return atomic_write(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def _parse(data: Any, path: Path, stage: str, image_id: str) -> StageRecord:
    if not isinstance(data, dict) or data.get("image_id") != image_id:
        raise RecordError(f"The {stage} record {path} does not describe {image_id}.")
    if data.get("stage") != stage:
        raise RecordError(f"The record {path} is a {data.get('stage')!r} record, not {stage}.")
    if data.get("schema") != SCHEMA:
        raise RecordError(
            f"The {stage} record {path} has schema {data.get('schema')!r}; this mt5forge "
            f"reads schema {SCHEMA}.",
            hint=f"Run `invoke {stage}` again.",
        )
    kind = RECORD_TYPES.get(stage, StageRecord)
    rest = {k: v for k, v in data.items() if k not in _COMMON}
    missing = [k for k in kind.required if k not in rest]
    if missing:
        raise RecordError(f"The {stage} record {path} lacks {', '.join(missing)}.")
    return kind(
        stage=stage,
        image_id=image_id,
        passed=data.get("passed") is True,
        written=str(data.get("written", "")),
        schema=SCHEMA,
        data=MappingProxyType(rest),
        path=path,
    )


def read_record(run_dir: Path, stage: str, image_id: str) -> StageRecord | None:
    """The ``stage`` record of ``image_id``, or None when that stage never wrote one."""
    path = record_path(run_dir, stage, image_id)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise RecordError(f"The {stage} record {path} cannot be read: {e}") from e
    return _parse(data, path, stage, image_id)


def require(run_dir: Path, image_id: str, stages: Sequence[str]) -> dict[str, StageRecord]:
    """The passing records of ``stages`` for exactly ``image_id``.

    Raises RecordError naming every stage that is missing, failed, or whose record is unreadable
    or describes another image: one message with the whole gap, not the first hole only.
    """
    found: dict[str, StageRecord] = {}
    missing: list[str] = []
    failed: list[str] = []
    broken: list[str] = []
    for stage in stages:
        try:
            record = read_record(run_dir, stage, image_id)
        except RecordError as e:
            broken.append(f"{stage} ({e.message})")
            continue
        if record is None:
            missing.append(stage)
        elif not record.passed:
            failed.append(f"{stage} (record {record.path}, written {record.written})")
        else:
            found[stage] = record
    if missing or failed or broken:
        parts = []
        if missing:
            parts.append("no record from " + ", ".join(missing))
        if failed:
            parts.append("failed: " + "; ".join(failed))
        if broken:
            parts.append("mismatched or unreadable: " + "; ".join(broken))
        raise RecordError(
            f"Image {image_id[:19]} has not passed every gate: " + "; ".join(parts) + ".",
            hint="Run the missing stages for this exact image (`invoke "
            + " ".join(dict.fromkeys([*missing, *(f.split(" ")[0] for f in failed)]))
            + "`); records are kept per image id, so a rebuilt image needs them again.",
        )
    return found


def iter_records(run_dir: Path, stage: str) -> Iterator[StageRecord]:
    """Every readable ``stage`` record under ``run_dir``, oldest first."""
    if not _STAGE.match(stage):
        raise RecordError(f"{stage!r} is not a stage name.")
    found: list[StageRecord] = []
    for path in records_dir(run_dir).glob(f"*/{stage}.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            found.append(_parse(data, path, stage, f"sha256:{path.parent.name}"))
        except (OSError, ValueError, RecordError):
            continue
    yield from sorted(found, key=lambda r: r.written)
