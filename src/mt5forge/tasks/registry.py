"""``invoke registry.start`` / ``registry.stop`` / ``registry.status``."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from mt5forge.registry import answers, start_registry, stop_registry
from mt5forge.tasks._common import console, task_context

_HELP = {
    "address": "host:port on loopback (default: [registry] address).",
    "verbose": "Show debug logs and tracebacks.",
}


@task(help=_HELP)
def start(c: Context, address: str | None = None, verbose: bool = False) -> None:
    """Start the local registry on 127.0.0.1 (Debian's docker-registry)."""
    with task_context(verbose) as settings:
        reg = start_registry(settings, address=address)
    verb = "Started" if reg.started else "Already running:"
    console.print(f"{verb} registry at {reg.url} (storage {reg.root}, pid {reg.pid}).")


@task(help=_HELP)
def stop(c: Context, address: str | None = None, verbose: bool = False) -> None:
    """Stop the local registry this toolkit started."""
    with task_context(verbose) as settings:
        stopped = stop_registry(settings, address=address)
        where = address or settings.registry.address
    console.print(
        f"Stopped the registry at {where}." if stopped else f"No registry of ours at {where}."
    )


@task(help=_HELP)
def status(c: Context, address: str | None = None, verbose: bool = False) -> None:
    """Say whether the local registry answers."""
    with task_context(verbose) as settings:
        where = address or settings.registry.address
    console.print(f"Registry at {where}: {'answers' if answers(where) else 'not answering'}.")
