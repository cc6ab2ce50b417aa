"""The fixture profile's stand-in terminal64.exe: a real signed Windows program that says what
it is (it runs under Wine in tests/integration/test_terminal_runtime.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mt5forge.fixtures.standins import (
    AUTHENTICODE_SUBJECT,
    TERMINAL_PRODUCT,
    build_exe,
    build_terminal,
    make_authenticode_cert,
)
from mt5forge.tools.host import ensure_programs
from mt5forge.tools.run import call

pytestmark = pytest.mark.integration


def test_stand_in_terminal_is_signed_says_not_mt5_and_is_carried_by_the_installer(
    tmp_path: Path,
) -> None:
    ensure_programs(["x86_64-w64-mingw32-gcc", "x86_64-w64-mingw32-windres", "osslsigncode"])
    cert, key = make_authenticode_cert(tmp_path, AUTHENTICODE_SUBJECT)
    exe = build_terminal(tmp_path / "terminal64.exe", signer=(cert, key))
    data = exe.read_bytes()
    assert data[:2] == b"MZ"
    assert "NOT MetaTrader 5" in TERMINAL_PRODUCT
    # VERSIONINFO strings are UTF-16: ProductName and FileDescription both carry it.
    assert data.count(TERMINAL_PRODUCT.encode("utf-16-le")) >= 2
    verified = call("osslsigncode", "verify", "-CAfile", cert, "-ignore-crl", "-in", exe,
                    timeout=60, check=False)  # fmt: skip
    out = verified.stdout.decode(errors="replace")
    assert "Signature verification: ok" in out, out
    assert "mt5forge fixture signer" in out
    setup = build_exe(tmp_path / "mt5setup.exe", marker_name="mt5setup.exe", terminal=exe)
    assert data in setup.read_bytes()  # the signed bytes, as they are installed
