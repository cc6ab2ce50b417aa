"""Stage 1, ``base``: the pinned Debian base image every other image starts from.

Two sources, one result (a local image tagged ``<prefix>/base:<suite>``):

- ``registry``: pull ``debian:<suite>-slim@sha256:...`` by digest and check the digest we got.
- ``debootstrap``: build the rootfs from Debian's archive (debootstrap checks the Release
  signature against Debian's keyring), write apt sources for the suite, its updates and its
  security archive, then import it into the engine.

Both are keyed by their inputs: the same inputs reuse the image already made, in seconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker.errors
import requests

from mt5forge.config import Settings
from mt5forge.errors import BaseImageError, ToolError
from mt5forge.files import sha256_file
from mt5forge.progress import NullProgress, Progress
from mt5forge.tools import docker as dockertool
from mt5forge.tools import host as hostprograms
from mt5forge.tools.run import call

log = logging.getLogger(__name__)

#: Bump when the way we make the base changes, so that old images are not reused.
RECIPE = 1
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
FALLBACK_MIRROR = "http://deb.debian.org/debian"
LABEL_PREFIX = "org.mt5forge.base"
DEBOOTSTRAP_TIMEOUT = 1800

Say = Callable[[str], None]


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaseImage:
    reference: str
    """The stable tag (``mt5forge/base:trixie``) later stages build FROM."""
    keyed_reference: str
    """The tag that names these exact inputs (``mt5forge/base:trixie-<key>``)."""
    image_id: str
    """The engine's image id (sha256 of the image config)."""
    source: str
    """``debootstrap`` or ``registry``."""
    origin: str
    """Where it came from: the pinned reference, or the Debian mirror."""
    reused: bool
    """True when an image made from the same inputs was already there."""
    seconds: float
    """How long this call took."""
    size: int
    """Image size in bytes, as the engine reports it."""


def host_mirrors(sources: Path = HOST_SOURCES) -> tuple[str, str]:
    """The Debian and Debian-security archive URLs this host's apt uses (deb822 sources).

    A host behind a mirror or an apt proxy reaches Debian through it, so that is the URL most
    likely to work for debootstrap too.
    """
    main, security = "", ""
    try:
        text = sources.read_text(encoding="utf-8")
    except OSError:
        return "", ""
    for uri in re.findall(r"^URIs:\s*(\S+)", text, flags=re.MULTILINE):
        if "security" in uri:
            security = security or uri
        else:
            main = main or uri
    return main, security


def mirrors(settings: Settings) -> tuple[str, str]:
    host_main, host_security = host_mirrors()
    main = settings.base.debian_mirror or host_main or FALLBACK_MIRROR
    security = settings.base.security_mirror or (
        host_security if not settings.base.debian_mirror else ""
    )
    if not security:
        security = re.sub(r"/debian/?$", "/debian-security", main.rstrip("/"))
        if security == main.rstrip("/"):
            security = main.rstrip("/") + "-security"
    return main.rstrip("/"), security.rstrip("/")


def apt_sources(suite: str, main: str, security: str, keyring: str) -> str:
    """deb822 sources for the suite, its updates and its security archive."""
    return (
        f"Types: deb\nURIs: {main}\nSuites: {suite} {suite}-updates\nComponents: main\n"
        f"Signed-By: {keyring}\n\n"
        f"Types: deb\nURIs: {security}\nSuites: {suite}-security\nComponents: main\n"
        f"Signed-By: {keyring}\n"
    )


def inputs_key(inputs: dict[str, Any]) -> str:
    blob = json.dumps(inputs, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _file_sha256(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as e:
        raise BaseImageError(
            f"Debian's keyring {path} cannot be read: {e.strerror}.",
            hint="Install it: apt-get install debian-archive-keyring, or set [base] keyring.",
        ) from e


def ensure_base(
    settings: Settings, *, refresh: bool = False, progress: Progress | None = None
) -> BaseImage:
    """Make (or reuse) the base image for ``settings.base``; BaseImageError when it fails.

    Progress goes to ``progress`` as messages on the unit of work ``base``."""
    shown = progress or NullProgress()

    def say(message: str) -> None:
        shown.step("base", message=message, note=message)

    client = dockertool.connect()
    if settings.base.source == "registry":
        return _from_registry(settings, client, refresh=refresh, say=say)
    return _from_debootstrap(settings, client, refresh=refresh, say=say)


def _reuse(
    client: Any, keyed: str, stable: str, source: str, origin: str, started: float
) -> BaseImage | None:
    image = dockertool.image_or_none(client, keyed)
    if image is None:
        return None
    image.tag(*stable.rsplit(":", 1))
    return BaseImage(
        reference=stable,
        keyed_reference=keyed,
        image_id=image.id,
        source=source,
        origin=origin,
        reused=True,
        seconds=time.monotonic() - started,
        size=int(image.attrs.get("Size", 0)),
    )


def _from_registry(settings: Settings, client: Any, *, refresh: bool, say: Say) -> BaseImage:
    started = time.monotonic()
    pinned = settings.base.image
    name_tag, _, digest = pinned.partition("@")
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise BaseImageError(f"[base] image {pinned!r} is not pinned by a sha256 digest.")
    name = name_tag.rsplit(":", 1)[0] if ":" in name_tag.rsplit("/", 1)[-1] else name_tag
    key = inputs_key({"recipe": RECIPE, "source": "registry", "image": pinned})
    prefix = f"{settings.images.prefix}/base"
    keyed, stable = f"{prefix}:{settings.base.suite}-{key}", f"{prefix}:{settings.base.suite}"
    if not refresh:
        found = _reuse(client, keyed, stable, "registry", pinned, started)
        if found:
            return found
    say(f"pulling {name}@{digest}")
    try:
        image = client.images.pull(f"{name}@{digest}")
    except (docker.errors.APIError, requests.RequestException) as e:
        raise BaseImageError(
            f"Could not pull the base image {name}@{digest}: {e}",
            hint="No registry reachable? Build the base from Debian's archive instead: "
            "MT5FORGE_BASE_SOURCE=debootstrap.",
        ) from e
    got = [d.partition("@")[2] for d in image.attrs.get("RepoDigests", [])]
    if digest not in got:
        raise BaseImageError(
            f"The engine pulled {name} but reports digests {got}, not the pinned {digest}."
        )
    image.tag(*keyed.rsplit(":", 1))
    image.tag(*stable.rsplit(":", 1))
    return BaseImage(
        reference=stable,
        keyed_reference=keyed,
        image_id=image.id,
        source="registry",
        origin=pinned,
        reused=False,
        seconds=time.monotonic() - started,
        size=int(image.attrs.get("Size", 0)),
    )


def _from_debootstrap(settings: Settings, client: Any, *, refresh: bool, say: Say) -> BaseImage:
    started = time.monotonic()
    suite = settings.base.suite
    main, security = mirrors(settings)
    keyring = Path(settings.base.keyring)
    inputs = {
        "recipe": RECIPE,
        "source": "debootstrap",
        "suite": suite,
        "mirror": main,
        "security": security,
        "keyring_sha256": _file_sha256(keyring),
    }
    key = inputs_key(inputs)
    prefix = f"{settings.images.prefix}/base"
    keyed, stable = f"{prefix}:{suite}-{key}", f"{prefix}:{suite}"
    if not refresh:
        found = _reuse(client, keyed, stable, "debootstrap", main, started)
        if found:
            return found

    if os.geteuid() != 0:
        raise BaseImageError(
            "debootstrap needs root to build the base image.",
            hint="Run as root, or pull the pinned image instead: MT5FORGE_BASE_SOURCE=registry.",
        )
    hostprograms.ensure_programs(["debootstrap"])
    if not Path("/usr/share/debootstrap/scripts", suite).exists():
        raise BaseImageError(
            f"This host's debootstrap does not know the suite '{suite}'.",
            hint="Install a newer debootstrap (Debian bookworm's 1.0.128 knows trixie).",
        )

    work = settings.run_dir / "tmp"
    work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"base-{suite}-", dir=work))
    rootfs = tmp / "rootfs"
    try:
        say(f"debootstrap {suite} from {main} (Release signature checked with {keyring})")
        try:
            call(
                "debootstrap",
                "--variant=minbase",
                f"--keyring={keyring}",
                suite,
                rootfs,
                main,
                timeout=DEBOOTSTRAP_TIMEOUT,
            )
        except ToolError as e:
            detail = _debootstrap_log(rootfs) or e.hint or ""
            raise BaseImageError(
                f"debootstrap could not build Debian {suite} from {main}.",
                hint=f"{detail}\nCheck [base] debian_mirror (or MT5FORGE_BASE_DEBIAN_MIRROR) "
                "and that the host reaches it.",
            ) from e
        _finish_rootfs(rootfs, suite, main, security, settings.base.keyring)
        say("packing the root filesystem")
        tarball = tmp / "rootfs.tar"
        call(
            "tar",
            "--numeric-owner",
            "--xattrs",
            "-C",
            rootfs,
            "-cf",
            tarball,
            ".",
            timeout=600,
        )
        say(f"importing as {keyed}")
        image_id = _import(client, tarball, keyed, inputs, main)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    image = client.images.get(image_id)
    image.tag(*stable.rsplit(":", 1))
    return BaseImage(
        reference=stable,
        keyed_reference=keyed,
        image_id=image.id,
        source="debootstrap",
        origin=main,
        reused=False,
        seconds=time.monotonic() - started,
        size=int(image.attrs.get("Size", 0)),
    )


def _debootstrap_log(rootfs: Path) -> str:
    path = rootfs / "debootstrap" / "debootstrap.log"
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-12:])


def _finish_rootfs(rootfs: Path, suite: str, main: str, security: str, keyring: str) -> None:
    """apt sources for suite, updates and security; no caches, lists or host leftovers."""
    sources_d = rootfs / "etc/apt/sources.list.d"
    sources_d.mkdir(parents=True, exist_ok=True)
    (sources_d / "debian.sources").write_text(
        apt_sources(suite, main, security, keyring), encoding="utf-8"
    )
    legacy = rootfs / "etc/apt/sources.list"
    if legacy.exists():
        legacy.unlink()
    # Keep directories (apt and dpkg expect lists/partial, archives/partial, log/apt), drop files.
    for d in ("var/lib/apt/lists", "var/cache/apt/archives", "var/log"):
        for entry in (rootfs / d).rglob("*"):
            if entry.is_file() and entry.name != "lock":
                entry.unlink()
    for cache in (rootfs / "var/cache/apt").glob("*.bin"):
        cache.unlink()
    # The engine writes these at run time; the builder's copies must not ship.
    for f in ("etc/hostname", "etc/resolv.conf"):
        (rootfs / f).unlink(missing_ok=True)
    (rootfs / "etc/hostname").write_text("localhost\n", encoding="utf-8")


def _import(client: Any, tarball: Path, keyed: str, inputs: dict[str, Any], mirror: str) -> str:
    labels = {
        f"{LABEL_PREFIX}.source": "debootstrap",
        f"{LABEL_PREFIX}.suite": str(inputs["suite"]),
        f"{LABEL_PREFIX}.mirror": mirror,
        f"{LABEL_PREFIX}.inputs": inputs_key(inputs),
        "org.opencontainers.image.created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    changes = [f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in labels.items()]
    changes += ['CMD ["bash"]', "ENV LANG=C.UTF-8"]
    repository, tag = keyed.rsplit(":", 1)
    try:
        out = client.api.import_image_from_file(
            str(tarball), repository=repository, tag=tag, changes=changes
        )
    except (docker.errors.APIError, requests.RequestException) as e:
        raise BaseImageError(f"The engine refused to import the base rootfs: {e}") from e
    # The API answers with JSON lines; the last one carries {"status": "sha256:..."}.
    text = out if isinstance(out, str) else json.dumps(out)
    found = re.findall(r"sha256:[0-9a-f]{64}", text)
    if not found:
        raise BaseImageError(f"The engine imported the base but returned no image id: {text!r}")
    return str(found[-1])
