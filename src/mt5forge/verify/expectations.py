"""What verify expects of each image and variant, read from ``build/expectations.toml``.

The checks are code; what they compare against (user, ports, setuid allow-list, writable paths,
health, how the container is run) is data, one table per image and variant, so a new variant or a
changed port is an edit to the TOML and a review, not to a check. Unknown keys, wrong types and
missing keys fail with the table's name (mt5forge.tomlmodel).
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from mt5forge.config import IMAGES, VARIANTS
from mt5forge.errors import ConfigError
from mt5forge.tomlmodel import build, did_you_mean

EXPECTATIONS_FILE = "expectations.toml"
ROLES = ("terminal", "bot")
RUN_AS = ("image", "compose")
_MAX_BYTES = 256 * 1024


@dataclasses.dataclass(frozen=True, kw_only=True)
class Expectation:
    image: str = ""
    variant: str = ""
    role: str
    """``terminal`` (serves the bridge) or ``bot`` (paired with a terminal)."""
    exposed: tuple[str, ...] = ()
    """The EXPOSE set, Docker's spelling: ``3000/tcp``."""
    listen: tuple[str, ...] = ()
    """Every TCP listener of the image's own processes, ``address:port``."""
    bridge_port: str = "18812"
    setuid_allowed: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    """Where the runtime user may write: files it owns and world-writable places."""
    healthcheck: bool = True
    shell: bool = True
    hardened: bool = False
    tmpfs: tuple[str, ...] = ()
    gui_secret: bool = False
    compose_service: str = ""
    run_as: str = "image"
    """Whose uid:gid every process must have: ``image``, the configured runtime user (the
    image's USER); ``compose``, the user the compose service sets (hardened variants only)."""

    def __str__(self) -> str:
        return f"{self.image}:{self.variant}"

    def may_write(self, path: str) -> bool:
        return any(path == w or path.startswith(w.rstrip("/") + "/") for w in self.writable)


def _check(e: Expectation, where: str) -> None:
    if e.role not in ROLES:
        raise ConfigError(f"{where}.role: {e.role!r} is not one of {', '.join(ROLES)}.")
    for port in e.exposed:
        num, _, proto = port.partition("/")
        if not num.isdigit() or proto not in ("tcp", "udp"):
            raise ConfigError(f"{where}.exposed: {port!r} is not PORT/tcp or PORT/udp.")
    for item in e.listen:
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{where}.listen: {item!r} is not ADDRESS:PORT.")
    if e.run_as not in RUN_AS:
        raise ConfigError(f"{where}.run_as: {e.run_as!r} is not one of {', '.join(RUN_AS)}.")
    if e.run_as == "compose" and not e.hardened:
        raise ConfigError(
            f"{where}.run_as = 'compose' needs hardened = true: only the secure compose file's "
            "service is read."
        )
    if not e.bridge_port.isdigit():
        raise ConfigError(f"{where}.bridge_port: {e.bridge_port!r} is not a port number.")
    for path in (*e.setuid_allowed, *e.writable, *e.tmpfs):
        if not path.startswith("/"):
            raise ConfigError(f"{where}: {path!r} is not an absolute path.")


def parse(text: str, source: str = EXPECTATIONS_FILE) -> dict[str, Expectation]:
    """Every table of the file, keyed ``image:variant``; ConfigError for anything unexpected."""
    if len(text.encode()) > _MAX_BYTES:
        raise ConfigError(f"{source} is larger than {_MAX_BYTES} bytes; refusing to read it.")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source} is not valid TOML: {e}") from e
    out: dict[str, Expectation] = {}
    for image, table in raw.items():
        if image not in IMAGES:
            raise ConfigError(
                f"{source}: [{image}] is not an image.", hint=did_you_mean(image, IMAGES)
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{image}] must be a table of variants.")
        for variant, values in table.items():
            where = f"{source} [{image}.{variant}]"
            if variant not in VARIANTS:
                raise ConfigError(
                    f"{where}: {variant!r} is not a variant.", hint=did_you_mean(variant, VARIANTS)
                )
            built = build(Expectation, values, where, skip=("image", "variant"))
            item = dataclasses.replace(built, image=image, variant=variant)
            _check(item, where)
            out[str(item)] = item
    return out


def load(build_dir: Path) -> dict[str, Expectation]:
    """``build_dir``: the project's ``build/`` (beside the Dockerfiles the expectations judge;
    not ``manifests/``, where every TOML file is an artifact manifest)."""
    path = build_dir / EXPECTATIONS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"Cannot read the expectations {path}: {e.strerror}.") from e
    return parse(text, str(path))


def expectation_for(table: dict[str, Expectation], image: str, variant: str) -> Expectation:
    key = f"{image}:{variant}"
    if key not in table:
        raise ConfigError(
            f"No expectations for {key}.",
            hint=f"Add [{image}.{variant}] to build/{EXPECTATIONS_FILE}; known: "
            + ", ".join(sorted(table)),
        )
    return table[key]
