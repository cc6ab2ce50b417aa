"""Logs and the audit trail, against real processes and real containers.

- A bridge server process with mutual TLS: the audit trail records a login (the account masked
  to its last 3 digits, the client certificate's subject) and a client refused by TLS.
- The secure compose file brought up with docker-compose, with a password made for this run:
  the bot's user (the compose file's `user:`) cannot rewrite, truncate, rename or delete the
  audit trail, even with the terminal's log volume mounted read-write; and hostile lines
  holding the password and the full account number (written into the bot's log volume by the
  bot's own user, and into a MetaTrader 5 journal file in the terminal's Wine prefix) reach the
  raw logs, yet no line of ./export shows either.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mt5bridge.remote as mt5
import pytest
import yaml
from mt5bridge import jsonlog
from mt5bridge.errors import HandshakeError
from mt5bridge.handshake import client_handshake
from mt5bridge.tls import TlsFiles
from waiting import wait_for

from mt5forge.certs import issue, make_ca, write_bundle, write_cert, write_key
from mt5forge.tools.host import ensure_programs
from mt5forge.tools.run import call

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1].parent
SIM_LOGIN = 51234567
SIM_SERVER = "Sim-Demo"


def records(path: Path) -> list[dict[str, Any]]:
    """Every line of `path` as a schema record (a line that is not one fails the test)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = jsonlog.parse(line)
        assert record is not None, f"not a schema line in {path.name}: {line!r}"
        out.append(record)
    return out


# --- the audit trail of a bridge process -----------------------------------------------------


@pytest.fixture
def tls_bridge(tmp_path: Path) -> Iterator[tuple[int, Path, dict[str, TlsFiles], str, int]]:
    """A simulator bridge with mutual TLS and MT5_LOG_DIR, as its own process: its port, log
    directory, certificates, account password and process id."""
    good = write_bundle(tmp_path / "deploy", server_names=("127.0.0.1",))
    intruder = issue(make_ca("another CA"), "intruder", client=True)
    write_cert(tmp_path / "intruder.crt", intruder.cert)
    write_key(tmp_path / "intruder.key", intruder.key)
    pki = {
        "client": TlsFiles(ca=good.ca_cert, cert=good.client_cert, key=good.client_key),
        "intruder": TlsFiles(
            ca=good.ca_cert, cert=tmp_path / "intruder.crt", key=tmp_path / "intruder.key"
        ),
    }
    password = f"pw-{secrets.token_urlsafe(12)}"
    logs = tmp_path / "logs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5_")}
    env.update(MT5_LOGIN=str(SIM_LOGIN), MT5_PASSWORD=password, MT5_SERVER=SIM_SERVER,
               MT5_LOG_DIR=str(logs))  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "mt5bridge.server", "--backend", "simulator", "--port", "0",
         "--host", "127.0.0.1", "--tls-ca", str(good.ca_cert),
         "--tls-cert", str(good.server_cert), "--tls-key", str(good.server_key)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("mt5bridge listening on "), line
        yield int(line.split()[3].rsplit(":", 1)[1]), logs, pki, password, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_audit_records_a_login_and_a_refused_tls_client(
    tls_bridge: tuple[int, Path, dict[str, TlsFiles], str, int],
) -> None:
    port, logs, pki, password, pid = tls_bridge
    bridge = mt5.Bridge("127.0.0.1", port, tls=pki["client"])
    try:
        assert bridge.initialize(login=SIM_LOGIN, password=password, server=SIM_SERVER)
        assert not bridge.login(SIM_LOGIN, password="wrong-" + password, server=SIM_SERVER)
    finally:
        bridge.close()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(pki["client"].ca))
    ctx.load_cert_chain(str(pki["intruder"].cert), str(pki["intruder"].key))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        pytest.raises((ssl.SSLError, OSError, HandshakeError)),
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        client_handshake(sock)

    audit = logs / "audit.jsonl"

    def both() -> list[dict[str, Any]]:
        got = records(audit)
        return got if {"refuse", "disconnect"} <= {r["event"] for r in got} else []

    trail = wait_for("the refusal and the disconnect in the audit trail", both, 10)
    assert {r["component"] for r in trail} == {"audit"}
    by_event: dict[str, list[dict[str, Any]]] = {}
    for r in trail:
        by_event.setdefault(r["event"], []).append(r["fields"])
    [connect] = by_event["connect"]
    assert connect["outcome"] == "ok" and connect["peer"].startswith("127.0.0.1:")
    assert connect["subject"] and "CN=" in connect["subject"]
    ok, failed = by_event["login"]
    assert (ok["outcome"], ok["account"], ok["subject"]) == ("ok", "*****567", connect["subject"])
    assert ok["peer"] == connect["peer"]
    assert (failed["outcome"], failed["account"]) == ("failed", "*****567")
    assert failed["reason"].startswith("login: (")  # the terminal's own answer
    [refused] = by_event["refuse"]
    assert refused["outcome"] == "refused" and refused["subject"] is None
    assert "TLS handshake failed" in refused["reason"]
    assert refused["peer"] != connect["peer"]
    assert by_event["disconnect"][0]["peer"] == connect["peer"]
    # The bridge's own log is in the same schema, and neither file shows the secrets.
    bridge_log = records(logs / "bridge.jsonl")
    assert {r["component"] for r in bridge_log} == {"bridge"}
    for path in logs.iterdir():
        text = path.read_text(encoding="utf-8")
        assert password not in text and str(SIM_LOGIN) not in text, path.name
    # Append-only: the file was opened once and only grew (no record rewritten).
    assert audit.stat().st_mode & 0o777 == 0o640
    # And the bridge holds it open for appending, write-only: its one descriptor on the file,
    # as the kernel reports it.
    [flags] = open_flags(pid, audit)
    assert flags & os.O_APPEND, f"audit.jsonl open without O_APPEND: flags {flags:#o}"
    assert flags & os.O_ACCMODE == os.O_WRONLY, f"audit.jsonl open readable: flags {flags:#o}"


def open_flags(pid: int, path: Path) -> list[int]:
    """The open flags of each of process `pid`'s descriptors on `path` (/proc/PID/fdinfo)."""
    target = path.resolve()
    flags = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if Path(os.readlink(fd)) != target:
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text(encoding="ascii")
        except FileNotFoundError:  # closed meanwhile
            continue
        (line,) = (x for x in info.splitlines() if x.startswith("flags:"))
        flags.append(int(line.split()[1], 8))
    return flags


def test_audit_records_a_peer_that_leaves_in_the_handshake_and_a_probe(tmp_path: Path) -> None:
    """Plain loopback: a peer that connects and closes (a port scan) and a status probe (the
    health check) each leave their record; nothing else is needed to be recorded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5_")}
    env.update(MT5_LOGIN=str(SIM_LOGIN), MT5_PASSWORD="pw-probe", MT5_SERVER=SIM_SERVER,
               MT5_LOG_DIR=str(tmp_path))  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "mt5bridge.server", "--backend", "simulator", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[3].rsplit(":", 1)[1])
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        # The image's own health check, which sends the status probe.
        subprocess.run(
            [sys.executable, str(REPO / "build" / "common" / "mt5-healthcheck")],
            env={**env, "MT5_HEALTH_HOST": "127.0.0.1", "MT5_BRIDGE_PORT": str(port),
                 "MT5_STATE_DIR": str(tmp_path / "state")},
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip

        def both() -> list[dict[str, Any]]:
            got = records(tmp_path / "audit.jsonl")
            return got if {"refuse", "probe"} <= {r["event"] for r in got} else []

        trail = wait_for("the scan and the probe in the audit trail", both, 10)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    [scan] = [r["fields"] for r in trail if r["event"] == "refuse"]
    assert "closed by the peer during the handshake" in scan["reason"]
    assert scan["subject"] is None and scan["outcome"] == "refused"


# --- the secure compose pair -----------------------------------------------------------------

COMPOSE = REPO / "compose" / "docker-compose.secure.yml"
TRY_TO_MODIFY = r"""
import json, os, sys
path = sys.argv[1]
results = {}
def attempt(name, fn):
    try:
        fn()
        results[name] = "done"
    except OSError as e:
        results[name] = type(e).__name__
attempt("append", lambda: open(path, "a").write("forged\n"))
attempt("rewrite", lambda: open(path, "r+").write("{}"))
attempt("truncate", lambda: os.truncate(path, 0))
attempt("unlink", lambda: os.unlink(path))
attempt("rename", lambda: os.rename(path, path + ".gone"))
attempt("chmod", lambda: os.chmod(path, 0o666))
attempt("create", lambda: open(os.path.join(os.path.dirname(path), "x"), "w").write("x"))
st = os.stat(path)
print(json.dumps({"results": results, "uid": os.getuid(), "owner": st.st_uid,
                  "mode": oct(st.st_mode & 0o777)}))
"""
JOURNAL = r"""
import os, sys
home = "/config/wine/drive_c/Program Files/MetaTrader 5/logs"
os.makedirs(home, exist_ok=True)
text = f"'{sys.argv[1]}': authorization on mt5forge-Demo failed, password {sys.argv[2]}"
entry = "\t".join(["KL", "0", "12:00:00.000", "Network", text])
with open(os.path.join(home, "20261202.log"), "wb") as f:
    f.write(b"\xff\xfe" + (entry + "\r\n").encode("utf-16-le"))
"""
HOSTILE = r"""
import json, sys
pw, login = sys.argv[1], sys.argv[2]
with open("/logs/mt5bot.jsonl", "a") as f:
    f.write(json.dumps({"time": "2026-12-02T00:00:00.000Z", "component": "bot", "level": "INFO",
                        "event": "forged", "fields": {"message": f"raw {pw} for {login}",
                                                      "password": pw}}) + "\n")
    f.write(f"not json at all: {pw} / {login}\n")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def secure_pair(built: Any, docker_client: Any) -> Iterator[dict[str, Any]]:
    """`docker-compose -f compose/docker-compose.secure.yml up -d` with this run's secrets."""
    ensure_programs(["docker-compose"])
    project = f"mt5forgelogs{os.getpid()}"
    password = f"Run-{secrets.token_urlsafe(15)}"
    login = str(secrets.randbelow(9 * 10**7) + 10**7)
    with tempfile.TemporaryDirectory(prefix="logs-audit-") as tmp:
        root = Path(tmp)
        secret_dir = root / "secrets"
        export = root / "export"
        secret_dir.mkdir(mode=0o755)
        export.mkdir()
        export.chmod(0o777)  # the exporter's UID is not ours
        for name, value in {"mt5_login": login, "mt5_password": password,
                            "mt5_server": "mt5forge-Demo",
                            "vnc_password": secrets.token_urlsafe(9)}.items():  # fmt: skip
            (secret_dir / name).write_text(value, encoding="utf-8")
            (secret_dir / name).chmod(0o444)
        env = {
            "MT5_SECRETS_DIR": str(secret_dir),
            "MT5_EXPORT_DIR": str(export),
            "MT5FORGE_PREFIX": built.settings.images.prefix,
            "MT5_GUI_PORT": str(free_port()),
        }
        compose = ["docker-compose", "-p", project, "-f", str(COMPOSE)]
        try:
            call(*compose, "up", "-d", env=env, timeout=300)
            yield {
                "project": project, "export": export, "password": password, "login": login,
                "terminal": docker_client.containers.get(f"{project}_terminal_1"),
                "bot": docker_client.containers.get(f"{project}_bot_1"),
            }  # fmt: skip
        finally:
            call(*compose, "down", "-v", "--timeout", "30", env=env, timeout=300, check=False)
            # The exporter wrote as its own UID: make the files removable by us.
            subprocess.run(["chmod", "-R", "a+rwX", str(export)], check=False)


def _exported(export: Path) -> dict[str, str]:
    return {
        str(p.relative_to(export)): p.read_text(encoding="utf-8")
        for p in export.rglob("*")
        if p.is_file()
    }


def _volume_text(client: Any, image: str, volume: str) -> str:
    out = client.containers.run(
        image, ["python3", "-c", "import pathlib,sys\nfor p in sorted(pathlib.Path('/v')"
                ".iterdir()):\n    sys.stdout.write(p.read_text(errors='replace'))"],
        volumes={volume: {"bind": "/v", "mode": "ro"}}, remove=True, network_mode="none",
    )  # fmt: skip
    return str(out.decode(errors="replace"))


@pytest.mark.slow
def test_secure_pair_audit_is_not_the_bots_and_export_shows_no_secret(
    secure_pair: dict[str, Any], docker_client: Any
) -> None:
    pair = secure_pair
    export: Path = pair["export"]
    password, login = pair["password"], pair["login"]
    masked = "*" * (len(login) - 3) + login[-3:]

    # The bot tried to log in through the bridge (the fixture terminal refuses): the trail
    # has it, exported, with the account masked.
    def bot_login() -> list[dict[str, Any]]:
        path = export / "terminal" / "audit.jsonl"
        if not path.is_file():
            return []
        return [r for r in records(path) if r["event"] == "login"]

    [first, *_] = wait_for("the bot's login in the exported audit trail", bot_login, 120)
    assert first["fields"]["account"] == masked
    assert first["fields"]["outcome"] in ("ok", "failed")
    assert first["fields"]["peer"].startswith("127.0.0.1:")

    # The bot's user may not modify the trail, even given the volume read-write.
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    user = re.sub(r"\$\{\w+:-(\w+)\}", r"\1", compose["services"]["bot"]["user"])
    bot_image = pair["bot"].image.id
    out = docker_client.containers.run(
        bot_image, ["python3", "-c", TRY_TO_MODIFY, "/logs/audit.jsonl"], user=user,
        volumes={f"{pair['project']}_terminal-logs": {"bind": "/logs", "mode": "rw"}},
        remove=True, network_mode="none", read_only=True, cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
    )  # fmt: skip
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["uid"] != seen["owner"], seen
    assert set(seen["results"].values()) == {"PermissionError"}, seen
    # ... and the bot itself does not even have the terminal's logs.
    code, _ = pair["bot"].exec_run(["python3", "-c", "open('/logs/audit.jsonl')"])
    assert code != 0

    # Hostile lines: the bot's user writes the secrets into its own log, and a MetaTrader 5
    # journal names them (a real journal names the account in full).
    code, out = pair["bot"].exec_run(["python3", "-c", HOSTILE, password, login])
    assert code == 0, out
    code, out = pair["terminal"].exec_run(["python3", "-c", JOURNAL, login, password])
    assert code == 0, out

    def everything_exported() -> dict[str, str] | None:
        files = _exported(export)
        bot = files.get("bot/mt5bot.jsonl", "")
        mt5 = files.get("terminal/mt5.jsonl", "")
        if "forged" in bot and "unparsed" in bot and "authorization on" in mt5:
            return files
        return None

    files = wait_for("the hostile lines in ./export", everything_exported, 90)
    # They did reach the raw logs as written: the export is what redacted them.
    raw_bot = _volume_text(docker_client, bot_image, f"{pair['project']}_bot-logs")
    assert password in raw_bot and login in raw_bot
    for name in ("supervisor.jsonl", "bridge.jsonl", "audit.jsonl", "mt5.jsonl"):
        assert name in {Path(n).name for n in files}, sorted(files)
    for name, text in files.items():
        assert password not in text, name
        assert login not in text, name
        for line in text.splitlines():
            assert jsonlog.parse(line) is not None, (name, line)
    assert masked in files["terminal/mt5.jsonl"]
    supervisor = records(export / "terminal" / "supervisor.jsonl")
    assert {"start"} <= {r["event"] for r in supervisor}
    assert {r["component"] for r in supervisor} == {"supervisor"}
