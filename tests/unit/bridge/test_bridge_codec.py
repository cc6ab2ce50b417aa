from __future__ import annotations

import datetime as dt
from collections import namedtuple

import numpy as np
import pytest
from mt5bridge.codec import decode, encode
from mt5bridge.errors import CodecError
from mt5bridge.mt5types import RATES_DTYPE
from rpyc.core import brine


def test_named_tuples_keep_name_fields_and_values() -> None:
    Tick = namedtuple("Tick", "time bid ask")
    wire = encode((Tick(1, np.float64(1.5), 1.6), [1, {"a": None}]))
    assert brine.dumpable(wire)
    tick, rest = decode(wire)
    assert type(tick).__name__ == "Tick" and tick._fields == ("time", "bid", "ask")
    assert tick == (1, 1.5, 1.6) and type(tick.bid) is float
    assert rest == [1, {"a": None}]


def test_structured_array_crosses_as_one_blob() -> None:
    rates = np.zeros(1000, dtype=RATES_DTYPE)
    rates["close"] = np.arange(1000) / 7
    wire = encode(rates)
    assert wire[0] == "A" and type(wire[3]) is bytes and len(wire[3]) == rates.nbytes
    back = decode(wire)
    assert back.dtype == rates.dtype and (back == rates).all()
    back[0]["close"] = 5.0  # writable


def test_padded_structured_array_keeps_its_fields() -> None:
    # An aligned C struct (or a multi-field view) has padding; it must not become a field.
    padded = np.zeros(
        3, dtype=np.dtype([("time", "<i8"), ("spread", "<i4"), ("vol", "<u8")], align=True)
    )
    padded["vol"] = [1, 2, 3]
    back = decode(encode(padded))
    assert back.dtype.names == ("time", "spread", "vol") and back.dtype.itemsize == 24
    assert back["vol"].tolist() == [1, 2, 3]
    view = decode(encode(padded[["time", "vol"]]))
    assert view.dtype.names == ("time", "vol") and view["vol"].tolist() == [1, 2, 3]


def test_plain_array_and_datetimes() -> None:
    arr = np.arange(6, dtype="<f8").reshape(2, 3)
    assert (decode(encode(arr)) == arr).all()
    aware = dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.UTC)
    naive = dt.datetime(2024, 1, 2, 3, 4)
    assert decode(encode((aware, naive))) == (aware, naive)


@pytest.mark.parametrize("value", [object(), {1.5: "x"}, np.array([object()]), {1, 2}])
def test_values_that_are_not_plain_data_are_refused(value: object) -> None:
    with pytest.raises(CodecError):
        encode(value)


@pytest.mark.parametrize(
    "wire",
    [
        ("X", ()),
        ("T", [1]),
        ("N", "os.system", ("a",), (1,)),
        ("N", "T", ("import",), (1,)),
        ("A", (("f", "|O"),), (1,), b"\0" * 8),
        ("A", (("f", (("g", "<f8"),)),), (1,), b"\0" * 8),
        ("A", "<f8", (2,), b"\0" * 8),
        ("D", (1.5,), (1,)),
        [1, 2],
        object(),
    ],
)
def test_decoder_accepts_only_its_grammar(wire: object) -> None:
    with pytest.raises(CodecError):
        decode(wire)


def test_named_type_cache_is_bounded_by_bytes() -> None:
    from mt5bridge import codec

    long_fields = tuple(f"f{j}_" + "x" * 50 for j in range(40))
    for i in range(400):
        fields = ("a", *long_fields)
        assert decode(("N", f"Peer{i}", fields, tuple(range(41)))).a == 0
    assert codec._named_types_bytes <= codec.MAX_NAMED_TYPES_BYTES
    assert sum(codec._class_bytes(c, k) for k, c in codec._named_types.items()) <= (
        codec.MAX_NAMED_TYPES_BYTES
    )


def test_nesting_is_bounded() -> None:
    deep: object = 1
    for _ in range(100):
        deep = ("T", (deep,))
    with pytest.raises(CodecError, match="nested"):
        decode(deep)


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        # A shape whose product is astronomically large: refused before it is multiplied.
        (("A", "<f8", (10**9, 10**9, 10**9), b""), "elements|shape"),
        (("A", "<f8", (2**62,) * 8, b""), "elements"),
        (("A", "<f8", (1,) * 9, b"\0" * 8), "rank"),
        (("A", "<f8", (-1,), b""), "shape"),
        (("A", "<f8", (True,), b"\0" * 8), "shape"),
        # Zero-size elements would let a huge shape pass the byte check.
        (("A", "|V0", (10**8,), b""), "dtype|elements|plain"),
        # numpy's dtype mini-language (subarrays, comma lists) is not parsed at all.
        (("A", "(100000,100000)f8", (1,), b""), "plain numpy type"),
        (("A", "f8,f8,f8", (1,), b"\0" * 24), "plain numpy type"),
        (("A", "|V99999", (1,), b"\0" * 99999), "plain numpy type|elements refused"),
        (("A", "<U99999", (1,), b""), "plain numpy type|elements refused"),
        (("A", (("x" * 65, "<f8"),), (1,), b"\0" * 8), "malformed"),
        (("A", tuple((f"f{i}", "<f8") for i in range(200)), (1,), b""), "fields"),
        (("A", (("f", "<f8", (10**6, 10**6)),), (1,), b""), "malformed"),
        (("N", "T" * 65, ("a",), (1,)), "at most 64"),
        (("N", "T", tuple(f"f{i}" for i in range(200)), tuple(range(200))), "fields"),
        (("D", ("k" * 65,), (1,)), "dict key"),
        ("x" * 70_000, "text"),
        (2**70, "wider"),
        (("DT", "2024-01-01" + " " * 100), "datetime"),
    ],
)
def test_sizes_are_capped_before_use(wire: object, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode(wire)


def test_node_count_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    from mt5bridge import codec

    # A smaller cap than the default, so the test builds a small value; same code path.
    monkeypatch.setattr(codec, "MAX_NODES", 1000)
    assert len(decode(("T", tuple(range(900))))) == 900
    with pytest.raises(CodecError, match="more than 1000 values"):
        decode(("T", tuple(range(1001))))
