"""Stage 3, ``build``: every image x variant from ``build/``, verified artifacts in the context.

The flow for each image, top to bottom:

1. :func:`targets` picks the image x variant pairs (``terminal-sim`` has one variant, ``slim``).
2. :func:`stage_context` assembles a build context under the run directory: the image's
   Dockerfile and scripts, ``build/common/``, the bridge and bot sources, the build-time CA
   bundle (an empty file when none is set) and, for the terminal, the artifacts that
   ``fetch_all`` verified, under their upstream file names. The Dockerfile COPYs from there only.
3. :func:`build_args` and :func:`labels` compute the inputs: artifact file names and sha256s
   (the Dockerfile checks each file against its sha256 before use), the runtime UID/GID, and the
   OCI labels (source, revision, version, created, base name and digest) plus one label per
   artifact and wheel sha256 and the profile (``upstream`` or ``fixture``).
4. :func:`build_image` builds one target through the engine and reports each step.
5. A JSON build record per image goes to ``<run_dir>/records/<image id>/build.json``.

Builder choice: docker-py, that is the engine API's classic builder, not BuildKit. BuildKit's
secret mounts would keep the CA bundle out of every layer, but here they need the separate
Debian 20.10 client binary (the docker client first on PATH has no buildx, see shared/TESTBED.md)
and parsing its text progress. The API builder works with any engine docker-py reaches, streams
one JSON event per step (step number, "Using cache", errors) and needs no client binary. The CA
bundle therefore reaches the stages that download by an ordinary COPY into those stages, and no
shipped stage is built FROM them: shipped stages copy named outputs (a venv, a directory of
wheels) out of them, never the bundle. tests/integration/test_build_images.py walks every layer
of every final image (docker save) to prove the bundle is in none of them.

Cache: the classic builder keys a step by its parent and instruction (and, for COPY, the
content of what it copies). Labels are passed as build options, so they land in a last
metadata step; "created" is the time of the last commit that touched the image's inputs, not
the wall clock, so an unchanged tree rebuilds nothing, labels included.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import struct
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import docker.errors
import requests

from mt5forge import __version__
from mt5forge.config import IMAGES, VARIANTS, Settings
from mt5forge.errors import BuildError, ConfigError, ToolError
from mt5forge.records import write_record
from mt5forge.tools import docker as dockertool
from mt5forge.tools.run import call

log = logging.getLogger(__name__)

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

LABEL_OCI = "org.opencontainers.image"
LABEL_OURS = "org.mt5forge"
BUILD_TIMEOUT = 3600
_IGNORE = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", ".mypy_cache", ".ruff_cache",
    "build", "dist", "tests", ".venv",
)  # fmt: skip


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


@dataclasses.dataclass(frozen=True, kw_only=True)
class Target:
    image: str
    variant: str

    def reference(self, prefix: str) -> str:
        return f"{prefix}/{self.image}:{self.variant}"

    def __str__(self) -> str:
        return f"{self.image}:{self.variant}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SourceInfo:
    url: str
    """Where the source lives (``git remote get-url origin``, else a file: URL of the tree)."""
    revision: str
    """Last commit that touched the image's inputs; ``-dirty`` when they have local edits."""
    created: str
    """RFC 3339 time of that commit: the image's creation time, stable across rebuilds."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaseInfo:
    name: str
    """The reference the Dockerfiles build FROM."""
    digest: str
    """Its digest: the pinned registry digest, or the engine's image id for a debootstrap base."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class StepEvent:
    target: Target
    number: int
    total: int
    instruction: str
    cached: bool | None
    """True once the step reported "Using cache", False once it ran, None while unknown."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuildResult:
    target: Target
    reference: str
    image_id: str
    size: int
    """Bytes, as the engine reports the image (all layers)."""
    layers: int
    seconds: float
    steps: int
    """Steps that the builder can take from its cache (all but FROM and the ARGs before it)."""
    cached: int
    """Of those, how many came from the cache."""
    record: Path
    log_file: Path

    @property
    def all_cached(self) -> bool:
        return self.cached == self.steps


Progress = Callable[[StepEvent], None]


# --- what to build --------------------------------------------------------------------------


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


def parse_pip_hashes(text: str) -> dict[str, tuple[str, str]]:
    """``name -> (version, sha256)`` from a hash-pinned requirements file (first hash each)."""
    joined = re.sub(r"\\\s*\n", " ", text)
    out: dict[str, tuple[str, str]] = {}
    for line in joined.splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9._-]+)==([^\s;]+).*?--hash=sha256:([0-9a-f]{64})", line)
        if m:
            name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
            out[name] = (m.group(2), m.group(3))
    return out


def label_key(name: str) -> str:
    """A label-safe form of an artifact or package name."""
    return re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-.")


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


def labels(
    target: Target,
    *,
    source: SourceInfo,
    base: BaseInfo,
    profile: str,
    artifacts: Iterable[ArtifactLike] = (),
    wheels: Mapping[str, tuple[str, str]] | None = None,
    version: str = __version__,
) -> dict[str, str]:
    """OCI labels plus one label per artifact (and wheel) sha256, and the profile."""
    out = {
        f"{LABEL_OCI}.title": f"mt5forge {target.image} ({target.variant})",
        f"{LABEL_OCI}.source": source.url,
        f"{LABEL_OCI}.revision": source.revision,
        f"{LABEL_OCI}.version": version,
        f"{LABEL_OCI}.created": source.created,
        f"{LABEL_OCI}.base.name": base.name,
        f"{LABEL_OCI}.base.digest": base.digest,
        f"{LABEL_OCI}.licenses": "MIT",
        f"{LABEL_OURS}.image": target.image,
        f"{LABEL_OURS}.variant": target.variant,
        f"{LABEL_OURS}.profile": profile,
    }
    for a in artifacts:
        key = label_key(a.name)
        out[f"{LABEL_OURS}.artifact.{key}.file"] = a.filename
        out[f"{LABEL_OURS}.artifact.{key}.version"] = a.version
        out[f"{LABEL_OURS}.artifact.{key}.sha256"] = a.sha256
    for name, (ver, sha) in sorted((wheels or {}).items()):
        out[f"{LABEL_OURS}.wheel.{label_key(name)}.version"] = ver
        out[f"{LABEL_OURS}.wheel.{label_key(name)}.sha256"] = sha
    return out


# --- source and base ------------------------------------------------------------------------


def _git(root: Path, *args: str) -> str:
    try:
        proc = call("git", "-C", root, *args, timeout=30)
    except ToolError:
        return ""
    return proc.stdout.decode("utf-8", "replace").strip()


def public_url(url: str) -> str:
    """``url`` without user information: a clone URL can carry a token (GitLab CI's
    ``https://gitlab-ci-token:<job token>@...``), and the source label is public."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        return urllib.parse.urlunsplit(parts._replace(netloc=host))
    return url


def source_info(
    root: Path, paths: Sequence[str] = ("build", "manifests", "checksums")
) -> SourceInfo:
    """Source URL, revision and commit time of the image inputs under ``root``."""
    existing = [p for p in paths if (root / p).exists()]
    url = public_url(_git(root, "remote", "get-url", "origin")) or root.resolve().as_uri()
    rev = _git(root, "log", "-1", "--format=%H", "--", *existing) or _git(root, "rev-parse", "HEAD")
    stamp = _git(root, "log", "-1", "--format=%ct", "--", *existing)
    if rev and _git(root, "status", "--porcelain", "--untracked-files=all", "--", *existing):
        rev += "-dirty"
    created = (
        datetime.fromtimestamp(int(stamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if stamp.isdigit()
        else "1970-01-01T00:00:00Z"
    )
    return SourceInfo(url=url, revision=rev or "unknown", created=created)


# --- the context ----------------------------------------------------------------------------


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
    shutil.copy2(image_dir / "Dockerfile", dest / "Dockerfile")
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
    """Copy (hard link where possible) an artifact, checking its bytes once more on the way."""
    digest = hashlib.sha256()
    with open(artifact.path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != artifact.sha256:
        raise BuildError(
            f"{artifact.path} no longer has the sha256 fetch verified ({artifact.sha256}).",
            hint="The artifact cache was changed behind our back; run `invoke fetch` again.",
        )
    try:
        dest.hardlink_to(artifact.path)
    except OSError:
        shutil.copy2(artifact.path, dest)


# --- building -------------------------------------------------------------------------------


@dataclasses.dataclass
class _Steps:
    total: int = 0
    current: int = 0
    instruction: str = ""
    cacheable: int = 0
    cached: int = 0
    current_cached: bool | None = None


_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


def build_image(
    client: Any,
    target: Target,
    context: Path,
    *,
    reference: str,
    buildargs: Mapping[str, str],
    image_labels: Mapping[str, str],
    log_file: Path,
    no_cache: bool = False,
    progress: Progress | None = None,
) -> tuple[str, int, int, float]:
    """Build ``target`` from ``context``; return (image id, cacheable steps, cached, seconds)."""
    started = time.monotonic()
    steps = _Steps()
    image_id = ""
    seen_from = False
    tail: list[str] = []
    log_file.parent.mkdir(parents=True, exist_ok=True)

    def finish_step() -> None:
        if steps.current and progress:
            progress(
                StepEvent(
                    target=target,
                    number=steps.current,
                    total=steps.total,
                    instruction=steps.instruction,
                    cached=steps.current_cached,
                )
            )

    with open(log_file, "w", encoding="utf-8") as out:
        try:
            stream = client.api.build(
                path=str(context),
                tag=reference,
                target=target.variant,
                buildargs=dict(buildargs),
                labels=dict(image_labels),
                rm=True,
                forcerm=True,
                pull=False,
                nocache=no_cache,
                decode=True,
                timeout=BUILD_TIMEOUT,
            )
            for event in stream:
                if "error" in event:
                    out.write(f"ERROR: {event['error']}\n")
                    raise BuildError(
                        f"{target} failed to build at step {steps.current}/{steps.total} "
                        f"({steps.instruction[:80]}): {str(event['error']).strip()}",
                        hint="Last lines of the build log ("
                        + str(log_file)
                        + "):\n"
                        + "".join(tail[-25:]),
                    )
                aux = event.get("aux")
                if isinstance(aux, dict) and "ID" in aux:
                    image_id = str(aux["ID"])
                text = event.get("stream")
                if not isinstance(text, str):
                    continue
                out.write(text)
                tail.append(text if text.endswith("\n") else text + "\n")
                del tail[:-200]
                m = _STEP.match(text.strip())
                if m:
                    finish_step()
                    steps.current, steps.total = int(m.group(1)), int(m.group(2))
                    steps.instruction = m.group(3)
                    keyword = steps.instruction.split(" ", 1)[0].upper()
                    if keyword == "FROM":
                        seen_from = True
                        steps.current_cached = None
                    elif seen_from:
                        steps.cacheable += 1
                        steps.current_cached = False
                    else:  # an ARG before the first FROM: nothing to cache
                        steps.current_cached = None
                elif "---> Using cache" in text and steps.current_cached is False:
                    steps.current_cached = True
                    steps.cached += 1
            finish_step()
        except docker.errors.BuildError as e:
            raise BuildError(f"{target} failed to build: {e.msg}") from e
        except (docker.errors.APIError, requests.RequestException) as e:
            raise BuildError(f"The engine failed while building {target}: {e}") from e
    if not image_id:
        image_id = str(client.images.get(reference).id)
    return image_id, steps.cacheable, steps.cached, time.monotonic() - started


# --- the stage ------------------------------------------------------------------------------


def base_info(settings: Settings, client: Any) -> BaseInfo:
    """The base the Dockerfiles build FROM; BuildError when ``invoke base`` has not made it."""
    from mt5forge.base import ensure_base

    image = ensure_base(settings)  # reuses the image made from the same inputs, in seconds
    if settings.base.source == "registry":
        digest = settings.base.image.partition("@")[2]
        return BaseInfo(name=image.reference, digest=digest)
    return BaseInfo(name=image.reference, digest=image.image_id)


def build_all(
    settings: Settings,
    *,
    images: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    refresh: bool = False,
    no_cache: bool = False,
    offline: bool = False,
    artifacts: Sequence[ArtifactLike] | None = None,
    progress: Progress | None = None,
    on_start: Callable[[Target], None] | None = None,
) -> list[BuildResult]:
    """Build every requested target; write one build record per image. BuildError on failure.

    ``artifacts`` skips the fetch (tests pass what they fetched); otherwise the terminal's come
    from ``mt5forge.fetch.fetch_all``. ``refresh`` re-runs ``apt-get upgrade`` in every image.
    """
    plan = targets(settings, images, variants)
    client = dockertool.connect(timeout=BUILD_TIMEOUT)
    base = base_info(settings, client)
    source = source_info(settings.root)
    apt_refresh = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") if refresh else "0"

    roles: dict[str, ArtifactLike] | None = None
    profile = settings.fetch.profile
    wheels: dict[str, tuple[str, str]] = {}
    if any(t.image == "terminal" for t in plan):
        if artifacts is None:
            from mt5forge.fetch import fetch_all

            artifacts = fetch_all(settings, offline=offline)
        roles = terminal_artifacts(artifacts)
        profiles = {a.profile for a in roles.values()}
        if len(profiles) != 1:
            raise BuildError(f"The terminal's artifacts mix profiles: {sorted(profiles)}.")
        profile = profiles.pop()
        wheels_file = settings.path(settings.fetch.manifests_dir) / WINDOWS_WHEELS
        if wheels_file.is_file():
            wheels = parse_pip_hashes(wheels_file.read_text(encoding="utf-8"))

    linux_reqs = parse_pip_hashes(
        (settings.root / "build" / "common" / "requirements-linux.txt").read_text(encoding="utf-8")
    )
    build_dir = settings.run_dir / "build"
    results: list[BuildResult] = []
    staged: dict[str, Path] = {}
    for target in plan:
        if on_start:
            on_start(target)
        context = staged.get(target.image)
        if context is None:
            context = stage_context(
                target,
                settings,
                build_dir / "context" / target.image,
                roles if target.image == "terminal" else None,
            )
            staged[target.image] = context
        reference = target.reference(settings.images.prefix)
        is_terminal = target.image == "terminal"
        args = build_args(target, settings, base, roles if is_terminal else None,
                          apt_refresh=apt_refresh)  # fmt: skip
        image_labels = labels(
            target,
            source=source,
            base=base,
            profile=profile,
            artifacts=roles.values() if (is_terminal and roles) else (),
            wheels=wheels if is_terminal else linux_reqs,
        )
        log_file = build_dir / "logs" / f"{target.image}-{target.variant}.log"
        log.info("building %s from %s", reference, context)
        image_id, steps, cached, seconds = build_image(
            client,
            target,
            context,
            reference=reference,
            buildargs=args,
            image_labels=image_labels,
            log_file=log_file,
            no_cache=no_cache,
            progress=progress,
        )
        image = client.images.get(image_id)
        size = int(image.attrs.get("Size", 0))
        layers = len(image.attrs.get("RootFS", {}).get("Layers", []))
        record = write_record(
            settings.run_dir,
            "build",
            image_id,
            {
                "image": target.image,
                "variant": target.variant,
                "reference": reference,
                "size": size,
                "layers": layers,
                "seconds": round(seconds, 2),
                "steps": steps,
                "cached_steps": cached,
                "profile": profile,
                "base": dataclasses.asdict(base),
                "source": dataclasses.asdict(source),
                "build_args": args,
                "labels": image_labels,
                "artifacts": [
                    {"name": a.name, "file": a.filename, "sha256": a.sha256, "version": a.version}
                    for a in (roles.values() if (is_terminal and roles) else ())
                ],
                "log": str(log_file),
                "builder": "engine API (classic builder) via docker-py",
            },
        )
        results.append(
            BuildResult(
                target=target,
                reference=reference,
                image_id=image_id,
                size=size,
                layers=layers,
                seconds=seconds,
                steps=steps,
                cached=cached,
                record=record,
                log_file=log_file,
            )
        )
    return results
