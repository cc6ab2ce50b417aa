"""The hello both sides exchange on the raw stream before RPyC starts.

RPyC 5 and 6 are not wire-compatible, and a mismatch surfaces as "ValueError: invalid message
type: 18" deep in a call (gmag11/MetaTrader5-Docker-Image #26). Exchanging versions before the
first RPyC frame lets both sides fail at connect time with a message that says what is wrong.
It also lets the server tell an mt5bridge client from an RPyC classic client (which sends RPyC
frames at once) and refuse the latter unless classic mode is on.

Frame: MAGIC (4 bytes) + length (2 bytes, big-endian) + UTF-8 JSON object.

A hello with ``"status": true`` is a probe (the image's health check, which has no RPyC): the
server's reply carries its status (mt5bridge.status) and the connection ends there.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Callable
from typing import Any, Final

import rpyc  # type: ignore[import-untyped]

from mt5bridge import PROTOCOL_VERSION
from mt5bridge.errors import HandshakeError, NotBridgePeerError

MAGIC: Final = b"MT5B"
_MAX_HELLO = 4096
RPYC_VERSION: Final[str] = str(rpyc.__version__)


def rpyc_major(version: str) -> int:
    head = version.split(".", 1)[0]
    if not head.isdigit():
        raise HandshakeError(f"unparseable rpyc version {version!r}")
    return int(head)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise HandshakeError("connection closed during the bridge handshake")
        chunks += chunk
    return bytes(chunks)


def send_frame(sock: socket.socket, payload: dict[str, Any]) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    sock.sendall(MAGIC + struct.pack(">H", len(body)) + body)


def recv_frame(sock: socket.socket, *, magic_read: bool = False) -> dict[str, Any]:
    if not magic_read and _recv_exact(sock, len(MAGIC)) != MAGIC:
        raise NotBridgePeerError("peer is not an mt5bridge peer (bad magic)")
    (length,) = struct.unpack(">H", _recv_exact(sock, 2))
    if length > _MAX_HELLO:
        raise HandshakeError("bridge hello too large")
    try:
        payload = json.loads(_recv_exact(sock, length))
    except ValueError as exc:
        raise HandshakeError("malformed bridge hello") from exc
    if not isinstance(payload, dict):
        raise HandshakeError("malformed bridge hello")
    return payload


def mismatch(local_rpyc: str, peer: dict[str, Any], peer_role: str) -> str | None:
    """Why `peer` cannot talk to us, or None when it can."""
    peer_rpyc = str(peer.get("rpyc", "?"))
    peer_proto = peer.get("protocol")
    try:
        same_major = rpyc_major(peer_rpyc) == rpyc_major(local_rpyc)
    except HandshakeError:
        same_major = False
    if not same_major:
        local_role = "client" if peer_role == "server" else "server"
        return (
            f"rpyc major version mismatch: the {peer_role} has rpyc {peer_rpyc}, the "
            f"{local_role} has rpyc {local_rpyc}; install rpyc=={RPYC_VERSION} on both sides"
        )
    if peer_proto != PROTOCOL_VERSION:
        return (
            f"mt5bridge protocol mismatch: the {peer_role} speaks protocol {peer_proto}, "
            f"this side speaks {PROTOCOL_VERSION}; use the same mt5bridge release on both sides"
        )
    return None


def client_handshake(sock: socket.socket, *, rpyc_version: str = RPYC_VERSION) -> dict[str, Any]:
    """Send our hello, read the server's, raise HandshakeError if we cannot talk."""
    send_frame(sock, {"protocol": PROTOCOL_VERSION, "rpyc": rpyc_version})
    reply = recv_frame(sock)
    if reply.get("ok") is not True:
        raise HandshakeError(f"server refused the connection: {reply.get('error', 'no reason')}")
    problem = mismatch(rpyc_version, reply, "server")
    if problem:
        raise HandshakeError(problem)
    return reply


def is_status_probe(hello: dict[str, Any]) -> bool:
    return hello.get("status") is True


def server_handshake(
    sock: socket.socket,
    *,
    magic_read: bool = False,
    status: Callable[[], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Read the client's hello and answer it; on a mismatch, tell the client why and raise.

    A status probe (see the module docstring) gets ``status()`` in the reply when it is given.
    """
    hello = recv_frame(sock, magic_read=magic_read)
    problem = mismatch(RPYC_VERSION, hello, "client")
    if problem:
        send_frame(
            sock,
            {"ok": False, "error": problem, "protocol": PROTOCOL_VERSION, "rpyc": RPYC_VERSION},
        )
        raise HandshakeError(problem)
    reply: dict[str, Any] = {"ok": True, "protocol": PROTOCOL_VERSION, "rpyc": RPYC_VERSION}
    if status is not None and is_status_probe(hello):
        reply["status"] = status()
    send_frame(sock, reply)
    return hello
