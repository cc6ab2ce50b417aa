"""``invoke engine``."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from mt5forge.base import ensure_base
from mt5forge.engine import ensure_engine
from mt5forge.tasks._common import console, task_context
from mt5forge.tools.host import PIPELINE_PROGRAMS, ensure_programs
from mt5forge.tools.toolsimage import ensure_tools_image, versions


@task(help={"verbose": "Show debug logs and tracebacks."})
def engine(c: Context, verbose: bool = False) -> None:
    """Make sure a Docker Engine answers (on Debian as root: install and start one)."""
    with task_context(verbose) as settings:
        status = ensure_engine(settings)
    if status.started:
        installed = f", installed {', '.join(status.installed)}" if status.installed else ""
        console.print(
            f"Started Docker Engine {status.version} at {status.host}{installed}; "
            f"its log is {status.log_file}."
        )
    else:
        console.print(f"Docker Engine {status.version} answers at {status.host}.")


@task(
    help={
        "image": "Also build the tools image (skopeo 1.18 + cosign 2.5 from Debian trixie, on "
        "the project's base image) that signing and verifying run in (default: yes).",
        "verbose": "Show debug logs and tracebacks.",
    }
)
def tools(c: Context, image: bool = True, verbose: bool = False) -> None:
    """Make sure the host programs the pipeline uses are installed (Debian as root: install),
    and the tools image that signs and verifies."""
    with task_context(verbose) as settings:
        installed = ensure_programs(PIPELINE_PROGRAMS)
        if installed:
            console.print(f"Installed {', '.join(installed)}.")
        console.print(f"Host programs present: {', '.join(PIPELINE_PROGRAMS)}.")
        if image:
            ensure_engine(settings)
            ensure_base(settings)  # the tools image is built on it; reused when present
            ref = ensure_tools_image(settings)
            v = versions(ref)
            console.print(
                f"Tools image {ref}: skopeo {v['skopeo']}, cosign {v['cosign']} (Debian trixie)."
            )
