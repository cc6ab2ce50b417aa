"""Settings: defaults, then ``mt5forge.toml``, then ``MT5FORGE_*`` variables, then task options.

Each later source wins over each earlier one, key by key. Unknown sections and keys fail with a
"did you mean" hint instead of being ignored, because a silently ignored typo in a security
setting (say ``[build] ca_bundel``) is worse than a failed run.

Environment variables are named ``MT5FORGE_<SECTION>_<KEY>`` in upper case, for example
``MT5FORGE_BASE_SOURCE=registry``. A few settings that users reach for often have a short alias:
``MT5FORGE_MIRROR`` is ``[fetch] mirror``. Lists are comma-separated in the environment.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_type_hints

from mt5forge.errors import ConfigError
from mt5forge.tomlmodel import coerce, did_you_mean, table_values

CONFIG_FILE = "mt5forge.toml"
ENV_PREFIX = "MT5FORGE_"
ENV_ALIASES = {"MT5FORGE_MIRROR": ("fetch", "mirror")}

# docker-library/repo-info, repos/debian/remote/trixie-slim.md: the multi-arch index of
# debian:trixie-slim built 2026-08-03 (Debian 13). Renew it with `docker buildx imagetools
# inspect debian:trixie-slim` where a registry is reachable.
DEFAULT_BASE_IMAGE = (
    "debian:trixie-slim@sha256:3a39a0592364683e6bab97937b72cad5a8fa6dcbbee90edb3bb48c7f8e94f258"
)

IMAGES = ("terminal", "bot", "terminal-sim")
VARIANTS = ("slim", "secure")
BASE_SOURCES = ("debootstrap", "registry")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImagesSettings:
    prefix: str = "mt5forge"
    """Repository prefix of the images we build locally (``mt5forge/terminal:slim``)."""
    names: tuple[str, ...] = IMAGES
    """Which images ``invoke build`` and the later stages handle."""
    variants: tuple[str, ...] = VARIANTS
    """Which variants (``slim``, ``secure``) are built."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaseSettings:
    source: str = "debootstrap"
    """``debootstrap`` (build the rootfs from Debian's archive) or ``registry`` (pull by digest)."""
    suite: str = "trixie"
    """Debian suite of the base; trixie ships Wine 10.0, which current MT5 builds need."""
    image: str = DEFAULT_BASE_IMAGE
    """For ``source = "registry"``: the image reference, pinned by digest."""
    debian_mirror: str = ""
    """Debian archive URL for debootstrap and for the image's apt sources. Empty: take the
    ``URIs:`` of this host's ``/etc/apt/sources.list.d/debian.sources``, else deb.debian.org."""
    security_mirror: str = ""
    """Debian security archive URL. Empty: derived from ``debian_mirror``."""
    keyring: str = "/usr/share/keyrings/debian-archive-keyring.gpg"
    """Keyring that debootstrap checks the archive's Release signature against."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RuntimeSettings:
    uid: int = 1000
    """UID of the non-root user the images run as."""
    gid: int = 1000
    """GID of that user."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuildSettings:
    ca_bundle: str = "host"
    """A PEM bundle trusted by build stages that download (TLS-intercepting proxies). It never
    reaches a shipped image. ``host``: this host's own trust store, if it has one; a path: that
    file; empty: none."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class FetchSettings:
    mirror: str = ""
    """Base URL that replaces every upstream host: each artifact comes from
    ``<mirror>/<file name of the upstream URL>``, with the same pins and checks."""
    cache_dir: str = ".cache/mt5forge/artifacts"
    """Content-addressed cache of verified artifacts."""
    profile: str = "upstream"
    """``upstream`` (the real pins: ``checksums/``, ``manifests/keys/``, the allow-lists in the
    manifests) or ``fixture`` (stand-ins made on this machine, with their own lock, keys and
    trust overlay). Every fetched artifact and every report names the profile."""
    manifests_dir: str = "manifests"
    """Where the artifact manifests (``*.toml``) are."""
    lock_dir: str = "checksums"
    """Where the lock (``artifacts.lock.toml``, written by ``invoke pin``) and the signature files
    that upstream publishes are."""
    keys_dir: str = "manifests/keys"
    """Armored OpenPGP public keys the manifests name; the only keys a verification imports."""
    trust_overlay: str = ""
    """A TOML file replacing the manifests' allow-lists (fingerprints, key files, Authenticode
    signer and CA). Only the ``fixture`` profile may use one; the fixture generator writes it."""
    connect_timeout: int = 15
    """Seconds to wait for a download server to accept the connection."""
    read_timeout: int = 60
    """Seconds a download may go without receiving a byte before the attempt is abandoned."""
    retries: int = 4
    """Further attempts after a failed one (5xx, dropped connection, stall); each resumes."""
    backoff_ms: int = 500
    """First wait between attempts, doubled after each failure."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RegistrySettings:
    address: str = "127.0.0.1:5000"
    """Where images are pushed, and where ``invoke registry.start`` listens."""
    root: str = ".cache/mt5forge/registry"
    """Storage of the local registry that ``invoke registry.start`` runs."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScanSettings:
    policy: str = "scan-policy.toml"
    """Policy file that judges scanner findings (severity bar, ignores with expiry, DB age)."""
    cache_dir: str = ".cache/mt5forge/trivy"
    """Trivy's cache: image layers it has read, and ``db/`` (its vulnerability database)."""
    db_dir: str = ""
    """A directory holding a Trivy database (``db/trivy.db`` + ``db/metadata.json``) to use
    offline instead of ``cache_dir``'s. Empty: ``cache_dir``."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SbomSettings:
    dir: str = "sbom"
    """Where ``invoke sbom`` writes one CycloneDX JSON per image and variant."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class EngineSettings:
    autostart: bool = True
    """Where no engine answers and this is Debian run as root: install ``docker.io`` and start
    ``dockerd``. Elsewhere the task explains what to install."""
    start_timeout: int = 60
    """Seconds to wait for a started ``dockerd`` to answer."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class PathsSettings:
    run_dir: str = "runs"
    """Stage records (JSON, keyed by image digest) and logs of started daemons."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class WatchSettings:
    targets: tuple[str, ...] = ()
    """Apprise URLs, one per notification target (``mailto://``, ``tgram://``, ``slack://``,
    ``ntfy://``, ``json://`` for a webhook). A secret in one is written ``${NAME}`` and taken
    from the environment: a target whose secret is written in this file is refused."""
    label: str = "org.mt5forge.image"
    """Without ``--pair``: the containers carrying this label (every image we build sets it)."""
    restart_max: int = 0
    """Restarts of one container within ``restart_window`` that make a restart loop. 0: the
    terminal supervisor's own default (``MT5_RESTART_MAX`` in build/terminal/entrypoint); a
    container's own ``MT5_RESTART_MAX`` variable wins for that container."""
    restart_window: int = 0
    """Seconds; 0: the supervisor's ``MT5_RESTART_WINDOW`` default, as for ``restart_max``."""
    settle: int = 30
    """Seconds a crashed container that Docker restarts must stay up before its crash is
    reported alone; a loop within them is reported once, as a restart loop."""
    cpu_percent: int = 90
    """CPU alert: percent of one CPU (as ``docker stats`` counts it) ..."""
    memory_percent: int = 90
    """Memory alert: percent of the container's memory limit (without the page cache) ..."""
    period: int = 60
    """... held for this many seconds."""
    log_lines: int = 20
    """Last log lines of the container an alert carries (redacted, each cut at 300 chars)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    root: Path = Path()
    """Directory relative paths are resolved against (where mt5forge.toml is)."""
    images: ImagesSettings = ImagesSettings()
    base: BaseSettings = BaseSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    build: BuildSettings = BuildSettings()
    fetch: FetchSettings = FetchSettings()
    registry: RegistrySettings = RegistrySettings()
    sbom: SbomSettings = SbomSettings()
    scan: ScanSettings = ScanSettings()
    engine: EngineSettings = EngineSettings()
    paths: PathsSettings = PathsSettings()
    watch: WatchSettings = WatchSettings()

    def path(self, value: str) -> Path:
        """Resolve a path setting against the project root."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.root / p)

    @property
    def run_dir(self) -> Path:
        return self.path(self.paths.run_dir)

    @property
    def cache_dir(self) -> Path:
        return self.path(self.fetch.cache_dir)


SECTIONS: dict[str, type[Any]] = {
    name: hint for name, hint in get_type_hints(Settings).items() if name != "root"
}


def _section_overrides(
    section: str, cls: type[Any], raw: Mapping[str, Any], where: str
) -> dict[str, Any]:
    return table_values(
        cls,
        raw,
        where,
        unknown=f"{{where}}: unknown key '{{key}}' in [{section}].",
        key_where=f"{{where}} [{section}] {{key}}",
    )


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    known = {
        f"{ENV_PREFIX}{s.upper()}_{k.upper()}": (s, k)
        for s, c in SECTIONS.items()
        for k in get_type_hints(c)
    }
    known.update(ENV_ALIASES)
    ignored = {"MT5FORGE_CONFIG"}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in ignored:
            continue
        if name not in known:
            raise ConfigError(
                f"Unknown environment variable {name}.",
                hint=did_you_mean(name, list(known)),
            )
        section, key = known[name]
        hint = get_type_hints(SECTIONS[section])[key]
        out.setdefault(section, {})[key] = coerce(value, hint, name, from_env=True)
    return out


def _validate(s: Settings) -> None:
    if s.base.source not in BASE_SOURCES:
        raise ConfigError(
            f"[base] source = {s.base.source!r} is not a base image source.",
            hint="Use one of: " + ", ".join(BASE_SOURCES) + ".",
        )
    if s.base.source == "registry" and "@sha256:" not in s.base.image:
        raise ConfigError(
            f"[base] image = {s.base.image!r} is not pinned by digest.",
            hint="Write it as NAME:TAG@sha256:<64 hex digits>.",
        )
    for name in s.images.names:
        if name not in IMAGES:
            raise ConfigError(
                f"[images] names: unknown image {name!r}.", hint=did_you_mean(name, list(IMAGES))
            )
    for variant in s.images.variants:
        if variant not in VARIANTS:
            raise ConfigError(
                f"[images] variants: unknown variant {variant!r}.",
                hint=did_you_mean(variant, list(VARIANTS)),
            )
    for label, ident in (("uid", s.runtime.uid), ("gid", s.runtime.gid)):
        if not 1 <= ident < 2**31:
            raise ConfigError(f"[runtime] {label} = {ident}: must be a non-root id (1 or more).")
    if s.fetch.mirror and not re.match(r"^(https?|file)://", s.fetch.mirror):
        raise ConfigError(f"[fetch] mirror = {s.fetch.mirror!r} is not an http(s) or file URL.")
    if s.engine.start_timeout <= 0:
        raise ConfigError("[engine] start_timeout must be a positive number of seconds.")
    w = s.watch
    if min(w.restart_max, w.restart_window) < 0 or min(w.settle, w.period, w.log_lines) < 1:
        raise ConfigError(
            "[watch] restart_max and restart_window must be 0 (the supervisor's) or more; "
            "settle, period and log_lines 1 or more."
        )
    if not (1 <= w.memory_percent <= 100 and 1 <= w.cpu_percent <= 100 * (os.cpu_count() or 1)):
        raise ConfigError(
            "[watch] memory_percent must be 1..100 and cpu_percent 1..100 x the CPUs here."
        )


def load(
    root: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Build the settings: defaults -> mt5forge.toml -> MT5FORGE_* -> ``overrides``.

    ``MT5FORGE_CONFIG`` names another config file; a missing default file is fine, a missing
    named one is an error.
    """
    env = os.environ if env is None else env
    root = (root or Path.cwd()).resolve()
    file_data: dict[str, Any] = {}
    named = env.get("MT5FORGE_CONFIG")
    config_path = Path(named) if named else root / CONFIG_FILE
    if named and not config_path.is_file():
        raise ConfigError(f"MT5FORGE_CONFIG names {config_path}, which does not exist.")
    if config_path.is_file():
        try:
            file_data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{config_path}: not valid TOML: {e}") from e

    merged: dict[str, dict[str, Any]] = {}
    for section, raw in file_data.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{config_path}: unknown section [{section}].",
                hint=did_you_mean(section, list(SECTIONS)),
            )
        if not isinstance(raw, dict):
            raise ConfigError(f"{config_path}: '{section}' must be a table ([{section}]).")
        merged[section] = _section_overrides(section, SECTIONS[section], raw, str(config_path))
    for section, values in _env_overrides(env).items():
        merged.setdefault(section, {}).update(values)
    for section, opts in (overrides or {}).items():
        if section not in SECTIONS:
            raise ConfigError(f"unknown section {section!r}.")
        clean = {k: v for k, v in opts.items() if v is not None}
        merged.setdefault(section, {}).update(
            _section_overrides(section, SECTIONS[section], clean, "option")
        )

    settings = Settings(
        root=root,
        **{name: cls(**merged.get(name, {})) for name, cls in SECTIONS.items()},
    )
    _validate(settings)
    return settings
