"""What the bridge says about itself: the answer to the `status` call and the health probe.

Every field is read, never assumed. `last_error` is what the backend's own ``last_error()``
returns at the time of the call (for the `metatrader5` backend: the real package's answer);
`connected` is whether the last initialize/login/shutdown that went through this bridge left
the package connected, because asking the package (``terminal_info()``) would overwrite the
last_error() a bot is about to read. `terminal` is the supervisor's line about the terminal
process (the entrypoint writes it; see MT5_TERMINAL_STATE_FILE), or says that there is none.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any, Final

from mt5bridge import PROTOCOL_VERSION, __version__

#: A status crosses the hello frame (2-byte length) too; values are cut to keep it small.
_MAX_TEXT: Final = 300
_STATE_KEYS: Final = frozenset(
    {"state", "pid", "since", "restarts", "code", "attempt", "delay", "at", "updated"}
)


def _text(value: Any) -> str:
    return str(value)[:_MAX_TEXT]


def _wine_version() -> str | None:
    """Wine's version when this Python runs under Wine (ntdll exports wine_get_version)."""
    if sys.platform != "win32":
        return None
    try:
        import ctypes

        get = ctypes.WinDLL("ntdll").wine_get_version
        get.restype = ctypes.c_char_p
        return _text(get().decode("ascii", "replace"))
    except (OSError, AttributeError, ValueError):
        return None


def runtime_info() -> dict[str, Any]:
    """The Python the bridge runs in. Computed once: none of it changes while it runs."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": sys.platform,
        "machine": platform.machine(),
        "executable": _text(sys.executable),
        "wine": _wine_version(),
    }
    getwindowsversion = getattr(sys, "getwindowsversion", None)
    if getwindowsversion is not None:
        v = getwindowsversion()
        info["windows"] = f"{v.major}.{v.minor}.{v.build}"
    return info


def read_terminal_state(path: str | None = None) -> dict[str, Any]:
    """The supervisor's one-line state of the terminal process, as a dict of its fields."""
    path = path if path is not None else os.environ.get("MT5_TERMINAL_STATE_FILE")
    if not path:
        return {"state": "unknown", "detail": "no supervisor state (MT5_TERMINAL_STATE_FILE unset)"}
    try:
        line = Path(path).read_text(encoding="utf-8", errors="replace")[:_MAX_TEXT]
    except FileNotFoundError:
        return {"state": "unknown", "detail": f"no supervisor state at {_text(path)}"}
    except OSError as exc:
        return {"state": "unknown", "detail": _text(f"cannot read {path}: {exc}")}
    fields: dict[str, Any] = {}
    for word in line.split():
        key, sep, value = word.partition("=")
        if sep and key in _STATE_KEYS:
            fields[key] = int(value) if value.isdigit() else _text(value)
    fields.setdefault("state", "unknown")
    fields["source"] = "supervisor"
    return fields


def build_status(
    *,
    backend: str,
    package_version: str | None,
    runtime: dict[str, Any],
    terminal: dict[str, Any],
    connected: bool,
    last_error: Any,
) -> dict[str, Any]:
    """The status reply: plain data only (str, int, bool, None, lists and dicts of those)."""
    error: list[Any] | str | None
    if isinstance(last_error, tuple) and len(last_error) == 2:
        error = [int(last_error[0]), _text(last_error[1])]
    elif last_error is None:
        error = None
    else:
        error = _text(last_error)
    return {
        "backend": backend,
        "bridge": __version__,
        "protocol": PROTOCOL_VERSION,
        "package": package_version,
        "runtime": dict(runtime),
        "terminal": dict(terminal),
        "connected": bool(connected),
        "last_error": error,
    }
