"""Stage 1, ``base``: the Debian trixie image every Dockerfile builds FROM (mt5forge.base)."""

from __future__ import annotations

from typing import ClassVar

from mt5forge.base import BaseImage, ensure_base
from mt5forge.stages import Job


class BaseStage:
    name: ClassVar[str] = "base"
    summary: ClassVar[str] = "the Debian trixie base image (debootstrap or pinned digest)"
    needs: ClassVar[tuple[str, ...]] = ()

    def run(self, job: Job) -> BaseImage:
        job.progress.start("base", "base image", unit="status")
        try:
            image = ensure_base(
                job.settings, refresh=job.options.refresh_base, progress=job.progress
            )
        except BaseException:
            job.progress.finish("base", "failed")
            raise
        job.progress.finish("base", "reused" if image.reused else "built")
        return image
