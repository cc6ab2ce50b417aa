"""Logging with redaction and rotation.

Redaction is done by the formatter of every handler, on the final text (message, arguments,
exception and stack), so no logger anywhere in the process (ours, rpyc's, a library's) can write
a secret, whatever the level. The masking itself is mt5bridge.redact, shared with the bridge:
known secrets in every form a log can show them (escaped, encoded, upper-cased, spaced), values
logged under a secret's key name (password=..., "token": ..., Bearer ...), and account numbers
down to their last 3 digits, with or without thousands separators. Every record stays one line:
a text line on stderr (the container log), a JSON line in the log directory.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Final

from mt5bridge import jsonlog
from mt5bridge.redact import FORMAT, MASK, RedactingFormatter, Redactor, mask_account

__all__ = ["FILE_NAME", "FORMAT", "MASK", "RedactingFormatter", "Redactor", "mask_account", "setup"]

FILE_NAME: Final = "mt5bot.jsonl"


def setup(
    redactor: Redactor,
    *,
    level: str = "INFO",
    log_dir: Path | None = None,
    max_bytes: int = 5_000_000,
    backups: int = 3,
) -> None:
    """Send every logger's records to stderr and, with `log_dir`, to a size-rotated file of JSON
    lines there (mt5bridge.jsonlog's schema, component ``bot``; at most `backups` old files)."""
    formatter = RedactingFormatter(redactor, FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers[0].setFormatter(formatter)
    if log_dir is not None:
        handlers.append(
            jsonlog.file_handler(
                log_dir / FILE_NAME, "bot", redactor, max_bytes=max_bytes, backups=backups
            )
        )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
