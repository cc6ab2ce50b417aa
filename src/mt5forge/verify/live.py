"""The image running: the container under test, its partner, and a helper that looks inside.

Verify starts the image as its compose file runs it (the secure variants as their service in
``compose/docker-compose.secure.yml`` runs them, :mod:`mt5forge.verify.compose`: its user, a
read-only root, every capability dropped, no-new-privileges, its memory, swap, pids and CPU
limits, its tmpfs mounts, fresh volumes where it mounts named ones such as ``/logs``, and its
plain environment), with credentials made up for this run (:class:`Canary`): the login in the
environment, the password and server as ``*_FILE`` secrets. A terminal image serves the
bridge and is paired with the project's bot; a bot image joins ``terminal-sim``'s network
namespace. Partners are this run's builds, by image id, where the run built them
(:func:`partner_ref`).

The helper is the project's base image joined to the target's network and PID namespaces
(``--network container:T --pid container:T``) with ``CAP_SYS_PTRACE``: it reads
``/proc/<pid>/root`` (the target's filesystem, shell or not), ``/proc/<pid>/status`` and
``/proc/net/tcp*``. testinfra's docker backend reaches the helper (it needs ``/bin/sh``, which
the helper has and ``bot:secure`` has not). The helper counts only processes in the target's
cgroup, never its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import re
import secrets
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import docker.errors

from mt5forge.errors import VerificationError
from mt5forge.pairing import SIM_START_ENV
from mt5forge.verify.compose import ComposeRun, load_service
from mt5forge.verify.expectations import Expectation

log = logging.getLogger(__name__)

LABEL = {"org.mt5forge.verify": "1"}
SECRETS_DIR = "/run/secrets"
#: Health probes every 2 s instead of the image's 10-30 s: the image's own test command,
#: inherited (an empty Test inherits it), only sooner.
FAST_HEALTH = {"interval": 2_000_000_000, "timeout": 10_000_000_000, "retries": 3,
               "start_period": 60_000_000_000}  # fmt: skip
_LISTENING = re.compile(rb"mt5bridge listening on \S+ \([^,]*, backend (\w+)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Canary:
    """Made-up credentials for one run; none of them may show anywhere verify looks."""

    login: str
    password: str
    server: str
    vnc: str

    @classmethod
    def make(cls) -> Canary:
        tag = secrets.token_hex(6)
        return cls(
            login=str(70_000_000 + secrets.randbelow(9_999_999)),
            password=f"cnry-pw-{tag}-{secrets.token_urlsafe(9)}",
            server=f"Canary-{tag}-Demo",
            vnc=f"cnry-vnc-{secrets.token_hex(6)}",
        )

    def secrets(self) -> tuple[str, ...]:
        """What must never show: the server name is not secret (the bot logs it)."""
        return (self.password, self.login, self.vnc)

    def scrub(self, text: str) -> str:
        for value in self.secrets():
            text = text.replace(value, "<canary>")
        return text


@dataclasses.dataclass(frozen=True, kw_only=True)
class Proc:
    pid: int
    uids: tuple[int, ...]
    gids: tuple[int, ...]
    cap_eff: int
    no_new_privs: bool
    cmdline: str
    sockets: frozenset[int]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Listener:
    address: str
    port: int
    inode: int

    def __str__(self) -> str:
        return f"{self.address}:{self.port}"


def _addr(hexaddr: str) -> str:
    import ipaddress

    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    v6 = ipaddress.IPv6Address(words)
    return str(v6.ipv4_mapped) if v6.ipv4_mapped else f"[{v6}]"


def parse_tcp(text: str) -> list[Listener]:
    """LISTEN sockets (state 0A) of ``/proc/net/tcp`` and ``tcp6``."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or fields[3] != "0A" or ":" not in fields[1]:
            continue
        host, port = fields[1].rsplit(":", 1)
        with contextlib.suppress(ValueError):
            out.append(Listener(address=_addr(host), port=int(port, 16), inode=int(fields[9])))
    return out


_FACTS = r"""
for p in /proc/[0-9]*; do
  grep -qs "$1" "$p/cgroup" || continue
  echo "@proc ${p#/proc/}"
  grep -s -E '^(Uid|Gid|CapEff|NoNewPrivs):' "$p/status"
  printf 'cmd '; tr '\0\n' '  ' < "$p/cmdline"; echo
  for f in "$p"/fd/*; do l=$(readlink "$f") && case "$l" in socket:*) echo "sock $l";; esac; done
done
echo @tcp
cat /proc/net/tcp /proc/net/tcp6 2>/dev/null
"""


def parse_facts(text: str) -> tuple[list[Proc], list[Listener]]:
    procs: list[Proc] = []
    head, _, tcp = text.partition("@tcp\n")
    for block in head.split("@proc ")[1:]:
        lines = block.splitlines()
        fields: dict[str, str] = {}
        socks: set[int] = set()
        cmd = ""
        for line in lines[1:]:
            if line.startswith("cmd "):
                cmd = line[4:].strip()
            elif line.startswith("sock socket:["):
                socks.add(int(line[len("sock socket:[") : -1]))
            elif ":" in line:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        if "Uid" not in fields:
            continue  # exited while we looked
        procs.append(
            Proc(
                pid=int(lines[0]),
                uids=tuple(int(x) for x in fields["Uid"].split()),
                gids=tuple(int(x) for x in fields.get("Gid", "").split()),
                cap_eff=int(fields.get("CapEff", "0"), 16),
                no_new_privs=fields.get("NoNewPrivs") == "1",
                cmdline=cmd,
                sockets=frozenset(socks),
            )
        )
    return procs, parse_tcp(tcp)


class Helper:
    """The base image in the target's namespaces, reached through testinfra."""

    def __init__(self, client: Any, image: str, target: Any, network: Any) -> None:
        """``network``: the container that owns the target's network namespace (the target,
        or the terminal a bot joined: the engine joins an owner, not a joiner)."""
        import testinfra  # type: ignore[import-untyped]

        self.target = target
        self.container = client.containers.run(
            image, ["sleep", "infinity"], detach=True, labels=LABEL,
            network_mode=f"container:{network.id}", pid_mode=f"container:{target.id}",
            cap_add=["SYS_PTRACE"], user="0",
        )  # fmt: skip
        self.host = testinfra.get_host(f"docker://{self.container.id}")

    def run(self, script: str, *args: str) -> str:
        quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in args)
        result = self.host.run(f"sh -c {_q(script)} helper {quoted}")
        if result.rc != 0:
            raise VerificationError(f"The helper failed ({result.rc}): {result.stderr[-500:]}")
        return str(result.stdout)

    def facts(self) -> tuple[list[Proc], list[Listener]]:
        return parse_facts(self.run(_FACTS, self.target.id))

    def put(self, path: str, data: bytes) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(path.rsplit("/", 1)[-1])
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
        self.container.put_archive(path.rsplit("/", 1)[0] or "/", buf.getvalue())

    def close(self) -> None:
        with contextlib.suppress(docker.errors.DockerException):
            self.container.remove(force=True)


def _q(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@dataclasses.dataclass(kw_only=True)
class Running:
    """What a check may look at while the image runs."""

    expectation: Expectation
    reference: str
    target: Any
    partner: Any | None
    helper: Helper
    canary: Canary
    terminal_kind: str
    """``simulator``, ``fixture terminal`` or ``real terminal``: what answered as the terminal."""
    backend: str
    started: float
    compose: ComposeRun | None = None
    """The compose service the target was run as (hardened variants), or None."""
    mounted: tuple[str, ...] = ()
    """The target's writable mounts (tmpfs and volumes): its writes that are not in its diff."""
    partners: tuple[tuple[str, str], ...] = ()
    """``(image:variant, reference)`` of each partner image started with the target."""
    notes: dict[str, str] = dataclasses.field(default_factory=dict)

    def logs(self) -> str:
        parts = []
        for c in (self.target, self.partner):
            if c is not None:
                with contextlib.suppress(docker.errors.DockerException):
                    parts.append(c.logs().decode("utf-8", "replace"))
        return "\n".join(parts)


def partner_ref(partners: Mapping[str, str], prefix: str, key: str) -> str:
    """The image to pair with: this run's build of ``key`` (``image:variant``) by its id when
    the run built it, else the project's tag (``invoke verify --ref``, or a partial build)."""
    return partners.get(key) or f"{prefix}/{key}"


def run_args(e: Expectation, root: Path) -> tuple[ComposeRun | None, dict[str, Any]]:
    """The hardened variants: the secure compose file's service, and the engine arguments
    that run the image as that service does (user, read-only root, dropped capabilities,
    no-new-privileges, limits, no swap). Nothing is added that the file does not say: what
    it lacks, the ``hardening`` check finds missing. Slim variants: nothing added."""
    if not e.hardened:
        return None, {}
    svc = load_service(root, e.compose_service)
    return svc, svc.engine_args()


def _tmpfs(e: Expectation, uid: int, gid: int, svc: ComposeRun | None) -> dict[str, str]:
    """The expectation's tmpfs mounts, where the compose service mounts nothing else, and the
    compose service's own."""
    taken = {p for p, _ in svc.volumes} if svc else set()
    out = {p: (f"uid={uid},gid={gid}" if p == "/config" else "mode=1777")
           for p in e.tmpfs if p not in taken}  # fmt: skip
    out.update(dict(svc.tmpfs) if svc else {})
    return out


def _wait(container: Any, pattern: re.Pattern[bytes], timeout: float, what: str) -> re.Match[bytes]:
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        m = pattern.search(container.logs())
        if m:
            return m
        if container.status == "exited" or time.monotonic() > deadline:
            tail = container.logs(tail=15).decode("utf-8", "replace")
            raise VerificationError(f"{what} (container {container.status}).", hint=tail)
        time.sleep(0.3)


@contextlib.contextmanager
def running(
    client: Any,
    e: Expectation,
    reference: str,
    *,
    root: Path,
    prefix: str,
    helper_image: str,
    uid: int,
    gid: int,
    canary: Canary,
    partners: Mapping[str, str] | None = None,
    timeout: float = 90,
) -> Iterator[Running]:
    """Start ``reference`` (an image id, so a tag moved meanwhile cannot swap the image) as
    ``e`` says, wait until it serves (terminal) or reports (bot), and yield it with its
    helper; remove everything at the end, the volumes made for it too. ``partners``: the ids
    of this run's builds by ``image:variant``, to pair with (see :func:`partner_ref`)."""
    tmp = Path(tempfile.mkdtemp(prefix="verify-"))
    tmp.chmod(0o755)
    for name, value in (("mt5_password", canary.password), ("mt5_server", canary.server),
                        ("vnc_password", canary.vnc)):  # fmt: skip
        (tmp / name).write_text(value, encoding="utf-8")
        (tmp / name).chmod(0o444)  # the containers' UID is not ours
    env = {
        "MT5_LOGIN": canary.login,
        "MT5_PASSWORD_FILE": f"{SECRETS_DIR}/mt5_password",
        "MT5_SERVER_FILE": f"{SECRETS_DIR}/mt5_server",
    }
    mounts: dict[str, dict[str, str]] = {str(tmp): {"bind": SECRETS_DIR, "mode": "ro"}}
    started = time.monotonic()
    created: list[Any] = []
    volumes: list[Any] = []
    helper: Helper | None = None
    used: list[tuple[str, str]] = []

    def partner_image(key: str) -> str:
        ref = partner_ref(partners or {}, prefix, key)
        used.append((key, ref))
        return ref

    try:
        svc, hardened = run_args(e, root)
        own = dict(mounts)
        for path, mode in svc.volumes if svc else ():
            # A fresh named volume, as compose makes one: the engine seeds it from the image.
            vol = client.volumes.create(labels=LABEL)
            volumes.append(vol)
            own[vol.name] = {"bind": path, "mode": mode}
        tmpfs = _tmpfs(e, uid, gid, svc)
        own_env = {**(dict(svc.environment) if svc else {}), **env}
        writable_volumes = [p for p, m in (svc.volumes if svc else ()) if m != "ro"]
        mounted = tuple(sorted({*tmpfs, *writable_volumes}))
        if e.role == "terminal":
            # SIM_START_ENV: a simulator's market opens on a weekday, so the pair's demo order
            # trades on any day (the real terminal's bridge does not read it).
            term_env = {**own_env, **SIM_START_ENV,
                        **({"MT5_VNC_PASSWORD_FILE": f"{SECRETS_DIR}/vnc_password"}
                           if e.gui_secret else {})}  # fmt: skip
            target = client.containers.run(
                reference, detach=True, environment=term_env, volumes=own, labels=LABEL,
                tmpfs=tmpfs, healthcheck=FAST_HEALTH, **hardened,
            )  # fmt: skip
            created.append(target)
            backend = _wait(target, _LISTENING, timeout, "The bridge did not start")[1].decode()
            partner = None
            if backend in ("simulator", "metatrader5"):
                partner = client.containers.run(
                    partner_image("bot:secure"), detach=True,
                    network_mode=f"container:{target.id}",
                    environment={**env, "MT5BOT_INTERVAL": "1"}, volumes=mounts, labels=LABEL,
                    read_only=True, tmpfs={"/config": f"uid={uid},gid={gid}"},
                    cap_drop=["ALL"], security_opt=["no-new-privileges"],
                )  # fmt: skip
                created.append(partner)
            image = target.image
        else:
            partner = client.containers.run(
                partner_image("terminal-sim:slim"), detach=True,
                environment={**env, **SIM_START_ENV},
                volumes=mounts, labels=LABEL, read_only=True,
                tmpfs={"/config": f"uid={uid},gid={gid}"},
            )  # fmt: skip
            created.append(partner)
            backend = _wait(partner, _LISTENING, timeout, "terminal-sim did not start")[1].decode()
            target = client.containers.run(
                reference, detach=True, network_mode=f"container:{partner.id}", volumes=own,
                environment={**own_env, "MT5BOT_INTERVAL": "1", "MT5BOT_DEMO_ORDER": "true"},
                labels=LABEL, tmpfs=tmpfs, healthcheck=FAST_HEALTH, **hardened,
            )  # fmt: skip
            created.append(target)
            image = partner.image
        helper = Helper(client, helper_image, target, partner if e.role == "bot" else target)
        labels: Mapping[str, str] = image.labels or {}
        if backend == "simulator":
            kind = "simulator"
        elif labels.get("org.mt5forge.profile") == "fixture":
            kind = "fixture terminal"
        else:
            kind = "real terminal"
        yield Running(
            expectation=e, reference=reference, target=target, partner=partner, helper=helper,
            canary=canary, terminal_kind=kind, backend=backend, started=started, compose=svc,
            mounted=mounted, partners=tuple(used),
        )  # fmt: skip
    except docker.errors.DockerException as err:
        raise VerificationError(f"Running {reference} failed: {err}") from err
    finally:
        if helper is not None:
            helper.close()
        for c in reversed(created):
            with contextlib.suppress(docker.errors.DockerException):
                c.remove(force=True)
        for vol in volumes:
            with contextlib.suppress(docker.errors.DockerException):
                vol.remove(force=True)
        shutil.rmtree(tmp, ignore_errors=True)


_INIT_FAILED = re.compile(rb"initialize failed: \((-?\d+)\) (.*?)\); retrying")
_LOGGED_IN = re.compile(rb"logged in to account")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TerminalPair:
    backend: str
    kind: str
    answer: str
    """The package's ``last_error()`` as the bot logged it, or ``logged in``."""
    log: str
    """The bot's output, canaries scrubbed."""


def pair_with_terminal(
    client: Any,
    bot_reference: str,
    terminal_reference: str,
    *,
    canary: Canary,
    uid: int,
    gid: int,
    timeout: float = 90,
) -> TerminalPair:
    """Start ``terminal_reference`` (slim) and the bot under test in its namespace; return what
    the terminal's backend answered the bot's login: on the fixture profile, the real
    MetaTrader5 package's error through the Wine bridge."""
    tmp = Path(tempfile.mkdtemp(prefix="verify-pair-"))
    tmp.chmod(0o755)
    for name, value in (("mt5_password", canary.password), ("mt5_server", canary.server)):
        (tmp / name).write_text(value, encoding="utf-8")
        (tmp / name).chmod(0o444)
    env = {
        "MT5_LOGIN": canary.login,
        "MT5_PASSWORD_FILE": f"{SECRETS_DIR}/mt5_password",
        "MT5_SERVER_FILE": f"{SECRETS_DIR}/mt5_server",
    }
    mounts = {str(tmp): {"bind": SECRETS_DIR, "mode": "ro"}}
    created: list[Any] = []
    try:
        term = client.containers.run(
            terminal_reference, detach=True, environment=env, volumes=mounts, labels=LABEL
        )
        created.append(term)
        backend = _wait(term, _LISTENING, timeout, "The terminal's bridge did not start")[1]
        bot = client.containers.run(
            bot_reference, detach=True, network_mode=f"container:{term.id}", volumes=mounts,
            environment={**env, "MT5BOT_INTERVAL": "1"}, labels=LABEL, read_only=True,
            tmpfs={"/config": f"uid={uid},gid={gid}"},
        )  # fmt: skip
        created.append(bot)
        m = _wait(bot, re.compile(_INIT_FAILED.pattern + b"|" + _LOGGED_IN.pattern), timeout,
                  "The bot neither logged in nor logged the terminal's refusal")  # fmt: skip
        answer = f"({m[1].decode()}) {m[2].decode('utf-8', 'replace')}" if m[1] else "logged in"
        labels = term.image.labels or {}
        kind = "fixture terminal" if labels.get("org.mt5forge.profile") == "fixture" else "real"
        log_text = canary.scrub(bot.logs().decode("utf-8", "replace"))
        return TerminalPair(backend=backend.decode(), kind=kind, answer=answer, log=log_text)
    except docker.errors.DockerException as err:
        raise VerificationError(
            f"Pairing {bot_reference} with {terminal_reference}: {err}"
        ) from err
    finally:
        for c in reversed(created):
            with contextlib.suppress(docker.errors.DockerException):
                c.remove(force=True)
        shutil.rmtree(tmp, ignore_errors=True)
