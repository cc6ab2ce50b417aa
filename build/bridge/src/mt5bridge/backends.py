"""What answers the exposed calls: the real `MetaTrader5` package or the simulator.

Both are modules with the MetaTrader5 functions; the backend calls only names in EXPOSED_CALLS
and holds a lock, because the MetaTrader5 package talks to one terminal over one IPC channel and
the simulator is not thread-safe, while the server runs one thread per connection.

Each client connection gets a Session: the terminal is one, but what a client sees of it is its
own. A session that has not initialized gets the "No IPC connection" answer even while another
is connected; its last_error() is the error of its own last call; its shutdown() only ends its
own session (the terminal is shut down when the last initialized session leaves); its failed
initialize or login leaves the other sessions connected. With the real package a login() to
another account still switches the one terminal for everybody: MetaTrader 5 has one account
per terminal.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import threading
import types
from collections.abc import Callable
from typing import Any

from mt5bridge.api import EXPOSED_CALLS
from mt5bridge.errors import NotExposedError
from mt5bridge.simulator import Simulator, SimulatorConfig, as_module
from mt5bridge.status import build_status, read_terminal_state, runtime_info
from mt5bridge.terms import ERROR_TEXT

log = logging.getLogger(__name__)

#: How long status() waits for a running call before it answers without last_error().
_STATUS_WAIT = 2.0

_NO_IPC = (-10004, ERROR_TEXT[-10004])
_SUCCESS = (1, ERROR_TEXT[1])
# Calls that answer False (not None) when there is no connection, as the real package's do.
_FALSE_WITHOUT_IPC = frozenset({"login", "symbol_select", "market_book_add", "market_book_release"})
_session_ids = itertools.count(1)


class Session:
    """One client's view of the terminal; see the module docstring."""

    def __init__(self, backend: ModuleBackend) -> None:
        self.id = next(_session_ids)
        self.initialized = False
        self.error: tuple[int, str] | None = None
        self._backend = backend

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._backend.session_call(self, name, args, kwargs)

    def close(self) -> None:
        """The client went away: as its shutdown(), without touching the others."""
        self._backend.close_session(self)


class ModuleBackend:
    """Serialised, allow-listed calls into a module that has the MetaTrader5 API."""

    def __init__(
        self,
        name: str,
        module: types.ModuleType,
        *,
        terminal_state: Callable[[], dict[str, Any]] = read_terminal_state,
    ) -> None:
        self.name = name
        self._module = module
        self._lock = threading.Lock()
        self._terminal_state = terminal_state
        self._connected = False
        self._sessions: set[Session] = set()
        self._default: Session | None = None
        self._runtime = runtime_info()
        missing = sorted(n for n in EXPOSED_CALLS if not callable(getattr(module, n, None)))
        if missing:
            raise NotExposedError(f"backend {name!r} lacks {', '.join(missing)}")

    def open_session(self) -> Session:
        return Session(self)

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A call in the backend's own default session (classic mode, in-process users)."""
        if self._default is None:
            self._default = Session(self)
        return self.session_call(self._default, name, args, kwargs)

    def session_call(
        self, session: Session, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if name not in EXPOSED_CALLS:
            raise NotExposedError(f"{name!r} is not an exposed MetaTrader5 call")
        function = getattr(self._module, name)
        with self._lock:
            if name == "last_error":
                # A session that has called nothing yet has nothing failed: "Success".
                return session.error if session.error is not None else _SUCCESS
            if name == "shutdown":
                return self._shutdown_locked(session)
            if name != "initialize" and not session.initialized:
                session.error = _NO_IPC
                return False if name in _FALSE_WITHOUT_IPC else None
            result = function(*args, **kwargs)
            session.error = _as_error(self._module.last_error())
            if name == "initialize" and result is True:
                session.initialized = True
                self._sessions.add(session)
            # What the package itself answered, kept for status(): see mt5bridge.status.
            if name in ("initialize", "login") and result is True:
                self._connected = True
            elif name == "initialize" and not self._sessions:
                self._connected = False
            return result

    def _shutdown_locked(self, session: Session) -> None:
        self._sessions.discard(session)
        session.initialized = False
        session.error = _SUCCESS
        if not self._sessions and self._connected:
            self._module.shutdown()
            self._connected = False

    def close_session(self, session: Session) -> None:
        with self._lock:
            if session.initialized:
                self._shutdown_locked(session)

    def status(self) -> dict[str, Any]:
        """Backend, runtime, terminal process and connection (mt5bridge.status). Never raises:
        a status that fails to read a part says so in that part."""
        try:
            terminal = self._terminal_state()
        except Exception as exc:  # a status must answer whatever the state file holds
            terminal = {"state": "unknown", "detail": f"{type(exc).__name__}: {exc}"}
        connected = self._connected
        error: Any
        # A call can hold the lock for long (a real initialize() waits for the terminal up to
        # its timeout); the health check must not wait for it, so status says "busy" instead.
        if self._lock.acquire(timeout=_STATUS_WAIT):
            try:
                connected = self._connected
                error = self._module.last_error()
            except Exception as exc:
                log.warning("backend %s: last_error() failed: %s", self.name, exc)
                error = f"last_error() raised {type(exc).__name__}: {exc}"
            finally:
                self._lock.release()
        else:
            error = f"not read: a call has been running for over {_STATUS_WAIT:.0f} s (busy)"
        version = getattr(self._module, "__version__", None)
        return build_status(
            backend=self.name,
            package_version=str(version) if version is not None else None,
            runtime=self._runtime,
            terminal=terminal,
            connected=connected,
            last_error=error,
        )

    def locked_module(self, module_name: str = "MetaTrader5") -> types.ModuleType:
        """A module whose exposed functions go through this backend (for classic mode)."""
        shim = types.ModuleType(module_name)
        for attr in dir(self._module):
            if attr.isupper():
                setattr(shim, attr, getattr(self._module, attr))
        for call in EXPOSED_CALLS:
            setattr(shim, call, _bound(self, call))
        return shim


def _as_error(value: Any) -> tuple[int, str] | None:
    if isinstance(value, tuple) and len(value) == 2:
        return (int(value[0]), str(value[1]))
    return None


def _bound(backend: ModuleBackend, name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        return backend.call(name, args, kwargs)

    call.__name__ = name
    return call


def metatrader5_backend() -> ModuleBackend:
    """The real terminal, through the Windows-only MetaTrader5 package (inside Wine)."""
    return ModuleBackend("metatrader5", importlib.import_module("MetaTrader5"))


def _simulated_terminal() -> dict[str, Any]:
    return {"state": "simulated", "detail": "no terminal process: the simulator answers"}


def simulator_backend(config: SimulatorConfig) -> ModuleBackend:
    return ModuleBackend(
        "simulator", as_module(Simulator(config)), terminal_state=_simulated_terminal
    )
