"""The pipeline's shape: every stage shows the same face, PIPELINE is in order, and no stage
module imports another stage module (a stage is given its inputs, it never calls a stage)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mt5forge import config, stages
from mt5forge.errors import StageError
from mt5forge.progress import LogProgress, NullProgress, Progress
from mt5forge.stages import PIPELINE, Job, Options, run_stages, select

SRC = Path(stages.__file__).resolve().parents[1]
REPO = SRC.parents[1]
STAGE_ORDER = ["base", "fetch", "build", "sbom", "scan", "verify", "push", "sign"]


def test_pipeline_is_in_stage_order_with_unique_names() -> None:
    names = [s.name for s in PIPELINE]
    assert len(names) == len(set(names))
    assert names == [n for n in STAGE_ORDER if n in names], names
    assert names[:3] == ["base", "fetch", "build"]


@pytest.mark.parametrize("stage", PIPELINE, ids=lambda s: s.name)
def test_each_stage_has_the_interface(stage: stages.Stage) -> None:
    assert isinstance(stage.name, str) and stage.name
    assert isinstance(stage.summary, str) and len(stage.summary) > 10
    assert isinstance(stage.needs, tuple)
    earlier = [s.name for s in PIPELINE[: PIPELINE.index(stage)]]
    assert set(stage.needs) <= set(earlier), f"{stage.name} needs a later stage"
    params = list(inspect.signature(stage.run).parameters)
    assert params == ["job"], f"{stage.name}.run takes {params}"
    module = type(stage).__module__
    assert module == f"mt5forge.stages.{stage.name}", module


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_no_stage_module_imports_another_stage_module() -> None:
    """Results and their types may be imported (a FetchResult is data); a stage class or
    function of another stage may not."""
    stage_dir = SRC / "mt5forge" / "stages"
    modules = {p.stem for p in stage_dir.glob("*.py") if p.stem != "__init__"}
    problems = []
    for path in stage_dir.glob("*.py"):
        if path.stem == "__init__":
            continue
        for imported in _imports(path):
            for other in modules - {path.stem}:
                prefix = f"mt5forge.stages.{other}"
                if imported == prefix or imported.startswith(prefix + "."):
                    name = imported.removeprefix(prefix + ".")
                    if not name.endswith("Result") or name == prefix:
                        problems.append(f"{path.name} imports {imported}")
    assert not problems, problems


def test_core_modules_never_import_the_task_layer_or_invoke() -> None:
    """Data flows one way: tasks -> stages -> core -> tools. Only tasks/ knows invoke."""
    problems = []
    for path in (SRC / "mt5forge").rglob("*.py"):
        rel = path.relative_to(SRC / "mt5forge")
        if rel.parts[0] == "tasks":
            continue
        for imported in _imports(path):
            if imported.startswith(("invoke", "mt5forge.tasks")):
                problems.append(f"{rel} imports {imported}")
            if rel.parts[0] == "tools" and imported.startswith(
                ("mt5forge.stages", "mt5forge.report", "mt5forge.fixtures")
            ):
                problems.append(f"{rel} imports {imported}")
            if rel.parts[0] != "report" and imported.startswith("mt5forge.report"):
                problems.append(f"{rel} imports {imported} (only tasks render reports)")
    assert not problems, problems


def test_tasks_do_not_import_each_other() -> None:
    problems = []
    for path in (SRC / "mt5forge" / "tasks").glob("*.py"):
        for imported in _imports(path):
            if imported.startswith("mt5forge.tasks.") and not imported.startswith(
                ("mt5forge.tasks._common", "mt5forge.tasks._progress")
            ):
                problems.append(f"{path.name} imports {imported}")
    assert not problems, problems


class _Recorder:
    """A stage that records what it was given; stands in for a stage in wiring tests."""

    name: ClassVar[str] = "build"
    summary: ClassVar[str] = "records the job it was given"
    needs: ClassVar[tuple[str, ...]] = ("base", "fetch")

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def run(self, job: Job) -> Any:
        self.jobs.append(job)
        return ("built", job.results["base"], job.results["fetch"])


def test_run_stages_passes_earlier_results_and_refuses_a_gap() -> None:
    settings = config.load(REPO, env={})
    stage = _Recorder()
    got = run_stages(settings, [stage], given={"base": "B", "fetch": "F"}, options=Options())
    assert got["build"] == ("built", "B", "F")
    assert stage.jobs[0].result("base", str) == "B"
    with pytest.raises(StageError, match="needs base, fetch"):
        run_stages(settings, [stage])
    with pytest.raises(StageError, match="not a"):
        stage.jobs[0].result("base", int)


def test_select_keeps_pipeline_order_and_names_unknown_stages() -> None:
    assert [s.name for s in select(["build", "base"])] == ["base", "build"]
    assert [s.name for s in select(until="fetch")] == ["base", "fetch"]
    with pytest.raises(StageError, match="Stages: base"):
        select(["push-it"])


@pytest.mark.parametrize("impl", [NullProgress(), LogProgress()])
def test_progress_implementations_have_the_interface(impl: Progress) -> None:
    impl.start("k", "label", total=3, unit="bytes")
    impl.step("k", advance=1, message="m", note="n")
    impl.finish("k", "done")
    impl.warn("careful")


def test_rich_progress_draws_and_prints_notes_and_statuses() -> None:
    import io

    from rich.console import Console

    from mt5forge.tasks._progress import RichProgress

    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=False)
    with RichProgress(console) as progress:
        progress.start("bot:slim", "bot:slim", unit="steps")
        progress.step("bot:slim", completed=2, total=5, note="bot:slim step 2/5 ran: RUN x")
        progress.start("wine-mono", "wine-mono", total=100, unit="bytes")
        progress.step("wine-mono", advance=100)
        progress.finish("wine-mono", "verified")
        progress.warn("the database is old")
    text = out.getvalue()
    assert "bot:slim step 2/5 ran: RUN x" in text
    assert "wine-mono: verified" in text
    assert "warning: the database is old" in text
