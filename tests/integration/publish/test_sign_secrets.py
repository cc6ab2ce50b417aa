"""The passphrases never leave the signing: push and sign the gated image with DEBUG logging on
(what ``invoke sign -v`` sets up, and python-gnupg's own logger), and neither the GnuPG
passphrase nor COSIGN_PASSWORD is in stdout, stderr (of this process and of every program it
ran), any log record, or any file the run wrote (run directory, registry storage)."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mt5forge import signing
from mt5forge.records import image_key, records_dir
from mt5forge.registry import Registry
from mt5forge.stages.push import PushRequest, push_all
from mt5forge.stages.sign import SigningKeys, from_push, sign_all
from mt5forge.tasks._common import setup_logging
from mt5forge.tools import cosign

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOGGERS = ("mt5forge", "gnupg")


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``-v``'s logging (DEBUG to stderr through rich, not propagated), with caplog's handler
    on each logger too; every logger put back after."""
    loggers = {name: logging.getLogger(name) for name in LOGGERS}
    saved = {n: (lg.handlers[:], lg.level, lg.propagate) for n, lg in loggers.items()}
    setup_logging(verbose=True)
    for lg in loggers.values():
        lg.setLevel(logging.DEBUG)
        lg.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        for name, (handlers, level, propagate) in saved.items():
            lg = loggers[name]
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate


def _files_holding(root: Path, secret: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret in p.read_bytes()]


def test_passphrases_are_never_logged_printed_or_written(
    gated: Any,
    local_registry: Registry,
    signing_keys: SigningKeys,
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    secrets = {
        signing.PASSPHRASE_ENV: os.environ[signing.PASSPHRASE_ENV],
        cosign.PASSWORD_ENV: os.environ[cosign.PASSWORD_ENV],
    }
    assert all(len(v) >= 16 for v in secrets.values())
    # The gated image's real records in a run directory of this test's own.
    run_dir = tmp_path / "run"
    key = image_key(gated.build.image_id)
    shutil.copytree(records_dir(gated.settings.run_dir) / key, records_dir(run_dir) / key)
    settings = dataclasses.replace(
        gated.settings, paths=dataclasses.replace(gated.settings.paths, run_dir=str(run_dir))
    )
    req = PushRequest(
        target=gated.build.target, reference=gated.build.reference, image_id=gated.build.image_id
    )
    pushed = push_all(settings, [req], registry=local_registry.address)
    [result] = sign_all(settings, from_push(pushed), keys=signing_keys)
    assert result.gpg and "signature" in result.cosign  # both passphrases were used

    out, err = capfd.readouterr()
    records = debug_logs.records
    logged = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.stack_info or ''}" for r in records
    )
    # Controls: DEBUG reached both captures, the commands that took the secrets among it.
    assert any(r.levelno == logging.DEBUG and "cosign" in r.getMessage() for r in records)
    assert any(r.name.startswith("gnupg") for r in records), {r.name for r in records}
    assert "cosign" in err, err[-2000:]
    for name, secret in secrets.items():
        assert secret not in out, f"{name} in stdout"
        assert secret not in err, f"{name} in stderr"
        assert secret not in logged, f"{name} in a log record"
        assert secret not in debug_logs.text, f"{name} in the formatted logs"
        # tmp_path holds the run directory and the registry's storage and log.
        assert not _files_holding(tmp_path, secret.encode()), f"{name} in a file"
