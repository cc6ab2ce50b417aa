"""The log schema (mt5bridge.jsonlog), its rotation, the audit trail's file, MetaTrader 5's
journal follower and the exporter: real files in a temporary directory, hostile lines in them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from mt5bridge import audit, jsonlog, logexport
from mt5bridge.journal import OFFSETS, JournalFollower, journal_dirs
from mt5bridge.redact import Redactor

PASSWORD = "Hunter2-secret!"
LOGIN = 51234567
REDACT = Redactor([PASSWORD], [LOGIN])


def test_a_line_has_the_five_keys_in_order_and_parses_back() -> None:
    text = jsonlog.line("bridge", "INFO", "connect", {"peer": "127.0.0.1:5"}, redact=REDACT)
    record = jsonlog.parse(text)
    assert record is not None and tuple(record) == jsonlog.KEYS
    assert record["time"].endswith("Z") and len(record["time"]) == len("2026-12-02T03:04:05.678Z")
    assert "\n" not in text


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not json",
        "[]",
        '{"time":"t","component":"c","level":"INFO","event":"e"}',
        '{"time":"t","component":"c","level":"LOUD","event":"e","fields":{}}',
        '{"time":"t","component":"c","level":"INFO","event":"e","fields":[]}',
        '{"component":"c","time":"t","level":"INFO","event":"e","fields":{}}',
    ],
)
def test_parse_refuses_what_is_not_a_schema_line(bad: str) -> None:
    assert jsonlog.parse(bad) is None


def test_fields_are_redacted_escaped_and_capped() -> None:
    hostile = {
        "message": f"login {LOGIN} with {PASSWORD}\nFAKE {{}} line",
        "password": "something-else",  # a key that names a secret: masked whatever it holds
        "nested": {"api_key": "k-123", "list": [PASSWORD, 1, None, True]},
        "blob": "x" * 100_000,
        "object": object(),
    }
    text = jsonlog.line("bot", "WARNING", "odd", hostile, redact=REDACT)
    assert len(text.encode()) <= jsonlog.MAX_LINE
    for leak in (PASSWORD, str(LOGIN), "something-else", "k-123"):
        assert leak not in text
    record = jsonlog.parse(text)
    assert record is not None
    fields = record["fields"]
    assert fields["password"] == "***" and fields["nested"]["api_key"] == "***"
    assert "\n" not in fields["message"] and "*****567" in fields["message"]
    assert fields["nested"]["list"] == ["***", 1, None, True]
    assert fields["object"] == "<object>"


def test_a_record_too_long_is_cut_and_says_so() -> None:
    many = {f"k{i}": "y" * 3000 for i in range(40)}
    record = jsonlog.parse(jsonlog.line("bot", "INFO", "big", many, redact=REDACT))
    assert record is not None and record["fields"]["cut"] is True


def test_file_handler_rotates_by_size_with_a_cap(tmp_path: Path) -> None:
    logger = logging.getLogger("test.jsonlog.rotate")
    logger.propagate = False
    handler = jsonlog.file_handler(tmp_path / "x.jsonl", "bot", REDACT, max_bytes=2000, backups=2)
    logger.addHandler(handler)
    try:
        for i in range(200):
            logger.warning("line %d with %s", i, PASSWORD, extra={"event": "tick"})
    finally:
        logger.removeHandler(handler)
        handler.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["x.jsonl", "x.jsonl.1", "x.jsonl.2"]
    total = 0
    for path in tmp_path.iterdir():
        total += path.stat().st_size
        for line in path.read_text().splitlines():
            record = jsonlog.parse(line)
            assert record is not None and record["event"] == "tick"
            assert PASSWORD not in line
    assert total <= 3 * 2000 + jsonlog.MAX_LINE
    last = jsonlog.parse((tmp_path / "x.jsonl").read_text().splitlines()[-1])
    assert last is not None and "line 199" in last["fields"]["message"]


def test_a_traceback_stays_inside_its_record(tmp_path: Path) -> None:
    logger = logging.getLogger("test.jsonlog.exc")
    logger.propagate = False
    handler = jsonlog.file_handler(tmp_path / "e.jsonl", "bridge", REDACT)
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError(f"password={PASSWORD}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        handler.close()
    [line] = (tmp_path / "e.jsonl").read_text().splitlines()
    record = jsonlog.parse(line)
    assert record is not None and "RuntimeError" in record["fields"]["message"]
    assert PASSWORD not in line


# --- the audit trail's file ------------------------------------------------------------------


def test_audit_appends_masks_and_rotates(tmp_path: Path) -> None:
    trail = audit.AuditLog(tmp_path / "audit.jsonl", REDACT, max_bytes=1500, backups=2)
    try:
        for i in range(30):
            trail.record("login", peer=f"10.0.0.1:{i}", outcome="failed", account=LOGIN,
                         reason=f"password {PASSWORD}")  # fmt: skip
    finally:
        trail.close()
    assert (tmp_path / "audit.jsonl").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "audit.jsonl",
        "audit.jsonl.1",
        "audit.jsonl.2",
    ]
    lines = [
        line
        for name in ("audit.jsonl.2", "audit.jsonl.1", "audit.jsonl")
        for line in (tmp_path / name).read_text().splitlines()
    ]
    peers = []
    for line in lines:
        record = jsonlog.parse(line)
        assert record is not None and record["component"] == "audit"
        assert record["fields"]["account"] == "*****567"
        assert PASSWORD not in line and str(LOGIN) not in line
        peers.append(int(record["fields"]["peer"].rsplit(":", 1)[1]))
    assert peers == sorted(peers) and peers[-1] == 29  # in order, the newest kept


def test_audit_survives_its_file_going_away(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unwritable trail costs records, never the caller: record() does not raise, and
    says so once."""
    path = tmp_path / "audit.jsonl"
    trail = audit.AuditLog(path, REDACT)
    trail.close()
    path.unlink()
    path.mkdir()  # a real open() failure, whoever runs the test (root included)
    with caplog.at_level(logging.WARNING, logger="mt5bridge.audit"):
        trail.record("connect", peer="p", outcome="ok")
        trail.record("connect", peer="p", outcome="ok")
    assert [r.getMessage() for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(caplog.records) == 1


def test_login_records_come_only_from_login_calls_with_their_account(tmp_path: Path) -> None:
    trail = audit.AuditLog(tmp_path / "a.jsonl", REDACT)
    audit.install(trail)
    try:
        service = object.__new__(type("S", (), {}))
        audit.bind(service, "127.0.0.1:9", "CN=bot")
        audit.call(service, "symbol_info", ("EURUSD",), {}, None, None)
        audit.call(service, "initialize", (), {"login": 12345678, "password": "p"}, True, None)
        audit.call(service, "login", (999,), {}, False, (-6, "Authorization failed"))
        audit.call(service, "login", ("not-a-number",), {}, False, None)
    finally:
        audit.install(None)
        trail.close()
    fields = [
        json.loads(line)["fields"] for line in (tmp_path / "a.jsonl").read_text().splitlines()
    ]
    assert [(f["account"], f["outcome"]) for f in fields] == [
        ("*****678", "ok"),
        ("999", "failed"),
        (None, "failed"),
    ]
    assert fields[1]["reason"] == "login: (-6) Authorization failed"
    assert {f["subject"] for f in fields} == {"CN=bot"}


# --- MetaTrader 5's journal ------------------------------------------------------------------


def _journal(path: Path, *entries: str, bom: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(e + "\r\n" for e in entries).encode("utf-16-le")
    with path.open("ab") as f:
        f.write((b"\xff\xfe" if bom else b"") + data)


def test_journal_dirs_of_a_windows_path() -> None:
    dirs = journal_dirs("C:\\Program Files\\MetaTrader 5\\terminal64.exe")
    assert [str(d).replace("\\", "/").split("MetaTrader 5")[1] for d in dirs] == [
        "/logs",
        "/MQL5/Logs",
    ]


def test_journal_follower_reads_new_entries_once_and_redacts(tmp_path: Path) -> None:
    home = tmp_path / "MetaTrader 5"
    out = tmp_path / "out"
    out.mkdir()
    logger = logging.getLogger("test.journal")
    logger.propagate = False
    logger.setLevel(logging.INFO)  # as the server sets its journal logger
    handler = jsonlog.file_handler(out / "mt5.jsonl", "mt5", REDACT)
    logger.addHandler(handler)
    dirs = [home / "logs", home / "MQL5" / "Logs"]
    try:
        follower = JournalFollower(dirs, out, logger)
        assert follower.poll() == 0  # no directories yet: nothing, no error
        _journal(home / "logs" / "20261202.log",
                 f"KL\t0\t12:00:00.000\tNetwork\t'{LOGIN}': authorization failed",
                 "AB\t0\t12:00:01.000\tTerminal\tstarted")  # fmt: skip
        assert follower.poll() == 2
        assert follower.poll() == 0
        # Half an entry (no line end yet) waits for its end.
        partial = "QQ\t0\t12:00:02.000\tExperts\texpert loaded".encode("utf-16-le")
        with (home / "logs" / "20261202.log").open("ab") as f:
            f.write(partial)
        assert follower.poll() == 0
        with (home / "logs" / "20261202.log").open("ab") as f:
            f.write("\r\n".encode("utf-16-le"))
        _journal(home / "MQL5" / "Logs" / "20261202.log", f"password {PASSWORD}")
        assert follower.poll() == 2
        # A restarted follower goes on from the saved offsets.
        assert (out / OFFSETS).is_file()
        assert JournalFollower(dirs, out, logger).poll() == 0
    finally:
        logger.removeHandler(handler)
        handler.close()
    lines = (out / "mt5.jsonl").read_text().splitlines()
    records = [jsonlog.parse(line) for line in lines]
    assert all(r is not None and r["event"] == "journal" for r in records)
    messages = [r["fields"]["message"] for r in records if r is not None]
    assert messages == [
        "'*****567': authorization failed",
        "started",
        "expert loaded",
        "password ***",
    ]
    assert records[0] is not None and records[0]["fields"]["source"] == "Network"


# --- the exporter ----------------------------------------------------------------------------


def test_exporter_redacts_every_line_and_wraps_what_is_not_a_record(tmp_path: Path) -> None:
    src = tmp_path / "logs"
    src.mkdir()
    good = jsonlog.line("bot", "INFO", "tick", {"message": "fine"}, redact=lambda s: s)
    leaky = json.dumps({"time": "2026-12-02T00:00:00.000Z", "component": "bot", "level": "INFO",
                        "event": "oops", "fields": {"message": f"pw {PASSWORD} acct {LOGIN}",
                                                    "token": "abc"}})  # fmt: skip
    (src / "mt5bot.jsonl").write_text(
        "\n".join([good, leaky, f"raw text {PASSWORD}", "", "{broken json " + PASSWORD]) + "\n"
    )
    (src / "mt5bot.jsonl.1").write_text(good + "\n")
    (src / "notes.txt").write_text(PASSWORD)  # not a log: not exported
    export = tmp_path / "export"
    exporter = logexport.Exporter([("bot", src)], export, REDACT)
    assert exporter.pass_once() == 2
    assert exporter.pass_once() == 0  # unchanged sources are not exported again
    files = sorted(p.name for p in (export / "bot").iterdir())
    assert files == ["mt5bot.jsonl", "mt5bot.jsonl.1"]
    lines = (export / "bot" / "mt5bot.jsonl").read_text().splitlines()
    assert len(lines) == 4
    records = [jsonlog.parse(line) for line in lines]
    assert all(r is not None for r in records)
    text = "\n".join(lines)
    for leak in (PASSWORD, str(LOGIN), "abc"):
        assert leak not in text
    assert [r["event"] for r in records if r] == ["tick", "oops", "unparsed", "unparsed"]
    # A source that goes away takes its copy with it.
    (src / "mt5bot.jsonl.1").unlink()
    exporter.pass_once()
    assert sorted(p.name for p in (export / "bot").iterdir()) == ["mt5bot.jsonl"]


def test_exporter_reads_only_the_end_of_an_oversized_source(tmp_path: Path) -> None:
    src = tmp_path / "logs"
    src.mkdir()
    line = jsonlog.line("bot", "INFO", "tick", {"n": 1}, redact=lambda s: s)
    (src / "big.jsonl").write_text((line + "\n") * 2000)
    exporter = logexport.Exporter([("bot", src)], tmp_path / "export", REDACT, max_file=10_000)
    exporter.pass_once()
    out = (tmp_path / "export" / "bot" / "big.jsonl").read_text().splitlines()
    assert 0 < len(out) <= 10_000 // len(line) + 1
    assert all(jsonlog.parse(o) is not None for o in out)


def test_exporter_takes_its_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    (tmp_path / "login").write_text(str(LOGIN))
    redact = logexport.redactor_from_env(
        {"MT5_PASSWORD_FILE": str(tmp_path / "pw"), "MT5_LOGIN_FILE": str(tmp_path / "login")}
    )
    assert redact(f"{PASSWORD} {LOGIN}") == "*** *****567"


def test_exporter_cli_refuses_a_bad_source_name(tmp_path: Path) -> None:
    assert logexport.main(["--from", "../x=/tmp", "--to", str(tmp_path), "--once"]) == 2
    assert logexport.main(["--from", "nodir", "--to", str(tmp_path), "--once"]) == 2


def test_exporter_appends_what_grew_and_waits_for_a_line_end(tmp_path: Path) -> None:
    src = tmp_path / "logs"
    src.mkdir()
    path = src / "b.jsonl"

    def rec(n: int) -> str:
        return jsonlog.line("bot", "INFO", "tick", {"n": n}, redact=lambda s: s)

    path.write_text(rec(1) + "\n" + rec(2)[:20])  # the second line is still being written
    exporter = logexport.Exporter([("bot", src)], tmp_path / "export", REDACT)
    copy = tmp_path / "export" / "bot" / "b.jsonl"
    exporter.pass_once()
    assert [jsonlog.parse(t)["fields"]["n"] for t in copy.read_text().splitlines()] == [1]  # type: ignore[index]
    inode = copy.stat().st_ino
    with path.open("a") as f:
        f.write(rec(2)[20:] + "\n" + rec(3) + f" {PASSWORD}\n")  # the third one is not JSON
    exporter.pass_once()
    assert copy.stat().st_ino == inode  # appended, not rewritten
    events = [jsonlog.parse(t) for t in copy.read_text().splitlines()]
    assert [e["event"] for e in events if e] == ["tick", "tick", "unparsed"]
    assert PASSWORD not in copy.read_text()
    # Rotated away: the new file under the old name is exported whole, the rotated one too.
    path.rename(src / "b.jsonl.1")
    path.write_text(rec(4) + "\n")
    exporter.pass_once()
    assert [jsonlog.parse(t)["fields"]["n"] for t in copy.read_text().splitlines()] == [4]  # type: ignore[index]
    assert len((tmp_path / "export" / "bot" / "b.jsonl.1").read_text().splitlines()) == 3
