"""Logging with redaction and rotation.

Redaction is done by the formatter of every handler, on the final text (message, arguments,
exception and stack), so no logger anywhere in the process (ours, rpyc's, a library's) can write
a secret, whatever the level. Known secret values are replaced outright; patterns catch the
usual shapes (password=..., token=..., Bearer ...); account numbers keep their last 3 digits.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
from collections.abc import Iterable
from pathlib import Path

MASK = "***"
_PATTERNS = (
    re.compile(
        r"(?i)\b(pass(?:word|wd)?|pwd|secret|token|api[_-]?key)(['\"]?\s*[:=]\s*['\"]?)[^\s'\",;)}]+"
    ),
    re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=-]+"),
)


class Redactor:
    def __init__(self, secrets: Iterable[str] = (), accounts: Iterable[int] = ()) -> None:
        # Each secret also as repr() and JSON write it (a password with a quote or a backslash
        # logged inside a tuple or dict shows escaped). Longest first, so a secret that
        # contains another is masked whole.
        forms = {f for s in secrets if s for f in (s, repr(s)[1:-1], json.dumps(s)[1:-1])}
        self._secrets = sorted(forms, key=len, reverse=True)
        self._accounts = sorted({str(a) for a in accounts if a}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        for account in self._accounts:
            text = re.sub(rf"(?<!\d){re.escape(account)}(?!\d)", mask_account(int(account)), text)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
        return text


def mask_account(login: int) -> str:
    text = str(login)
    return "*" * max(0, len(text) - 3) + text[-3:]


class RedactingFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor, fmt: str) -> None:
        super().__init__(fmt)
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
