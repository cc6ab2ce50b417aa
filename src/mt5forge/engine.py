"""Make sure a Docker Engine answers; on Debian as root, install and start one.

Everything that touches images calls :func:`ensure_engine` first. CI machines start with only a
docker client and no engine (see shared/TESTBED.md), so the test command relies on this.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from mt5forge.config import Settings
from mt5forge.errors import EngineError
from mt5forge.tools import docker as dockertool
from mt5forge.tools import host as hostprograms
from mt5forge.tools.run import start

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class EngineStatus:
    host: str
    """Where the engine answers."""
    version: str
    """The engine's version, as it reports it."""
    started: bool
    """True when this call started ``dockerd``."""
    installed: tuple[str, ...] = ()
    """Debian packages this call installed."""
    log_file: str = ""
    """Where a started ``dockerd`` writes its log."""


def _status(client: Any, **kw: Any) -> EngineStatus:
    version = str(client.version().get("Version", "unknown"))
    return EngineStatus(host=dockertool.engine_host(), version=version, **kw)


def ensure_engine(settings: Settings) -> EngineStatus:
    """Return the status of a reachable engine, starting one if we may, else EngineError."""
    client = dockertool.try_connect()
    if client is not None:
        return _status(client, started=False)

    host = dockertool.engine_host()
    if not settings.engine.autostart:
        raise EngineError(
            f"No Docker Engine answers at {host}, and [engine] autostart is off.",
            hint="Start your engine, or set MT5FORGE_ENGINE_AUTOSTART=true on a Debian host "
            "run as root to let mt5forge install and start one.",
        )
    if not dockertool.is_default_host():
        raise EngineError(
            f"No Docker Engine answers at DOCKER_HOST={host}.",
            hint="That is not this machine's default socket, so mt5forge will not start an "
            "engine for it. Check the address, or unset DOCKER_HOST.",
        )
    if not hostprograms.can_install():
        raise EngineError(
            f"No Docker Engine answers at {host}.",
            hint="Install Docker Engine (Debian: apt-get install docker.io; elsewhere: "
            "https://docs.docker.com/engine/install/) and start it. mt5forge installs and "
            "starts one itself only on a Debian host run as root.",
        )

    installed = tuple(hostprograms.ensure_programs(["dockerd"]))
    log_file = settings.run_dir / "logs" / "dockerd.log"
    log.info("starting dockerd (log: %s)", log_file)
    proc = start("dockerd", log_file=log_file)
    deadline = time.monotonic() + settings.engine.start_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EngineError(
                f"dockerd exited with code {proc.returncode} right after it started.",
                hint=f"Its log is {log_file}:\n{_tail(log_file)}",
            )
        client = dockertool.try_connect(timeout=5)
        if client is not None:
            return _status(client, started=True, installed=installed, log_file=str(log_file))
        time.sleep(0.5)
    raise EngineError(
        f"dockerd started but did not answer within {settings.engine.start_timeout} s.",
        hint=f"Its log is {log_file}:\n{_tail(log_file)}",
    )


def _tail(path: Any, lines: int = 15) -> str:
    try:
        text: str = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
