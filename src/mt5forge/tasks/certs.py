"""``invoke certs``."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context
from invoke.tasks import task

from mt5forge.certs import DEFAULT_CLIENT_NAME, DEFAULT_DAYS, DEFAULT_SERVER_NAMES, write_bundle
from mt5forge.tasks._common import console, task_context


@task(
    iterable=["server_name"],
    help={
        "out": "Directory for ca.crt/key, server.crt/key, client.crt/key (default: certs).",
        "server_name": "DNS name or IP the bot uses to reach the bridge (repeatable; default: "
        + ", ".join(DEFAULT_SERVER_NAMES)
        + ").",
        "client_name": f"Common name of the bot's certificate (default: {DEFAULT_CLIENT_NAME}).",
        "days": f"Validity in days (default: {DEFAULT_DAYS}).",
        "force": "Replace existing files (invalidates certificates already deployed).",
        "verbose": "Show debug logs and tracebacks.",
    },
)
def certs(
    c: Context,
    out: str = "certs",
    server_name: list[str] | None = None,
    client_name: str = DEFAULT_CLIENT_NAME,
    days: int = DEFAULT_DAYS,
    force: bool = False,
    verbose: bool = False,
) -> None:
    """Make a per-deployment CA and mutual-TLS certificates for a bridge off loopback."""
    with task_context(verbose):
        bundle = write_bundle(
            Path(out),
            server_names=tuple(server_name or ()) or DEFAULT_SERVER_NAMES,
            client_name=client_name,
            days=days,
            force=force,
        )
    files = {
        "terminal (bridge)": (bundle.ca_cert, bundle.server_cert, bundle.server_key),
        "bot": (bundle.ca_cert, bundle.client_cert, bundle.client_key),
    }
    console.print(f"Wrote a CA, a server and a client certificate under {Path(out)}.")
    for who, (ca, cert, key) in files.items():
        console.print(
            f"{who}: MT5_BRIDGE_TLS_CA={ca.name} MT5_BRIDGE_TLS_CERT={cert.name} "
            f"MT5_BRIDGE_TLS_KEY={key.name}"
        )
    console.print(f"Mount them as secrets; keep {bundle.ca_key} offline: it can mint certificates.")
