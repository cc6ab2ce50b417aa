"""SBOM validation and cross-check, and lint's rule that every ignore carries a reason.

Validation is cyclonedx-python-lib's real strict JSON validator (CycloneDX 1.6 schema)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mt5forge import lint
from mt5forge.errors import SbomError
from mt5forge.sbom import PythonPackage, check, crosscheck

REPO = Path(__file__).resolve().parents[2]

GOOD = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.6",
    "version": 1,
    "metadata": {"component": {"type": "container", "name": "img", "bom-ref": "root"}},
    "components": [
        {
            "type": "library",
            "name": "bash",
            "version": "5.2.37-2",
            "bom-ref": "pkg:deb/debian/bash@5.2.37-2",
            "purl": "pkg:deb/debian/bash@5.2.37-2",
        },
        {
            "type": "file",
            "name": "mt5setup",
            "version": "unversioned",
            "bom-ref": "a1",
            "hashes": [{"alg": "SHA-256", "content": "ab" * 32}],
        },
    ],
}


def test_a_valid_sbom_passes() -> None:
    check(json.dumps(GOOD))


def test_a_broken_sbom_is_refused_naming_the_component() -> None:
    bad = json.loads(json.dumps(GOOD))
    bad["components"][1]["hashes"][0]["content"] = "not-a-sha256"
    with pytest.raises(SbomError, match=r"component mt5setup@unversioned"):
        check(json.dumps(bad))
    worse = json.loads(json.dumps(GOOD))
    worse["components"][0]["type"] = "gadget"
    with pytest.raises(SbomError, match=r"component bash@5\.2\.37-2"):
        check(json.dumps(worse))


def _pkg(name: str, version: str, windows: bool = False) -> PythonPackage:
    return PythonPackage(name=name, version=version, windows=windows, path=f"site/{name}")


def test_crosscheck_names_every_difference() -> None:
    found = {
        "numpy": _pkg("numpy", "2.2.5"),
        "rpyc": _pkg("rpyc", "6.0.2", windows=True),
        "mt5bridge": _pkg("mt5bridge", "0.1.0"),
        "requests": _pkg("requests", "2.0"),
    }
    pinned = {"numpy": "2.2.6", "rpyc": "6.0.2", "plumbum": "2.0.2"}
    problems = crosscheck(found, pinned, windows=False, first_party={"mt5bridge": "0.1.0"})
    text = "\n".join(problems)
    assert "numpy is pinned at 2.2.6 but 2.2.5 is installed" in text
    assert "rpyc is installed as a Windows (Wine prefix) package" in text
    assert "plumbum==2.0.2 is pinned but not installed" in text
    assert "requests 2.0 is installed" in text and "pinned nowhere" in text
    assert "mt5bridge" not in text
    assert (
        crosscheck(
            {"numpy": _pkg("numpy", "2.2.6")}, {"numpy": "2.2.6"}, windows=False, first_party={}
        )
        == []
    )


def test_lint_refuses_ignores_without_reasons(tmp_path: Path) -> None:
    shutil.copytree(REPO / "build", tmp_path / "build")
    (tmp_path / ".hadolint.yaml").write_text(
        "ignored:\n  - DL3008  # a reason that is long enough to say something\n  - DL3009\n"
    )
    bot = tmp_path / "build" / "bot" / "Dockerfile"
    bot.write_text(bot.read_text() + "\n# hadolint ignore=DL3059\nRUN true\n")
    found = lint.ignore_reasons(tmp_path)
    assert {(f.file, f.code) for f in found} == {
        (".hadolint.yaml", "DL3009"),
        ("build/bot/Dockerfile", "DL3059"),
    }
    assert all(f.failing for f in found)


def test_the_repository_ignores_all_carry_reasons() -> None:
    assert lint.ignore_reasons(REPO) == []


def _bad_inputs(root: Path) -> None:
    """A Dockerfile hadolint fails (DL3020: ADD of a local file) and trivy config fails (the
    last USER is root: DS-0002), and a compose file with a key the Compose Specification does
    not have."""
    (root / "build" / "bad").mkdir(parents=True)
    (root / "build" / "bad" / "Dockerfile").write_text(
        "FROM debian:trixie-slim@sha256:" + "0" * 64 + "\n"
        "ADD app.py /opt/app.py\n"
        "USER root\n"
        'HEALTHCHECK CMD ["true"]\n'
        'CMD ["python3", "/opt/app.py"]\n'
    )
    (root / "compose").mkdir()
    (root / "compose" / "bad.yaml").write_text(
        "services:\n  bot:\n    image: mt5forge/bot:slim\n    restart_policy: always\n"
    )


def test_lint_fails_on_each_tool_naming_the_rule_and_file(tmp_path: Path) -> None:
    """The real `invoke lint` entry point (hadolint, trivy config, check-jsonschema) over a
    tree with one fault per tool: each is a failing finding that names its rule and its file."""
    _bad_inputs(tmp_path)
    found = lint.lint_all(tmp_path, trivy_cache=tmp_path / "trivy-cache")
    failing = {(f.tool, f.code, f.file) for f in found if f.failing}
    assert ("hadolint", "DL3020", "build/bad/Dockerfile (staged)") in failing, found
    assert ("trivy config", "DS-0002", "build/bad/Dockerfile") in failing, found
    compose = [f for f in found if f.tool == "compose-spec"]
    assert compose and all(f.failing and f.file == "compose/bad.yaml" for f in compose)
    assert any("restart_policy" in f.message for f in compose), compose
