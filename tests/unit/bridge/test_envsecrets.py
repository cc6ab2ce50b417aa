"""Secret files named by NAME_FILE: read with a size cap, as text, and never both ways at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from mt5bridge.envsecrets import MAX_SECRET_FILE, SettingError, read_setting


def test_secret_file_is_read_without_its_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("pässwörd\n", encoding="utf-8")
    assert read_setting("MT5_PASSWORD", {"MT5_PASSWORD_FILE": str(secret)}) == "pässwörd"


def test_an_endless_device_is_refused_after_the_cap() -> None:
    with pytest.raises(SettingError, match=f"over {MAX_SECRET_FILE} bytes"):
        read_setting("MT5_PASSWORD", {"MT5_PASSWORD_FILE": "/dev/zero"})


def test_binary_file_is_refused(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"\xff\xfe\x00secret")
    with pytest.raises(SettingError, match="not UTF-8"):
        read_setting("MT5_PASSWORD", {"MT5_PASSWORD_FILE": str(blob)})


def test_both_forms_at_once_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="both set"):
        read_setting("MT5_PASSWORD", {"MT5_PASSWORD": "a", "MT5_PASSWORD_FILE": "/dev/null"})
