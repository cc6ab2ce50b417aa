"""mt5forge: pinned inputs in, verified and signed MetaTrader 5 container images out."""

__version__ = "0.1.0"
