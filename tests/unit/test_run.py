from __future__ import annotations

import pytest

from mt5forge.errors import ToolError, ToolMissingError, ToolTimeoutError
from mt5forge.tools.run import call, which


def test_arguments_are_never_given_to_a_shell() -> None:
    out = call("echo", "$(id)", ";", "rm", "-rf", "/", timeout=5).stdout.decode()
    assert out.strip() == "$(id) ; rm -rf /"


def test_missing_program_says_how_to_install() -> None:
    with pytest.raises(ToolMissingError) as e:
        call("mt5forge-no-such-program", timeout=5)
    assert "is not installed" in str(e.value)
    assert e.value.hint


def test_known_program_hint_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissingError, match=r"apt-get install wixl"):
        which("wixl")


def test_timeout_kills_and_says_so() -> None:
    with pytest.raises(ToolTimeoutError, match=r"did not finish within 0\.3 s"):
        call("sleep", "10", timeout=0.3)


def test_failure_carries_exit_code_and_stderr() -> None:
    with pytest.raises(ToolError) as e:
        call("ls", "/mt5forge-does-not-exist", timeout=5)
    assert "exit code 2" in str(e.value)
    assert "mt5forge-does-not-exist" in str(e.value)


def test_check_false_returns_the_process() -> None:
    proc = call("false", timeout=5, check=False)
    assert proc.returncode == 1
