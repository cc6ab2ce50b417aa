"""Verify one image: read it, run it once, put every check to it, and say what each found.

The flow, top to bottom:

1. ``docker image inspect`` and ``docker save``: the config, the history and every layer
   (:mod:`mt5forge.verify.layers`), scanned with this run's canaries among the patterns.
2. :func:`mt5forge.verify.live.running`: the image started as its compose file runs it, with
   made-up credentials, its partner, and the helper in its namespaces.
3. Every check of :data:`mt5forge.verify.checks.CHECKS` (or the ones asked for), timed, each
   passed, failed with what it found, or not applicable with the reason.
4. The outcome text is scrubbed of the canaries and then searched for them: a report that would
   carry one fails the run instead of being written.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import docker.errors

from mt5forge.errors import VerificationError
from mt5forge.progress import NullProgress, Progress
from mt5forge.verify.checks import CHECK_NAMES, CHECKS, Failed, NotApplicable, Subject
from mt5forge.verify.expectations import Expectation
from mt5forge.verify.layers import save_and_read
from mt5forge.verify.live import Canary, running
from mt5forge.verify.patterns import Scanner

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    name: str
    status: str
    """``passed``, ``failed`` or ``not applicable``."""
    detail: str
    seconds: float
    covers: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImageVerdict:
    image: str
    variant: str
    reference: str
    """The tag (or what ``--ref`` named) the checks judged."""
    image_id: str
    """The image that was read and run."""
    terminal: str
    """What answered as the terminal: ``simulator``, ``fixture terminal`` or ``real terminal``."""
    outcomes: tuple[Outcome, ...]
    seconds: float
    read_seconds: float
    """docker save and the layer scan."""
    partners: tuple[tuple[str, str], ...] = ()
    """``(image:variant, reference)`` of each partner it was paired with."""

    @property
    def passed(self) -> bool:
        return all(o.status != "failed" for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def outcome(self, name: str) -> Outcome:
        for o in self.outcomes:
            if o.name == name:
                return o
        raise KeyError(name)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Context:
    """What verify needs from the settings, so it runs the same from a task or a test."""

    root: Path
    prefix: str
    helper_image: str
    uid: int
    gid: int
    partners: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Ids of this run's builds by ``image:variant``: the partners to pair with, so that a
    tag moved by another build cannot put another image in the pair."""


def verify_image(
    ctx: Context,
    expectation: Expectation,
    reference: str,
    *,
    image_id: str = "",
    canary: Canary | None = None,
    only: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> ImageVerdict:
    """Every check (or ``only`` these) against ``reference``, judged by ``expectation``.

    ``image_id``: the image to read and run (a build's result); ``reference`` is then its tag,
    which the checks judge. Without it, ``reference`` is resolved to an id once, and the
    image is read and run by that id: a tag moved meanwhile cannot swap it."""
    shown = progress or NullProgress()
    unknown = [n for n in only or () if n not in CHECK_NAMES]
    if unknown:
        raise VerificationError(f"No such check: {', '.join(unknown)}.",
                                hint="Checks: " + ", ".join(CHECK_NAMES))  # fmt: skip
    chosen = [c for c in CHECKS if only is None or c.name in only]
    canary = canary or Canary.make()
    client = _client()
    key = f"verify {expectation}"
    started = time.monotonic()
    try:
        image = client.images.get(image_id or reference)
    except docker.errors.ImageNotFound as e:
        raise VerificationError(f"No image {image_id or reference} in the engine.",
                                hint="Build it first (`invoke build`).") from e  # fmt: skip
    shown.start(key, f"{expectation} ({reference})", total=len(chosen) + 2, unit="steps")
    try:
        scanner = Scanner(canary.secrets())
        shown.step(key, message=f"{expectation}: reading every layer (docker save)")
        saved = save_and_read(image, scanner)
        read_seconds = time.monotonic() - started
        shown.step(key, advance=1, message=f"{expectation}: starting the container")
        outcomes: list[Outcome] = []
        with running(
            client, expectation, str(image.id), root=ctx.root, prefix=ctx.prefix,
            helper_image=ctx.helper_image, uid=ctx.uid, gid=ctx.gid, canary=canary,
            partners=ctx.partners,
        ) as live:  # fmt: skip
            shown.step(key, advance=1)
            subject = Subject(
                expectation=expectation, reference=reference, attrs=image.attrs, saved=saved,
                running=live, scanner=scanner, uid=ctx.uid, gid=ctx.gid, root=ctx.root,
                client=client, helper_image=ctx.helper_image, prefix=ctx.prefix,
                partners=ctx.partners,
            )  # fmt: skip
            for check in chosen:
                shown.step(key, message=f"{expectation}: {check.name}")
                outcomes.append(_run_check(check.name, check.covers, check.run, subject, canary))
                shown.step(key, advance=1)
            terminal = live.terminal_kind
            partners = live.partners
    except BaseException:
        shown.finish(key, "error")
        raise
    verdict = ImageVerdict(
        image=expectation.image, variant=expectation.variant, reference=reference,
        image_id=str(image.id), terminal=terminal, outcomes=tuple(outcomes),
        seconds=time.monotonic() - started, read_seconds=read_seconds, partners=partners,
    )  # fmt: skip
    leaked = [v for v in canary.secrets() if v in repr(verdict)]
    if leaked:  # _run_check scrubs; this is the proof that nothing slipped past it
        raise VerificationError("A verify report would carry a run-time canary; not writing it.")
    shown.finish(key, "passed" if verdict.passed else f"{len(verdict.failed)} failed")
    return verdict


def _run_check(
    name: str, covers: tuple[str, ...], fn: Any, subject: Subject, canary: Canary
) -> Outcome:
    t = time.monotonic()
    try:
        status, detail = "passed", str(fn(subject))
    except Failed as e:
        status, detail = "failed", str(e)
    except NotApplicable as e:
        status, detail = "not applicable", str(e)
    except (VerificationError, docker.errors.DockerException, OSError) as e:
        status, detail = "failed", f"the check could not run: {e}"
    log.debug("%s %s: %s", subject.expectation, name, status)
    return Outcome(name=name, status=status, detail=canary.scrub(detail),
                   seconds=time.monotonic() - t, covers=covers)  # fmt: skip


def _client() -> Any:
    from mt5forge.tools import docker as dockertool

    return dockertool.connect(timeout=600)
