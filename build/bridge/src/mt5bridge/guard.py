"""The server's RPyC connection: requests come in as whole frames from the event loop, replies go
out through a buffer the loop writes, and nothing a client sends can make the server call back.

RPyC lets either side hand the other a reference (a netref) to one of its objects; using one
makes this process send requests to the client and wait for the answers: the client then runs
code on our behalf, can stall a worker for as long as it likes, and chooses what our str(),
repr() and comparisons return. So the server refuses, before anything is unboxed:

- any request kind but the few a client needs (get the root, get an exposed attribute, call it,
  inspect and drop references, ping, close); setattr, delattr, dir, comparisons, pickling,
  slicing, context managers and instance checks are refused;
- any argument that is not a plain value: a reference to a client object (a netref, a callable,
  a client-side class) is refused, and a reference to one of our own objects is accepted only
  as the target of the request (the exposed method being called), never as an argument;
- more than MAX_LOCAL_OBJECTS of our objects held by the client at once.

Every refusal is answered with a clear exception for that request and logged; the connection
stays usable.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from typing import Any, Final

from rpyc.core import brine, consts  # type: ignore[import-untyped]
from rpyc.core.protocol import Connection  # type: ignore[import-untyped]

from mt5bridge.errors import ProtocolError
from mt5bridge.redact import escape

log = logging.getLogger("mt5bridge.server")

#: Our objects a client may hold references to at once (it needs the root and its 2 methods).
MAX_LOCAL_OBJECTS: Final = 32

# No dir() among them: a client has no use for the names of the service's private attributes.
_ALLOWED: Final = {
    consts.HANDLE_PING: "ping",
    consts.HANDLE_GETROOT: "getroot",
    consts.HANDLE_GETATTR: "getattr",
    consts.HANDLE_CALL: "call",
    consts.HANDLE_CALLATTR: "callattr",
    consts.HANDLE_DEL: "del",
    consts.HANDLE_INSPECT: "inspect",
    consts.HANDLE_REPR: "repr",
    consts.HANDLE_STR: "str",
    consts.HANDLE_HASH: "hash",
}
# Requests whose first argument is the object they act on (one of ours).
_TARGETED: Final = frozenset(set(_ALLOWED) - {consts.HANDLE_PING, consts.HANDLE_GETROOT,
                                              consts.HANDLE_INSPECT})  # fmt: skip


class Outbox:
    """The connection's channel: frames are appended here, and the event loop writes them."""

    COMPRESSION_THRESHOLD: Final = 3000

    def __init__(self) -> None:
        self.pending = bytearray()
        self.closed = False

    def send(self, data: bytes) -> None:
        compressed = len(data) > self.COMPRESSION_THRESHOLD
        if compressed:  # as RPyC's Channel does, so replies stay the size clients expect
            data = zlib.compress(data, 1)
        self.pending += len(data).to_bytes(4, "big") + bytes([compressed]) + data + b"\n"

    def take(self) -> bytes:
        data, self.pending = bytes(self.pending), bytearray()
        return data

    def close(self) -> None:
        self.closed = True

    def poll(self, timeout: float) -> bool:
        return False  # requests come from the event loop, never from a read here

    def recv(self) -> bytes:
        raise EOFError("the server never reads from a connection outside its event loop")

    def fileno(self) -> int:
        raise EOFError("no file descriptor: the event loop owns the socket")


def _plain(package: Any, depth: int = 0) -> bool:
    """Whether a boxed RPyC value is made of values only (no reference either way)."""
    if type(package) is not tuple or len(package) != 2 or depth > 64:
        return False
    label, value = package
    if label == consts.LABEL_VALUE:
        return True
    if label == consts.LABEL_TUPLE and type(value) is tuple:
        return all(_plain(item, depth + 1) for item in value)
    return False


def _is_local_ref(package: Any) -> bool:
    return type(package) is tuple and len(package) == 2 and package[0] == consts.LABEL_LOCAL_REF


class GuardedConnection(Connection):  # type: ignore[misc]  # rpyc is untyped
    """An RPyC connection that is fed whole request frames and refuses what the module
    docstring lists. `peer` names the client in log lines."""

    _HANDLERS: dict[int, Any]

    def __init__(self, service: Any, outbox: Outbox, config: dict[str, Any], peer: str) -> None:
        super().__init__(service, outbox, dict(config, bind_threads=False, logger=None))
        self.peer = peer
        handlers = self._HANDLERS
        self._HANDLERS = {h: self._logged(h, handlers[h]) for h in _ALLOWED}

    def close(self) -> None:
        """Close without RPyC's closing request: the server never waits on a client (RPyC
        would wait up to its request timeout for the answer, also from __del__)."""
        if not self._closed:
            self._cleanup(_anyway=True)

    def handle_frame(self, data: bytes) -> bool:
        """Serve one request frame; False when the client asked to close. ProtocolError when
        the frame is not a request this side can follow (the caller closes the connection)."""
        if not data or data[0] != consts.MSG_REQUEST:
            kind = data[0] if data else None
            raise ProtocolError(f"expected a request, got message type {kind}")
        try:
            seq, raw = brine.load(data[1:])
            handler, boxed = raw
        except Exception as exc:  # brine on hostile bytes: anything can come out of it
            raise ProtocolError(f"undecodable request ({type(exc).__name__})") from exc
        if type(seq) is not int:
            raise ProtocolError("request without a sequence number")
        if handler == consts.HANDLE_CLOSE:
            return False
        problem = self._refusal(handler, boxed)
        if problem is not None:
            log.warning("refused a request from %s: %s", self.peer, problem)
            self.refuse(seq, ValueError(f"mt5bridge refused the request: {problem}"))
            return True
        self._dispatch_request(seq, (handler, boxed))
        return True

    def refuse(self, seq: int, exc: BaseException) -> None:
        """Answer request `seq` with `exc` (a built-in exception, so the client shows it)."""
        self._send(consts.MSG_EXCEPTION, seq, self._box_exc(type(exc), exc, None))

    def _refusal(self, handler: Any, boxed: Any) -> str | None:
        if type(handler) is not int or handler not in _ALLOWED:
            return f"request kind {escape(str(handler), 20)} is not served by the bridge"
        if _plain(boxed):
            return None
        items = boxed[1] if type(boxed) is tuple and len(boxed) == 2 else None
        if (
            handler in _TARGETED
            and boxed[0] == consts.LABEL_TUPLE
            and type(items) is tuple
            and items
            and _is_local_ref(items[0])
            and all(_plain(item) for item in items[1:])
        ):
            return None
        return (
            "arguments must be plain values; a reference into the client (netref, callable, "
            "class) would let the server call back into it"
        )

    def _unbox(self, package: Any) -> Any:
        # Checked above already; kept here too so no path can build a netref to the client.
        if type(package) is tuple and package and package[0] == consts.LABEL_REMOTE_REF:
            raise ValueError("mt5bridge refused a reference into the client")
        return super()._unbox(package)

    def _logged(self, handler: int, function: Callable[..., Any]) -> Callable[..., Any]:
        name = _ALLOWED[handler]

        def run(conn: GuardedConnection, *args: Any) -> Any:
            try:
                result = function(conn, *args)
            except Exception as exc:
                log.warning("request %s from %s failed: %s: %s", name, conn.peer,
                            type(exc).__name__, escape(str(exc)))  # fmt: skip
                raise
            if not brine.dumpable(result) and type(result) is not tuple:
                if len(conn._local_objects._dict) >= MAX_LOCAL_OBJECTS:
                    log.warning("refused %s from %s: holds %d references already", name,
                                conn.peer, MAX_LOCAL_OBJECTS)  # fmt: skip
                    raise ValueError(
                        f"mt5bridge refused the request: the client holds {MAX_LOCAL_OBJECTS} "
                        "references to server objects already; release some (del) first"
                    )
            elif type(result) is tuple and result[:1] == ("err",) and len(result) == 3:
                log.warning("call from %s refused: %s: %s", conn.peer, escape(result[1], 40),
                            escape(result[2]))  # fmt: skip
            return result

        return run
