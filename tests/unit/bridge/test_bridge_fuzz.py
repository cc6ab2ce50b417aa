"""Fuzzing what the bridge server reads from a peer: the value codec, the hello (parsed and over
a real socket pair), RPyC frames, and whole requests through the server's guarded connection
with a real service and simulator behind it. The only exceptions allowed out are the bridge's
own (CodecError, HandshakeError, ProtocolError); anything else would escape a handler.

Budget: a fixed number of examples per target and no per-example deadline, so the whole file
stays within a few seconds to ~20 s on a slow CPU.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mt5bridge.backends import ModuleBackend, simulator_backend
from mt5bridge.codec import decode, encode
from mt5bridge.errors import CodecError, HandshakeError, ProtocolError
from mt5bridge.frames import HEADER, Frame, FrameReader, Refused
from mt5bridge.guard import GuardedConnection, Outbox
from mt5bridge.handshake import MAGIC, answer_hello, parse_hello, server_handshake
from mt5bridge.service import RPYC_CONFIG, BridgeService
from mt5bridge.simulator import SimulatorConfig
from rpyc.core import brine, consts

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.binary(max_size=40),
)
tags = st.sampled_from(["T", "L", "D", "N", "DT", "A", "X", ""])
dtypes = st.one_of(
    st.sampled_from(["<f8", "<i4", "|S4", "|V0", "|O", "<M8[s]", "f8,f8", "(2,2)f8", "<U9999"]),
    st.text(max_size=12),
)


def _wire(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.tuples(tags, st.tuples(children)).map(lambda t: (t[0], t[1])),
        st.tuples(tags, st.lists(children, max_size=4).map(tuple)),
        st.tuples(
            st.just("D"),
            st.lists(scalars, max_size=3).map(tuple),
            st.lists(children, max_size=3).map(tuple),
        ),
        st.tuples(
            st.just("N"),
            st.text(max_size=70),
            st.lists(st.text(max_size=8), max_size=4).map(tuple),
            st.lists(children, max_size=4).map(tuple),
        ),
        st.tuples(
            st.just("A"),
            st.one_of(
                dtypes, st.lists(st.tuples(st.text(max_size=4), dtypes), max_size=3).map(tuple)
            ),
            st.lists(st.integers(-2, 2**40), max_size=9).map(tuple),
            st.binary(max_size=64),
        ),
        st.lists(children, max_size=3),
    )


wire_values = st.recursive(scalars, _wire, max_leaves=30)


@FUZZ
@given(wire_values)
def test_decoder_raises_nothing_but_codec_error(value: Any) -> None:
    try:
        decoded = decode(value)
    except CodecError:
        return
    encode(decoded)  # whatever it accepts is plain data again


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
hellos = st.one_of(
    st.binary(max_size=80),
    st.binary(max_size=80).map(lambda b: MAGIC + b),
    st.builds(
        lambda v, cut: (
            lambda body: MAGIC + struct.pack(">H", len(body)) + body[: len(body) - cut]
        )(json.dumps(v).encode()),
        st.one_of(
            json_values,
            st.fixed_dictionaries(
                {"protocol": json_values, "rpyc": st.one_of(st.text(max_size=20), json_values)},
                optional={"status": json_values},
            ),
        ),
        st.integers(0, 3),
    ),
)


@FUZZ
@given(hellos)
def test_hello_parser_and_answer_raise_nothing_but_handshake_error(data: bytes) -> None:
    try:
        hello, used = parse_hello(data)
    except HandshakeError:
        return
    if hello is None:
        assert used == 0
        return
    assert 0 < used <= len(data)
    reply, problem = answer_hello(hello, lambda: {"state": "fuzz"})
    assert reply.startswith(MAGIC) and len(reply) < 6 + 65536
    if problem is not None:
        assert "\n" not in problem and len(problem) < 1000


@settings(max_examples=60, deadline=None, database=None)
@given(hellos)
def test_blocking_server_handshake_ends_in_time_with_a_bridge_error(data: bytes) -> None:
    a, b = socket.socketpair()
    try:
        a.sendall(data)
        a.shutdown(socket.SHUT_WR)
        with contextlib.suppress(HandshakeError):
            server_handshake(b, timeout=0.5)
    finally:
        a.close()
        b.close()


frames = st.lists(
    st.one_of(
        st.binary(max_size=30),
        st.builds(
            lambda length, flag, body: struct.pack("!LB", length, flag) + body,
            st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1)),
            st.integers(0, 3),
            st.binary(max_size=70),
        ),
        st.builds(
            lambda body: struct.pack("!LB", len(body), 1) + body + b"\n",
            st.binary(max_size=40).map(zlib.compress),
        ),
    ),
    max_size=6,
).map(b"".join)


@FUZZ
@given(frames, st.integers(1, 7), st.integers(0, 200))
def test_frame_reader_raises_nothing_but_protocol_error_and_stays_bounded(
    stream: bytes, chunk: int, first: int
) -> None:
    reader = FrameReader(max_frame=64)
    # What a client sent right after its hello reaches the reader in one piece.
    pos = min(first, len(stream))
    reader.feed(stream[:pos])
    try:
        while True:
            item = reader.next()
            if isinstance(item, Frame):
                assert len(item.body) <= 64
                opened = item.opened()
                assert isinstance(opened, Refused) or len(opened) <= 64
                continue
            if isinstance(item, Refused):
                continue
            take = min(reader.want(), chunk, len(stream) - pos)
            if take <= 0:
                break
            reader.feed(stream[pos : pos + take])
            pos += take
            assert reader.buffered <= max(HEADER + 64 + 1, first)
    except ProtocolError:
        pass


_backend: ModuleBackend | None = None


def _simulator() -> ModuleBackend:
    global _backend
    if _backend is None:
        _backend = simulator_backend(SimulatorConfig(login=1, password="pw", server="Fuzz"))
    return _backend


labels = st.sampled_from(
    [consts.LABEL_VALUE, consts.LABEL_TUPLE, consts.LABEL_LOCAL_REF, consts.LABEL_REMOTE_REF, 9]
)
boxed = st.recursive(
    st.tuples(st.just(consts.LABEL_VALUE), wire_values),
    lambda inner: st.one_of(
        st.tuples(labels, st.lists(inner, max_size=3).map(tuple)),
        st.tuples(labels, st.tuples(st.text(max_size=30), st.integers(), st.integers())),
        st.tuples(labels, wire_values),
    ),
    max_leaves=12,
)
requests = st.tuples(
    st.integers(-5, 2**40),
    st.one_of(st.integers(0, 25), st.text(max_size=4)),
    boxed,
)


@pytest.fixture(scope="module")
def conn() -> GuardedConnection:
    service = BridgeService(_simulator())
    return GuardedConnection(service, Outbox(), RPYC_CONFIG, "fuzz-peer")


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.one_of(requests.map(lambda r: (r[0], (r[1], r[2]))), wire_values), st.booleans())
def test_guarded_connection_answers_every_request_or_raises_protocol_error(
    conn: GuardedConnection, payload: Any, as_request: bool
) -> None:
    msg = consts.MSG_REQUEST if as_request else consts.MSG_REPLY
    try:
        data = bytes([msg]) + brine.dump(payload)
    except (TypeError, ValueError, OverflowError):
        return  # not representable in brine: no peer can send it either
    outbox = conn._channel
    outbox.take()
    try:
        keep = conn.handle_frame(data)
    except ProtocolError:
        return
    handler = payload[1][0] if isinstance(payload, tuple) and len(payload) == 2 else None
    if keep:
        reply = outbox.take()
        assert reply, "every request served gets a reply or an error"
        length, flag = struct.unpack("!LB", reply[:5])
        body = reply[5 : 5 + length]
        body = zlib.decompress(body) if flag else body
        assert body[0] in (consts.MSG_REPLY, consts.MSG_EXCEPTION)
    else:
        assert handler == consts.HANDLE_CLOSE
