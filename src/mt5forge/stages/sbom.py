"""Stage 4, ``sbom``: one CycloneDX 1.6 JSON per built image, validated before it is written.

For each image the build stage returned:

1. Trivy's CycloneDX of the image, offline (:func:`mt5forge.tools.trivy.cyclonedx`).
2. The pinned requirement files that fed the image, read by ``cyclonedx-py requirements``
   (the terminal: ``manifests/wheels-win_amd64.txt``, into the Wine prefix; the others:
   ``build/common/requirements-linux.txt``), cross-checked with the Python packages Trivy
   found installed. Any difference is printed and fails the SBOM of that image.
3. :func:`mt5forge.sbom.enrich` adds the pinned artifacts (matched to the image's own labels
   by sha256: a label naming bytes this run did not verify fails), the wheels' pinned hashes
   and platform, and the image as the root component.
4. :func:`mt5forge.sbom.render` validates strictly (CycloneDX 1.6); the file goes to
   ``sbom/<image>-<variant>.cdx.json`` and a record to the records store.

Every image is tried; the stage fails at the end naming each image that did not pass.
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from mt5forge.config import Settings
from mt5forge.errors import Mt5ForgeError, SbomError
from mt5forge.fetch import Artifact
from mt5forge.files import atomic_write
from mt5forge.images import WINDOWS_WHEELS, Target
from mt5forge.labels import label_key, parse_pip_hashes
from mt5forge.manifest import load_manifests
from mt5forge.progress import NullProgress, Progress
from mt5forge.records import write_record
from mt5forge.sbom import (
    ArtifactFacts,
    ImageFacts,
    Summary,
    crosscheck,
    enrich,
    python_packages,
    render,
    requirements,
    summarize,
)
from mt5forge.stages import Job, refuse_failed
from mt5forge.stages.build import BuildResult
from mt5forge.stages.fetch import FetchResult
from mt5forge.tools import docker as dockertool
from mt5forge.tools import trivy

log = logging.getLogger(__name__)

FIRST_PARTY = ("build/bridge/pyproject.toml", "build/bot/pyproject.toml")
"""Our own packages, built from this repository into the images (not pinned by hash)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SbomResult:
    target: Target
    reference: str
    image_id: str
    path: Path | None
    """The SBOM written (None when it failed)."""
    summary: Summary | None
    problems: tuple[str, ...]
    record: Path
    artifacts: tuple[ArtifactFacts, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.problems


def requirement_file(settings: Settings, target: Target) -> tuple[Path, bool]:
    """The pinned requirement file that fed ``target`` and whether it is the Windows one."""
    if target.image == "terminal":
        return settings.path(settings.fetch.manifests_dir) / WINDOWS_WHEELS, True
    return settings.root / "build" / "common" / "requirements-linux.txt", False


def first_party(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for rel in FIRST_PARTY:
        project = tomllib.loads((root / rel).read_text(encoding="utf-8"))["project"]
        out[str(project["name"]).lower()] = str(project["version"])
    return out


def image_artifacts(
    image_labels: Mapping[str, str],
    artifacts: Sequence[Artifact],
    upstream_urls: Mapping[str, str],
) -> tuple[list[ArtifactFacts], list[str]]:
    """The artifacts the image's labels name, matched by sha256 to what this run verified."""
    by_sha = {a.sha256: a for a in artifacts}
    prefix = "org.mt5forge.artifact."
    keys = sorted(
        {k[len(prefix) :].rsplit(".", 1)[0] for k in image_labels if k.startswith(prefix)}
    )
    facts: list[ArtifactFacts] = []
    problems: list[str] = []
    for key in keys:
        sha = image_labels.get(f"{prefix}{key}.sha256", "")
        a = by_sha.get(sha)
        if a is None or label_key(a.name) != key:
            problems.append(
                f"the image's label names artifact {key} with sha256 {sha[:16]}..., which this "
                "run did not fetch and verify"
            )
            continue
        facts.append(
            ArtifactFacts(
                name=a.name,
                version=a.version,
                filename=a.filename,
                sha256=a.sha256,
                origin=a.origin,
                verified_by=a.verified_by,
                upstream_url=upstream_urls.get(a.name, ""),
            )
        )
    return facts, problems


def sbom_all(
    settings: Settings,
    *,
    built: Sequence[BuildResult],
    artifacts: Sequence[Artifact] = (),
    progress: Progress | None = None,
) -> list[SbomResult]:
    shown = progress or NullProgress()
    client = dockertool.connect()
    cache = settings.path(settings.scan.cache_dir)
    out_dir = settings.path(settings.sbom.dir)
    urls = {m.name: m.url for m in load_manifests(settings.path(settings.fetch.manifests_dir))}
    ours = first_party(settings.root)
    pinned_cache: dict[Path, dict[str, str]] = {}
    results: list[SbomResult] = []
    for b in built:
        key = f"sbom {b.target}"
        shown.start(key, key, total=None, unit="status")
        try:
            result = _one(settings, client, b, artifacts, urls, ours, pinned_cache, cache, out_dir,
                          shown, key)  # fmt: skip
        except Mt5ForgeError:
            shown.finish(key, "failed")
            raise
        shown.finish(key, "ok" if result.passed else "failed")
        for p in result.problems:
            shown.warn(f"{b.target}: {p}")
        results.append(result)
    refuse_failed(
        results,
        SbomError,
        "The SBOM",
        hint="Pinned requirements and installed packages must agree; rebuild after changing "
        "a pin, and pin what is installed.",
    )
    return results


def _one(
    settings: Settings,
    client: Any,
    b: BuildResult,
    artifacts: Sequence[Artifact],
    urls: Mapping[str, str],
    ours: Mapping[str, str],
    pinned_cache: dict[Path, dict[str, str]],
    cache: Path,
    out_dir: Path,
    shown: Progress,
    key: str,
) -> SbomResult:
    attrs = client.images.get(b.image_id).attrs
    image_labels: dict[str, str] = dict((attrs.get("Config") or {}).get("Labels") or {})
    shown.step(key, message=f"{b.target}: trivy image --format cyclonedx")
    doc = trivy.cyclonedx(b.image_id, cache_dir=cache)
    # Trivy names the root by what it was given; name it by the reference people use.
    (doc.get("metadata") or {}).get("component", {})["name"] = b.reference
    req, windows = requirement_file(settings, b.target)
    shown.step(key, message=f"{b.target}: cyclonedx-py requirements {req.name}")
    if req not in pinned_cache:
        pinned_cache[req] = requirements(req)
    problems = crosscheck(
        python_packages(doc), pinned_cache[req], windows=windows, first_party=ours
    )
    facts, label_problems = image_artifacts(image_labels, artifacts, urls)
    problems += label_problems
    image_facts = ImageFacts(
        reference=b.reference,
        image_id=b.image_id,
        image=b.target.image,
        variant=b.target.variant,
        profile=image_labels.get("org.mt5forge.profile", ""),
        base_name=image_labels.get("org.opencontainers.image.base.name", ""),
        base_digest=image_labels.get("org.opencontainers.image.base.digest", ""),
    )
    path: Path | None = None
    summary: Summary | None = None
    if not problems:
        shown.step(key, message=f"{b.target}: add artifacts and wheels, validate")
        bom = enrich(
            doc,
            facts=image_facts,
            artifacts=facts,
            wheel_hashes=parse_pip_hashes(req.read_text(encoding="utf-8")),
        )
        text = render(bom)
        summary = summarize(text, doc)
        path = atomic_write(out_dir / f"{b.target.image}-{b.target.variant}.cdx.json", text)
    record = write_record(
        settings.run_dir,
        "sbom",
        b.image_id,
        {
            "image": b.target.image,
            "variant": b.target.variant,
            "reference": b.reference,
            "sbom": str(path) if path else "",
            "spec": "CycloneDX 1.6",
            "requirements": str(req),
            "summary": dataclasses.asdict(summary) if summary else {},
            "artifacts": [dataclasses.asdict(a) for a in facts],
            "problems": problems,
            "profile": image_facts.profile,
        },
        passed=not problems,
    )
    return SbomResult(
        target=b.target,
        reference=b.reference,
        image_id=b.image_id,
        path=path,
        summary=summary,
        problems=tuple(problems),
        record=record,
        artifacts=tuple(facts),
    )


class SbomStage:
    name: ClassVar[str] = "sbom"
    summary: ClassVar[str] = (
        "one validated CycloneDX 1.6 SBOM per image, artifacts and wheels added"
    )
    needs: ClassVar[tuple[str, ...]] = ("fetch", "build")

    def run(self, job: Job) -> tuple[SbomResult, ...]:
        return tuple(
            sbom_all(
                job.settings,
                built=job.result("build", tuple),
                artifacts=job.result("fetch", FetchResult).artifacts,
                progress=job.progress,
            )
        )
