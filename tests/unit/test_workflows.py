"""The GitHub Actions workflows call the same Invoke tasks a person runs: every task they name
exists, they validate against the workflow schema (offline), every action is pinned by commit
SHA, and only the release workflow may ask for an OIDC token."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from mt5forge.lint import compose, workflow_files

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = workflow_files(REPO)


def _task_names() -> set[str]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("mt5forge_tasks_entry", REPO / "tasks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return set(module.ns.task_names)


def _invoked(text: str) -> list[str]:
    """Task names after each ``invoke`` in a shell script: the words up to the first option,
    redirection or shell operator."""
    out: list[str] = []
    for line in text.splitlines():
        for m in re.finditer(r"(?:^|[\s;&|\"'])invoke\s+([^\n]*)", line):
            for word in shlex.split(m.group(1), comments=True):
                if word.startswith(("-", ">", "&", "|", ";")) or "=" in word:
                    break
                out.append(word)
    return out


def _runs(doc: dict[str, object]) -> list[str]:
    jobs = doc.get("jobs") or {}
    assert isinstance(jobs, dict)
    return [
        str(step["run"])
        for job in jobs.values()
        for step in job.get("steps", [])
        if isinstance(step, dict) and "run" in step
    ]


def test_the_three_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "rebuild.yml", "release.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_invoked_task_exists(path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    called = [t for run in _runs(doc) for t in _invoked(run)]
    assert called, f"{path.name} calls no invoke task"
    missing = sorted(set(called) - _task_names())
    assert not missing, f"{path.name} calls tasks that do not exist: {missing}"


def test_the_parser_finds_tasks_and_stops_at_options() -> None:
    got = _invoked(
        'sudo -E env "PATH=$PATH" invoke engine base tools\ninvoke release --format json > r'
    )
    assert got == ["engine", "base", "tools", "release"]


def test_workflows_validate_against_the_schema() -> None:
    assert compose(REPO, WORKFLOWS, schema="vendor.github-workflows", tool="github-workflows") == []


def test_a_broken_workflow_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    step: []\n")
    found = compose(tmp_path, [bad], schema="vendor.github-workflows", tool="github-workflows")
    assert found and found[0].tool == "github-workflows"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_sha(path: Path) -> None:
    uses = re.findall(r"uses:\s*(\S+)", path.read_text(encoding="utf-8"))
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), ref


def test_only_release_asks_for_an_oidc_token() -> None:
    for path in WORKFLOWS:
        has = "id-token: write" in path.read_text(encoding="utf-8")
        assert has == (path.name == "release.yml"), path.name


def test_rebuild_runs_on_a_spread_minute_and_by_hand() -> None:
    doc = yaml.safe_load((REPO / ".github" / "workflows" / "rebuild.yml").read_text())
    on = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads a bare `on` as true
    minute = on["schedule"][0]["cron"].split()[0]
    assert minute not in {"0", "*", "30"} and "workflow_dispatch" in on
