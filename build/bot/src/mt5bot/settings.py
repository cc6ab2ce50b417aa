"""Bot settings, only from environment variables and Docker secrets (`NAME_FILE`).

Everything is validated at start and every problem is reported at once, by name, so a container
that cannot work stops with one readable message instead of failing later on a trade.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mt5bridge.envsecrets import SettingError, read_setting


class SettingsError(ValueError):
    """One or more settings are missing or malformed; the message lists each."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    login: int
    password: str = field(repr=False)
    server: str
    symbol: str = "EURUSD"
    interval: float = 10.0
    bridge_host: str = "127.0.0.1"
    bridge_port: int = 18812
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_server_name: str | None = None  # the name in the bridge's certificate, when not the host
    log_level: str = "INFO"
    log_dir: Path | None = None
    state_dir: Path = Path("/config/_meta")
    demo_order: bool = False
    iterations: int = 0  # 0: run until stopped

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values the log redaction filter must never let through."""
        return (self.password,)


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def load(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    problems: list[str] = []

    def secret(name: str) -> str | None:
        try:
            value = read_setting(name, env)
        except SettingError as exc:
            problems.append(str(exc))
            return None
        if not value:
            problems.append(f"{name} is missing: set {name} or {name}_FILE (a Docker secret)")
            return None
        return value

    login_text = secret("MT5_LOGIN")
    password = secret("MT5_PASSWORD")
    server = secret("MT5_SERVER")
    login = 0
    if login_text is not None:
        if login_text.strip().isdigit():
            login = int(login_text.strip())
        else:
            # The value is not echoed: it may be a password pasted into the wrong variable.
            problems.append("MT5_LOGIN must be the account number (digits only)")

    def number(name: str, default: str, kind: type[int] | type[float], low: float) -> float:
        text = env.get(name, default)
        try:
            value = kind(text)
        except ValueError:
            problems.append(f"{name} must be a {kind.__name__}, got {text!r}")
            return float(default)
        if value < low:
            problems.append(f"{name} must be at least {low}, got {text!r}")
        return value

    interval = number("MT5BOT_INTERVAL", "10", float, 0.1)
    port = int(number("MT5_BRIDGE_PORT", "18812", int, 1))
    iterations = int(number("MT5BOT_ITERATIONS", "0", int, 0))
    level = env.get("MT5BOT_LOG_LEVEL", "INFO").upper()
    if level not in _LEVELS:
        problems.append(f"MT5BOT_LOG_LEVEL must be one of {', '.join(_LEVELS)}, got {level!r}")
    demo_text = env.get("MT5BOT_DEMO_ORDER", "").strip().lower()
    if demo_text not in _TRUE + _FALSE:
        problems.append(f"MT5BOT_DEMO_ORDER must be true or false, got {demo_text!r}")
    symbol = env.get("MT5BOT_SYMBOL", "EURUSD").strip()
    if not symbol:
        problems.append("MT5BOT_SYMBOL is empty")
    tls = [env.get(f"MT5_BRIDGE_TLS_{p}") for p in ("CA", "CERT", "KEY")]
    if any(tls) and not all(tls):
        problems.append("mutual TLS needs MT5_BRIDGE_TLS_CA, _CERT and _KEY together")
    for name, value in zip(("CA", "CERT", "KEY"), tls, strict=True):
        if value and not Path(value).is_file():
            problems.append(f"MT5_BRIDGE_TLS_{name} names {value!r}, which is not a file")
    if problems:
        raise SettingsError("invalid settings:\n  - " + "\n  - ".join(problems))
    assert password is not None and server is not None  # noqa: S101  # checked above
    log_dir = env.get("MT5BOT_LOG_DIR")
    return Settings(
        login=login,
        password=password,
        server=server,
        symbol=symbol,
        interval=interval,
        bridge_host=env.get("MT5_BRIDGE_HOST", "127.0.0.1"),
        bridge_port=port,
        tls_ca=Path(tls[0]) if tls[0] else None,
        tls_cert=Path(tls[1]) if tls[1] else None,
        tls_key=Path(tls[2]) if tls[2] else None,
        tls_server_name=env.get("MT5_BRIDGE_TLS_SERVER_NAME") or None,
        log_level=level,
        log_dir=Path(log_dir) if log_dir else None,
        state_dir=Path(env.get("MT5BOT_STATE_DIR", "/config/_meta")),
        demo_order=demo_text in _TRUE,
        iterations=iterations,
    )
