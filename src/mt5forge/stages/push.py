"""Stage ``push``: an image goes to the registry only with passing sbom, scan and verify
records for its exact image id, by digest first, tags after.

For each image (the build stage's results, or the images a user names, ``invoke push --ref``):

1. Its id comes from the engine, and :func:`mt5forge.records.require` must find passing sbom,
   scan and verify records for that id; otherwise the push is refused naming the missing,
   failing or mismatched gate. Nothing has reached the registry at that point.
2. An image built from fixture artifacts (label ``org.mt5forge.profile`` other than
   ``upstream``) may go only to a registry on 127.0.0.1.
3. ``skopeo copy docker-daemon:<id> dir:`` makes the layout to push and gives its manifest
   digest; the manifest's config digest must be the image id (that is what ties the push to
   the records). The layout is pushed to ``<repo>@<digest>`` with ``--preserve-digests``: no tag
   exists until every blob and the manifest are in. A registry that fails part-way (stopped,
   answering 500) leaves blobs but no tag, and the push can simply be run again; the layout
   is kept until a push succeeds, and reused (every blob hashed again) by the re-run.
4. The registry's manifest is read back and checked, then the tags are applied (``<variant>-
   <version>``, ``<variant>-<date>``, ``<variant>-<short revision>``; on release also
   ``<variant>`` and, for the first variant, ``latest``), each a manifest PUT of that digest.
5. A push record (repository, digest, tags) goes to the records store.

Credentials are skopeo's own: the Docker config (``~/.docker/config.json``) or the file named
by ``REGISTRY_AUTH_FILE``; an auth file inside the project tree is refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from mt5forge.config import Settings
from mt5forge.errors import RegistryError
from mt5forge.images import Target, targets
from mt5forge.progress import NullProgress, Progress
from mt5forge.records import require, write_record
from mt5forge.stages import Job
from mt5forge.stages.build import BuildResult
from mt5forge.tools import docker as dockertool
from mt5forge.tools import skopeo

log = logging.getLogger(__name__)

GATES = ("sbom", "scan", "verify")
"""The records an image must have passed, for its exact id, before it may be pushed."""

PROFILE_LABEL = "org.mt5forge.profile"


@dataclasses.dataclass(frozen=True, kw_only=True)
class PushRequest:
    target: Target
    reference: str
    """The local reference the engine knows the image by."""
    image_id: str
    """The id the reference named when the push was asked for: a tag can be moved by a build
    running beside this one, the id cannot."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class PushResult:
    target: Target
    reference: str
    image_id: str
    repository: str
    """``host:port/prefix/image``."""
    digest: str
    """The manifest digest the image was pushed by."""
    tags: tuple[str, ...]
    profile: str
    record: Path

    @property
    def pinned(self) -> str:
        """``repository@digest``: the reference signatures are made on."""
        return f"{self.repository}@{self.digest}"


def is_loopback(address: str) -> bool:
    """True for ``127.0.0.1:port`` (or any 127/8 address); names are not trusted to resolve
    there."""
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 else address
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def tls_verify(address: str) -> bool:
    """Plain HTTP only to a loopback registry (the local one); TLS verified everywhere else."""
    return not is_loopback(address)


def check_authfile(settings: Settings) -> None:
    """Refuse an auth file inside the project tree: credentials never live in the repo."""
    named = os.environ.get("REGISTRY_AUTH_FILE")
    if not named:
        return
    path = Path(named).resolve()
    if path.is_relative_to(settings.root.resolve()):
        raise RegistryError(
            f"REGISTRY_AUTH_FILE names {path}, inside the project tree.",
            hint="Keep registry credentials out of the repository: use the Docker config "
            "(`docker login`) or an auth file outside the tree.",
        )


def tags_for(
    variant: str, version: str, revision: str, *, today: dt.date, release: bool, first: bool
) -> tuple[str, ...]:
    """The tags of one pushed image: version, date and short revision, each with the variant
    (two variants share a repository); ``<variant>`` and ``latest`` only on release."""
    rev = revision[:7] if revision and revision != "unknown" else ""
    if rev and revision.endswith("-dirty"):
        rev += "-dirty"
    tags = [f"{variant}-{version}", f"{variant}-{today:%Y%m%d}"]
    if rev:
        tags.append(f"{variant}-{rev}")
    if release:
        tags.append(variant)
        if first:
            tags.append("latest")
    return tuple(tags)


def requests_for(
    settings: Settings,
    images: Sequence[str] | None,
    variants: Sequence[str] | None,
    ref: str | None = None,
) -> list[PushRequest]:
    """The local images to push: ``ref`` as the one image x variant named, or the project's
    references of every image x variant asked for, each resolved to its id now."""
    plan = targets(settings, images, variants)
    if ref is not None:
        if len(plan) != 1:
            raise RegistryError(
                f"--ref {ref} needs exactly one image and variant; {len(plan)} were selected.",
                hint="Add --image and --variant (e.g. --image bot --variant slim).",
            )
        pairs = [(plan[0], ref)]
    else:
        pairs = [(t, t.reference(settings.images.prefix)) for t in plan]
    client = dockertool.connect()
    out: list[PushRequest] = []
    for target, reference in pairs:
        image = dockertool.image_or_none(client, reference)
        if image is None:
            raise RegistryError(
                f"{reference} is not in the engine.", hint="Build it first (`invoke build`)."
            )
        out.append(PushRequest(target=target, reference=reference, image_id=str(image.id)))
    return out


def push_all(
    settings: Settings,
    requests: Sequence[PushRequest],
    *,
    release: bool = False,
    registry: str | None = None,
    progress: Progress | None = None,
    today: dt.date | None = None,
) -> list[PushResult]:
    """Check every image's gates first (nothing is pushed when any image is refused), then push
    each by digest and tag it."""
    shown = progress or NullProgress()
    address = registry or settings.registry.address
    check_authfile(settings)
    client = dockertool.connect()
    plan: list[tuple[PushRequest, str, dict[str, str]]] = []
    for req in requests:
        image = dockertool.image_or_none(client, req.image_id)
        if image is None:
            raise RegistryError(
                f"{req.reference} ({req.image_id[:19]}) is not in the engine.",
                hint="Build it first (`invoke build`).",
            )
        image_id = str(image.id)
        require(settings.run_dir, image_id, GATES)
        labels = dict((image.attrs.get("Config") or {}).get("Labels") or {})
        profile = labels.get(PROFILE_LABEL, "")
        if profile != "upstream" and not is_loopback(address):
            raise RegistryError(
                f"{req.reference} is built from {profile or 'unlabelled'} artifacts (label "
                f"{PROFILE_LABEL}); it may be pushed only to a registry on 127.0.0.1, not "
                f"{address}.",
                hint="Build with the upstream profile to publish, or push to the local "
                "registry (`invoke registry.start`).",
            )
        plan.append((req, image_id, labels))
    first_variant = settings.images.variants[0] if settings.images.variants else "slim"
    return [
        _push_one(
            settings,
            req,
            image_id,
            labels,
            address,
            release,
            first_variant,
            shown,
            today or dt.datetime.now(dt.UTC).date(),
        )
        for req, image_id, labels in plan
    ]


def _push_one(
    settings: Settings,
    req: PushRequest,
    image_id: str,
    labels: dict[str, str],
    address: str,
    release: bool,
    first_variant: str,
    shown: Progress,
    today: dt.date,
) -> PushResult:
    key = f"push {req.target}"
    shown.start(key, key, total=None, unit="status")
    repository = f"{address}/{settings.images.prefix}/{req.target.image}"
    tls = tls_verify(address)
    work = settings.run_dir / "push" / image_id.removeprefix("sha256:")
    work.parent.mkdir(parents=True, exist_ok=True)
    try:
        # A layout left complete by a push that failed part-way is reused (every blob hashed
        # again): the re-run then only sends what the registry lacks.
        reused = skopeo.reuse_staged(work, image_id)
        if reused is None:
            shutil.rmtree(work, ignore_errors=True)
            shown.step(key, message=f"{req.target}: copy {image_id[:19]} out of the engine")
            digest = skopeo.stage_from_engine(image_id, work)
            skopeo.mark_staged(work, digest)
        else:
            digest = reused
            shown.step(key, message=f"{req.target}: reusing the layout of an earlier try")
        shown.step(key, message=f"{req.target}: push {repository}@{digest[:19]}")
        skopeo.push_dir(work, f"docker://{repository}@{digest}", tls_verify=tls)
        served = skopeo.inspect_raw(f"docker://{repository}@{digest}", tls_verify=tls)
        if (served.get("config") or {}).get("digest") != image_id:
            raise RegistryError(
                f"{repository}@{digest} serves config {(served.get('config') or {}).get('digest')}"
                f", not the image id {image_id}; no tag was applied."
            )
        tags = tags_for(
            req.target.variant,
            labels.get("org.opencontainers.image.version", "0"),
            labels.get("org.opencontainers.image.revision", ""),
            today=today,
            release=release,
            first=req.target.variant == first_variant,
        )
        for tag in tags:
            shown.step(key, message=f"{req.target}: tag {tag}")
            skopeo.retag(
                f"docker://{repository}@{digest}", f"docker://{repository}:{tag}", tls_verify=tls
            )
    except Exception:
        shown.finish(key, "failed")
        raise
    shutil.rmtree(work, ignore_errors=True)
    shown.finish(key, f"{digest[:19]}")
    record = write_record(
        settings.run_dir,
        "push",
        image_id,
        {
            "image": req.target.image,
            "variant": req.target.variant,
            "reference": req.reference,
            "repository": repository,
            "digest": digest,
            "tags": list(tags),
            "profile": labels.get(PROFILE_LABEL, ""),
            "release": release,
        },
    )
    return PushResult(
        target=req.target,
        reference=req.reference,
        image_id=image_id,
        repository=repository,
        digest=digest,
        tags=tags,
        profile=labels.get(PROFILE_LABEL, ""),
        record=record,
    )


class PushStage:
    name: ClassVar[str] = "push"
    summary: ClassVar[str] = "push each gated image by digest with skopeo, then tag it"
    needs: ClassVar[tuple[str, ...]] = ("build", "verify")

    def run(self, job: Job) -> tuple[PushResult, ...]:
        built = job.result("build", tuple)
        requests = [
            PushRequest(target=b.target, reference=b.reference, image_id=b.image_id)
            for b in built
            if isinstance(b, BuildResult)
        ]
        return tuple(push_all(job.settings, requests, progress=job.progress))
