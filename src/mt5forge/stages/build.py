"""Stage 3, ``build``: every image x variant from ``build/``, verified artifacts in the context.

The flow for each image, top to bottom:

1. :func:`mt5forge.images.targets` picks the image x variant pairs (``terminal-sim`` has one
   variant, ``slim``).
2. :func:`mt5forge.context.stage_context` assembles a build context under the run directory:
   the image's Dockerfile and scripts, ``build/common/``, the bridge and bot sources, the
   build-time CA bundle and, for the terminal, the artifacts the fetch stage verified.
3. :func:`mt5forge.images.build_args` and :func:`mt5forge.labels.labels` compute the inputs:
   artifact file names and sha256s (the Dockerfile checks each file again before use), the
   runtime UID/GID, and the OCI and provenance labels.
4. :func:`mt5forge.tools.docker.build_image` builds one target through the engine and reports
   each step.
5. A build record per image goes to ``<run_dir>/records/<image id>/build.json``.

The stage is given the base image (the ``base`` stage's result) and the artifacts (the
``fetch`` stage's result); it fetches and pulls nothing itself.

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
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from mt5forge.base import BaseImage
from mt5forge.config import Settings
from mt5forge.context import stage_context
from mt5forge.errors import BuildError
from mt5forge.images import (
    WINDOWS_WHEELS,
    ArtifactLike,
    BaseInfo,
    Target,
    build_args,
    targets,
    terminal_artifacts,
)
from mt5forge.labels import labels, parse_pip_hashes, source_info
from mt5forge.progress import NullProgress, Progress
from mt5forge.records import write_record
from mt5forge.stages import Job
from mt5forge.stages.fetch import FetchResult
from mt5forge.tools import docker as dockertool

log = logging.getLogger(__name__)


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


def base_info(settings: Settings, image: BaseImage) -> BaseInfo:
    """What the Dockerfiles build FROM: the base stage's image and the digest that pins it
    (the registry digest, or the engine's image id for a debootstrap base)."""
    if settings.base.source == "registry":
        return BaseInfo(name=image.reference, digest=settings.base.image.partition("@")[2])
    return BaseInfo(name=image.reference, digest=image.image_id)


def _step_printer(progress: Progress, target: Target) -> dockertool.StepFn:
    key = str(target)

    def on_step(step: dockertool.BuildStep) -> None:
        # Labels are one metadata step each (docker build --label); they are not worth a line.
        ran = step.cached is False and not step.instruction.startswith("LABEL ")
        progress.step(
            key,
            completed=step.number,
            total=step.total,
            message=f"{target} {step.instruction[:60]}",
            note=f"{target} step {step.number}/{step.total} ran: {step.instruction[:90]}"
            if ran
            else None,
        )

    return on_step


def build_all(
    settings: Settings,
    *,
    base: BaseImage,
    artifacts: Sequence[ArtifactLike] = (),
    images: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    refresh: bool = False,
    no_cache: bool = False,
    progress: Progress | None = None,
) -> list[BuildResult]:
    """Build every requested target from ``base`` and the verified ``artifacts``; write one
    build record per image. BuildError on failure. ``refresh`` re-runs ``apt-get upgrade``."""
    shown = progress or NullProgress()
    plan = targets(settings, images, variants)
    client = dockertool.connect(timeout=dockertool.BUILD_TIMEOUT)
    base_ref = base_info(settings, base)
    source = source_info(settings.root)
    apt_refresh = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") if refresh else "0"

    roles: dict[str, ArtifactLike] | None = None
    profile = settings.fetch.profile
    wheels: dict[str, tuple[str, str]] = {}
    if any(t.image == "terminal" for t in plan):
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
        key = str(target)
        shown.start(key, key, total=None, unit="steps")
        is_terminal = target.image == "terminal"
        context = staged.get(target.image)
        if context is None:
            context = stage_context(
                target, settings, build_dir / "context" / target.image,
                roles if is_terminal else None,
            )  # fmt: skip
            staged[target.image] = context
        reference = target.reference(settings.images.prefix)
        args = build_args(target, settings, base_ref, roles if is_terminal else None,
                          apt_refresh=apt_refresh)  # fmt: skip
        image_labels = labels(
            target,
            source=source,
            base=base_ref,
            profile=profile,
            artifacts=roles.values() if (is_terminal and roles) else (),
            wheels=wheels if is_terminal else linux_reqs,
        )
        log_file = build_dir / "logs" / f"{target.image}-{target.variant}.log"
        log.info("building %s from %s", reference, context)
        try:
            outcome = dockertool.build_image(
                client,
                context,
                reference=reference,
                target=target.variant,
                buildargs=args,
                labels=image_labels,
                log_file=log_file,
                no_cache=no_cache,
                on_step=_step_printer(shown, target),
            )
        except BaseException:
            shown.finish(key, "failed")
            raise
        image = client.images.get(outcome.image_id)
        size = int(image.attrs.get("Size", 0))
        layers = len(image.attrs.get("RootFS", {}).get("Layers", []))
        record = write_record(
            settings.run_dir,
            "build",
            outcome.image_id,
            {
                "image": target.image,
                "variant": target.variant,
                "reference": reference,
                "size": size,
                "layers": layers,
                "seconds": round(outcome.seconds, 2),
                "steps": outcome.steps,
                "cached_steps": outcome.cached,
                "profile": profile,
                "base": dataclasses.asdict(base_ref),
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
        result = BuildResult(
            target=target,
            reference=reference,
            image_id=outcome.image_id,
            size=size,
            layers=layers,
            seconds=outcome.seconds,
            steps=outcome.steps,
            cached=outcome.cached,
            record=record,
            log_file=log_file,
        )
        shown.finish(key, "cached" if result.all_cached else "built")
        results.append(result)
    return results


class BuildStage:
    name: ClassVar[str] = "build"
    summary: ClassVar[str] = "build every image x variant from build/ with verified inputs"
    needs: ClassVar[tuple[str, ...]] = ("base", "fetch")

    def run(self, job: Job) -> tuple[BuildResult, ...]:
        fetched = job.result("fetch", FetchResult)
        return tuple(
            build_all(
                job.settings,
                base=job.result("base", BaseImage),
                artifacts=fetched.artifacts,
                images=job.options.images,
                variants=job.options.variants,
                refresh=job.options.refresh,
                no_cache=job.options.no_cache,
                progress=job.progress,
            )
        )
