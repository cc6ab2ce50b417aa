from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from mt5bot import logs, whereami
from mt5bot.backoff import Backoff
from mt5bot.health import HealthState, HealthTracker, judge
from mt5bot.health import main as health_main
from mt5bot.settings import SettingsError, load

PASSWORD = "Zq9!secret-pw"
GOOD = {"MT5_LOGIN": "51234567", "MT5_PASSWORD": PASSWORD, "MT5_SERVER": "Sim-Demo"}


def test_missing_and_malformed_settings_are_all_named() -> None:
    env = {"MT5_LOGIN": "12ab", "MT5BOT_INTERVAL": "soon", "MT5BOT_LOG_LEVEL": "LOUD"}
    with pytest.raises(SettingsError) as err:
        load(env)
    text = str(err.value)
    for name in (
        "MT5_PASSWORD is missing",
        "MT5_SERVER is missing",
        "MT5_LOGIN must be",
        "MT5BOT_INTERVAL",
        "MT5BOT_LOG_LEVEL",
    ):
        assert name in text
    assert "12ab" not in text


def test_file_variants_read_docker_secrets(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    settings = load({**GOOD, "MT5_PASSWORD": "", "MT5_PASSWORD_FILE": str(secret)} | {})
    assert settings.password == PASSWORD
    with pytest.raises(SettingsError, match="both set"):
        load({**GOOD, "MT5_PASSWORD_FILE": str(secret)})
    env = {k: v for k, v in GOOD.items() if k != "MT5_PASSWORD"}
    with pytest.raises(SettingsError, match="cannot be read"):
        load({**env, "MT5_PASSWORD_FILE": str(tmp_path / "absent")})
    assert PASSWORD not in repr(load(GOOD))


@pytest.mark.parametrize("password", [PASSWORD, "it's\\a\"pw"])
def test_secret_from_environment_never_reaches_a_log_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], password: str
) -> None:
    settings = load({**GOOD, "MT5_PASSWORD": password, "MT5BOT_LOG_DIR": str(tmp_path / "logs")})
    redactor = logs.Redactor(secrets=settings.secrets, accounts=(settings.login,))
    # Small files, so the lines also land in rotated files.
    logs.setup(redactor, level="DEBUG", log_dir=settings.log_dir, max_bytes=1000, backups=20)
    other = logging.getLogger("some.library")
    try:
        for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, 50):
            other.log(level, "login %s with %s", settings.login, settings.password)
            other.log(level, f"inline {settings.password} token=abc123 Bearer xyz.987")
            other.log(level, "as repr %r, in a dict %s", settings.password, [settings.password])
        try:
            raise RuntimeError(f"auth failed for password={settings.password}")
        except RuntimeError:
            other.exception("while logging in")
        other.info("done", stack_info=True)
    finally:
        logging.getLogger().handlers.clear()
    out, err = capfd.readouterr()
    files = sorted((tmp_path / "logs").glob("mt5bot.jsonl*"))
    assert len(files) > 2  # rotated
    written = "".join(f.read_text() for f in files)
    for text in (out + err, written):
        assert text.count("login *****567 with ***") == 5
        assert text.count("as repr '***', in a dict ['***']") == 5
        for leak in (password, repr(password)[1:-1], "51234567", "abc123", "xyz.987"):
            assert leak not in text
        assert "CRITICAL" in text and "DEBUG" in text


def test_logs_rotate(tmp_path: Path) -> None:
    logs.setup(logs.Redactor(), level="INFO", log_dir=tmp_path, max_bytes=500, backups=2)
    try:
        for i in range(100):
            logging.getLogger("x").info("line %d %s", i, "y" * 40)
    finally:
        logging.getLogger().handlers.clear()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mt5bot.jsonl",
        "mt5bot.jsonl.1",
        "mt5bot.jsonl.2",
    ]


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    ceilings = Backoff(base=1, cap=8).delays(rand=lambda: 1.0)
    assert [next(ceilings) for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    zero = Backoff().delays(rand=lambda: 0.0)
    assert next(zero) == 0.0


def test_health_judgement_and_command(tmp_path: Path) -> None:
    tracker = HealthTracker(tmp_path / "health.json", window=4)
    assert health_main(["--state-dir", str(tmp_path)]) == 1  # no state yet
    tracker.connected = True
    tracker.record(True)
    tracker.write()
    assert health_main(["--state-dir", str(tmp_path)]) == 0
    for _ in range(3):
        tracker.record(False)
    tracker.write()
    assert health_main(["--state-dir", str(tmp_path)]) == 1
    stale = HealthState(
        connected=True,
        last_ok=time.time() - 999,
        calls=1,
        errors=0,
        error_rate=0.0,
        updated=time.time(),
    )
    assert judge(stale, now=time.time(), max_age=60, max_error_rate=0.5)[0].startswith("last")


def test_whereami_has_no_secrets(tmp_path: Path) -> None:
    settings = load({**GOOD, "MT5BOT_STATE_DIR": str(tmp_path)})
    text = whereami.write(settings).read_text()
    assert "account: *****567" in text and "server: Sim-Demo" in text
    assert PASSWORD not in text and "51234567" not in text


def test_help_explains_the_settings(capsys: pytest.CaptureFixture[str]) -> None:
    from mt5bot.bot import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("MT5_LOGIN", "MT5_PASSWORD", "MT5_SERVER", "_FILE", "MT5BOT_SYMBOL"):
        assert name in out


def test_bot_passes_the_tls_server_name_to_the_bridge(tmp_path: Path) -> None:
    from mt5bot.bot import make_bridge

    files = {}
    for part in ("CA", "CERT", "KEY"):
        files[part] = tmp_path / part
        files[part].write_text("x")
    env = {
        "MT5_LOGIN": "1234", "MT5_PASSWORD": "p", "MT5_SERVER": "s",
        "MT5_BRIDGE_HOST": "10.0.0.5", "MT5_BRIDGE_TLS_SERVER_NAME": "terminal",
        **{f"MT5_BRIDGE_TLS_{k}": str(v) for k, v in files.items()},
    }  # fmt: skip
    settings = load(env)
    assert settings.tls_server_name == "terminal"
    assert make_bridge(settings)._server_name == "terminal"
