"""The hello both sides exchange on the raw stream before RPyC starts.

RPyC 5 and 6 are not wire-compatible, and a mismatch surfaces as "ValueError: invalid message
type: 18" deep in a call (gmag11/MetaTrader5-Docker-Image #26). Exchanging versions before the
first RPyC frame lets both sides fail at connect time with a message that says what is wrong.
It also lets the server tell an mt5bridge client from an RPyC classic client (which sends RPyC
frames at once) and refuse the latter unless classic mode is on.

Frame: MAGIC (4 bytes) + length (2 bytes, big-endian) + UTF-8 JSON object.

A hello with ``"status": true`` is a probe (the image's health check, which has no RPyC): the
server's reply carries its status (mt5bridge.status) and the connection ends there.

Everything a peer sends here is hostile until proven otherwise: the length is checked before
the body is read, the JSON may be anything (deep nesting, huge numbers, other types) and ends in
HandshakeError, never in another exception, and the blocking reader has one deadline for the
whole hello, not one per read (a peer dripping a byte a second would otherwise never time out).
The server reads the hello without blocking through `parse_hello` (see mt5bridge.server).
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Callable
from typing import Any, Final

import rpyc  # type: ignore[import-untyped]

from mt5bridge import PROTOCOL_VERSION
from mt5bridge.errors import HandshakeError, NotBridgePeerError

MAGIC: Final = b"MT5B"
_MAX_HELLO = 4096
_HEADER: Final = len(MAGIC) + 2
#: Fields the server reads from a hello; their values are cut to this many characters before
#: they reach a message (which is then logged and sent back).
_MAX_FIELD = 64
RPYC_VERSION: Final[str] = str(rpyc.__version__)


def rpyc_major(version: str) -> int:
    head = version.split(".", 1)[0]
    if not head.isdigit():
        raise HandshakeError(f"unparseable rpyc version {version!r}")
    return int(head)


def _recv_exact(sock: socket.socket, n: int, deadline: float | None = None) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HandshakeError("bridge handshake not completed in time")
            sock.settimeout(left)
        try:
            chunk = sock.recv(n - len(chunks))
        except TimeoutError as exc:
            raise HandshakeError("bridge handshake not completed in time") from exc
        if not chunk:
            raise HandshakeError("connection closed during the bridge handshake")
        chunks += chunk
    return bytes(chunks)


def _load_hello(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise HandshakeError("malformed bridge hello") from exc
    if not isinstance(payload, dict):
        raise HandshakeError("malformed bridge hello")
    return payload


def parse_hello(buffer: bytes | bytearray) -> tuple[dict[str, Any] | None, int]:
    """The hello at the start of `buffer` and how many bytes it took, or (None, 0) while
    more bytes are needed. Raises NotBridgePeerError or HandshakeError as soon as the bytes
    already there settle it (bad magic, a length over the cap)."""
    head = bytes(buffer[: len(MAGIC)])
    if head != MAGIC[: len(head)]:
        raise NotBridgePeerError("peer is not an mt5bridge peer (bad magic)")
    if len(buffer) < _HEADER:
        return None, 0
    (length,) = struct.unpack(">H", buffer[len(MAGIC) : _HEADER])
    if length > _MAX_HELLO:
        raise HandshakeError("bridge hello too large")
    if len(buffer) < _HEADER + length:
        return None, 0
    return _load_hello(bytes(buffer[_HEADER : _HEADER + length])), _HEADER + length


def send_frame(sock: socket.socket, payload: dict[str, Any]) -> None:
    sock.sendall(encode_frame(payload))


def encode_frame(payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return MAGIC + struct.pack(">H", len(body)) + body


def recv_frame(
    sock: socket.socket, *, magic_read: bool = False, timeout: float | None = None
) -> dict[str, Any]:
    """Read one hello frame; with `timeout`, the whole frame must arrive within it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    if not magic_read and _recv_exact(sock, len(MAGIC), deadline) != MAGIC:
        raise NotBridgePeerError("peer is not an mt5bridge peer (bad magic)")
    (length,) = struct.unpack(">H", _recv_exact(sock, 2, deadline))
    if length > _MAX_HELLO:
        raise HandshakeError("bridge hello too large")
    return _load_hello(_recv_exact(sock, length, deadline))


def _field(peer: dict[str, Any], key: str) -> str:
    """A hello field as text for a message: cut, and only printable ASCII kept, so a peer
    cannot make the message (logged, and sent back) long or forge lines in a log."""
    text = ascii(peer.get(key, "?")) if not isinstance(peer.get(key), str) else peer[key]
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return text[:_MAX_FIELD] + ("..." if len(text) > _MAX_FIELD else "")


def mismatch(local_rpyc: str, peer: dict[str, Any], peer_role: str) -> str | None:
    """Why `peer` cannot talk to us, or None when it can."""
    peer_rpyc = _field(peer, "rpyc")
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
            f"mt5bridge protocol mismatch: the {peer_role} speaks protocol "
            f"{_field(peer, 'protocol')}, "
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


def answer_hello(
    hello: dict[str, Any], status: Callable[[], dict[str, Any]] | None = None
) -> tuple[bytes, str | None]:
    """The server's reply frame to `hello`, and why the peer is refused (None if it is not).

    A status probe (see the module docstring) gets ``status()`` in the reply when it is given.
    """
    problem = mismatch(RPYC_VERSION, hello, "client")
    if problem:
        refusal = {"ok": False, "error": problem, "protocol": PROTOCOL_VERSION}
        return encode_frame({**refusal, "rpyc": RPYC_VERSION}), problem
    reply: dict[str, Any] = {"ok": True, "protocol": PROTOCOL_VERSION, "rpyc": RPYC_VERSION}
    if status is not None and is_status_probe(hello):
        reply["status"] = status()
    return encode_frame(reply), None


def server_handshake(
    sock: socket.socket,
    *,
    magic_read: bool = False,
    status: Callable[[], dict[str, Any]] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Read the client's hello and answer it; on a mismatch, tell the client why and raise.
    With `timeout`, the whole hello must arrive within it."""
    hello = recv_frame(sock, magic_read=magic_read, timeout=timeout)
    reply, problem = answer_hello(hello, status)
    sock.sendall(reply)
    if problem:
        raise HandshakeError(problem)
    return hello
