"""The connection audit trail: every bridge connection and every login, one line each.

A record is a mt5bridge.jsonlog line with component ``audit``; its event is one of

- ``connect``    a client passed the handshake (TLS when on, then the bridge hello);
- ``refuse``     a client was dropped before that: TLS refused its certificate, it spoke
                 another protocol, its hello was wrong, it was too slow, the cap was reached;
- ``probe``      a status probe (the health check) was answered;
- ``disconnect`` a connected client left;
- ``login``      a client's initialize() or login() with the account it named, and what the
                 terminal answered.

and its fields always hold ``peer`` (address:port), ``subject`` (the client certificate's
subject under mutual TLS, else null), ``account`` (masked to its last 3 digits, or null),
``outcome`` (ok, refused, failed) and ``reason``.

The file is the bridge's alone: opened with O_APPEND (each record one write, at the end, never
over an earlier one), created 0640 in a directory the bridge's user owns. In the secure compose
file the bot runs as another user, so it can read the trail at most, never rewrite, truncate,
rename or delete it (tests/integration/test_logs_audit.py tries all of those). The bridge
rotates it by size, keeping `backups` old files. Writing never raises into the server: a full
disk costs the record and a warning on stderr, not the connection.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from mt5bridge import jsonlog
from mt5bridge.redact import Redactor, mask_account

log = logging.getLogger(__name__)

FILE_NAME: Final = "audit.jsonl"
LOGIN_CALLS: Final = frozenset({"initialize", "login"})
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
_FLAGS |= getattr(os, "O_NOINHERIT", 0) | getattr(os, "O_BINARY", 0)


class AuditLog:
    """An append-only JSON-lines file, rotated by size (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        redactor: Redactor,
        *,
        max_bytes: int = 10_000_000,
        backups: int = 9,
    ) -> None:
        self.path = path
        self._redact = redactor
        self._max_bytes = max_bytes
        self._backups = backups
        self._lock = threading.Lock()
        self._complained = False
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, _FLAGS, 0o640)

    def record(
        self,
        event: str,
        *,
        peer: str,
        outcome: str,
        subject: str | None = None,
        account: int | None = None,
        reason: str | None = None,
        level: str = "INFO",
    ) -> None:
        fields = {
            "peer": peer,
            "subject": subject,
            "account": mask_account(account) if account is not None else None,
            "outcome": outcome,
            "reason": reason,
        }
        data = (jsonlog.line("audit", level, event, fields, redact=self._redact) + "\n").encode()
        with self._lock:
            try:
                if self._fd is None:
                    self._fd = os.open(self.path, _FLAGS, 0o640)
                os.write(self._fd, data)
                if os.fstat(self._fd).st_size >= self._max_bytes:
                    self._rotate()
            except OSError as exc:
                if not self._complained:  # once: a full disk must not flood stderr too
                    log.warning("audit log %s cannot be written: %s", self.path, exc)
                    self._complained = True
                return
            self._complained = False

    def _rotate(self) -> None:
        assert self._fd is not None  # noqa: S101
        os.close(self._fd)
        self._fd = None
        for i in range(self._backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self._backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self._fd = os.open(self.path, _FLAGS, 0o640)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


_trail: AuditLog | None = None


def install(trail: AuditLog | None) -> None:
    """Make `trail` the process's audit log (the server does, at start)."""
    global _trail  # one trail per process, like logging's root
    _trail = trail


def current() -> AuditLog | None:
    return _trail


def record(event: str, **fields: Any) -> None:
    """A record in the installed trail; nothing when there is none (tests, in-process use)."""
    trail = _trail
    if trail is not None:
        trail.record(event, **fields)


_BOUND = "_mt5bridge_audit_peer"


def bind(service: object, peer: str, subject: str | None) -> None:
    """Remember who a connection's service serves, for its login records."""
    setattr(service, _BOUND, (peer, subject))


def _account(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int | None:
    value = kwargs.get("login")
    if value is None and name == "login" and args:
        value = args[0]
    if type(value) is int and value >= 0:
        return value
    return None


def call(
    service: object,
    name: str,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    result: Any,
    error: Any,
) -> None:
    """After a call ran: a ``login`` record when it was initialize() or login(). Never raises
    (it runs in the middle of a client's call)."""
    if name not in LOGIN_CALLS or _trail is None:
        return
    try:
        peer, subject = getattr(service, _BOUND, ("?", None))
        reason = None
        if result is not True and isinstance(error, tuple) and len(error) == 2:
            reason = f"{name}: ({error[0]}) {error[1]}"
        _trail.record(
            "login",
            peer=str(peer),
            subject=subject,
            account=_account(name, args, kwargs),
            outcome="ok" if result is True else "failed",
            reason=reason or name,
            level="INFO" if result is True else "WARNING",
        )
    except Exception:  # an audit bug must not fail the client's call; it is said instead
        log.exception("audit record of %s failed", name)


def subject_of(cert: Mapping[str, Any] | None) -> str | None:
    """A certificate's subject as ``CN=...,O=...`` (ssl.getpeercert()'s shape), or None."""
    if not cert:
        return None
    parts = []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            short = {"commonName": "CN", "organizationName": "O",
                     "organizationalUnitName": "OU", "countryName": "C"}.get(key, key)  # fmt: skip
            parts.append(f"{short}={value}")
    return ",".join(parts) or None
