"""The GitHub Actions workflows call the same Invoke tasks a person runs: every task they name
exists, they validate against the workflow schema (offline), every action is pinned by commit
SHA, and only the release workflow may ask for an OIDC token."""

from __future__ import annotations

import re
import shlex
import subprocess
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


# ---- every repository path a workflow names exists, or a guard step fails early without it ----

GENERATED = {
    "runs": "the run directory the tasks write ([paths] run_dir)",
    ".cache": "the caches the tasks and Trivy write ([scan] cache_dir, ...)",
    "actionlint": "downloaded by the same step that runs it",
}
"""Roots of relative paths a workflow names that are made while it runs, not committed."""

_EXPR = re.compile(r"\$\{\{.*?\}\}")
_PATH = re.compile(r"(?:(?<=^)|(?<=[\s\"'=<>(]))(\.?/?[\w.-]+(?:/[\w.$-]*)+)(?![\w:@])")
_HOST = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+")


def _paths(text: str) -> set[str]:
    """Relative paths in a run script or env value: not URLs, hosts, image names or
    variables (``${{ ... }}`` is read as a variable)."""
    found = set()
    for m in _PATH.finditer(_EXPR.sub("$EXPR", text)):
        path = m.group(1).removeprefix("./").rstrip("/")
        root = path.split("/", 1)[0]
        if not root or "$" in root or (_HOST.fullmatch(root) and root != ".cache"):
            continue
        found.add(path)
    return found


def _steps(path: Path) -> list[tuple[str, list[dict[str, object]]]]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [(name, list(job.get("steps", []))) for name, job in dict(doc["jobs"]).items()]


def _named(step: dict[str, object]) -> set[str]:
    text = str(step.get("run", "")) + "\n"
    text += "\n".join(str(v) for v in dict(step.get("env") or {}).values())  # type: ignore[call-overload]
    return _paths(text)


def _tracked(rel: str) -> bool:
    return (REPO / rel).exists()


def test_the_path_finder_keeps_paths_and_skips_the_rest() -> None:
    got = _paths(
        'bash scripts/bootstrap.sh\necho "$PWD/.venv/bin"\n'
        "docker run mt5forge/tools:trixie ghcr.io/${{ github.repository_owner }}\n"
        "curl https://raw.githubusercontent.com/rhysd/actionlint/x.bash\n"
        "cat runs/attest/$id/p.json ${{ runner.temp }}/gnupg ./actionlint manifests/keys/a.pub"
    )
    assert got == {"scripts/bootstrap.sh", "runs/attest/$id/p.json", "actionlint",
                   "manifests/keys/a.pub"}  # fmt: skip


def _guard_run(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60
    )


_UNSAFE = re.compile(
    r"(?m)(?:^|[;&|(]|\bthen|\bdo|\belse)\s*(?:invoke|sudo|docker|curl|gpg|rm|bash)\s"
)
"""What a guard step may not run: it is run here, so it may only look at files."""


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_repository_path_exists_or_is_guarded(path: Path, tmp_path: Path) -> None:
    """A path a step names is committed, made while the workflow runs (GENERATED), or first
    named in its job by a guard step that fails without it: run here without the file, the
    guard exits non-zero naming it; with the file (a public key's first line) it exits 0."""
    for job, steps in _steps(path):
        first: dict[str, int] = {}
        for i, step in enumerate(steps):
            for rel in _named(step):
                first.setdefault(rel, i)
        for rel, i in sorted(first.items()):
            if _tracked(rel) or rel.split("/", 1)[0] in GENERATED:
                continue
            guard = steps[i]
            script = str(guard.get("run", ""))
            where = f"{path.name} job {job!r} step {guard.get('name')!r}"
            assert rel in _paths(script) and not _UNSAFE.search(script), (
                f"{where} names {rel}, which is not in the repository, and no earlier step "
                "checks that it is there"
            )
            bare = _guard_run(script, tmp_path)
            assert bare.returncode != 0 and rel in bare.stdout + bare.stderr, (where, rel, bare)
            present = tmp_path / "present"
            for other in _paths(script):
                if not _tracked(other):
                    (present / other).parent.mkdir(parents=True, exist_ok=True)
                    (present / other).write_text("-----BEGIN PUBLIC KEY-----\n")
            ok = _guard_run(script, present)
            assert ok.returncode == 0, (where, rel, ok)
