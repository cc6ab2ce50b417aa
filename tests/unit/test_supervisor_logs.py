"""The terminal supervisor's JSON lines (build/terminal/entrypoint's `log`), run by real bash:
hostile text stays one valid record in mt5bridge.jsonlog's schema, and the file rotates by size
with its cap. The functions are taken from the entrypoint itself, not copied."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from mt5bridge import jsonlog

ENTRYPOINT = Path(__file__).resolve().parents[2] / "build" / "terminal" / "entrypoint"


def _functions() -> str:
    text = ENTRYPOINT.read_text(encoding="utf-8")
    start = text.index("LOG_DIR=${MT5_LOG_DIR:-}")
    end = text.index("number() {")
    return "set -euo pipefail\n" + text[start:end]


def _run(tmp_path: Path, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    lib = tmp_path / "lib.sh"
    lib.write_text(_functions(), encoding="utf-8")
    return subprocess.run(
        [bash, "-c", f"source {lib}\n{script}"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip


def test_hostile_text_stays_one_schema_record(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    hostile = 'got \'a"b\\c\' *\nFORGED {"level":"CRITICAL"}\t\x01\x7f é'
    result = _run(
        tmp_path,
        'log "event=start process=bridge pid=42 restarts=0"\n'
        'log "event=config-error MT5_RESTART_MAX must be a number, $HOSTILE"\n'
        'log "event=exit process=terminal code=3 uptime=5s"',
        MT5_LOG_DIR=str(logs),
        HOSTILE=hostile,
    )
    assert result.stderr.count("entrypoint: ") == 3  # the container log keeps its lines
    lines = (logs / "supervisor.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    records = [jsonlog.parse(line) for line in lines]
    assert all(r is not None and r["component"] == "supervisor" for r in records)
    start, error, exited = records
    assert start is not None and error is not None and exited is not None
    assert (start["event"], start["level"], start["fields"]["pid"]) == ("start", "INFO", "42")
    assert (error["event"], error["level"]) == ("config-error", "ERROR")
    assert 'a"b\\c' in error["fields"]["message"] and "FORGED" in error["fields"]["message"]
    assert "\x01" not in error["fields"]["message"] and "é" in error["fields"]["message"]
    assert (exited["event"], exited["level"], exited["fields"]["code"]) == ("exit", "WARNING", "3")


def test_rotates_by_size_and_keeps_the_cap(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    _run(
        tmp_path,
        'for i in $(seq 1 60); do log "event=restart process=bridge attempt=$i"; done',
        MT5_LOG_DIR=str(logs), MT5_LOG_MAX_BYTES="1000", MT5_LOG_BACKUPS="2",
    )  # fmt: skip
    names = sorted(p.name for p in logs.iterdir())
    assert names == ["supervisor.jsonl", "supervisor.jsonl.1", "supervisor.jsonl.2"]
    for path in logs.iterdir():
        assert path.stat().st_size < 1000 + 300  # one record past the size at most
    newest = (logs / "supervisor.jsonl").read_text().splitlines()[-1]
    record = jsonlog.parse(newest)
    assert record is not None and record["fields"]["attempt"] == "60"


def test_an_unwritable_log_dir_is_said_and_the_rest_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = _run(
        tmp_path, 'log "event=start process=xvfb pid=1"; echo "dir=[$LOG_DIR]"',
        MT5_LOG_DIR=str(blocker / "logs"),
    )  # fmt: skip
    assert "cannot write MT5_LOG_DIR" in result.stderr
    assert "dir=[]" in result.stdout and "event=start" in result.stderr
