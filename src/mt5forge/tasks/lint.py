"""``invoke lint``: hadolint, trivy config and the Compose Specification over the build inputs."""

from __future__ import annotations

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from mt5forge.lint import lint_all
from mt5forge.report.views import lint_report
from mt5forge.tasks._common import FORMAT_HELP, check_format, err_console, show, task_context


@task(help={"format": FORMAT_HELP, "verbose": "Show debug logs and tracebacks."})
def lint(c: Context, format: str = "table", verbose: bool = False) -> None:
    """Lint the Dockerfiles (hadolint, trivy config) and compose files (Compose Spec).

    Dockerfiles are linted as the build stages them. Any finding at warning or above fails; so
    does an ignore that carries no reason. No engine or network needed."""
    with task_context(verbose) as settings:
        fmt = check_format(format)
        with err_console.status("hadolint, trivy config, compose-spec..."):
            findings = lint_all(settings.root, trivy_cache=settings.path(settings.scan.cache_dir))
        show(lint_report(findings), fmt)
        failing = [f for f in findings if f.failing]
        if failing:
            raise Exit(f"error: lint found {len(failing)} finding(s) at warning or above.", code=1)
