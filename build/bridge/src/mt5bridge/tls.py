"""Mutual-TLS contexts for a bridge that listens off loopback.

Both sides present a certificate from the deployment's own CA (made by `invoke certs`) and
accept only certificates from it. The server requires a client certificate, so a client without
one, with one from another CA, or with an expired one is refused during the TLS handshake,
before the bridge handshake and before any call.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    """PEM files: the deployment CA, and this side's certificate and private key."""

    ca: Path
    cert: Path
    key: Path


def server_context(files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    # No TLS 1.2 renegotiation (a peer could make the server redo handshakes at will) and no
    # TLS compression (CRIME); both are usually off already, this makes it so everywhere.
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0) | ssl.OP_NO_COMPRESSION
    ctx.load_cert_chain(certfile=str(files.cert), keyfile=str(files.key))
    ctx.load_verify_locations(cafile=str(files.ca))
    return ctx


def client_context(files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the server and its host name
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=str(files.ca))
    ctx.load_cert_chain(certfile=str(files.cert), keyfile=str(files.key))
    return ctx
