"""Plain-data codec: what the MetaTrader5 API returns and takes, as values RPyC sends by value.

RPyC passes by value only what its `brine` serializer can dump (None, bool, int, float, str, bytes
and tuples of those); anything else crosses as a proxy whose every attribute read is another round
trip, and which lets the peer reach back into our objects. So every value is encoded here into
brine-dumpable tuples, tagged by kind, and decoded on the other side into fresh local objects:
named tuples keep their type name and fields, numpy arrays cross as one bytes blob plus dtype.
The decoder accepts nothing but this grammar, so a proxy (netref) never gets through.
"""

from __future__ import annotations

import datetime as dt
import keyword
from collections import namedtuple
from typing import Any

import numpy as np
from numpy.lib.format import descr_to_dtype, dtype_to_descr

from mt5bridge.errors import CodecError

_SCALARS = (type(None), bool, int, float, str, bytes)
_MAX_DEPTH = 32

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
# The server decodes what clients send: a client must not grow this cache without bound. The
# MetaTrader5 API has about a dozen record types; past the limit, types are made, not kept.
_MAX_NAMED_TYPES = 256


def _named_type(name: str, fields: tuple[str, ...]) -> Any:
    key = (name, fields)
    known = _named_types.get(key)
    if known is not None:
        return known
    for ident in (name, *fields):
        if type(ident) is not str or not ident.isidentifier() or keyword.iskeyword(ident):
            raise CodecError(f"invalid named-tuple name or field: {ident!r}")
    cls = namedtuple(name, fields)  # type: ignore[misc]  # dynamic by design
    if len(_named_types) < _MAX_NAMED_TYPES:
        _named_types[key] = cls
    return cls


def decode(value: Any, _depth: int = 0) -> Any:
    """Decode plain data produced by `encode`; anything outside the grammar raises CodecError."""
    if _depth > _MAX_DEPTH:
        raise CodecError("value nested too deeply")
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is not tuple or not value:
        raise CodecError(f"unexpected {kind.__name__} in bridge data")
    tag = value[0]
    try:
        if tag == TAG_TUPLE:
            (items,) = value[1:]
            return tuple(decode(v, _depth + 1) for v in _tuple(items))
        if tag == TAG_LIST:
            (items,) = value[1:]
            return [decode(v, _depth + 1) for v in _tuple(items)]
        if tag == TAG_DICT:
            keys, values = value[1:]
            keys, values = _tuple(keys), _tuple(values)
            if len(keys) != len(values) or any(type(k) not in (str, int) for k in keys):
                raise CodecError("malformed dict in bridge data")
            return {k: decode(v, _depth + 1) for k, v in zip(keys, values, strict=True)}
        if tag == TAG_NAMED:
            name, fields, values = value[1:]
            fields, values = _tuple(fields), _tuple(values)
            if len(fields) != len(values):
                raise CodecError("malformed named tuple in bridge data")
            cls = _named_type(name, fields)
            return cls(*(decode(v, _depth + 1) for v in values))
        if tag == TAG_DATETIME:
            (text,) = value[1:]
            if type(text) is not str:
                raise CodecError("malformed datetime in bridge data")
            return dt.datetime.fromisoformat(text)
        if tag == TAG_ARRAY:
            spec, shape, data = value[1:]
            return _decode_array(spec, _tuple(shape), data)
    except ValueError as exc:  # wrong arity while unpacking
        raise CodecError(f"malformed {tag!r} value in bridge data: {exc}") from exc
    raise CodecError(f"unknown tag {tag!r} in bridge data")


def _tuple(value: Any) -> tuple[Any, ...]:
    if type(value) is not tuple:
        raise CodecError(f"expected a tuple in bridge data, got {type(value).__name__}")
    return value


def _decode_array(spec: Any, shape: tuple[Any, ...], data: Any) -> np.ndarray[Any, Any]:
    if type(data) is not bytes or any(type(n) is not int or n < 0 for n in shape):
        raise CodecError("malformed array in bridge data")
    try:
        if type(spec) is str:
            dtype = np.dtype(spec)
        else:
            fields = [_tuple(field) for field in _tuple(spec)]
            if any(len(f) not in (2, 3) or type(f[1]) is not str for f in fields):
                raise CodecError("malformed array dtype in bridge data")
            dtype = descr_to_dtype(fields)
    except (TypeError, ValueError, KeyError) as exc:
        raise CodecError(f"invalid array dtype in bridge data: {exc}") from exc
    if dtype.hasobject:
        raise CodecError("numpy arrays holding Python objects cannot cross the bridge")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(data):
        raise CodecError("array data does not match its shape and dtype")
    # frombuffer over bytes is read-only; MetaTrader5 hands out writable arrays, so copy.
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape).copy()
