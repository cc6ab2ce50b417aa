"""Host programs the pipeline needs, and installing them where we may.

On a Debian host run as root (CI, a fresh server) a missing program is installed from Debian's
archive; anywhere else the error says which package to install. Nothing here runs a shell.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from mt5forge.errors import ToolMissingError
from mt5forge.tools.run import DEBIAN_PACKAGES, INSTALL_HINTS, call, which

log = logging.getLogger(__name__)


#: What the test suite and the demo use on the host.
PIPELINE_PROGRAMS = (
    "debootstrap",
    "docker-registry",
    "skopeo",
    "gpg",
    "osslsigncode",
    "wixl",
    # The fetch stage's fixture profile: MSIs (wixl, msiinfo), stand-in installers (mingw),
    # a throw-away Authenticode certificate (openssl).
    "msiinfo",
    "x86_64-w64-mingw32-gcc",
    "openssl",
)

_apt_updated = False


def is_debian() -> bool:
    return Path("/etc/debian_version").is_file() and shutil.which("apt-get") is not None


def can_install() -> bool:
    """True where we may install Debian packages ourselves: a Debian host, run as root."""
    return is_debian() and os.geteuid() == 0


def apt_install(packages: Iterable[str]) -> None:
    """Install Debian packages (non-interactive, no recommends); refresh the lists once."""
    global _apt_updated
    pkgs = sorted(set(packages))
    if not pkgs:
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        log.info("apt-get update")
        call("apt-get", "update", timeout=600, env=env)
        _apt_updated = True
    log.info("apt-get install %s", " ".join(pkgs))
    call("apt-get", "install", "-y", "--no-install-recommends", *pkgs, timeout=1800, env=env)


def missing(programs: Iterable[str]) -> list[str]:
    out = []
    for program in programs:
        try:
            which(program)
        except ToolMissingError:
            out.append(program)
    return out


def ensure_programs(programs: Iterable[str]) -> list[str]:
    """Make sure each program is installed; return the Debian packages installed for them."""
    absent = missing(programs)
    if not absent:
        return []
    if not can_install():
        hints = "; ".join(f"{p}: {INSTALL_HINTS.get(p, p)}" for p in absent)
        raise ToolMissingError(
            f"Missing programs: {', '.join(absent)}.",
            hint=f"Install them ({hints}). mt5forge installs them itself only on Debian as root.",
        )
    packages = [DEBIAN_PACKAGES.get(p, p) for p in absent]
    apt_install(packages)
    still = missing(absent)
    if still:
        raise ToolMissingError(
            f"Installing {', '.join(packages)} did not provide {', '.join(still)}."
        )
    return packages
