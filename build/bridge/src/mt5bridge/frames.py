"""RPyC frames read without trusting the peer, for the server's event loop.

An RPyC frame is a 5-byte header (32-bit length, 1-byte "compressed" flag), the body, and a
newline. RPyC's own Channel reads whatever length the header claims into memory and inflates a
compressed body without limit: a 4 GiB claim, or a 4 MiB zlib bomb, takes the server down. This
reader checks the length against a cap from the header alone, before one byte of the body is
kept; a frame over the cap is skipped (read and thrown away, never stored) and answered with an
error, so the client learns why and the connection stays usable. A compressed body is inflated
with a hard cap on the output. The reader never asks for more than the current frame needs, so
what it holds is bounded by the cap whatever the peer sends.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Final

from rpyc.core import brine, consts  # type: ignore[import-untyped]

from mt5bridge.errors import ProtocolError

HEADER: Final = 5
FLUSHER: Final = b"\n"
#: Default cap on one frame from a peer (a request is a few hundred bytes; replies, which the
#: server writes, are not read here).
DEFAULT_MAX_FRAME: Final = 4 << 20
_CHUNK: Final = 1 << 16
_SEQ_PREFIX: Final = 48  # enough of a body to read its message type and sequence number


@dataclass(frozen=True)
class Frame:
    """A whole frame's body as received; `opened()` gives the request bytes."""

    body: bytes
    compressed: bool = False
    max_frame: int = DEFAULT_MAX_FRAME

    def opened(self) -> bytes | Refused:
        """The body, inflated (under the cap) if it came compressed, or the refusal to send.
        Inflating is left to whoever calls this (a worker, in the server), not to the reader,
        so a stream of zlib bombs costs the event loop nothing but reading them. ProtocolError
        when the body neither inflates nor names its request."""
        if not self.compressed:
            return self.body
        try:
            return inflate(self.body, self.max_frame)
        except ProtocolError as exc:
            seq = request_seq(_inflated_prefix(self.body))
            if seq is None:
                raise
            return Refused(seq, str(exc))


@dataclass(frozen=True)
class Refused:
    """A frame that was refused: answer request `seq` (when known) with `reason`."""

    seq: int | None
    reason: str


def request_seq(prefix: bytes) -> int | None:
    """The sequence number of the request whose body starts with `prefix`, if it is one."""
    if len(prefix) < 3 or prefix[0] != consts.MSG_REQUEST or prefix[1:2] != brine.TAG_TUP2:
        return None
    try:
        seq = brine._load(io.BytesIO(prefix[2:]))  # one int, read on its own
    except Exception:  # a cut or bogus prefix: no sequence number, that is all
        return None
    return seq if type(seq) is int else None


def inflate(body: bytes, cap: int) -> bytes:
    """A zlib body inflated to at most `cap` bytes; ProtocolError if it is more or broken."""
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(body, cap + 1)
    except zlib.error as exc:
        raise ProtocolError(f"compressed frame does not inflate: {exc}") from exc
    if len(data) > cap or inflater.unconsumed_tail:
        raise ProtocolError(f"compressed frame inflates to over {cap} bytes (the frame cap)")
    if not inflater.eof:
        raise ProtocolError("compressed frame is cut short")
    return data


def _inflated_prefix(body: bytes) -> bytes:
    """The first bytes `body` inflates to, or none if it does not inflate."""
    try:
        return zlib.decompressobj().decompress(body, _SEQ_PREFIX)
    except zlib.error:
        return b""


class FrameReader:
    """Frames out of the bytes a peer sends, one at a time, with caps (module docstring)."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._skip = 0  # bytes of an oversized frame still to throw away
        self._skipped: Refused | None = None
        self._prefix_needed = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def partial(self) -> bool:
        """Whether a frame has begun and is not complete yet."""
        return bool(self._buf) or self._skip > 0

    def want(self) -> int:
        """How many bytes to read next: never past the end of the current frame."""
        if self._skip:
            return min(self._skip, _CHUNK)
        if len(self._buf) < HEADER:
            return HEADER - len(self._buf)
        length = int.from_bytes(self._buf[:4], "big")
        if length > self.max_frame:  # reading the prefix that names the request
            return max(1, HEADER + self._prefix_needed - len(self._buf))
        return min(HEADER + length + len(FLUSHER) - len(self._buf), _CHUNK)

    def feed(self, data: bytes) -> None:
        """Take bytes read from the peer: at most `want()` of them, except for what came
        with the hello, which is fed in one piece when the reader starts."""
        if self._skip:
            if len(data) > self._skip:
                raise ValueError("fed past the end of the frame being skipped")
            self._skip -= len(data)
            return
        self._buf += data

    def next(self) -> Frame | Refused | None:
        """The next complete frame or refusal, or None while more bytes are needed. A
        ProtocolError means the stream cannot be followed any more: close the connection."""
        if self._skip:
            return None
        if self._skipped is not None:
            done, self._skipped = self._skipped, None
            return done
        if len(self._buf) < HEADER:
            return None
        length = int.from_bytes(self._buf[:4], "big")
        compressed = self._buf[4]
        if compressed not in (0, 1):
            raise ProtocolError(f"frame header has compression flag {compressed}, not 0 or 1")
        if length > self.max_frame:
            return self._oversized(length, compressed == 1)
        end = HEADER + length + len(FLUSHER)
        if len(self._buf) < end:
            return None
        if self._buf[end - 1 : end] != FLUSHER:
            raise ProtocolError("frame does not end where its header says")
        body = bytes(self._buf[HEADER : end - 1])
        del self._buf[:end]
        return Frame(body, compressed == 1, self.max_frame)

    def _oversized(self, length: int, compressed: bool) -> Refused | None:
        self._prefix_needed = min(length, _SEQ_PREFIX)
        have = len(self._buf) - HEADER
        if have < self._prefix_needed:
            return None
        prefix = bytes(self._buf[HEADER : HEADER + self._prefix_needed])
        if compressed:
            prefix = _inflated_prefix(prefix)
        reason = (
            f"request frame of {length} bytes is over the bridge's cap of {self.max_frame} "
            "bytes (MT5_BRIDGE_MAX_FRAME); it was read and thrown away"
        )
        total = HEADER + length + len(FLUSHER)
        self._skip = max(0, total - len(self._buf))
        del self._buf[:total]  # bytes past it (fed in one piece) begin the next frame
        self._prefix_needed = 0
        refused = Refused(request_seq(prefix), reason)
        if self._skip:
            self._skipped = refused
            return None
        return refused
