"""A local image registry (Debian's ``docker-registry``, distribution 2.8) for tests and the demo.

It listens on 127.0.0.1 only, which the engine trusts as an insecure registry by default, so no
TLS set-up is needed for pushes to it. Its pid and config live under the run directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import time
from pathlib import Path

import requests

from mt5forge.config import Settings
from mt5forge.errors import RegistryError
from mt5forge.tools import host as hostprograms
from mt5forge.tools.run import start

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Registry:
    address: str
    """host:port it listens on."""
    root: Path
    """Its storage directory."""
    pid: int
    """Its process id."""
    started: bool
    """False when one was already running at that address."""

    @property
    def url(self) -> str:
        return f"http://{self.address}"


def _state_dir(settings: Settings, address: str) -> Path:
    return settings.run_dir / "registry" / address.replace(":", "_")


def answers(address: str, timeout: float = 2.0) -> bool:
    try:
        r = requests.get(f"http://{address}/v2/", timeout=timeout)
    except requests.RequestException:
        return False
    return r.status_code == 200


def config_text(address: str, root: Path) -> str:
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {root}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {address}\n"
    )


def start_registry(
    settings: Settings, *, address: str | None = None, root: Path | None = None
) -> Registry:
    """Start the registry at ``address`` (default: ``[registry] address``) unless one answers."""
    address = address or settings.registry.address
    host = address.rsplit(":", 1)[0]
    if host not in {"127.0.0.1", "localhost"}:
        raise RegistryError(
            f"The local registry listens on loopback only; {address} is not a loopback address."
        )
    root = root or settings.path(settings.registry.root)
    state = _state_dir(settings, address)
    pid_file = state / "pid"
    if answers(address):
        pid = int(pid_file.read_text()) if pid_file.is_file() else 0
        return Registry(address=address, root=root, pid=pid, started=False)
    hostprograms.ensure_programs(["docker-registry"])
    root.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    config = state / "config.yml"
    config.write_text(config_text(address, root.resolve()), encoding="utf-8")
    proc = start("docker-registry", "serve", config, log_file=state / "registry.log")
    pid_file.write_text(str(proc.pid), encoding="utf-8")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log_text = (state / "registry.log").read_text(errors="replace")[-1500:]
            raise RegistryError(
                f"docker-registry exited with code {proc.returncode} at start.", hint=log_text
            )
        if answers(address, timeout=1):
            return Registry(address=address, root=root, pid=proc.pid, started=True)
        time.sleep(0.2)
    proc.terminate()
    raise RegistryError(f"docker-registry did not answer on {address} within 30 s.")


def stop_registry(settings: Settings, *, address: str | None = None) -> bool:
    """Stop the registry this toolkit started at ``address``; False when none was running."""
    address = address or settings.registry.address
    pid_file = _state_dir(settings, address) / "pid"
    if not pid_file.is_file():
        return False
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        _reap(pid)
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    # When this process started the registry (tests do), it is our child: collect it so that it
    # does not linger as a zombie that os.kill(pid, 0) still finds.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
