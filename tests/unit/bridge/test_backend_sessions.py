"""Sessions on one backend: what each client sees of the one terminal (mt5bridge.backends).
In process, on the simulator backend; the bridge-level test is test_client_semantics.py."""

from __future__ import annotations

from typing import Any

from mt5bridge.backends import ModuleBackend, simulator_backend
from mt5bridge.simulator import SimulatorConfig

CREDS = {"login": 1001, "password": "pw", "server": "Sim"}


def _backend() -> ModuleBackend:
    return simulator_backend(SimulatorConfig(**CREDS))  # type: ignore[arg-type]


def _call(session: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    return session.call(name, args, kwargs)


def test_a_session_sees_nothing_before_its_own_initialize() -> None:
    b = _backend()
    a, c = b.open_session(), b.open_session()
    assert _call(a, "initialize", **CREDS) is True
    assert _call(c, "version") is None and _call(c, "login", 1001) is False
    assert _call(c, "symbol_select", "EURUSD", True) is False
    assert _call(c, "last_error") == (-10004, "No IPC connection")
    assert _call(a, "last_error") == (1, "Success")


def test_errors_are_per_session() -> None:
    b = _backend()
    a, c = b.open_session(), b.open_session()
    assert _call(a, "initialize", **CREDS) and _call(c, "initialize", **CREDS)
    assert _call(c, "symbol_info", "NOPE") is None
    assert _call(c, "last_error") == (-1, "Terminal: Call failed")
    assert _call(a, "last_error") == (1, "Success")


def test_the_terminal_shuts_down_when_the_last_session_leaves() -> None:
    b = _backend()
    a, c = b.open_session(), b.open_session()
    assert _call(a, "initialize", **CREDS) and _call(c, "initialize", **CREDS)
    _call(a, "shutdown")
    assert b.status()["connected"] is True and _call(c, "account_info") is not None
    c.close()  # the connection went away without shutdown()
    assert b.status()["connected"] is False
    assert b._module.version() is None  # the simulated terminal itself is shut down


def test_a_failed_initialize_leaves_the_others_connected() -> None:
    b = _backend()
    a, c = b.open_session(), b.open_session()
    assert _call(a, "initialize", **CREDS)
    assert _call(c, "initialize", login=1001, password="bad", server="Sim") is False
    assert _call(c, "last_error") == (-6, "Terminal: Authorization failed")
    assert _call(c, "account_info") is None
    assert _call(a, "account_info").login == 1001
    assert b.status()["connected"] is True
