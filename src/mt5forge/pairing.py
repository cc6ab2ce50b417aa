"""Run a bot paired with a terminal the way the compose files do, and report what it saw.

The bot joins the terminal's network namespace (``--network container:<terminal>``), so the
bridge answers on 127.0.0.1 there and nowhere else. Credentials are made for this run, handed to
both containers as Docker-secret-style files (``MT5_*_FILE``), and never logged: the bot's output
is checked for them before it is returned.

Here the terminal is ``terminal-sim``; the same code pairs the real terminal where its artifacts
can be fetched. The result says which one answered.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import docker.errors

from mt5forge.config import Settings
from mt5forge.errors import VerificationError
from mt5forge.tools import docker as dockertool

log = logging.getLogger(__name__)

SECRETS_IN_CONTAINER = "/run/secrets"
HARDENING: dict[str, Any] = {
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "pids_limit": 256,
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class PairResult:
    terminal_image: str
    bot_image: str
    backend: str
    """``simulator`` (terminal-sim) or ``metatrader5`` (the real terminal): what the bridge
    said it serves when it started, not what the image's name suggests."""
    exit_code: int
    reports: tuple[str, ...]
    """The bot's account-and-tick report lines."""
    log_tail: str
    """The end of the bot's output (secrets were checked absent)."""
    seconds: float


def _secret_files(root: Path, values: dict[str, str]) -> None:
    root.chmod(0o755)
    for name, value in values.items():
        path = root / name
        path.write_text(value, encoding="utf-8")
        # The containers run as a non-root UID that is not ours: the file must be readable.
        path.chmod(0o444)


_LISTENING = re.compile(rb"mt5bridge listening on \S+ \([^,]*, backend (\w+)")


def _wait_for_bridge(container: Any, timeout: float) -> str:
    """Wait for the bridge's "listening" line; return the backend it names."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "exited":
            raise VerificationError(
                "The terminal exited before its bridge answered.",
                hint=container.logs(tail=20).decode(errors="replace"),
            )
        m = _LISTENING.search(container.logs())
        if m:
            return m.group(1).decode()
        time.sleep(0.3)
    raise VerificationError(f"The terminal's bridge did not start within {timeout:.0f} s.")


def run_pair(
    settings: Settings,
    *,
    terminal: str = "terminal-sim",
    terminal_variant: str = "slim",
    bot_variant: str = "secure",
    iterations: int = 2,
    timeout: float = 120,
) -> PairResult:
    """Start ``terminal`` and a bot in its namespace; the bot reports ``iterations`` times."""
    started = time.monotonic()
    client = dockertool.connect()
    prefix = settings.images.prefix
    terminal_image = f"{prefix}/{terminal}:{terminal_variant}"
    bot_image = f"{prefix}/bot:{bot_variant}"
    login = str(secrets.randbelow(9 * 10**7) + 10**7)
    password = secrets.token_urlsafe(18)
    server = "mt5forge-Demo"
    tmp = Path(tempfile.mkdtemp(prefix="pair-"))
    _secret_files(tmp, {"mt5_login": login, "mt5_password": password, "mt5_server": server})
    env = {
        f"MT5_{key}_FILE": f"{SECRETS_IN_CONTAINER}/mt5_{key.lower()}"
        for key in ("LOGIN", "PASSWORD", "SERVER")
    }
    mounts = {str(tmp): {"bind": SECRETS_IN_CONTAINER, "mode": "ro"}}
    labels = {"org.mt5forge.pairing": "demo"}
    # Read-only roots, as the secure compose file runs them; state goes to a tmpfs /config.
    state = {"/config": f"uid={settings.runtime.uid},gid={settings.runtime.gid}"}
    term = bot = None
    try:
        term = client.containers.run(
            terminal_image, detach=True, environment=env, volumes=mounts, labels=labels,
            read_only=True, tmpfs=state,
            **HARDENING,
        )  # fmt: skip
        backend = _wait_for_bridge(term, timeout)
        bot = client.containers.run(
            bot_image, detach=True, network_mode=f"container:{term.id}", labels=labels,
            environment={**env, "MT5BOT_ITERATIONS": str(iterations), "MT5BOT_INTERVAL": "1"},
            volumes=mounts, read_only=True, tmpfs=state,
            **HARDENING,
        )  # fmt: skip
        exit_code = int(bot.wait(timeout=timeout)["StatusCode"])
        output = bot.logs().decode(errors="replace")
    except docker.errors.DockerException as e:
        raise VerificationError(f"Pairing {bot_image} with {terminal_image} failed: {e}") from e
    finally:
        for c in (bot, term):
            if c is not None:
                c.remove(force=True)
        shutil.rmtree(tmp, ignore_errors=True)
    for secret, what in ((password, "password"), (login, "full account number")):
        if secret in output:
            raise VerificationError(f"The bot's log shows the {what}: redaction failed.")
    reports = tuple(line for line in output.splitlines() if " bid=" in line)
    if exit_code != 0 or len(reports) < iterations:
        raise VerificationError(
            f"The bot paired with {terminal_image} exited {exit_code} after "
            f"{len(reports)} of {iterations} reports.",
            hint="\n".join(output.splitlines()[-15:]),
        )
    return PairResult(
        terminal_image=terminal_image,
        bot_image=bot_image,
        backend=backend,
        exit_code=exit_code,
        reports=reports,
        log_tail="\n".join(output.splitlines()[-8:]),
        seconds=time.monotonic() - started,
    )
