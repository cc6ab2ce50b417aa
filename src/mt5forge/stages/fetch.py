"""Stage 2, ``fetch``: download and verify the pinned artifacts into the cache (mt5forge.fetch).

Only the terminal consumes artifacts: a run that builds no terminal skips the downloads and
says so in its result.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from mt5forge.fetch import Artifact, fetch_all
from mt5forge.images import targets
from mt5forge.stages import Job


@dataclasses.dataclass(frozen=True, kw_only=True)
class FetchResult:
    artifacts: tuple[Artifact, ...]
    profile: str
    """``upstream`` or ``fixture``: the profile the artifacts came from."""
    skipped: str = ""
    """Why nothing was fetched (empty when the stage ran)."""


class FetchStage:
    name: ClassVar[str] = "fetch"
    summary: ClassVar[str] = "download and verify every pinned artifact into the cache"
    needs: ClassVar[tuple[str, ...]] = ()

    def run(self, job: Job) -> FetchResult:
        settings, options = job.settings, job.options
        if options.images is not None or options.variants is not None:
            plan = targets(settings, options.images, options.variants)
            if not any(t.image == "terminal" for t in plan):
                return FetchResult(
                    artifacts=(),
                    profile=settings.fetch.profile,
                    skipped="no image in this run needs artifacts (only the terminal does)",
                )
        artifacts = fetch_all(
            settings,
            offline=options.offline,
            names=list(options.artifacts) if options.artifacts else None,
            progress=job.progress,
        )
        profile = artifacts[0].profile if artifacts else settings.fetch.profile
        return FetchResult(artifacts=tuple(artifacts), profile=profile)
