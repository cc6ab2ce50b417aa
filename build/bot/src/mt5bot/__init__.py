"""mt5bot: the runtime a trading bot needs beside the terminal, and a reference bot."""

__version__ = "0.1.0"
