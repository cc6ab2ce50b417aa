"""What gets built: the images, their variants and targets, the terminal's artifact roles, and
each target's build arguments.

The data here is what the Dockerfiles in ``build/`` expect; nothing here talks to the engine.
"""

from __future__ import annotations

import dataclasses
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from mt5forge.config import IMAGES, VARIANTS, Settings
from mt5forge.errors import BuildError, ConfigError

#: Which variants each image has. terminal-sim has one, built as ``slim``.
IMAGE_VARIANTS: dict[str, tuple[str, ...]] = {
    "terminal": ("slim", "secure"),
    "bot": ("slim", "secure"),
    "terminal-sim": ("slim",),
}

#: Terminal artifacts: build-arg prefix -> (file name pattern, what it is). The Dockerfile gets
#: ``<PREFIX>_MSI`` or ``<PREFIX>_FILE`` and ``<PREFIX>_SHA256`` for each.
TERMINAL_ROLES: dict[str, tuple[str, str]] = {
    "WINE_MONO": (r"^wine-mono-[0-9.]+-x86\.msi$", "Wine Mono MSI"),
    "WINE_GECKO_X86": (r"^wine-gecko-[0-9.]+-x86\.msi$", "Wine Gecko MSI (x86)"),
    "WINE_GECKO_X86_64": (r"^wine-gecko-[0-9.]+-x86_64\.msi$", "Wine Gecko MSI (x86_64)"),
    "WINDOWS_PYTHON": (
        r"^python-3\.12\.[0-9]+-(amd64\.exe|embed-amd64\.zip)$",
        "Windows CPython 3.12 (installer or embeddable zip)",
    ),
    "MT5SETUP": (r"^mt5setup\.exe$", "MetaTrader 5 installer"),
}

#: The wheels of the terminal's Windows side, with pip hashes (owned by the fetch manifests).
WINDOWS_WHEELS = "wheels-win_amd64.txt"


class ArtifactLike(Protocol):
    """What the build needs of ``mt5forge.fetch.Artifact``."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def filename(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def path(self) -> Path: ...
    @property
    def profile(self) -> str: ...
    @property
    def origin(self) -> str: ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class Target:
    image: str
    variant: str

    def reference(self, prefix: str) -> str:
        return f"{prefix}/{self.image}:{self.variant}"

    def __str__(self) -> str:
        return f"{self.image}:{self.variant}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaseInfo:
    name: str
    """The reference the Dockerfiles build FROM."""
    digest: str
    """Its digest: the pinned registry digest, or the engine's image id for a debootstrap base."""


def targets(
    settings: Settings,
    images: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
) -> list[Target]:
    """The image x variant pairs to build, in the configured order; ConfigError for a typo."""
    want_images = list(images or settings.images.names)
    want_variants = list(variants or settings.images.variants)
    for name in want_images:
        if name not in IMAGES:
            raise ConfigError(f"Unknown image {name!r}.", hint="Images: " + ", ".join(IMAGES))
    for variant in want_variants:
        if variant not in VARIANTS:
            raise ConfigError(
                f"Unknown variant {variant!r}.", hint="Variants: " + ", ".join(VARIANTS)
            )
    out = [
        Target(image=image, variant=variant)
        for image in want_images
        for variant in IMAGE_VARIANTS[image]
        if variant in want_variants
    ]
    if not out:
        raise ConfigError(
            f"Nothing to build for images {want_images} and variants {want_variants}.",
            hint="terminal-sim has the slim variant only.",
        )
    return out


def terminal_artifacts(artifacts: Iterable[ArtifactLike]) -> dict[str, ArtifactLike]:
    """Map each terminal role (``WINE_MONO``...) to exactly one fetched artifact."""
    pool = list(artifacts)
    out: dict[str, ArtifactLike] = {}
    for role, (pattern, what) in TERMINAL_ROLES.items():
        found = [a for a in pool if re.match(pattern, a.filename)]
        if len(found) != 1:
            names = ", ".join(a.filename for a in found) or "none"
            raise BuildError(
                f"The terminal needs exactly one {what} among the artifacts; found {names}.",
                hint="Check manifests/ and run `invoke fetch`.",
            )
        out[role] = found[0]
    return out


def pe_machine(path: Path) -> str:
    """``i386``, ``amd64`` or ``unknown``: the machine a Windows executable is built for."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise BuildError(f"Cannot read {path}: {e.strerror}") from e
    if len(head) < 0x40 or head[:2] != b"MZ":
        return "unknown"
    (offset,) = struct.unpack_from("<I", head, 0x3C)
    if offset + 6 > len(head) or head[offset : offset + 4] != b"PE\0\0":
        return "unknown"
    (machine,) = struct.unpack_from("<H", head, offset + 4)
    return {0x14C: "i386", 0x8664: "amd64"}.get(machine, "unknown")


def build_args(
    target: Target,
    settings: Settings,
    base: BaseInfo,
    roles: Mapping[str, ArtifactLike] | None = None,
    *,
    apt_refresh: str = "0",
) -> dict[str, str]:
    """Build arguments of ``target``. Nothing secret: they are visible in the image history."""
    args = {
        "BASE": base.name,
        "APT_REFRESH": apt_refresh,
        "RUNTIME_UID": str(settings.runtime.uid),
        "RUNTIME_GID": str(settings.runtime.gid),
    }
    if target.image == "terminal":
        if roles is None:
            raise BuildError("The terminal needs its artifacts; none were given.")
        for role, artifact in roles.items():
            kind = "MSI" if artifact.filename.endswith(".msi") else "FILE"
            args[f"{role}_{kind}"] = artifact.filename
            args[f"{role}_SHA256"] = artifact.sha256
        # Debian's 64-bit Wine has no WoW64; a 32-bit installer needs wine32 (measured: the
        # i386-windows directory of trixie's libwine is empty).
        args["WINE_I386"] = "1" if pe_machine(roles["MT5SETUP"].path) == "i386" else "0"
    return args
