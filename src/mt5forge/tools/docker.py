"""Docker Engine access through docker-py, with its errors translated to ours."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from mt5forge.errors import BuildError, EngineError

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/var/run/docker.sock"


def engine_host() -> str:
    """The engine address docker-py will use (DOCKER_HOST or the default socket)."""
    return os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"


def is_default_host() -> bool:
    host = engine_host()
    return host in {f"unix://{DEFAULT_SOCKET}", "unix:///run/docker.sock"}


def connect(timeout: int = 120) -> Any:
    """A ``docker.DockerClient`` that has answered a ping, or EngineError."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, requests.RequestException, OSError) as e:
        raise EngineError(f"No Docker Engine answers at {engine_host()}: {e}") from e
    return client


def try_connect(timeout: int = 10) -> Any | None:
    try:
        return connect(timeout=timeout)
    except EngineError as e:
        log.debug("%s", e)
        return None


def image_or_none(client: Any, reference: str) -> Any | None:
    try:
        return client.images.get(reference)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as e:
        raise EngineError(f"The engine failed to look up {reference}: {e}") from e


# --- building: the engine API's classic builder and its JSON event stream --------------------

#: Seconds one image build may take.
BUILD_TIMEOUT = 3600


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuildStep:
    """One finished Dockerfile step, as the builder's stream reported it."""

    number: int
    total: int
    instruction: str
    cached: bool | None
    """True when the step reported "Using cache", False when it ran, None for FROM and the
    ARGs before it (nothing to cache)."""


StepFn = Callable[[BuildStep], None]


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuildOutcome:
    image_id: str
    steps: int
    """Steps the builder can take from its cache (all but FROM and the ARGs before it)."""
    cached: int
    """Of those, how many came from the cache."""
    seconds: float


@dataclasses.dataclass
class _Steps:
    total: int = 0
    current: int = 0
    instruction: str = ""
    cacheable: int = 0
    cached: int = 0
    current_cached: bool | None = None


_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


def build_image(
    client: Any,
    context: Path,
    *,
    reference: str,
    target: str,
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
    log_file: Path,
    no_cache: bool = False,
    on_step: Callable[[BuildStep], None] | None = None,
    timeout: int = BUILD_TIMEOUT,
) -> BuildOutcome:
    """Build stage ``target`` of the Dockerfile in ``context`` as ``reference``.

    Each finished step is reported to ``on_step``; the full builder output goes to
    ``log_file``. BuildError names the failing step and carries the log's last lines.
    """
    started = time.monotonic()
    steps = _Steps()
    image_id = ""
    seen_from = False
    tail: list[str] = []
    log_file.parent.mkdir(parents=True, exist_ok=True)

    def finish_step() -> None:
        if steps.current and on_step:
            on_step(
                BuildStep(
                    number=steps.current,
                    total=steps.total,
                    instruction=steps.instruction,
                    cached=steps.current_cached,
                )
            )

    with open(log_file, "w", encoding="utf-8") as out:
        try:
            stream = client.api.build(
                path=str(context),
                tag=reference,
                target=target,
                buildargs=dict(buildargs),
                labels=dict(labels),
                rm=True,
                forcerm=True,
                pull=False,
                nocache=no_cache,
                decode=True,
                timeout=timeout,
            )
            for event in stream:
                if "error" in event:
                    out.write(f"ERROR: {event['error']}\n")
                    raise BuildError(
                        f"{reference} failed to build at step {steps.current}/{steps.total} "
                        f"({steps.instruction[:80]}): {str(event['error']).strip()}",
                        hint="Last lines of the build log ("
                        + str(log_file)
                        + "):\n"
                        + "".join(tail[-25:]),
                    )
                aux = event.get("aux")
                if isinstance(aux, dict) and "ID" in aux:
                    image_id = str(aux["ID"])
                text = event.get("stream")
                if not isinstance(text, str):
                    continue
                out.write(text)
                tail.append(text if text.endswith("\n") else text + "\n")
                del tail[:-200]
                m = _STEP.match(text.strip())
                if m:
                    finish_step()
                    steps.current, steps.total = int(m.group(1)), int(m.group(2))
                    steps.instruction = m.group(3)
                    keyword = steps.instruction.split(" ", 1)[0].upper()
                    if keyword == "FROM":
                        seen_from = True
                        steps.current_cached = None
                    elif seen_from:
                        steps.cacheable += 1
                        steps.current_cached = False
                    else:  # an ARG before the first FROM: nothing to cache
                        steps.current_cached = None
                elif "---> Using cache" in text and steps.current_cached is False:
                    steps.current_cached = True
                    steps.cached += 1
            finish_step()
        except docker.errors.BuildError as e:
            raise BuildError(f"{reference} failed to build: {e.msg}") from e
        except (docker.errors.APIError, requests.RequestException) as e:
            raise BuildError(f"The engine failed while building {reference}: {e}") from e
    if not image_id:
        image_id = str(client.images.get(reference).id)
    return BuildOutcome(
        image_id=image_id,
        steps=steps.cacheable,
        cached=steps.cached,
        seconds=time.monotonic() - started,
    )
