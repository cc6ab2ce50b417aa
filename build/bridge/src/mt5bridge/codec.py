"""Plain-data codec: what the MetaTrader5 API returns and takes, as values RPyC sends by value.

RPyC passes by value only what its `brine` serializer can dump (None, bool, int, float, str, bytes
and tuples of those); anything else crosses as a proxy whose every attribute read is another round
trip, and which lets the peer reach back into our objects. So every value is encoded here into
brine-dumpable tuples, tagged by kind, and decoded on the other side into fresh local objects:
named tuples keep their type name and fields, numpy arrays cross as one bytes blob plus dtype.
The decoder accepts nothing but this grammar, so a proxy (netref) never gets through.

The server decodes what any peer sends, so every size is checked against a cap before it is
used: nesting depth, node count, text and name lengths, integer width, array rank, shape and
dtype (a cap on the element count is checked dimension by dimension, before anything is
multiplied or allocated), and the named-tuple class cache is bounded by bytes.
"""

from __future__ import annotations

import datetime as dt
import keyword
import re
import sys
import threading
from collections import namedtuple
from typing import Any, Final

import numpy as np
from numpy.lib.format import descr_to_dtype, dtype_to_descr

from mt5bridge.errors import CodecError

_SCALARS = (type(None), bool, int, float, str, bytes)
_MAX_DEPTH = 32
#: Longest str a decoded value may hold (MetaTrader5 strings are comments, symbols and paths).
MAX_TEXT: Final = 65_536
#: Longest type, field or dict-key name.
MAX_NAME: Final = 64
#: Most fields in a named tuple or a structured dtype (MqlTradeRequest has about 20).
MAX_FIELDS: Final = 128
#: Most values one decode may produce: a reply of 100 000 positions is far below it.
MAX_NODES: Final = 4_000_000
#: Widest integer: MetaTrader5 tickets and volumes are 64-bit.
MAX_INT_BITS: Final = 64
#: Array limits: rank, elements, bytes per element.
MAX_NDIM: Final = 8
MAX_ELEMENTS: Final = 100_000_000
MAX_ITEMSIZE: Final = 65_536
#: A plain dtype as numpy writes it (`<f8`, `|S31`, `<M8[s]`): anything else is not parsed.
_DTYPE_STR = re.compile(r"[<>|=]?[biufcSUVMm][0-9]{1,5}(\[[a-zA-Z]{1,3}\])?")

TAG_TUPLE = "T"
TAG_LIST = "L"
TAG_DICT = "D"
TAG_NAMED = "N"
TAG_DATETIME = "DT"
TAG_ARRAY = "A"


def encode(value: Any, _depth: int = 0) -> Any:
    """Encode `value` into brine-dumpable plain data, or raise CodecError."""
    if _depth > _MAX_DEPTH:
        raise CodecError("value nested too deeply")
    kind = type(value)
    if kind in _SCALARS:
        return value
    if isinstance(value, np.generic):
        # numpy scalars (np.float64 is a float subclass, which brine refuses): plain Python.
        return encode(value.item(), _depth + 1)
    if isinstance(value, np.ndarray):
        return _encode_array(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        fields = tuple(str(f) for f in value._fields)
        return (
            TAG_NAMED,
            str(kind.__name__),
            fields,
            tuple(encode(v, _depth + 1) for v in value),
        )
    if isinstance(value, tuple):
        return (TAG_TUPLE, tuple(encode(v, _depth + 1) for v in value))
    if isinstance(value, list):
        return (TAG_LIST, tuple(encode(v, _depth + 1) for v in value))
    if isinstance(value, dict):
        keys = tuple(value.keys())
        for key in keys:
            if type(key) not in (str, int):
                raise CodecError(f"dict key of type {type(key).__name__} cannot cross the bridge")
        return (TAG_DICT, keys, tuple(encode(value[k], _depth + 1) for k in keys))
    if isinstance(value, dt.datetime):
        return (TAG_DATETIME, value.isoformat())
    # Subclasses of the scalars (IntEnum, str subclasses) become the plain scalar.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return bytes(value)
    raise CodecError(f"a value of type {kind.__name__} cannot cross the bridge")


def _encode_array(array: np.ndarray[Any, Any]) -> tuple[Any, ...]:
    if array.dtype.hasobject:
        raise CodecError("numpy arrays holding Python objects cannot cross the bridge")
    if array.dtype.names is not None:
        # numpy's own descr (what .npy files store): padding and offsets show as unnamed void
        # fields, which descr_to_dtype turns back into offsets instead of extra fields.
        spec: Any = tuple(_field_to_wire(item) for item in dtype_to_descr(array.dtype))
    else:
        spec = array.dtype.str
    data = np.ascontiguousarray(array).tobytes()
    return (TAG_ARRAY, spec, tuple(int(n) for n in array.shape), data)


def _field_to_wire(item: tuple[Any, ...]) -> tuple[Any, ...]:
    if type(item[1]) is not str:
        raise CodecError("numpy arrays with nested structured fields cannot cross the bridge")
    return tuple(item)


_named_types: dict[tuple[str, tuple[str, ...]], Any] = {}
_named_types_bytes = 0
_named_types_lock = threading.Lock()
# The server decodes what clients send: a client must not grow this cache without bound. The
# MetaTrader5 API has about a dozen record types (a few KiB each); past the budget, types are
# made, not kept. Counted in bytes (class, its dict and the key), since names differ in size.
MAX_NAMED_TYPES_BYTES: Final = 1 << 20


def _class_bytes(cls: Any, key: tuple[str, tuple[str, ...]]) -> int:
    size = sys.getsizeof(cls) + sys.getsizeof(cls.__dict__)
    size += sum(sys.getsizeof(v) for v in vars(cls).values())
    return size + sys.getsizeof(key[0]) + sum(sys.getsizeof(f) for f in key[1])


def _named_type(name: Any, fields: tuple[Any, ...]) -> Any:
    global _named_types_bytes
    if len(fields) > MAX_FIELDS:
        raise CodecError(f"named tuple with over {MAX_FIELDS} fields in bridge data")
    for ident in (name, *fields):
        if type(ident) is not str or len(ident) > MAX_NAME:
            raise CodecError(f"named-tuple name or field not a str of at most {MAX_NAME} chars")
        if not ident.isidentifier() or keyword.iskeyword(ident):
            raise CodecError(f"invalid named-tuple name or field: {ident!r}")
    key = (name, fields)
    known = _named_types.get(key)
    if known is not None:
        return known
    cls = namedtuple(name, fields)  # type: ignore[misc]  # dynamic by design
    size = _class_bytes(cls, key)
    with _named_types_lock:
        if key not in _named_types and _named_types_bytes + size <= MAX_NAMED_TYPES_BYTES:
            _named_types[key] = cls
            _named_types_bytes += size
    return cls


def decode(value: Any) -> Any:
    """Decode plain data produced by `encode`; anything outside the grammar, or over a cap,
    raises CodecError (and nothing else: a peer's bytes never raise anything but that)."""
    try:
        return _decode(value, 0, [MAX_NODES])
    except CodecError:
        raise
    except (RecursionError, MemoryError, OverflowError, TypeError, ValueError) as exc:
        raise CodecError(f"malformed bridge data: {type(exc).__name__}") from exc


def _scalar(value: Any) -> Any:
    kind = type(value)
    if kind is str and len(value) > MAX_TEXT:
        raise CodecError(f"text of {len(value)} characters is over the cap of {MAX_TEXT}")
    if kind is int and value.bit_length() > MAX_INT_BITS:
        raise CodecError(f"integer wider than {MAX_INT_BITS} bits in bridge data")
    return value


def _decode(value: Any, _depth: int, budget: list[int]) -> Any:
    if _depth > _MAX_DEPTH:
        raise CodecError("value nested too deeply")
    budget[0] -= 1
    if budget[0] < 0:
        raise CodecError(f"more than {MAX_NODES} values in bridge data")
    kind = type(value)
    if kind in _SCALARS:
        return _scalar(value)
    if kind is not tuple or not value:
        raise CodecError(f"unexpected {kind.__name__} in bridge data")
    tag = value[0]
    try:
        if tag == TAG_TUPLE:
            (items,) = value[1:]
            return tuple(_decode(v, _depth + 1, budget) for v in _tuple(items))
        if tag == TAG_LIST:
            (items,) = value[1:]
            return [_decode(v, _depth + 1, budget) for v in _tuple(items)]
        if tag == TAG_DICT:
            keys, values = value[1:]
            keys, values = _tuple(keys), _tuple(values)
            if len(keys) != len(values) or any(type(k) not in (str, int) for k in keys):
                raise CodecError("malformed dict in bridge data")
            for key in keys:
                if type(key) is str and len(key) > MAX_NAME:
                    raise CodecError(f"dict key over {MAX_NAME} characters in bridge data")
                _scalar(key)
            return {k: _decode(v, _depth + 1, budget) for k, v in zip(keys, values, strict=True)}
        if tag == TAG_NAMED:
            name, fields, values = value[1:]
            fields, values = _tuple(fields), _tuple(values)
            if len(fields) != len(values):
                raise CodecError("malformed named tuple in bridge data")
            cls = _named_type(name, fields)
            return cls(*(_decode(v, _depth + 1, budget) for v in values))
        if tag == TAG_DATETIME:
            (text,) = value[1:]
            if type(text) is not str or len(text) > MAX_NAME:
                raise CodecError("malformed datetime in bridge data")
            return dt.datetime.fromisoformat(text)
        if tag == TAG_ARRAY:
            spec, shape, data = value[1:]
            return _decode_array(spec, _tuple(shape), data)
        if type(tag) is str and len(tag) > MAX_NAME:
            tag = tag[:MAX_NAME] + "..."
    except ValueError as exc:  # wrong arity while unpacking
        raise CodecError(f"malformed {tag!r} value in bridge data: {exc}") from exc
    raise CodecError(f"unknown tag {tag!r} in bridge data")


def _tuple(value: Any) -> tuple[Any, ...]:
    if type(value) is not tuple:
        raise CodecError(f"expected a tuple in bridge data, got {type(value).__name__}")
    return value


def _decode_array(spec: Any, shape: tuple[Any, ...], data: Any) -> np.ndarray[Any, Any]:
    if type(data) is not bytes:
        raise CodecError("malformed array in bridge data")
    count = _element_count(shape)
    dtype = _wire_dtype(spec)
    if dtype.itemsize * count != len(data):
        raise CodecError("array data does not match its shape and dtype")
    # frombuffer over bytes is read-only; MetaTrader5 hands out writable arrays, so copy.
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape).copy()


def _element_count(shape: tuple[Any, ...]) -> int:
    """The number of elements, checked against MAX_ELEMENTS one dimension at a time, so no
    product of hostile dimensions is ever formed."""
    if len(shape) > MAX_NDIM:
        raise CodecError(f"array of rank {len(shape)} is over the cap of {MAX_NDIM}")
    count = 1
    for n in shape:
        if type(n) is not int or n < 0:
            raise CodecError("malformed array shape in bridge data")
        if n > MAX_ELEMENTS:
            raise CodecError(f"array dimension of over {MAX_ELEMENTS} elements in bridge data")
        if n and count > MAX_ELEMENTS // n:
            raise CodecError(f"array of over {MAX_ELEMENTS} elements in bridge data")
        count *= n
    return count


def _plain_dtype(text: Any) -> np.dtype[Any]:
    if type(text) is not str or _DTYPE_STR.fullmatch(text) is None:
        raise CodecError("array dtype is not a plain numpy type string in bridge data")
    try:
        dtype = np.dtype(text)
    except (TypeError, ValueError) as exc:
        raise CodecError(f"invalid array dtype in bridge data: {exc}") from exc
    if not 0 < dtype.itemsize <= MAX_ITEMSIZE:
        # Zero-size elements would let any shape pass the byte-length check.
        raise CodecError(f"array dtype of {dtype.itemsize}-byte elements refused")
    return dtype


def _wire_dtype(spec: Any) -> np.dtype[Any]:
    if type(spec) is str:
        return _plain_dtype(spec)
    fields = _tuple(spec)
    if not fields or len(fields) > MAX_FIELDS:
        raise CodecError(f"structured dtype needs 1 to {MAX_FIELDS} fields in bridge data")
    descr: list[tuple[Any, ...]] = []
    for field in fields:
        field = _tuple(field)
        if len(field) != 2 or type(field[0]) is not str or len(field[0]) > MAX_NAME:
            raise CodecError("malformed array dtype in bridge data")
        _plain_dtype(field[1])  # each field checked before numpy sees the whole
        descr.append(field)
    try:
        dtype = descr_to_dtype(descr)
    except (TypeError, ValueError, KeyError) as exc:
        raise CodecError(f"invalid array dtype in bridge data: {exc}") from exc
    if dtype.hasobject or dtype.itemsize > MAX_ITEMSIZE * MAX_FIELDS:
        raise CodecError("array dtype refused in bridge data")
    return dtype
