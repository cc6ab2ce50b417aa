"""The tools image: trixie's skopeo 1.18 and cosign 2.5 in a small image built on the project's
own base (``build/tools/Dockerfile``), so every host, Debian 12 included, signs and verifies
with the same programs.

:func:`ensure_tools_image` builds it once per set of inputs (the Dockerfile's bytes and the
base image's id, kept in a label) and reuses it after. :func:`runner` runs one program in it
through :func:`mt5forge.tools.run.call` (the ``docker`` client): host network (the registry is
on 127.0.0.1), the invoking user's uid:gid, and the paths named mounted at the same place, so
arguments need no rewriting. Secrets reach it by variable *name* (``-e COSIGN_PASSWORD``): the
value is in the client's environment, never in an argument list or a log line.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from mt5forge.config import Settings
from mt5forge.errors import BuildError, ToolError
from mt5forge.tools import docker as dockertool
from mt5forge.tools.run import call

log = logging.getLogger(__name__)

INPUTS_LABEL = "org.mt5forge.tools.inputs"
SKOPEO_VERSION = "1.18"
COSIGN_VERSION = "2.5"


def dockerfile(settings: Settings) -> Path:
    return settings.root / "build" / "tools" / "Dockerfile"


def base_reference(settings: Settings) -> str:
    return f"{settings.images.prefix}/base:{settings.base.suite}"


def reference(settings: Settings) -> str:
    return f"{settings.images.prefix}/tools:{settings.base.suite}"


def inputs_key(settings: Settings, base_id: str) -> str:
    h = hashlib.sha256()
    h.update(dockerfile(settings).read_bytes())
    h.update(base_id.encode())
    return h.hexdigest()[:32]


def ensure_tools_image(settings: Settings, *, rebuild: bool = False) -> str:
    """The tools image's reference, built first when missing or its inputs changed."""
    client = dockertool.connect()
    base = dockertool.image_or_none(client, base_reference(settings))
    if base is None:
        raise BuildError(
            f"The tools image is built on {base_reference(settings)}, which is not in the engine.",
            hint="Make it with `invoke base`.",
        )
    key = inputs_key(settings, str(base.id))
    ref = reference(settings)
    have = dockertool.image_or_none(client, ref)
    labels = dict(((have.attrs.get("Config") or {}).get("Labels") or {}) if have else {})
    if have is not None and labels.get(INPUTS_LABEL) == key and not rebuild:
        return ref
    log.info("building %s (skopeo %s, cosign %s from Debian)", ref, SKOPEO_VERSION, COSIGN_VERSION)
    dockertool.build_image(
        client,
        dockerfile(settings).parent,
        reference=ref,
        target="tools",
        buildargs={"BASE": base_reference(settings)},
        labels={INPUTS_LABEL: key},
        log_file=settings.run_dir / "tools" / "build.log",
    )
    return ref


def credential_args() -> list[str]:
    """Registry credentials for the programs in the image, read-only: the Docker config
    (``$DOCKER_CONFIG`` or ``~/.docker``) and ``REGISTRY_AUTH_FILE`` when set. Nothing of them
    is copied into the image or an argument list beyond the mount."""
    out: list[str] = []
    docker_dir = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    if (docker_dir / "config.json").is_file():
        out += ["-v", f"{docker_dir.resolve()}:/tmp/.docker:ro", "-e", "DOCKER_CONFIG=/tmp/.docker"]
    auth = os.environ.get("REGISTRY_AUTH_FILE")
    if auth and Path(auth).is_file():
        real = Path(auth).resolve()
        out += ["-v", f"{real}:{real}:ro", "-e", f"REGISTRY_AUTH_FILE={real}"]
    return out


def run_in(
    image: str,
    argv: Sequence[str],
    *,
    mounts: Iterable[Path] = (),
    env: Mapping[str, str] | None = None,
    timeout: float,
    check: bool = True,
) -> tuple[int, bytes, bytes]:
    """Run ``argv`` in ``image``; (exit code, stdout, stderr). ``env`` values are passed by
    name only."""
    args: list[str] = [
        "run",
        "--rm",
        "--network",
        "host",
        "--user",
        f"{os.getuid()}:{os.getgid()}",
        "-e",
        "HOME=/tmp",
    ]
    for path in sorted({p.resolve() for p in mounts}):
        args += ["-v", f"{path}:{path}"]
    args += credential_args()
    for name in sorted(env or {}):
        args += ["-e", name]
    proc = call("docker", *args, image, *argv, timeout=timeout, env=env, check=False)
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or b"").decode("utf-8", "replace").strip()[-2000:]
        raise ToolError(
            f"'{argv[0]} {' '.join(argv[1:3])}...' in {image} failed with exit code "
            f"{proc.returncode}.",
            hint=tail or None,
        )
    return proc.returncode, proc.stdout or b"", proc.stderr or b""


def versions(image: str) -> dict[str, str]:
    """The Debian package versions of the image's skopeo and cosign (Debian's cosign build
    reports its own version as "devel", the package knows better)."""
    _, out, _ = run_in(
        image,
        ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "skopeo", "cosign"],
        timeout=60,
    )
    found = dict(line.split(" ", 1) for line in out.decode().splitlines() if " " in line)
    return {"skopeo": found.get("skopeo", "?"), "cosign": found.get("cosign", "?")}
