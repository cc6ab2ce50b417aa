"""Docker Engine access through docker-py, with its errors translated to ours."""

from __future__ import annotations

import logging
import os
from typing import Any

import docker
import docker.errors
import requests

from mt5forge.errors import EngineError

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
