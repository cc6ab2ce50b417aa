"""TOML (and environment) values into frozen dataclasses: the one conversion config and the
manifests share.

Unknown keys fail with "did you mean" (a typo in ``fingerprints`` must never turn a check off),
values are checked against the field's type, and every error names where the value came from.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
from collections.abc import Mapping, Sequence
from typing import Any, Union, get_args, get_origin, get_type_hints

from mt5forge.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    """The hint every "unknown name" error carries: the closest known name, or all of them."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    if close:
        return f"Did you mean '{close[0]}'?"
    return "Known: " + ", ".join(sorted(choices)) + "."


def _unwrap_optional(hint: Any) -> Any:
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def coerce(value: Any, hint: Any, where: str, *, from_env: bool = False) -> Any:
    """Turn ``value`` into the type ``hint``, or raise ConfigError naming ``where``.

    ``from_env``: the value is an environment string, so "true"/"1", "42" and "a,b" are read
    as a bool, an int and a list.
    """
    hint = _unwrap_optional(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return build(hint, value, where)
    env_str = from_env and isinstance(value, str)
    origin = get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if env_str and value.lower() in _TRUE:
            return True
        if env_str and value.lower() in _FALSE:
            return False
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if env_str and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        item = get_args(hint)[0] if get_args(hint) else str
        if dataclasses.is_dataclass(item) and isinstance(item, type):
            # An array of tables (``[[pe_authenticode.groups]]``): each item built like a table.
            if isinstance(value, list):
                return tuple(build(item, v, f"{where}[{i}]") for i, v in enumerate(value))
            raise ConfigError(f"{where}: expected a list of tables, got {value!r}.")
        if env_str:
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}.")
    elif origin is Mapping or hint is Mapping:
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return types.MappingProxyType(dict(value))
        raise ConfigError(f"{where}: expected a table of strings, got {value!r}.")
    kind = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{where}: expected {kind}, got {value!r}.")


def table_values(
    cls: type[Any],
    raw: Mapping[str, Any],
    where: str,
    *,
    skip: Sequence[str] = (),
    unknown: str = "{where}: unknown key '{key}'.",
    key_where: str = "{where}.{key}",
) -> dict[str, Any]:
    """The fields of dataclass ``cls`` given in ``raw``, converted; unknown keys fail.

    ``unknown`` and ``key_where`` shape the messages (config says ``[section] key``, manifests
    ``file.key``); ``skip`` names fields that never come from TOML.
    """
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            raise ConfigError(unknown.format(where=where, key=key), hint=did_you_mean(key, names))
        out[key] = coerce(value, hints[key], key_where.format(where=where, key=key))
    return out


def build(cls: type[Any], raw: Any, where: str, *, skip: Sequence[str] = ()) -> Any:
    """Build dataclass ``cls`` from a TOML table: unknown, mistyped or missing keys fail."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table, got {raw!r}.")
    out = table_values(cls, raw, where, skip=skip)
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in out
        and f.name not in skip
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing key(s): {', '.join(missing)}.")
    return cls(**out)
