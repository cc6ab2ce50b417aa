"""The RPyC service: one exposed method that runs an allow-listed MetaTrader5 call by name.

The server makes one BridgeService per connection, and each holds its own backend Session
(mt5bridge.backends): the client's initialize/shutdown/last_error are its own, and its session
ends with the connection.

Arguments and results cross only as plain data (see codec). No method evaluates or imports
anything the client sends; the RPyC configuration forbids attribute access beyond `exposed_`
names, pickling, and instantiating exceptions from the peer.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import rpyc  # type: ignore[import-untyped]
from rpyc.core import brine  # type: ignore[import-untyped]

from mt5bridge import audit, codec
from mt5bridge.api import EXPOSED_CALLS
from mt5bridge.backends import ModuleBackend
from mt5bridge.errors import CodecError

log = logging.getLogger(__name__)

# Shared by both sides: nothing beyond exposed_ names, no pickle, no remote exception classes.
# allow_safe_attrs is off too: RPyC's "safe" dunders (__new__, __format__, __eq__, ...) would
# hand the peer proxies to builtins in this process; nothing here needs them.
RPYC_CONFIG: Final[dict[str, Any]] = {
    "allow_public_attrs": False,
    "allow_all_attrs": False,
    "allow_safe_attrs": False,
    "allow_getattr": True,
    "allow_setattr": False,
    "allow_delattr": False,
    "allow_pickle": False,
    "allow_exposed_attrs": True,
    "import_custom_exceptions": False,
    "instantiate_custom_exceptions": False,
    "instantiate_oldstyle_exceptions": False,
    "include_local_traceback": False,
    "sync_request_timeout": 60,
}

# Reply envelope: ("ok", encoded_result) or ("err", kind, message).
OK: Final = "ok"
ERR: Final = "err"
# Built-in exception kinds the client re-raises as themselves; anything else is RemoteError.
PASSTHROUGH_ERRORS: Final = ("TypeError", "ValueError")


class BridgeService(rpyc.Service):  # type: ignore[misc]  # rpyc is untyped
    def __init__(self, backend: ModuleBackend) -> None:
        super().__init__()
        self._backend = backend
        self._session = backend.open_session()

    def on_disconnect(self, conn: Any) -> None:
        try:
            self._session.close()
        except Exception:  # the connection is gone either way; the server goes on
            log.exception("closing the session of a finished connection failed")

    def exposed_status(self) -> tuple[Any, ...]:
        """The bridge's own status (mt5bridge.status): not a MetaTrader5 call, and it takes no
        arguments, so nothing the client sends reaches it."""
        try:
            return (OK, codec.encode(self._backend.status()))
        except CodecError as exc:
            return (ERR, "Codec", str(exc))

    def exposed_call(self, name: Any, args: Any, kwargs: Any) -> tuple[Any, ...]:
        if type(name) is not str or name not in EXPOSED_CALLS:
            # repr() of anything but a str would be a proxy call back into the client, which
            # would then choose what this log line says (and could stall this thread).
            shown = repr(name) if type(name) is str else f"a {type(name).__name__} value"
            log.warning("refused a call to %s: not an exposed MetaTrader5 call", shown)
            return (ERR, "NotExposed", f"{shown} is not an exposed MetaTrader5 call")
        try:
            decoded_args = codec.decode(args)
            decoded_kwargs = codec.decode(kwargs)
            if type(decoded_args) is not tuple or type(decoded_kwargs) is not dict:
                raise CodecError("arguments must be a tuple and a dict")
        except CodecError as exc:
            return (ERR, "Codec", str(exc))
        try:
            result = self._session.call(name, decoded_args, decoded_kwargs)
        except (TypeError, ValueError) as exc:
            return (ERR, type(exc).__name__, str(exc))
        except Exception as exc:
            log.exception("backend %s failed in %s", self._backend.name, name)
            return (ERR, type(exc).__name__, str(exc))
        audit.call(self, name, decoded_args, decoded_kwargs, result, self._session.error)
        try:
            payload = (OK, codec.encode(result))
        except CodecError as exc:
            return (ERR, "Codec", str(exc))
        # Belt and braces: a non-dumpable reply would cross as a proxy into this process.
        if not brine.dumpable(payload):
            return (ERR, "Codec", f"result of {name} is not plain data")
        return payload
