"""Run a bot paired with a terminal the way the compose files do, and report what it saw.

The bot joins the terminal's network namespace (``--network container:<terminal>``), so the
bridge answers on 127.0.0.1 there and nowhere else. Credentials are made for this run, handed to
both containers as Docker-secret-style files (``MT5_*_FILE``), and never logged: the bot's output
is checked for them before it is returned.

``terminal="terminal-sim"`` trades with the simulator. ``terminal="terminal"`` pairs the
MetaTrader 5 image: on the fixture profile its terminal is a stand-in, so the bot's login fails
and the result carries the real MetaTrader5 package's own ``last_error()`` (as the bot logged
it) and the bridge's ``status``; with the real terminal and a real account it trades like the
simulator. The result says which backend answered; nothing here makes up an answer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Mapping
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
#: Where the simulated market's clock starts in the pairs this project runs itself (the demo,
#: verify's pair check): a Wednesday noon (UTC), so the bot's demo order trades on whatever day
#: the pipeline runs; forex does not trade on Saturday and Sunday, and on the wall clock the
#: order would be refused then. The compose files run terminal-sim on the wall clock.
SIM_START = "2026-01-07T12:00:00Z"
SIM_START_ENV = {"MT5_SIM_START": SIM_START}


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
    last_error: tuple[int, str] | None = None
    """When the bot's login failed: the ``last_error()`` it read through the bridge, i.e. the
    backend's own answer (the real MetaTrader5 package's, for ``backend == "metatrader5"``)."""
    status: Mapping[str, Any] | None = None
    """The bridge's ``status`` (mt5bridge.remote.status), read from the bot's namespace."""


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


#: How the reference bot logs a refused initialize (mt5bot.bot._log_in, then run's retry line).
_INIT_FAILED = re.compile(rb"initialize failed: \((-?\d+)\) (.*?)\); retrying")

_STATUS_PROBE = "import json, mt5bridge.remote as r\nprint(json.dumps(r.status()))\n"


def _wait_for_bot(bot: Any, timeout: float) -> tuple[int | None, re.Match[bytes] | None]:
    """The bot's exit code, or the refused-login line it logged (then it is still running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bot.reload()
        if bot.status == "exited":
            return int(bot.attrs["State"]["ExitCode"]), None
        m = _INIT_FAILED.search(bot.logs())
        if m:
            return None, m
        time.sleep(0.3)
    raise VerificationError(
        f"The bot neither finished nor logged a refused login in {timeout:.0f} s."
    )


def _bridge_status(client: Any, bot_image: str, terminal: Any, labels: dict[str, str]) -> Any:
    out = client.containers.run(
        bot_image, ["python3", "-c", _STATUS_PROBE], network_mode=f"container:{terminal.id}",
        labels=labels, remove=True, read_only=True, **HARDENING,
    )  # fmt: skip
    return json.loads(out.decode().strip().splitlines()[-1])


def _terminal_options(terminal: str, variant: str, uid: int, gid: int) -> dict[str, Any]:
    """How each terminal image runs here: as its compose file runs it."""
    state = {"/config": f"uid={uid},gid={gid}"}
    if terminal == "terminal-sim":
        return {"read_only": True, "tmpfs": state}
    if variant == "secure":
        # Read-only root; the Wine prefix is copied to /config, Xvfb and the supervisor's
        # state live on /tmp.
        return {"read_only": True, "tmpfs": {**state, "/tmp": "mode=1777"}}  # noqa: S108  # in the container
    # slim keeps its Wine prefix in the image layer, which Wine writes to.
    return {}


def run_pair(
    settings: Settings,
    *,
    terminal: str = "terminal-sim",
    terminal_variant: str = "slim",
    bot_variant: str = "secure",
    iterations: int = 2,
    timeout: float = 120,
) -> PairResult:
    """Start ``terminal`` and a bot in its namespace; the bot reports ``iterations`` times, or,
    where the login fails (the fixture terminal), the package's answer is returned instead."""
    started = time.monotonic()
    client = dockertool.connect()
    prefix = settings.images.prefix
    terminal_image = f"{prefix}/{terminal}:{terminal_variant}"
    bot_image = f"{prefix}/bot:{bot_variant}"
    login = str(secrets.randbelow(9 * 10**7) + 10**7)
    password = secrets.token_urlsafe(18)
    server = "mt5forge-Demo"
    tmp = Path(tempfile.mkdtemp(prefix="pair-"))
    _secret_files(
        tmp,
        {
            "mt5_login": login,
            "mt5_password": password,
            "mt5_server": server,
            # Only the secure terminal reads it (its GUI refuses to start without one).
            "vnc_password": secrets.token_urlsafe(12),
        },
    )
    env = {
        f"MT5_{key}_FILE": f"{SECRETS_IN_CONTAINER}/mt5_{key.lower()}"
        for key in ("LOGIN", "PASSWORD", "SERVER")
    }
    term_env = {**env, "MT5_VNC_PASSWORD_FILE": f"{SECRETS_IN_CONTAINER}/vnc_password"}
    if terminal == "terminal-sim":
        term_env.update(SIM_START_ENV)
    mounts = {str(tmp): {"bind": SECRETS_IN_CONTAINER, "mode": "ro"}}
    labels = {"org.mt5forge.pairing": "demo"}
    # Read-only roots, as the secure compose file runs them; state goes to a tmpfs /config.
    state = {"/config": f"uid={settings.runtime.uid},gid={settings.runtime.gid}"}
    term = bot = None
    last_error: tuple[int, str] | None = None
    status = None
    try:
        term = client.containers.run(
            terminal_image, detach=True, environment=term_env, volumes=mounts, labels=labels,
            **_terminal_options(terminal, terminal_variant, settings.runtime.uid,
                                settings.runtime.gid),
            **HARDENING,
        )  # fmt: skip
        backend = _wait_for_bridge(term, timeout)
        bot = client.containers.run(
            bot_image, detach=True, network_mode=f"container:{term.id}", labels=labels,
            environment={**env, "MT5BOT_ITERATIONS": str(iterations), "MT5BOT_INTERVAL": "1"},
            volumes=mounts, read_only=True, tmpfs=state,
            **HARDENING,
        )  # fmt: skip
        code, refused = _wait_for_bot(bot, timeout)
        if refused is not None:
            last_error = (int(refused.group(1)), refused.group(2).decode(errors="replace"))
            status = _bridge_status(client, bot_image, term, labels)
            bot.stop(timeout=15)
            code = int(bot.wait(timeout=30)["StatusCode"])
        assert code is not None  # noqa: S101  # one of the two happened
        exit_code = code
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
    # A refused login (the fixture terminal) is a result: the package's answer, then a clean
    # stop. Otherwise the bot must have reported every iteration.
    if exit_code != 0 or (last_error is None and len(reports) < iterations):
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
        last_error=last_error,
        status=status,
    )
