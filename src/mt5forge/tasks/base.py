"""``invoke base``."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from mt5forge.base import BaseImage, ensure_base
from mt5forge.engine import ensure_engine
from mt5forge.tasks._common import console, task_context


def report(image: BaseImage) -> None:
    size = f"{image.size / 1e6:.0f} MB"
    if image.reused:
        console.print(
            f"Reused {image.reference} ({image.keyed_reference}, {image.image_id[:19]}, {size}): "
            f"same inputs as before, nothing rebuilt ({image.seconds:.1f} s)."
        )
    else:
        console.print(
            f"Built {image.reference} from {image.source} ({image.origin}) in "
            f"{image.seconds:.0f} s: {image.image_id[:19]}, {size}, also tagged "
            f"{image.keyed_reference}."
        )


@task(
    help={
        "source": "debootstrap (build from Debian's archive) or registry (pull by digest).",
        "refresh": "Rebuild even when an image from the same inputs exists (security updates).",
        "verbose": "Show debug logs and tracebacks.",
    }
)
def base(
    c: Context, source: str | None = None, refresh: bool = False, verbose: bool = False
) -> None:
    """Produce the pinned Debian trixie base image; same inputs reuse the existing image."""
    with task_context(verbose, overrides={"base": {"source": source}}) as settings:
        ensure_engine(settings)
        with console.status("Making the base image...") as status:
            image = ensure_base(settings, refresh=refresh, progress=lambda m: status.update(m))
    report(image)
