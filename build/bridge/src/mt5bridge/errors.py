"""Errors raised by the bridge itself (never by the MetaTrader5 API, which reports through
return values and last_error())."""

from __future__ import annotations


class BridgeError(Exception):
    """Base class of every error the bridge raises."""


class HandshakeError(BridgeError):
    """The peer is not an mt5bridge peer, or speaks an incompatible protocol or RPyC major."""


class NotBridgePeerError(HandshakeError):
    """The peer did not open with the bridge hello (an RPyC classic client, for example)."""


class BridgeConnectionError(BridgeError):
    """The bridge could not be reached, or the connection was lost."""


class CodecError(BridgeError):
    """A value cannot cross the bridge as plain data."""


class NotExposedError(BridgeError):
    """The client asked for a name that is not part of the exposed MetaTrader5 API."""


class RemoteError(BridgeError):
    """The backend raised an exception while running an exposed call."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class ConfigError(BridgeError):
    """The server was asked to run in a way it refuses (for example: plain TCP off loopback)."""


class ProtocolError(BridgeError):
    """The peer broke RPyC's framing, or sent something the server refuses to act on."""
