"""One progress voice for every stage (cibuildwheel's ``logger.py`` is the model).

A stage reports through :class:`Progress` and never prints: ``start`` opens a unit of work
(a download, an image build, the base image), ``step`` moves it on, ``finish`` closes it with a
status, ``warn`` says something the user should see. The task layer draws it with rich
(``mt5forge.tasks._progress``); tests and libraries use :class:`NullProgress` or
:class:`LogProgress`.
"""

from __future__ import annotations

import logging
from typing import Literal, Protocol

Unit = Literal["steps", "bytes", "status"]
"""How a unit of work counts: build steps, downloaded bytes, or a status line with no count."""

log = logging.getLogger(__name__)


class Progress(Protocol):
    def start(
        self,
        key: str,
        label: str,
        *,
        total: int | None = None,
        unit: Unit = "steps",
        completed: int = 0,
    ) -> None:
        """Open the unit of work ``key`` (restarting it when already open)."""

    def step(
        self,
        key: str,
        *,
        message: str | None = None,
        advance: int = 0,
        completed: int | None = None,
        total: int | None = None,
        note: str | None = None,
    ) -> None:
        """Move ``key`` on: ``advance`` or set ``completed``; ``message`` replaces its live
        label; ``note`` is a line worth keeping once the bar is gone."""

    def finish(self, key: str, status: str) -> None:
        """Close ``key`` with a one-word status (verified, cached, built, failed...)."""

    def warn(self, message: str) -> None:
        """Something the user should read even when all goes well."""


class NullProgress:
    """Draws nothing."""

    def start(
        self,
        key: str,
        label: str,
        *,
        total: int | None = None,
        unit: Unit = "steps",
        completed: int = 0,
    ) -> None:
        pass

    def step(
        self,
        key: str,
        *,
        message: str | None = None,
        advance: int = 0,
        completed: int | None = None,
        total: int | None = None,
        note: str | None = None,
    ) -> None:
        pass

    def finish(self, key: str, status: str) -> None:
        pass

    def warn(self, message: str) -> None:
        log.warning("%s", message)


class LogProgress(NullProgress):
    """Progress as log lines (``-v`` runs, benchmarks): starts, notes, finishes, warnings."""

    def start(
        self,
        key: str,
        label: str,
        *,
        total: int | None = None,
        unit: Unit = "steps",
        completed: int = 0,
    ) -> None:
        log.info("%s: started", label)

    def step(
        self,
        key: str,
        *,
        message: str | None = None,
        advance: int = 0,
        completed: int | None = None,
        total: int | None = None,
        note: str | None = None,
    ) -> None:
        if note:
            log.info("%s: %s", key, note)

    def finish(self, key: str, status: str) -> None:
        log.info("%s: %s", key, status)
