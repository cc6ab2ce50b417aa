"""What answers the exposed calls: the real `MetaTrader5` package or the simulator.

Both are modules with the MetaTrader5 functions; the backend calls only names in EXPOSED_CALLS
and holds a lock, because the MetaTrader5 package talks to one terminal over one IPC channel and
the simulator is not thread-safe, while the server runs one thread per connection.
"""

from __future__ import annotations

import importlib
import threading
import types
from typing import Any

from mt5bridge.api import EXPOSED_CALLS
from mt5bridge.errors import NotExposedError
from mt5bridge.simulator import Simulator, SimulatorConfig, as_module


class ModuleBackend:
    """Serialised, allow-listed calls into a module that has the MetaTrader5 API."""

    def __init__(self, name: str, module: types.ModuleType) -> None:
        self.name = name
        self._module = module
        self._lock = threading.Lock()
        missing = sorted(n for n in EXPOSED_CALLS if not callable(getattr(module, n, None)))
        if missing:
            raise NotExposedError(f"backend {name!r} lacks {', '.join(missing)}")

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if name not in EXPOSED_CALLS:
            raise NotExposedError(f"{name!r} is not an exposed MetaTrader5 call")
        function = getattr(self._module, name)
        with self._lock:
            return function(*args, **kwargs)

    def locked_module(self, module_name: str = "MetaTrader5") -> types.ModuleType:
        """A module whose exposed functions go through this backend (for classic mode)."""
        shim = types.ModuleType(module_name)
        for attr in dir(self._module):
            if attr.isupper():
                setattr(shim, attr, getattr(self._module, attr))
        for call in EXPOSED_CALLS:
            setattr(shim, call, _bound(self, call))
        return shim


def _bound(backend: ModuleBackend, name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        return backend.call(name, args, kwargs)

    call.__name__ = name
    return call


def metatrader5_backend() -> ModuleBackend:
    """The real terminal, through the Windows-only MetaTrader5 package (inside Wine)."""
    return ModuleBackend("metatrader5", importlib.import_module("MetaTrader5"))


def simulator_backend(config: SimulatorConfig) -> ModuleBackend:
    return ModuleBackend("simulator", as_module(Simulator(config)))
