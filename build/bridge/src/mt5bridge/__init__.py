"""mt5bridge: the MetaTrader5 API by name over RPyC, a terminal simulator, and a client.

`import mt5bridge.client as mt5` gives bot code the call shape of the `MetaTrader5` module.
"""

__version__ = "0.1.0"

# Bumped whenever the wire format (handshake, call envelope or value codec) changes.
PROTOCOL_VERSION = 1
