"""How ``compose/docker-compose.secure.yml`` runs a service, as arguments for the engine.

Verify judges a hardened image as the compose file runs it, not as verify would run it: the
user (``bot:secure`` runs as 1001:1000 so that it cannot rewrite the terminal's audit trail),
the limits with no swap, the read-only root, the tmpfs mounts, the named volumes (``/logs``,
``/config``: verify gives each a fresh volume, seeded from the image as the engine seeds a new
named volume) and the plain environment (``MT5BOT_STATE_DIR``). Variables take the file's
defaults (``${X:-d}``), never this host's environment: verify judges the file as shipped.
Secrets (``*_FILE`` and ``secrets:``) are verify's own made-up ones; ports, networks and
bind mounts of host directories are not the image's business and are left out.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from mt5forge.errors import ConfigError

SECURE_FILE = Path("compose") / "docker-compose.secure.yml"
_MAX_BYTES = 256 * 1024
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")
_USER = re.compile(r"^(\d+)(?::(\d+))?$")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ComposeRun:
    """What the compose file sets for one service that changes how the image runs."""

    service: str
    user: str = ""
    """``uid:gid`` as the file gives it, defaults expanded; empty: the image's own user."""
    read_only: bool = False
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    """As the file gives them (``no-new-privileges:true``)."""
    mem_limit: str = ""
    memswap_limit: str = ""
    pids_limit: int = 0
    cpus: float = 0.0
    tmpfs: tuple[tuple[str, str], ...] = ()
    """``(path, options)``."""
    volumes: tuple[tuple[str, str], ...] = ()
    """Named volumes: ``(container path, mode)``."""
    environment: tuple[tuple[str, str], ...] = ()
    """Plain variables; ``*_FILE`` ones (secrets) left out."""

    def user_ids(self) -> tuple[int, int] | None:
        """The numeric uid and gid, or None when the service sets no user (or no gid)."""
        m = _USER.match(self.user)
        if not m or m[2] is None:
            return None
        return int(m[1]), int(m[2])

    def engine_args(self) -> dict[str, Any]:
        """Keyword arguments for ``containers.run`` (volumes apart: the caller makes them)."""
        out: dict[str, Any] = {}
        if self.user:
            out["user"] = self.user
        if self.read_only:
            out["read_only"] = True
        if self.cap_drop:
            out["cap_drop"] = list(self.cap_drop)
        if self.security_opt:
            out["security_opt"] = list(self.security_opt)
        if self.mem_limit:
            out["mem_limit"] = self.mem_limit
        if self.memswap_limit:
            out["memswap_limit"] = self.memswap_limit
        if self.pids_limit:
            out["pids_limit"] = self.pids_limit
        if self.cpus:
            out["nano_cpus"] = int(self.cpus * 1e9)
        return out


def expand(value: str, where: str) -> str:
    """``${X:-default}`` and ``${X-default}`` to their defaults; a variable without one is an
    error (verify would otherwise guess what the operator sets)."""

    def sub(m: re.Match[str]) -> str:
        if m[2] is None:
            raise ConfigError(
                f"{where}: ${{{m[1]}}} has no default, so verify cannot tell what it would be.",
                hint=f"Write ${{{m[1]}:-VALUE}} in {SECURE_FILE}.",
            )
        return m[2]

    return _VAR.sub(sub, value)


def _pairs(raw: object, where: str) -> list[tuple[str, str]]:
    if isinstance(raw, dict):
        return [(str(k), "" if v is None else str(v)) for k, v in raw.items()]
    if isinstance(raw, list):
        return [(str(i).partition("=")[0], str(i).partition("=")[2]) for i in raw]
    if raw is None:
        return []
    raise ConfigError(f"{where}: expected a mapping or a list.")


def parse_service(data: object, service: str, source: str = str(SECURE_FILE)) -> ComposeRun:
    """The :class:`ComposeRun` of ``service`` in a parsed compose file."""
    services = data.get("services") if isinstance(data, dict) else None
    svc = services.get(service) if isinstance(services, dict) else None
    if not isinstance(svc, dict):
        raise ConfigError(f"{source} has no service {service!r}.",
                          hint="Fix compose_service in build/expectations.toml.")  # fmt: skip
    where = f"{source} services.{service}"
    named = set((data.get("volumes") or {}) if isinstance(data, dict) else {})
    user = expand(str(svc.get("user") or ""), f"{where}.user")
    if user and not _USER.match(user):
        raise ConfigError(f"{where}.user: {user!r} is not UID or UID:GID (numeric).")
    tmpfs = []
    for item in svc.get("tmpfs") or []:
        path, _, options = str(item).partition(":")
        tmpfs.append((path, options))
    volumes = []
    for item in svc.get("volumes") or []:
        if not isinstance(item, str):
            raise ConfigError(f"{where}.volumes: {item!r}: only the short syntax is read.")
        parts = expand(item, f"{where}.volumes").split(":")
        if len(parts) >= 2 and parts[0] in named:
            volumes.append((parts[1], parts[2] if len(parts) > 2 else "rw"))
    env = [(k, expand(v, f"{where}.environment.{k}"))
           for k, v in _pairs(svc.get("environment"), f"{where}.environment")
           if not k.endswith("_FILE")]  # fmt: skip
    listed = {}
    for key in ("cap_drop", "security_opt"):
        raw = svc.get(key) or []
        if not isinstance(raw, list):
            raise ConfigError(f"{where}.{key}: expected a list.")
        listed[key] = tuple(expand(str(i), f"{where}.{key}") for i in raw)
    try:
        return ComposeRun(
            service=service, user=user, read_only=bool(svc.get("read_only")),
            cap_drop=listed["cap_drop"], security_opt=listed["security_opt"],
            mem_limit=str(svc.get("mem_limit") or ""),
            memswap_limit=str(svc.get("memswap_limit") or ""),
            pids_limit=int(svc.get("pids_limit") or 0), cpus=float(svc.get("cpus") or 0),
            tmpfs=tuple(tmpfs), volumes=tuple(volumes), environment=tuple(env),
        )  # fmt: skip
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: a limit is not a number: {e}") from e


def load_service(root: Path, service: str) -> ComposeRun:
    """The service as ``compose/docker-compose.secure.yml`` under ``root`` runs it."""
    import yaml

    path = root / SECURE_FILE
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise ConfigError(f"{path} is larger than {_MAX_BYTES} bytes; refusing to read it.")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"Cannot read {path}: {e.strerror}.") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from e
    return parse_service(data, service, str(path))


def publishes(entry: object, port: int) -> bool:
    """Whether a compose ``ports:`` entry publishes container port ``port``: the short syntax
    (``[IP:][HOST:]CONTAINER[/PROTO]``, ranges too, ``${X:-d}`` read as its default) or the
    long one (``target:``)."""
    if isinstance(entry, dict):
        entry = entry.get("target", "")
    text = re.sub(r"\$\{[^}:]*:?-([^}]*)\}", r"\1", str(entry)).split("/")[0]
    container = text.rsplit(":", 1)[-1].strip()
    low, _, high = container.partition("-")
    try:
        return int(low) <= port <= int(high or low)
    except ValueError:
        return False


def compose_publishing(root: Path, port: int) -> list[str]:
    """Where a compose file under ``root/compose`` publishes ``port`` on the host:
    ``file services.NAME.ports: ENTRY``. A file that is not YAML is named too: it cannot be
    cleared."""
    import yaml

    found = []
    for f in sorted((root / "compose").glob("*.y*ml")):
        try:
            data = yaml.safe_load(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            found.append(f"{f.name} (not readable as YAML: {type(e).__name__})")
            continue
        services = data.get("services") if isinstance(data, dict) else None
        for name, svc in (services or {}).items() if isinstance(services, dict) else ():
            ports = svc.get("ports") if isinstance(svc, dict) else None
            for entry in ports if isinstance(ports, list) else ():
                if publishes(entry, port):
                    found.append(f"{f.name} services.{name}.ports: {entry!r}")
    return found
