"""The bridge's Windows wheels install from PyPI with --require-hashes (PyPI is reachable in CI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
WHEELS = REPO / "manifests" / "wheels-win_amd64.txt"


def test_every_requirement_is_pinned_with_a_hash() -> None:
    lines = WHEELS.read_text().replace("\\\n", " ").splitlines()
    reqs = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(reqs) == 5
    for req in reqs:
        assert "==" in req and "--hash=sha256:" in req, req
    names = {r.split("==")[0].strip().lower() for r in reqs}
    assert {"metatrader5", "numpy", "rpyc", "plumbum", "typing-extensions"} == names
    assert "numpy==1.26.4" in WHEELS.read_text(), "numpy 2 needs crealf(), missing in Wine 10.0"
    assert "rpyc==6.0.2" in WHEELS.read_text(), "the bridge pins rpyc 6.0.2 on both sides"


def test_pip_download_require_hashes_win_amd64(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
            "--require-hashes", "--no-deps", "--only-binary=:all:",
            "--platform", "win_amd64", "--python-version", "3.12",
            "--implementation", "cp", "--abi", "cp312",
            "-d", str(tmp_path), "-r", str(WHEELS),
        ],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = sorted(p.name for p in tmp_path.glob("*.whl"))
    assert len(got) == 5, got
    assert "metatrader5-5.0.6231-cp312-cp312-win_amd64.whl" in got
