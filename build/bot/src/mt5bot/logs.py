"""Logging with redaction and rotation.

Redaction is done by the formatter of every handler, on the final text (message, arguments,
exception and stack), so no logger anywhere in the process (ours, rpyc's, a library's) can write
a secret, whatever the level. The masking itself is mt5bridge.redact, shared with the bridge:
known secrets in every form a log can show them (escaped, encoded, upper-cased, spaced), values
logged under a secret's key name (password=..., "token": ..., Bearer ...), and account numbers
down to their last 3 digits, with or without thousands separators. Every record stays one line.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from mt5bridge.redact import FORMAT, MASK, RedactingFormatter, Redactor, mask_account

__all__ = ["FORMAT", "MASK", "RedactingFormatter", "Redactor", "mask_account", "setup"]


def setup(
    redactor: Redactor,
    *,
    level: str = "INFO",
    log_dir: Path | None = None,
    max_bytes: int = 5_000_000,
    backups: int = 3,
) -> None:
    """Send every logger's records to stderr and, with `log_dir`, to a rotating file."""
    formatter = RedactingFormatter(redactor, FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_dir / "mt5bot.log", maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
        )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
