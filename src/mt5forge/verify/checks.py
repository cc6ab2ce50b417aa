"""The checks, one function each, in the order verify runs them.

A check looks at a :class:`Subject` (the image's config, its layers, the running container and
its helper) and returns what it saw when all is well, or raises :class:`Failed` saying what was
found and where, or :class:`NotApplicable` with the reason. Checks never start what they look
at; :mod:`mt5forge.verify.run` does, once per image, and every check reads the same container.
``CHECKS`` also says which dockle checkpoint or container-structure-test kind each one covers.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import re
import socket
import ssl
import struct
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mt5forge.verify.compose import compose_publishing
from mt5forge.verify.expectations import Expectation
from mt5forge.verify.layers import Entry, SavedImage
from mt5forge.verify.live import (
    SECRETS_DIR,
    Listener,
    Proc,
    Running,
    pair_with_terminal,
    partner_ref,
)
from mt5forge.verify.patterns import Scanner

BRIDGE_MAGIC = b"MT5B"


class Failed(Exception):  # a check's outcome, not a program error
    """The check found what it must not; the message says what and where."""


class NotApplicable(Exception):
    """The check does not apply to this image; the message says why."""


@dataclasses.dataclass(kw_only=True)
class Subject:
    expectation: Expectation
    reference: str
    """The tag (or what ``--ref`` named): what the metadata check judges. The image itself
    is run by its id (``running.reference``)."""
    attrs: dict[str, Any]
    """``docker image inspect``."""
    saved: SavedImage
    running: Running
    scanner: Scanner
    uid: int
    gid: int
    root: Path
    client: Any
    helper_image: str
    prefix: str = "mt5forge"
    partners: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """This run's builds by ``image:variant``: their ids, to pair with."""
    _facts: tuple[list[Proc], list[Listener]] | None = None
    _final: dict[str, Entry] | None = None

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.attrs.get("Config") or {})

    def final(self) -> dict[str, Entry]:
        if self._final is None:
            self._final = self.saved.final()
        return self._final

    def facts(self, fresh: bool = False) -> tuple[list[Proc], list[Listener]]:
        if self._facts is None or fresh:
            self._facts = self.running.helper.facts()
        return self._facts

    def run_user(self) -> tuple[int, int, str]:
        """The uid and gid every process must have, and whose they are, as the expectations
        say (``run_as``)."""
        if self.expectation.run_as != "compose":
            return self.uid, self.gid, "the configured runtime user"
        svc = self.running.compose
        ids = svc.user_ids() if svc else None
        if svc is None or ids is None:
            raise Failed(
                f"the expectations say {self.expectation} runs as its compose service's user, "
                f"but service {self.expectation.compose_service!r} sets no UID:GID"
            )
        return ids[0], ids[1], f"the {svc.service} service's user in the secure compose file"

    def own_listeners(self) -> list[Listener]:
        procs, listeners = self.facts()
        inodes = {i for p in procs for i in p.sockets}
        return [x for x in listeners if x.inode in inodes]


def _lines(items: list[str], limit: int = 12) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


# --- user ------------------------------------------------------------------------------------


def user_config(s: Subject) -> str:
    want = f"{s.uid}:{s.gid}"
    user = str(s.config.get("User") or "")
    if user != want:
        raise Failed(f"image config User is {user or '(unset: root)'!r}, expected {want!r}")
    return f"User {user}"


def user_processes(s: Subject) -> str:
    uid, gid, whose = s.run_user()
    procs, _ = s.facts()
    if not procs:
        raise Failed("no process of the container was found")
    bad = [
        f"pid {p.pid} uids {p.uids} gids {p.gids} ({p.cmdline[:60]})"
        for p in procs
        if set(p.uids) != {uid} or set(p.gids) != {gid}
    ]
    if bad:
        raise Failed(f"processes not running as {uid}:{gid} ({whose}): {_lines(bad)}")
    return f"{len(procs)} processes, all {uid}:{gid} ({whose})"


def no_sudo(s: Subject) -> str:
    found = [
        p
        for p in s.final()
        if posixpath.basename(p) in ("sudo", "sudoedit", "doas") or p.startswith("/etc/sudoers")
    ]
    if found:
        raise Failed(f"sudo is in the filesystem: {_lines(sorted(found))}")
    return "no sudo, sudoers or doas"


# --- files -----------------------------------------------------------------------------------


def setuid_files(s: Subject) -> str:
    found = sorted(p for p, e in s.final().items() if e.kind == "file" and e.mode & 0o6000)
    unknown = [p for p in found if p not in s.expectation.setuid_allowed]
    if unknown:
        where = [f"{p} (mode {s.final()[p].mode:04o})" for p in unknown]
        raise Failed(f"setuid/setgid files not on the {s.expectation} allow-list: {_lines(where)}")
    return f"{len(found)} setuid/setgid files, all allow-listed"


_SHELLS = ("/bin/sh", "/usr/bin/sh", "/bin/bash", "/usr/bin/bash", "/usr/bin/dash", "/bin/dash")


def shell(s: Subject) -> str:
    found = [p for p in _SHELLS if p in s.final()]
    if s.expectation.shell:
        if not found:
            raise Failed("no /bin/sh, though the expectations say this variant has a shell")
        return f"shell present as expected ({found[0]})"
    if found:
        raise Failed(f"a shell is in a variant that must have none: {', '.join(found)}")
    return "no shell"


def writable(s: Subject) -> str:
    bad = []
    users = {s.uid, s.run_user()[0]}
    for path, e in s.final().items():
        if e.kind in ("link", "other"):  # device nodes: the engine mounts its own /dev
            continue
        mine = e.uid in users
        world = bool(e.mode & 0o002)
        if (mine or world) and not s.expectation.may_write(path):
            bad.append(f"{path} ({'owned by the runtime user' if mine else f'mode {e.mode:04o}'})")
    if bad:
        raise Failed(
            f"writable by the runtime user outside {s.expectation.writable}: {_lines(bad)}"
        )
    return "writable only under " + ", ".join(s.expectation.writable)


_UNNEEDED = re.compile(r"(?:^|/)(?:\.git|\.svn|\.DS_Store|\.dockerenv|[^/]*\.swp|Thumbs\.db)$")


def unnecessary_files(s: Subject) -> str:
    found = sorted(p for p in s.final() if _UNNEEDED.search(p))
    if found:
        raise Failed(f"files that need not ship: {_lines(found)}")
    return "no VCS directories, editor swap files or desktop metadata"


def apt_caches(s: Subject) -> str:
    found = sorted(
        p
        for p, e in s.final().items()
        if e.kind == "file"
        and (p.startswith("/var/lib/apt/lists/") or p.startswith("/var/cache/apt/archives/"))
        and not p.endswith("/lock")
    )
    if found:
        raise Failed(f"apt lists or package caches left: {_lines(found)}")
    return "apt lists and caches are empty"


def licenses(s: Subject) -> str:
    fs = s.final()
    docs = [p for p in fs if p.startswith("/usr/share/doc/") and p.endswith("/copyright")]
    if not docs and not any(p.startswith("/usr/share/doc/") for p in fs):
        raise NotApplicable(
            "/usr/share/doc is stripped from this variant; the SBOM stage records each "
            "package's licence from dpkg's database"
        )
    if not docs:
        raise Failed("/usr/share/doc ships without any package copyright file")
    return f"{len(docs)} Debian copyright files"


# --- secrets ---------------------------------------------------------------------------------


def _fail_hits(hits: list[str], what: str) -> None:
    if hits:
        raise Failed(f"{what}: {_lines(hits)}")


def secrets_config(s: Subject) -> str:
    env = [tuple(v.split("=", 1)) if "=" in v else (v, "") for v in s.config.get("Env") or []]
    labels = list((s.config.get("Labels") or {}).items())
    hits = [str(h) for h in s.scanner.scan_pairs(env, "ENV")]
    hits += [str(h) for h in s.scanner.scan_pairs(labels, "LABEL")]
    _fail_hits(hits, "secrets in the image config")
    return f"{len(env)} environment variables and {len(labels)} labels clean"


def secrets_history(s: Subject) -> str:
    hits: list[str] = []
    history = s.saved.config.get("history") or []
    for i, step in enumerate(history):
        text = str(step.get("created_by", "")).encode()
        hits += [str(h) for h in s.scanner.scan(text, f"history step {i + 1}", anywhere=True)]
    _fail_hits(hits, "secrets in the build history (instructions and build arguments)")
    return f"{len(history)} history steps clean"


def secrets_layers(s: Subject) -> str:
    hits: list[str] = []
    for index, hit in s.saved.hits():
        path = hit.where.split(" ", 2)[-1]
        gone = " (deleted in a later layer)" if s.saved.deleted_later(index, path) else ""
        hits.append(f"{hit.rule} in layer {index + 1}/{len(s.saved.layers)} {path}{gone}")
    _fail_hits(hits, "secrets in the image's layers")
    files = sum(len(layer.entries) for layer in s.saved.layers)
    scanned = sum(layer.scanned_bytes for layer in s.saved.layers) / 1e6
    skipped = sum(layer.binaries for layer in s.saved.layers)
    return (
        f"{len(s.saved.layers)} layers, {files} entries, {scanned:.0f} MB of contents clean "
        f"({skipped} ELF/PE files named only)"
    )


def canary(s: Subject) -> str:
    """The run's made-up credentials appear in no log, command line, image or written file."""
    r = s.running
    places: list[str] = []
    logs = r.logs()
    for value in r.canary.secrets():
        for n, line in enumerate(logs.splitlines(), 1):
            if value in line:
                places.append(f"log line {n}: {r.canary.scrub(line)[:120]}")
                break
    procs, _ = s.facts(fresh=True)
    for p in procs:
        if any(v in p.cmdline for v in r.canary.secrets()):
            places.append(f"command line of pid {p.pid}: {r.canary.scrub(p.cmdline)[:100]}")
    canary_hits = [str(h) for _, h in s.saved.hits() if h.rule == "run-time canary"]
    places += canary_hits
    # The container's writes: its filesystem diff and its in-memory mounts, read in place.
    changed = [c["Path"] for c in (r.target.diff() or []) if c.get("Kind") in (0, 1)]
    # The secrets mount is where the canaries were put on purpose; everything else is a write.
    roots = sorted({p for p in (*r.mounted, *changed)
                    if p != SECRETS_DIR and not p.startswith(SECRETS_DIR + "/")})  # fmt: skip
    pid = min(p.pid for p in procs) if procs else 1
    r.helper.put("/tmp/.verify-canaries", "\n".join(r.canary.secrets()).encode())  # noqa: S108  # in the helper
    listing = "\n".join(f"/proc/{pid}/root{p}" for p in roots)
    r.helper.put("/tmp/.verify-roots", listing.encode())  # noqa: S108  # in the helper
    found = r.helper.run(
        "tr '\\n' '\\0' < /tmp/.verify-roots | xargs -0 -r grep -rlsF -f /tmp/.verify-canaries"
        " -- 2>/dev/null; true"
    )
    for line in found.splitlines():
        path = line.split("/root", 1)[-1]
        if not path.startswith(SECRETS_DIR + "/"):
            places.append(f"file {path} written by the container")
    if places:
        raise Failed(f"the run-time canary shows: {_lines(places)}")
    return (
        f"canaries absent from logs, {len(procs)} command lines, the image and "
        f"{len(roots)} written paths"
    )


# --- ports -----------------------------------------------------------------------------------


def ports_exposed(s: Subject) -> str:
    exposed = sorted((s.config.get("ExposedPorts") or {}).keys())
    want = sorted(s.expectation.exposed)
    if exposed != want:
        extra = sorted(set(exposed) - set(want))
        missing = sorted(set(want) - set(exposed))
        raise Failed(f"EXPOSE is {exposed or 'empty'}: undeclared {extra}, missing {missing}")
    return f"EXPOSE {exposed or 'nothing'}, as declared"


def _loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("[::1]",)


def ports_listeners(s: Subject) -> str:
    mine = s.own_listeners()
    seen = {str(x) for x in mine}
    want = set(s.expectation.listen)
    problems = [f"undeclared listener {x}" for x in sorted(seen - want)]
    problems += [f"declared listener {x} is not listening" for x in sorted(want - seen)]
    for port in sorted((s.config.get("ExposedPorts") or {}).keys()):  # the image's, not ours
        num = int(port.split("/")[0])
        if not any(x.port == num and not _loopback(x.address) for x in mine):
            problems.append(f"EXPOSEd {port} has no listener off loopback")
    if problems:
        raise Failed("; ".join(problems))
    return f"listening on {sorted(seen) or 'nothing'}, as declared"


def ports_not_published(s: Subject) -> str:
    port = f"{s.expectation.bridge_port}/tcp"
    s.running.target.reload()
    attrs = s.running.target.attrs
    # What the engine bound (with the port it picked), else what it was asked to bind.
    bound = ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).get(port) or (
        (attrs.get("HostConfig") or {}).get("PortBindings") or {}
    ).get(port)
    if bound:
        where = ", ".join(f"{b.get('HostIp') or 'every address'}:{b.get('HostPort') or '(any)'}"
                          for b in bound)  # fmt: skip
        raise Failed(f"the bridge port {port} is published on the host by this run: {where}")
    compose = compose_publishing(s.root, int(s.expectation.bridge_port))
    if compose:
        raise Failed(f"a compose file publishes the bridge port {port}: {'; '.join(compose)}")
    return "the bridge port is published neither by this run nor by a compose file"


# --- the bridge: who reaches it --------------------------------------------------------------


def _probe_from_host(address: str, port: int) -> str:
    """``answered`` when a client without a certificate gets a bridge reply, else why not."""
    body = json.dumps({"protocol": 1, "rpyc": "6.0.2", "status": True}).encode()
    hello = BRIDGE_MAGIC + struct.pack(">H", len(body)) + body
    try:
        with socket.create_connection((address, port), timeout=3) as sock:
            sock.settimeout(3)
            sock.sendall(hello)
            if sock.recv(4) == BRIDGE_MAGIC:
                return "answered"
    except OSError as e:
        plain = f"plain: {type(e).__name__}"
    else:
        plain = "plain: no bridge reply"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # probing as a client with no certificate
    try:
        with (
            socket.create_connection((address, port), timeout=3) as raw,
            ctx.wrap_socket(raw) as tls,
        ):
            tls.settimeout(3)
            tls.sendall(hello)
            if tls.recv(4) == BRIDGE_MAGIC:
                return "answered"
    except (OSError, ssl.SSLError) as e:
        return f"{plain}; TLS without a certificate: {type(e).__name__}"
    return f"{plain}; TLS without a certificate: no bridge reply"


def _net_owner(s: Subject) -> Any:
    r = s.running
    return r.partner if s.expectation.role == "bot" else r.target


def _ip(container: Any) -> str:
    container.reload()
    return str((container.attrs.get("NetworkSettings") or {}).get("IPAddress") or "")


def bridge_isolation(s: Subject) -> str:
    if s.expectation.role != "terminal":
        raise NotApplicable("a bot serves no bridge; its terminal's image is verified on its own")
    port = int(s.expectation.bridge_port)
    ip = _ip(s.running.target)
    if not ip:
        raise Failed("the terminal has no address on the default network to probe from outside")
    from_host = _probe_from_host(ip, port)
    probe = f"exec 3<>/dev/tcp/{ip}/{port} && echo CONNECTED || echo REFUSED"
    outside = (
        s.client.containers.run(
            s.helper_image,
            ["timeout", "5", "bash", "-c", probe],
            remove=True,
            labels={"org.mt5forge.verify": "1"},
        )
        .decode()
        .strip()
    )
    inside = s.running.helper.run(
        f"timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' && echo CONNECTED || echo NO"
    ).strip()
    if inside != "CONNECTED":
        raise Failed(f"positive control failed: 127.0.0.1:{port} inside the namespace: {inside}")
    problems = []
    if from_host == "answered":
        problems.append(f"the host reaches the bridge at {ip}:{port}")
    if "CONNECTED" in outside:
        problems.append(f"another container connects to {ip}:{port}")
    if problems:
        raise Failed("; ".join(problems))
    return f"host ({from_host}) and a third container (refused) cannot reach {ip}:{port}"


def bridge_tls(s: Subject) -> str:
    if s.expectation.role != "terminal":
        raise NotApplicable("a bot serves no bridge")
    port = int(s.expectation.bridge_port)
    bridge = [x for x in s.own_listeners() if x.port == port]
    if not bridge:
        raise Failed(f"nothing of the container listens on the bridge port {port}")
    off = [x for x in bridge if not _loopback(x.address)]
    if not off:
        return f"the bridge listens on loopback only ({', '.join(map(str, bridge))})"
    ip = _ip(s.running.target)
    result = _probe_from_host(ip, port)
    if result == "answered":
        raise Failed(
            f"the bridge listens off loopback ({', '.join(map(str, off))}) without mutual TLS: "
            f"a client with no certificate got a bridge reply at {ip}:{port}"
        )
    return f"off loopback, a client without a certificate is refused ({result})"


# --- health and hardening --------------------------------------------------------------------


def health(s: Subject) -> str:
    if not s.expectation.healthcheck:
        raise NotApplicable("the expectations declare no HEALTHCHECK for this image")
    if not (s.config.get("Healthcheck") or {}).get("Test"):
        raise Failed("the image has no HEALTHCHECK")
    target = s.running.target
    deadline = time.monotonic() + 90
    status = "?"
    while time.monotonic() < deadline:
        target.reload()
        state = target.attrs.get("State") or {}
        status = (state.get("Health") or {}).get("Status", "none")
        if status == "healthy" or state.get("Status") == "exited":
            break
        time.sleep(1)
    if status != "healthy":
        log = ((target.attrs["State"].get("Health") or {}).get("Log") or [{}])[-1]
        raise Failed(f"health is {status}: {str(log.get('Output', ''))[-200:]}")
    return "healthy (the image's own HEALTHCHECK command)"


_CGROUP = Path("/sys/fs/cgroup")


def _cgroup_limits(container_id: str, host: dict[str, Any]) -> tuple[list[str], int]:
    """The kernel's view of the limits the engine was asked for (cgroup v1 or v2), when the
    engine runs on this host; an engine elsewhere leaves only its own word (HostConfig)."""
    v1 = {
        "Memory": (_CGROUP / "memory/docker" / container_id / "memory.limit_in_bytes"),
        "PidsLimit": (_CGROUP / "pids/docker" / container_id / "pids.max"),
        "NanoCpus": (_CGROUP / "cpu/docker" / container_id / "cpu.cfs_quota_us"),
    }
    v2 = _CGROUP / "system.slice" / f"docker-{container_id}.scope"
    problems = []
    read = 0
    for key, path in v1.items():
        if not path.is_file() and v2.is_dir():
            path = (
                v2 / {"Memory": "memory.max", "PidsLimit": "pids.max", "NanoCpus": "cpu.max"}[key]
            )
        try:
            text = path.read_text().split()[0]
        except (OSError, IndexError):
            continue
        read += 1
        want = int(host.get(key) or 0)
        if want <= 0:
            continue  # no limit asked for: hardening names that, the kernel has nothing to say
        got = int(text) if text.isdigit() else -1
        if key == "NanoCpus":
            # quota per 100 ms period: 0.5 CPU is 50000
            want = want // 10_000
        if got != want:
            problems.append(f"the kernel's {path.name} is {text}, not {want}")
    return problems, read


_NO_NEW_PRIVS = re.compile(r"^no-new-privileges(?:[:=]true)?$")


def hardening(s: Subject) -> str:
    if not s.expectation.hardened:
        raise NotApplicable("slim variants run as their compose file runs them, unhardened")
    host = s.running.target.attrs.get("HostConfig") or {}
    problems = []
    if not host.get("ReadonlyRootfs"):
        problems.append("root filesystem is writable (ReadonlyRootfs false)")
    if [c.upper() for c in host.get("CapDrop") or []] != ["ALL"]:
        problems.append(f"capabilities not all dropped (CapDrop {host.get('CapDrop')})")
    if not any(_NO_NEW_PRIVS.match(o) for o in host.get("SecurityOpt") or []):
        problems.append(f"no-new-privileges not set (SecurityOpt {host.get('SecurityOpt')})")
    for key in ("Memory", "PidsLimit", "NanoCpus"):
        if not host.get(key) or int(host[key]) < 0:  # PidsLimit -1 and 0: unlimited
            problems.append(f"no {key} limit ({key} {host.get(key)})")
    if host.get("Memory") and host.get("MemorySwap") != host.get("Memory"):
        problems.append(f"swap allowed (MemorySwap {host.get('MemorySwap')}, Memory "
                        f"{host.get('Memory')}): a leak must end in an OOM kill")  # fmt: skip
    procs, _ = s.facts()
    for p in procs:
        if p.cap_eff:
            problems.append(f"pid {p.pid} has capabilities {p.cap_eff:#x}")
        if not p.no_new_privs:
            problems.append(f"pid {p.pid} may gain privileges")
    kernel, read = _cgroup_limits(s.running.target.id, host)
    problems += kernel
    s.running.target.reload()
    if s.running.target.status != "running":
        problems.append(f"the container is {s.running.target.status}")
    as_compose, composed = _as_compose(s)
    problems += composed
    if problems:
        raise Failed("; ".join(problems))
    return (
        f"running with read-only root, no capabilities, no-new-privileges, memory "
        f"{host['Memory'] >> 20} MiB and no swap, pids {host['PidsLimit']}, "
        f"cpus {host['NanoCpus'] / 1e9:g}"
        + (f" (the kernel's cgroup agrees on {read} limits)" if read else "")
        + f"; {as_compose}"
    )


def _as_compose(s: Subject) -> tuple[str, list[str]]:
    """What of the compose service the running container has, and what it lacks."""
    svc = s.running.compose
    if svc is None:
        return "no compose service read", ["the secure compose file's service was not read"]
    attrs = s.running.target.attrs
    config = attrs.get("Config") or {}
    problems = []
    user = str(config.get("User") or "")
    if svc.user and user != svc.user:
        problems.append(f"runs as {user or 'the image user'!r}, the compose service as {svc.user}")
    mounts = {str(m.get("Destination")): m for m in attrs.get("Mounts") or []}
    for path, _ in svc.volumes:
        if (mounts.get(path) or {}).get("Type") != "volume":
            problems.append(f"no volume at {path}, which the compose service mounts")
    tmpfs = (attrs.get("HostConfig") or {}).get("Tmpfs") or {}
    problems += [f"no tmpfs at {p}" for p, _ in svc.tmpfs if p not in tmpfs]
    env = set(config.get("Env") or [])
    problems += [f"environment lacks {k}={v}" for k, v in svc.environment if f"{k}={v}" not in env]
    who = svc.user or "the image's"
    shown = (
        f"as service {svc.service} runs it: user {who}, volumes "
        f"{' '.join(p for p, _ in svc.volumes) or 'none'}, tmpfs "
        f"{' '.join(p for p, _ in svc.tmpfs) or 'none'}, environment "
        f"{' '.join(k for k, _ in svc.environment) or 'none'}"
    )
    return shown, problems


# --- pairs -----------------------------------------------------------------------------------

_LOGGED_IN = re.compile(r"logged in to account")
_REPORT = re.compile(r"balance=\S+ .* bid=")
_ORDER = re.compile(r"demo position \S+ closed at")


def pair(s: Subject) -> str:
    """The bot logs in with the secrets, reads account_info and a tick, and (bot images) places
    and closes a demo order; against the fixture terminal, the real package's error instead."""
    r = s.running
    bot = r.target if s.expectation.role == "bot" else r.partner
    if bot is None:
        raise NotApplicable(f"no bot pairs with a {r.backend} backend")
    deadline = time.monotonic() + 45
    text = ""
    needs = [_LOGGED_IN, _REPORT] + ([_ORDER] if s.expectation.role == "bot" else [])
    while time.monotonic() < deadline:
        text = bot.logs().decode("utf-8", "replace")
        if r.terminal_kind != "simulator":
            m = re.search(r"initialize failed: \((-?\d+)\) (.*?)\); retrying", text)
            if m:
                return f"{r.terminal_kind}: the MetaTrader5 package answered ({m[1]}) {m[2]}"
        if all(p.search(text) for p in needs):
            return f"{r.terminal_kind}: logged in, account and tick read" + (
                ", demo order placed and closed" if _ORDER in needs else ""
            )
        if text.count("bridge unavailable") >= 3:
            break  # three refused connections: it is not going to log in
        bot.reload()
        if bot.status == "exited":
            break
        time.sleep(0.5)
    missing = [p.pattern for p in needs if not p.search(text)]
    tail = r.canary.scrub("\n".join(text.splitlines()[-5:]))
    raise Failed(f"the bot did not log in and trade with the {r.terminal_kind}: missing "
                 f"{missing}; last lines: {tail}")  # fmt: skip


def pair_terminal(s: Subject) -> str:
    """A bot image paired with the terminal image (the fixture terminal on the fixture
    profile) reaches the real MetaTrader5 package through the Wine bridge."""
    if s.expectation.role != "bot":
        raise NotApplicable("the terminal image's own bridge is exercised by its pair check")
    r = s.running
    terminal = partner_ref(s.partners, s.prefix, "terminal:slim")
    r.partners = (*r.partners, ("terminal:slim", terminal))
    result = pair_with_terminal(
        s.client, r.reference, terminal, canary=r.canary, uid=s.uid, gid=s.gid
    )
    if result.backend != "metatrader5":
        raise Failed(f"the terminal image's bridge serves {result.backend!r}, not metatrader5")
    if any(v in result.log for v in r.canary.secrets()):  # scrubbed: cannot happen; belt
        raise Failed("the bot's log shows a canary")
    return f"{result.kind}: the MetaTrader5 package answered {result.answer}"


# --- accounts and history --------------------------------------------------------------------


def accounts(s: Subject) -> str:
    pid = min((p.pid for p in s.facts()[0]), default=1)
    root = f"/proc/{pid}/root/etc"
    out = s.running.helper.run(f"cat {root}/passwd; echo @; cat {root}/group; echo @; "
                               f"cat {root}/shadow 2>/dev/null || true")  # fmt: skip
    passwd, group, shadow = ([*out.split("@\n"), "", "", ""])[:3]
    problems = []
    empty = [ln.split(":")[0] for ln in shadow.splitlines() if ln.count(":") >= 2
             and ln.split(":")[1] == ""]  # fmt: skip
    if empty:
        problems.append(f"empty passwords: {empty}")
    for name, text in (("passwd", passwd), ("group", group)):
        rows = [ln.split(":") for ln in text.splitlines() if ln.count(":") >= 2]
        for col, what in ((0, "name"), (2, "id")):
            values = [r[col] for r in rows]
            dup = sorted({v for v in values if values.count(v) > 1})
            if dup:
                problems.append(f"/etc/{name}: duplicate {what}s {dup}")
    if problems:
        raise Failed("; ".join(problems))
    return "no empty passwords, no duplicate users or groups"


def history(s: Subject) -> str:
    steps = [str(h.get("created_by", "")) for h in s.saved.config.get("history") or []]
    problems = []
    for i, text in enumerate(steps, 1):
        if re.search(r"\bapt(?:-get)? update\b", text) and not re.search(
            r"\bapt(?:-get)? (?:-y )?(?:install|upgrade)\b", text
        ):
            problems.append(f"step {i}: apt-get update alone")
        if re.search(r"\b(?:dist-upgrade|full-upgrade)\b", text):
            problems.append(f"step {i}: dist-upgrade")
        if re.match(r"^/bin/sh -c #\(nop\)\s+ADD\s+(?!file:\S+ in / ?$)", text):
            problems.append(f"step {i}: ADD (COPY says what it does)")
    if problems:
        raise Failed("; ".join(problems))
    return f"{len(steps)} steps: no lone apt-get update, no dist-upgrade, no ADD"


_SENSITIVE = ("/", "/etc", "/root", "/boot", "/dev", "/proc", "/sys", "/var/run/docker.sock")


def metadata(s: Subject) -> str:
    problems = []
    volumes = sorted((s.config.get("Volumes") or {}).keys())
    bad = [v for v in volumes if v.rstrip("/") in _SENSITIVE or v == "/"]
    if bad:
        problems.append(f"VOLUME of sensitive paths {bad}")
    tag = s.reference.rsplit("/", 1)[-1]
    if "@" not in tag and (":" not in tag or tag.endswith(":latest")):
        problems.append(f"{s.reference} is the moving 'latest' tag")
    if not s.config.get("Entrypoint") and not s.config.get("Cmd"):
        problems.append("no ENTRYPOINT or CMD")
    if problems:
        raise Failed("; ".join(problems))
    return f"entrypoint {s.config.get('Entrypoint')}, volumes {volumes or 'none'}, tag {tag}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    run: Callable[[Subject], str]
    covers: tuple[str, ...] = ()
    """dockle checkpoints and container-structure-test kinds this check stands for."""


CHECKS: tuple[Check, ...] = (
    Check(name="user.config", run=user_config, covers=("CIS-DI-0001", "cst:metadata")),
    Check(name="user.processes", run=user_processes, covers=("CIS-DI-0001", "cst:command")),
    Check(name="user.no_sudo", run=no_sudo, covers=("DKL-DI-0001", "cst:fileExistence")),
    Check(name="files.setuid", run=setuid_files, covers=("CIS-DI-0008", "cst:fileExistence")),
    Check(name="files.shell", run=shell, covers=("cst:fileExistence",)),
    Check(name="files.writable", run=writable),
    Check(name="files.unnecessary", run=unnecessary_files, covers=("DKL-LI-0003",)),
    Check(name="files.apt_caches", run=apt_caches, covers=("DKL-DI-0005",)),
    Check(name="files.licenses", run=licenses, covers=("cst:license",)),
    Check(name="secrets.config", run=secrets_config, covers=("CIS-DI-0010",)),
    Check(name="secrets.history", run=secrets_history, covers=("CIS-DI-0010",)),
    Check(name="secrets.layers", run=secrets_layers, covers=("CIS-DI-0010", "cst:fileContent")),
    Check(name="secrets.canary", run=canary, covers=("CIS-DI-0010",)),
    Check(name="ports.exposed", run=ports_exposed, covers=("cst:metadata",)),
    Check(name="ports.listeners", run=ports_listeners),
    Check(name="ports.not_published", run=ports_not_published),
    Check(name="bridge.isolation", run=bridge_isolation),
    Check(name="bridge.tls", run=bridge_tls),
    Check(name="health", run=health, covers=("CIS-DI-0006",)),
    Check(name="hardening", run=hardening),
    Check(name="pair", run=pair),
    Check(name="pair.terminal", run=pair_terminal),
    Check(name="accounts", run=accounts, covers=("DKL-LI-0001", "DKL-LI-0002", "cst:fileContent")),
    Check(name="history", run=history, covers=("CIS-DI-0007", "CIS-DI-0009", "DKL-DI-0003")),
    Check(name="metadata", run=metadata, covers=("DKL-DI-0002", "DKL-DI-0006", "cst:metadata")),
)

CHECK_NAMES = tuple(c.name for c in CHECKS)

#: The dockle checkpoints and container-structure-test kinds no check covers, each with the
#: reason it does not apply. With the ``covers`` of ``CHECKS`` it accounts for every item of
#: the peers' checklists (tests/unit/test_verify_coverage.py holds the list).
NOT_APPLICABLE: Mapping[str, str] = {
    "CIS-DI-0005": (
        "Docker Content Trust (Notary v1) is a client setting for pulls, not a property of an "
        "image; mt5forge signs its images and verifies the signatures in its sign stage"
    ),
}
