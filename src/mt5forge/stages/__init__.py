"""The pipeline: one small interface every stage implements, and :data:`PIPELINE`, the stages in
order (cibuildwheel's ``platforms/__init__.py`` lists its platform modules the same way).

A stage does one job: it takes the settings, the options and the results of the stages before
it in the same run (a :class:`Job`), and returns its own result. A stage never calls another
stage; whoever runs it (:func:`run_stages`, driven by a task, ``release``, ``rebuild`` or
``demo``) passes what earlier stages returned, or the stage reads their records
(:mod:`mt5forge.records`). ``tests/unit/test_pipeline.py`` checks both rules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

from mt5forge.config import Settings
from mt5forge.errors import GateError, StageError
from mt5forge.progress import NullProgress, Progress

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
    """What the user asked for, shared by every stage of a run (task options)."""

    images: tuple[str, ...] | None = None
    """Only these images (None: ``[images] names``)."""
    variants: tuple[str, ...] | None = None
    """Only these variants (None: ``[images] variants``)."""
    artifacts: tuple[str, ...] | None = None
    """Only these artifacts (None: every manifest)."""
    offline: bool = False
    """Take artifacts from the cache only."""
    refresh: bool = False
    """Re-run ``apt-get upgrade`` in every image (Debian security updates)."""
    refresh_base: bool = False
    """Make the base image again even when one from the same inputs exists."""
    no_cache: bool = False
    """Ignore the engine's build cache."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Job:
    """One stage's inputs: settings, options, progress, and what earlier stages returned."""

    settings: Settings
    options: Options = Options()
    progress: Progress = dataclasses.field(default_factory=NullProgress)
    results: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def result(self, stage: str, kind: type[T]) -> T:
        """The result of ``stage`` earlier in this run; StageError when it did not run."""
        value = self.results.get(stage)
        if value is None:
            raise StageError(
                f"This stage needs the result of '{stage}', which did not run before it.",
                hint="Run the stages in PIPELINE order (mt5forge.stages.run_stages does).",
            )
        if not isinstance(value, kind):
            raise StageError(f"The '{stage}' result is a {type(value).__name__}, not a {kind}.")
        return value


class Stage(Protocol):
    """The face every stage shows the pipeline."""

    name: ClassVar[str]
    """Short name: the task name and the key of its result and records."""
    summary: ClassVar[str]
    """One line for listings and progress."""
    needs: ClassVar[tuple[str, ...]]
    """Stages whose results :meth:`run` reads from ``job.results``."""

    def run(self, job: Job) -> Any:
        """Do the stage's one job; return its typed result. Raise on failure, never return
        a failure."""
        ...


class Judged(Protocol):
    """One image's outcome at a gate (sbom, scan, verify)."""

    @property
    def target(self) -> object: ...
    @property
    def problems(self) -> tuple[str, ...]: ...


def refuse_failed(
    results: Sequence[Judged], error: type[GateError], what: str, *, hint: str
) -> None:
    """A gate tries every image, then refuses once, naming every problem of every image that
    failed; ``error.results`` keeps all outcomes so the report can still be shown."""
    failed = [r for r in results if r.problems]
    if failed:
        lines = [f"{r.target}: {p}" for r in failed for p in r.problems]
        raise error(
            f"{what} failed for {len(failed)} image(s):\n  " + "\n  ".join(lines),
            hint=hint,
            results=tuple(results),
        )


def _pipeline() -> tuple[Stage, ...]:
    from mt5forge.stages.base import BaseStage
    from mt5forge.stages.build import BuildStage
    from mt5forge.stages.fetch import FetchStage
    from mt5forge.stages.push import PushStage
    from mt5forge.stages.sbom import SbomStage
    from mt5forge.stages.scan import ScanStage
    from mt5forge.stages.sign import SignStage
    from mt5forge.stages.verify import VerifyStage

    return (
        BaseStage(),
        FetchStage(),
        BuildStage(),
        SbomStage(),
        ScanStage(),
        VerifyStage(),
        PushStage(),
        SignStage(),
    )


PIPELINE: tuple[Stage, ...] = _pipeline()
"""Every stage, in the order a run takes them."""


def stage_names() -> list[str]:
    return [s.name for s in PIPELINE]


def select(names: Sequence[str] | None = None, *, until: str | None = None) -> list[Stage]:
    """The stages of PIPELINE named in ``names`` (all when None), or all up to ``until``,
    in pipeline order; StageError for a name that is no stage."""
    known = stage_names()
    for n in [*(names or ()), *([until] if until else [])]:
        if n not in known:
            raise StageError(f"'{n}' is not a stage.", hint="Stages: " + ", ".join(known))
    out: list[Stage] = []
    for stage in PIPELINE:
        if names is None or stage.name in names:
            out.append(stage)
        if stage.name == until:
            break
    return out


def run_stages(
    settings: Settings,
    stages: Sequence[Stage],
    *,
    options: Options | None = None,
    progress: Progress | None = None,
    given: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``stages`` in order, each given the results of those before it (and ``given``);
    return every result by stage name."""
    results: dict[str, Any] = dict(given or {})
    for stage in stages:
        missing = [n for n in stage.needs if n not in results]
        if missing:
            raise StageError(
                f"The {stage.name} stage needs {', '.join(missing)} to run first.",
                hint="Run the stages in PIPELINE order.",
            )
        job = Job(
            settings=settings,
            options=options or Options(),
            progress=progress or NullProgress(),
            results=dict(results),
        )
        results[stage.name] = stage.run(job)
    return results
