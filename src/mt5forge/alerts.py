"""An alert: what ``invoke watch`` sends, how it is redacted, and where it goes (Apprise).

Redaction is one call, :func:`redact_lines`, through the bridge's own redaction
(``mt5bridge.redact``: every encoded form of each known secret, account numbers masked to their
last 3 digits, any value logged under a secret's key name). The secrets it knows are the ones
the container was given at run time: the values of its secret-named variables (``MT5_PASSWORD``,
``*_TOKEN``, ...) and the files mounted under ``/run/secrets`` or named by a ``*_FILE``
variable, read from the host side of the mount (:func:`container_secrets`), plus the secrets in
the notification targets themselves.

Targets are Apprise URLs, one per target. A secret in one (a bot token, a password) is written
``${NAME}`` in ``mt5forge.toml`` and taken from the environment; :func:`parse_targets` refuses a
target whose secret is written literally, using Apprise's own idea of which parts of its URL are
private (``url(privacy=True)``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import apprise
from mt5bridge.redact import Redactor, is_account_name, is_secret_name, one_line

from mt5forge.errors import ConfigError
from mt5forge.watch import Finding

log = logging.getLogger(__name__)

LINE_CAP = 300
"""Characters kept of one log line in an alert."""
SECRET_FILE_CAP = 4096
"""Bytes read of one mounted secret file (a secret is short; a large file is not one)."""
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_URL_PARTS = re.compile(r"[/@?&=#:]")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Alert:
    finding: Finding
    pair: str
    """The compose project the container belongs to ('' when none)."""
    image: str
    log_lines: tuple[str, ...]
    """Its last log lines, redacted."""

    @property
    def title(self) -> str:
        where = f"{self.pair}/" if self.pair else ""
        return f"mt5forge: {where}{self.finding.name}: {self.finding.reason}"

    @property
    def body(self) -> str:
        f = self.finding
        head = [f"container: {f.name} ({f.container[:12]}, image {self.image})"]
        head += [f"pair: {self.pair}"] if self.pair else []
        head += [f"reason: {f.reason}: {f.detail}", f"last {len(self.log_lines)} log lines:"]
        return "\n".join(head + [f"  {line}" for line in self.log_lines])

    def record(self) -> dict[str, Any]:
        """The alert as one structured log record (time, component, level, event, fields)."""
        f = self.finding
        return {
            "time": f.time,
            "component": "watch",
            "level": "warning",
            "event": "alert",
            "fields": {
                "container": f.name,
                "id": f.container[:12],
                "pair": self.pair,
                "image": self.image,
                "reason": f.reason,
                "detail": f.detail,
                "log": list(self.log_lines),
            },
        }


# --- redaction ---------------------------------------------------------------------------------


def redact_lines(lines: Iterable[str], redactor: Redactor) -> tuple[str, ...]:
    """Each line redacted, made one line (a log cannot forge another), cut at LINE_CAP."""
    out = []
    for line in lines:
        clean = one_line(redactor(line))
        out.append(clean if len(clean) <= LINE_CAP else clean[:LINE_CAP] + "...[cut]")
    return tuple(out)


def _read_capped(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            data = f.read(SECRET_FILE_CAP + 1)
    except OSError:
        return None
    if len(data) > SECRET_FILE_CAP:
        return None
    return data.decode("utf-8", "replace").strip()


_UNREADABLE: set[str] = set()
"""Secret files already said to be unreadable (said once, not at every event)."""


def container_secrets(
    attrs: Mapping[str, Any], read: Callable[[Path], str | None] = _read_capped
) -> tuple[set[str], set[int]]:
    """The secrets and account numbers a container was given at run time, from its
    ``docker inspect``: secret-named variables, and the host side of secret mounts."""
    env: dict[str, str] = {}
    for item in (attrs.get("Config") or {}).get("Env") or ():
        key, sep, value = str(item).partition("=")
        if sep:
            env[key] = value
    secrets: set[str] = set()
    accounts: set[int] = set()
    files: dict[str, str] = {}

    def add(name: str, value: str) -> None:
        value = value.strip()
        if not value:
            return
        if is_account_name(name) and value.isdigit():
            accounts.add(int(value))
        elif len(value) >= 4:  # shorter, and every "1" in a log would be masked
            secrets.add(value)

    for key, value in env.items():
        if key.endswith("_FILE"):
            files[value] = key.removesuffix("_FILE")
        elif is_secret_name(key):  # the one list: mt5bridge.redact
            add(key, value)
    for mount in attrs.get("Mounts") or ():
        dest, source = str(mount.get("Destination", "")), str(mount.get("Source", ""))
        if not source or not (dest in files or dest.startswith("/run/secrets/")):
            continue
        text = read(Path(source))
        if text is not None:
            add(files.get(dest, Path(dest).name), text)
        elif source not in _UNREADABLE:
            _UNREADABLE.add(source)
            log.warning(
                "cannot read %s (mounted at %s) to redact its value from alerts; it is masked "
                "only where it is logged under a secret's name. Give the watch read access.",
                source, dest,
            )  # fmt: skip
    return secrets, accounts


# --- targets -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Target:
    url: str = dataclasses.field(repr=False)
    """With the environment's secrets in it: never logged or printed."""
    shown: str
    """Apprise's private-parts-masked form: what logs and ``--dry-run`` print."""
    secrets: tuple[str, ...] = dataclasses.field(repr=False, default=())


def _expand(template: str, env: Mapping[str, str], where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m[1] not in env or not env[m[1]]:
            raise ConfigError(f"{where} uses ${{{m[1]}}}, which is not set in the environment.")
        # Percent-encoded: a token with "/" or "@" in it stays one part of the URL.
        return urllib.parse.quote(env[m[1]], safe="")

    return _ENV_REF.sub(sub, template)


def parse_targets(templates: Sequence[str], env: Mapping[str, str]) -> list[Target]:
    """Apprise URLs from ``[watch] targets``, ``${NAME}`` taken from ``env``. Refused: a URL
    Apprise does not know, and one whose private parts are written in the file."""
    out = []
    for i, template in enumerate(templates):
        where = f"[watch] targets[{i}]"
        url = _expand(template, env, where)
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        if not plugin:
            scheme = template.split("://", 1)[0]
            raise ConfigError(
                f"{where}: Apprise does not understand this URL (scheme {scheme!r}).",
                hint="See Apprise's list of services, e.g. json://host:port/path for a webhook.",
            )
        url_of: Callable[..., str] = plugin.url  # untyped in Apprise
        shown = url_of(privacy=True)
        # Split while still percent-encoded: a "/" or "@" inside a token keeps it one part.
        parts = set(_URL_PARTS.split(url_of(privacy=False))) - set(_URL_PARTS.split(shown))
        private = {urllib.parse.unquote(p) for p in parts if len(p) >= 3}
        literal = urllib.parse.unquote(_ENV_REF.sub("", template))
        written = sorted(p for p in private if p in literal)
        if written:
            raise ConfigError(
                f"{where}: a secret of this target is written in the file.",
                hint="Put it in an environment variable and write ${NAME} in its place "
                "(the file is not a place for secrets).",
            )
        values = private | {env[n] for n in _ENV_REF.findall(template)}
        out.append(Target(url=url, shown=shown, secrets=tuple(sorted(values))))
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class Delivery:
    target: str
    """The target as shown (private parts masked)."""
    ok: bool
    note: str = ""


def deliver(alert: Alert, targets: Sequence[Target], redactor: Redactor) -> list[Delivery]:
    """Send ``alert`` to each target, one Apprise call each, so one failing target neither
    hides nor stops another. Apprise's own log lines (which may quote a URL) are captured and
    redacted before they reach ours."""
    out = []
    for target in targets:
        sender = apprise.Apprise()
        sender.add(target.url)
        capture: Callable[..., Any] = apprise.LogCapture  # untyped in Apprise
        with capture(level=logging.WARNING) as captured:
            ok = bool(sender.notify(title=alert.title, body=alert.body,
                                    notify_type=apprise.NotifyType.FAILURE))  # fmt: skip
        note = one_line(redactor(captured.getvalue().strip()))[:LINE_CAP]
        out.append(Delivery(target=target.shown, ok=ok, note=note))
        if not ok:
            log.error("alert not delivered to %s: %s", target.shown, note or "no reason given")
    return out


def log_alert(alert: Alert) -> str:
    """Log the alert in one line and return it as one JSON line (the structured record)."""
    log.warning("alert: %s: %s", alert.title, alert.finding.detail)
    return json.dumps(alert.record(), sort_keys=True)
