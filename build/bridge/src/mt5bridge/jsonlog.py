"""Structured log lines: one JSON object per line, one schema for every component.

The bridge, the bot, the supervisor (build/terminal/entrypoint, which writes the same shape
from bash), MetaTrader 5's own journal (mt5bridge.journal) and the exporter (mt5bridge.
logexport) all write::

    {"time": "2026-12-02T03:04:05.678Z", "component": "bridge", "level": "INFO",
     "event": "connect", "fields": {...}}

so one query language (jq, LogQL, VRL) reads all of them. Every string in a record goes through
mt5bridge.redact before it is written, and a field whose key names a secret (password, token,
...) is masked whatever its value. A record is capped (`MAX_LINE`), so one huge message cannot
fill the disk between two rotations. Files rotate by size with a fixed number of old files:
the cap on disk is (backups + 1) x max_bytes per file.
"""

from __future__ import annotations

import datetime
import json
import logging
import logging.handlers
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from mt5bridge.redact import MASK, RedactingFormatter, Redactor, escape

KEYS: Final = ("time", "component", "level", "event", "fields")
LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_LINE: Final = 16_384
"""Bytes in one record at most; a longer message is cut and says so."""
MAX_VALUE: Final = 4_000
"""Characters in one string field at most."""
DEFAULT_MAX_BYTES: Final = 5_000_000
DEFAULT_BACKUPS: Final = 3


def now() -> str:
    """The schema's time: UTC, ISO 8601, milliseconds, a Z."""
    t = datetime.datetime.now(datetime.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _secret_key(redact: Callable[[str], str], key: str) -> bool:
    """Whether `key` names a secret: the redactor masks `key=x` exactly when it does."""
    probe = f"{key}=x"
    return redact(probe) != probe


def clean(value: Any, redact: Callable[[str], str], depth: int = 0) -> Any:
    """`value` with every string redacted, escaped onto one line and capped; keys that name a
    secret have their value masked; anything not JSON-shaped becomes its type's name."""
    if isinstance(value, str):
        return escape(redact(value), MAX_VALUE)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= 4:
        return f"<{type(value).__name__}>"
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= 64:
                out["..."] = "[cut]"
                break
            key = escape(redact(str(k)), 64)
            out[key] = MASK if _secret_key(redact, key) else clean(v, redact, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [clean(v, redact, depth + 1) for v in value[:64]]
    return f"<{type(value).__name__}>"


def line(
    component: str,
    level: str,
    event: str,
    fields: Mapping[str, Any] | None = None,
    *,
    redact: Callable[[str], str],
    time: str | None = None,
) -> str:
    """One record as one line (no newline), redacted and capped."""
    record = {
        "time": time or now(),
        "component": escape(component, 40),
        "level": level if level in LEVELS else "INFO",
        "event": escape(redact(event), 80),
        "fields": clean(dict(fields or {}), redact),
    }
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    if len(text.encode("utf-8")) > MAX_LINE:
        record["fields"] = {"cut": True, "head": text[: MAX_LINE // 2]}
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    return text


def parse(text: str) -> dict[str, Any] | None:
    """The record on `text` if it is one in this schema, else None."""
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or tuple(record) != KEYS:
        return None
    if not all(isinstance(record[k], str) for k in KEYS[:4]) or not isinstance(
        record["fields"], dict
    ):
        return None
    if record["level"] not in LEVELS:
        return None
    return record


class JsonFormatter(logging.Formatter):
    """A logging record as one schema line. The message (with its traceback, indented under it)
    is redacted by mt5bridge.redact's formatter first; `extra={"event": ..., "fields": {...}}`
    sets the event name and adds fields."""

    def __init__(self, component: str, redactor: Redactor) -> None:
        super().__init__()
        self.component = component
        self._redact = redactor
        self._text = RedactingFormatter(redactor, "%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        message = self._text.format(record)
        fields: dict[str, Any] = {"logger": record.name, "message": message}
        extra = record.__dict__.get("fields")
        if isinstance(extra, Mapping):
            fields.update(extra)
        event = record.__dict__.get("event")
        return line(
            self.component,
            record.levelname,
            event if isinstance(event, str) else "log",
            fields,
            redact=self._redact,
        )


def file_handler(
    path: Path,
    component: str,
    redactor: Redactor,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    backups: int = DEFAULT_BACKUPS,
) -> logging.Handler:
    """A size-rotated JSON-lines file for `component` (created with its directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    handler.setFormatter(JsonFormatter(component, redactor))
    return handler
