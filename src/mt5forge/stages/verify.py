"""Stage ``verify``: every built image checked from outside against its expectations.

For each image the build stage returned (or each image a user names, ``invoke verify --ref``),
:func:`mt5forge.verify.run.verify_image` reads its layers, runs it with made-up credentials and
puts every check to it. The stage writes, keyed by the image's id, a verify record
(``<run_dir>/records/<id>/verify.json``: every check, its outcome, and whether the terminal was
the simulator, the fixture terminal or a real one) with its JUnit XML beside it
(``verify.xml``), and the JUnit XML of the whole run (``<run_dir>/verify/junit.xml``). One
canary serves the whole run, so images that share layers are read once.

A failing check fails the stage (VerificationError) after every image was checked and every
record written: one run shows the whole gap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

from mt5forge.config import Settings
from mt5forge.errors import VerificationError
from mt5forge.images import Target, targets
from mt5forge.progress import NullProgress, Progress
from mt5forge.records import write_record
from mt5forge.stages import Job
from mt5forge.stages.build import BuildResult
from mt5forge.verify.expectations import expectation_for, load
from mt5forge.verify.junit import write_junit
from mt5forge.verify.live import Canary
from mt5forge.verify.run import Context, ImageVerdict, verify_image


@dataclasses.dataclass(frozen=True, kw_only=True)
class VerifyRequest:
    target: Target
    reference: str
    """The tag (or ``--ref``): what the checks judge (a moving ``latest`` fails)."""
    image_id: str = ""
    """The build's image id: what is read, run and recorded. Empty: ``reference`` resolved
    once to an id."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class VerifyResult:
    verdicts: tuple[ImageVerdict, ...]
    records: tuple[Path, ...]
    junit: Path

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)


def context(settings: Settings) -> Context:
    from mt5forge.tools import docker as dockertool

    helper = f"{settings.images.prefix}/base:{settings.base.suite}"
    if dockertool.image_or_none(dockertool.connect(), helper) is None:
        raise VerificationError(
            f"The helper image {helper} (the project's base image) is not in the engine.",
            hint="Make it with `invoke base`.",
        )
    return Context(root=settings.root, prefix=settings.images.prefix, helper_image=helper,
                   uid=settings.runtime.uid, gid=settings.runtime.gid)  # fmt: skip


def requests_for(
    settings: Settings,
    images: Sequence[str] | None,
    variants: Sequence[str] | None,
    ref: str | None = None,
) -> list[VerifyRequest]:
    """The local images to verify: ``ref`` as the one image x variant named, or the project's
    references of every image x variant asked for."""
    plan = targets(settings, images, variants)
    if ref is not None:
        if len(plan) != 1:
            missing = [o for o, given in (("--image", images), ("--variant", variants))
                       if not given]  # fmt: skip
            why = f"{' and '.join(missing)} not given, so " if missing else ""
            raise VerificationError(
                f"--ref {ref} is judged by the expectations of exactly one image and variant; "
                f"{why}{len(plan)} were selected: {', '.join(map(str, plan))}.",
                hint="Name one of each (e.g. --image bot --variant slim).",
            )
        return [VerifyRequest(target=plan[0], reference=ref)]
    return [VerifyRequest(target=t, reference=t.reference(settings.images.prefix)) for t in plan]


def requests_from_builds(built: Iterable[object]) -> list[VerifyRequest]:
    """One request per build result: its tag to judge, its id to run. By id, not tag: another
    build on the same engine may move the tag while earlier stages run, and the record must
    describe the image that was built (push reads it)."""
    return [
        VerifyRequest(target=b.target, reference=b.reference, image_id=b.image_id)
        for b in built
        if isinstance(b, BuildResult)
    ]


def verify_all(
    settings: Settings,
    requests: Sequence[VerifyRequest],
    *,
    only: Sequence[str] | None = None,
    progress: Progress | None = None,
    fail: bool = True,
    canary: Canary | None = None,
) -> VerifyResult:
    """Verify each request; write its record and the run's JUnit XML; VerificationError naming
    every failed check when one failed (and ``fail``)."""
    table = load(settings.root / "build")
    # Partners by id where this run built them: the pairs then test this run's images.
    partners = {str(r.target): r.image_id for r in requests if r.image_id}
    ctx = dataclasses.replace(context(settings), partners=partners)
    canary = canary or Canary.make()
    verdicts: list[ImageVerdict] = []
    records: list[Path] = []
    for req in requests:
        e = expectation_for(table, req.target.image, req.target.variant)
        verdict = verify_image(ctx, e, req.reference, image_id=req.image_id, canary=canary,
                               only=only, progress=progress or NullProgress())  # fmt: skip
        verdicts.append(verdict)
        record = write_record(settings.run_dir, "verify", verdict.image_id,
                              record_payload(verdict), passed=verdict.passed)  # fmt: skip
        # The image's own JUnit XML beside its record: keyed by image id like the record.
        write_junit(record.with_suffix(".xml"), [verdict])
        records.append(record)
    junit = write_junit(settings.run_dir / "verify" / "junit.xml", verdicts)
    result = VerifyResult(verdicts=tuple(verdicts), records=tuple(records), junit=junit)
    if fail and not result.passed:
        failed = [f"{v.image}:{v.variant} {o.name}: {o.detail}" for v in verdicts for o in v.failed]
        raise VerificationError(
            f"{len(failed)} verify check(s) failed:\n  " + "\n  ".join(failed),
            hint=f"Records under {settings.run_dir / 'records'}; JUnit XML {junit}.",
        )
    return result


def record_payload(v: ImageVerdict) -> dict[str, object]:
    return {
        "image": v.image,
        "variant": v.variant,
        "reference": v.reference,
        "terminal": v.terminal,
        "partners": dict(v.partners),
        "seconds": round(v.seconds, 2),
        "checks": [
            {
                "name": o.name,
                "status": o.status,
                "detail": o.detail,
                "seconds": round(o.seconds, 2),
                "covers": list(o.covers),
            }
            for o in v.outcomes
        ],
    }


class VerifyStage:
    name: ClassVar[str] = "verify"
    summary: ClassVar[str] = "check every built image from outside against its expectations"
    needs: ClassVar[tuple[str, ...]] = ("build",)

    def run(self, job: Job) -> VerifyResult:
        requests = requests_from_builds(job.result("build", tuple))
        return verify_all(job.settings, requests, progress=job.progress)
