"""Instance diagnostics without secrets, written to <state dir>/whereami.txt at start.

What an operator needs to tell instances apart and to file a bug: host, user, versions, where
the bridge is, which account (masked) and server, and when the bot started.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import sys
from pathlib import Path

import mt5bridge
import rpyc  # type: ignore[import-untyped]

from mt5bot import __version__
from mt5bot.logs import mask_account
from mt5bot.settings import Settings


def report(settings: Settings) -> str:
    uid = os.getuid() if hasattr(os, "getuid") else "n/a"
    gid = os.getgid() if hasattr(os, "getgid") else "n/a"
    tls = "mutual TLS" if settings.tls_ca else "plain TCP (loopback)"
    lines = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "pid": str(os.getpid()),
        "uid:gid": f"{uid}:{gid}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": sys.platform,
        "mt5bot": __version__,
        "mt5bridge": mt5bridge.__version__,
        "rpyc": str(rpyc.__version__),
        "bridge": f"{settings.bridge_host}:{settings.bridge_port} ({tls})",
        "account": mask_account(settings.login),
        "server": settings.server,
        "symbol": settings.symbol,
        "interval_s": str(settings.interval),
    }
    return "".join(f"{k}: {v}\n" for k, v in lines.items())


def write(settings: Settings) -> Path:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    path = settings.state_dir / "whereami.txt"
    path.write_text(report(settings), encoding="utf-8")
    return path
