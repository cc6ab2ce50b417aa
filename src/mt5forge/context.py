"""The build context of one image: its Dockerfile and scripts, ``build/common/``, the bridge and
bot sources, the build-time CA bundle (an empty file when none is set) and, for the terminal,
the artifacts fetch verified, under their upstream file names. The Dockerfile COPYs from there
only.

Copies keep their modification times (``copy2``), so an unchanged input gives the same context
and the builder's cache holds. Artifacts are copied, never hard-linked: a link would let a
change to the build context reach the verified cache (and the other way round).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

from mt5forge.config import Settings
from mt5forge.errors import BuildError, ConfigError
from mt5forge.images import WINDOWS_WHEELS, ArtifactLike, Target

_IGNORE = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", ".mypy_cache", ".ruff_cache",
    "build", "dist", "tests", ".venv",
)  # fmt: skip


INCLUDE = re.compile(r"^# mt5forge:include ([a-z0-9-]+)\s*$", re.MULTILINE)
"""A line that stands for the fragment ``build/common/dockerfile/<name>``."""


def render_dockerfile(path: Path, fragments: Path) -> str:
    """``path`` with each ``# mt5forge:include NAME`` line replaced by that fragment.

    Text shared by several Dockerfiles (the Python runtime stage of bot, terminal-sim and the
    terminal; the bot's entry lines of both variants) lives once in ``build/common/
    dockerfile/`` (the docker-library pattern, done at staging time, so no generated copy is
    committed to drift). An unknown fragment is a BuildError.
    """
    text = path.read_text(encoding="utf-8")

    def expand(m: re.Match[str]) -> str:
        fragment = fragments / m.group(1)
        if not fragment.is_file():
            raise BuildError(f"{path}: `# mt5forge:include {m.group(1)}` names no {fragment}.")
        # The fragment's own header (comments up to the first blank line) says what it is
        # for; in the rendered Dockerfile one marker line says where the text came from.
        head, _, body = fragment.read_text(encoding="utf-8").partition("\n\n")
        if not body:
            body = head
        return f"# --- {m.group(1)} (build/common/dockerfile) ---\n{body.rstrip()}"

    return INCLUDE.sub(expand, text)


def _copy_tree(src: Path, dest: Path) -> None:
    if not src.is_dir():
        raise BuildError(f"{src} is missing; the build context needs it.")
    shutil.copytree(src, dest, ignore=_IGNORE, dirs_exist_ok=False)


#: Where hosts keep the bundle of roots they trust (Debian/Ubuntu, then Fedora/RHEL).
HOST_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def ca_bundle(settings: Settings) -> Path | None:
    """The build-time CA bundle: ``host`` is the host's own trust store (what lets the host
    itself through a TLS-intercepting proxy), a path is that file, empty is none."""
    value = settings.build.ca_bundle
    if not value:
        return None
    if value == "host":
        return next((Path(p) for p in HOST_CA_BUNDLES if Path(p).is_file()), None)
    path = settings.path(value)
    if not path.is_file():
        raise ConfigError(f"[build] ca_bundle = {value!r}: no such file.")
    return path


def stage_context(
    target: Target,
    settings: Settings,
    dest: Path,
    roles: Mapping[str, ArtifactLike] | None = None,
) -> Path:
    """Assemble the build context of ``target.image`` in ``dest`` (replaced if present).

    Copies keep their modification times (``copy2``), so an unchanged input gives the same
    context and the builder's cache holds.
    """
    build_dir = settings.root / "build"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    image_dir = build_dir / target.image
    if not (image_dir / "Dockerfile").is_file():
        raise BuildError(f"{image_dir / 'Dockerfile'} is missing.")
    rendered = render_dockerfile(image_dir / "Dockerfile", build_dir / "common" / "dockerfile")
    (dest / "Dockerfile").write_text(rendered, encoding="utf-8")
    _copy_tree(image_dir, dest / target.image)
    (dest / target.image / "Dockerfile").unlink()
    _copy_tree(build_dir / "common", dest / "common")
    (dest / "src").mkdir()
    _copy_tree(build_dir / "bridge", dest / "src" / "bridge")
    if target.image == "bot":
        _copy_tree(build_dir / "bot", dest / "src" / "bot")
        (dest / "src" / "bot" / "Dockerfile").unlink(missing_ok=True)

    # The CA bundle goes in as ca/build-ca.pem, empty when none is set, so the COPY in the
    # download stages always has a source. Only those stages name it.
    (dest / "ca").mkdir()
    bundle = dest / "ca" / "build-ca.pem"
    src = ca_bundle(settings)
    if src is not None:
        shutil.copy2(src, bundle)
    else:
        bundle.write_bytes(b"")
        _pin_mtime(bundle)

    if target.image == "terminal":
        if roles is None:
            raise BuildError("The terminal needs its artifacts; none were given.")
        wheels = settings.path(settings.fetch.manifests_dir) / WINDOWS_WHEELS
        if not wheels.is_file():
            raise BuildError(f"{wheels} is missing: the pinned Windows wheels of the bridge.")
        shutil.copy2(wheels, dest / "terminal" / "requirements-windows.txt")
        artifacts_dir = dest / "artifacts"
        artifacts_dir.mkdir()
        for artifact in roles.values():
            _copy_verified(artifact, artifacts_dir / artifact.filename)
    return dest


def _pin_mtime(path: Path) -> None:
    """A fixed mtime for files we write, so a re-staged context is byte-for-byte the same."""
    os.utime(path, (0, 0))


def _copy_verified(artifact: ArtifactLike, dest: Path) -> None:
    """Copy an artifact into the context, checking its bytes once more on the way. A copy,
    never a hard link: the context must not share an inode with the verified cache.

    The bytes are hashed as they are copied (what is checked is what lands in the context, with
    no window to swap the file between check and copy), and the cache file is opened without
    following a link: the cache never follows one.
    """
    try:
        fd = os.open(artifact.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise BuildError(
            f"{artifact.path} cannot be read as a regular file ({e.strerror}).",
            hint="The artifact cache was changed behind our back; run `invoke fetch` again.",
        ) from e
    h = hashlib.sha256()
    with os.fdopen(fd, "rb") as src, open(dest, "xb") as out:
        if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            raise BuildError(f"{artifact.path} is not a regular file.")
        while block := src.read(1 << 20):
            h.update(block)
            out.write(block)
        shutil.copystat(artifact.path, dest, follow_symlinks=False)
    if h.hexdigest() != artifact.sha256:
        dest.unlink()
        raise BuildError(
            f"{artifact.path} no longer has the sha256 fetch verified ({artifact.sha256}).",
            hint="The artifact cache was changed behind our back; run `invoke fetch` again.",
        )
