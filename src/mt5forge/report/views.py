"""Reports of each stage's result: the tables the tasks used to draw by hand, now data."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from mt5forge.base import BaseImage
from mt5forge.fetch import Artifact, Failure
from mt5forge.lint import LintFinding
from mt5forge.report import Report, columns
from mt5forge.stages.build import BuildResult
from mt5forge.stages.sbom import SbomResult
from mt5forge.stages.scan import ScanResult
from mt5forge.tools.trivy import Finding


def _size(n: int) -> str:
    if n < 100_000:
        return f"{n / 1e3:.1f} kB"
    return f"{n / 1e6:.0f} MB" if n < 1e9 else f"{n / 1e9:.2f} GB"


def base_report(image: BaseImage) -> Report:
    if image.reused:
        note = (
            f"Reused {image.reference} ({image.keyed_reference}, {image.image_id[:19]}, "
            f"{_size(image.size)}): same inputs as before, nothing rebuilt ({image.seconds:.1f} s)."
        )
    else:
        note = (
            f"Built {image.reference} from {image.source} ({image.origin}) in "
            f"{image.seconds:.0f} s: {image.image_id[:19]}, {_size(image.size)}, also tagged "
            f"{image.keyed_reference}."
        )
    return Report(
        title="Base image",
        columns=columns(
            "reference", "source", "id", "size", "result", right=("size",), no_wrap=("id",)
        ),
        rows=(
            (
                image.reference,
                image.source,
                image.image_id[:19],
                _size(image.size),
                "reused" if image.reused else "built",
            ),
        ),
        notes=(note,),
        data=dataclasses.asdict(image),
    )


def artifacts_report(
    artifacts: Sequence[Artifact],
    title: str,
    *,
    cache_dir: str = "",
    failures: Sequence[Failure] = (),
) -> Report:
    hits = sum(a.cache_hit for a in artifacts)
    notes = [f"{len(artifacts)} artifact(s) verified, {hits} from the cache"]
    if cache_dir:
        notes[0] += f", into {cache_dir}"
    notes[0] += "."
    if failures:
        notes.append(f"{len(failures)} artifact(s) FAILED; each row says why.")
    return Report(
        title=title,
        columns=columns(
            "artifact",
            "version",
            "size",
            "sha256",
            "verified by",
            "profile",
            "origin",
            "cache",
            no_wrap=("artifact", "sha256"),
        ),
        rows=tuple(
            (
                a.name,
                a.version,
                f"{a.size / 1e6:.2f} MB" if a.size >= 100_000 else _size(a.size),
                a.sha256[:12],
                a.verified_by,
                a.profile,
                a.origin,
                "hit" if a.cache_hit else "downloaded",
            )
            for a in artifacts
        )
        + tuple((f.name, f.version, "", "", f.reason, "", "", "FAILED") for f in failures),
        notes=tuple(notes),
        data=[{**dataclasses.asdict(a), "path": str(a.path)} for a in artifacts]
        + [{**dataclasses.asdict(f), "failed": True} for f in failures],
    )


def build_report(results: Sequence[BuildResult], records_dir: str) -> Report:
    rebuilt = [r for r in results if not r.all_cached]
    if not rebuilt:
        summary = f"Nothing rebuilt: every step of all {len(results)} image(s) came from the cache."
    else:
        summary = f"Rebuilt steps in: {', '.join(str(r.target) for r in rebuilt)}."
    return Report(
        title="Images built",
        columns=columns(
            "image",
            "variant",
            "digest",
            "size",
            "layers",
            "seconds",
            "cache hits",
            right=("size", "layers", "seconds"),
            no_wrap=("digest",),
        ),
        rows=tuple(
            (
                r.target.image,
                r.target.variant,
                r.image_id[:19],
                _size(r.size),
                str(r.layers),
                f"{r.seconds:.1f}",
                f"{r.cached}/{r.steps}" + (" (all)" if r.all_cached else ""),
            )
            for r in results
        ),
        notes=(summary, f"Build records: {records_dir}/<image id>/build.json"),
        data=[
            {
                "image": r.target.image,
                "variant": r.target.variant,
                "reference": r.reference,
                "image_id": r.image_id,
                "size": r.size,
                "layers": r.layers,
                "seconds": round(r.seconds, 2),
                "steps": r.steps,
                "cached": r.cached,
                "record": str(r.record),
                "log": str(r.log_file),
            }
            for r in results
        ],
    )


def summary_report(title: str, rows: Sequence[tuple[str, str]]) -> Report:
    """A two-column stage/result table (the demo's closing summary)."""
    return Report(
        title=title,
        columns=columns("stage", "result"),
        rows=tuple(rows),
        data={k: v for k, v in rows},
    )


def sbom_report(results: Sequence[SbomResult]) -> Report:
    rows = []
    for r in results:
        s = r.summary
        types = ", ".join(f"{k} {v}" for k, v in s.by_type.items()) if s else ""
        rows.append(
            (
                str(r.target),
                types,
                str(s.debian) if s else "",
                f"{s.python} ({s.windows_wheels} win)" if s else "",
                str(s.artifacts) if s else "",
                f"{s.components} / {s.trivy_components}" if s else "",
                str(r.path) if r.path else "FAILED: " + "; ".join(r.problems),
            )
        )
    notes = ["CycloneDX 1.6, validated strictly before written; ours / Trivy's component counts."]
    for r in results:
        for a in r.artifacts:
            notes.append(
                f"{r.target}: {a.name} {a.version} sha256 {a.sha256[:16]}... {a.origin}, "
                f"{a.verified_by}"
            )
    return Report(
        title="SBOMs",
        columns=columns(
            "image",
            "components by type",
            "debian",
            "python",
            "artifacts",
            "ours / trivy",
            "file",
            right=("debian", "artifacts"),
            no_wrap=("image",),
        ),
        rows=tuple(rows),
        notes=tuple(notes),
        data=[
            {
                "image": r.target.image,
                "variant": r.target.variant,
                "image_id": r.image_id,
                "sbom": str(r.path) if r.path else None,
                "summary": dataclasses.asdict(r.summary) if r.summary else None,
                "artifacts": [dataclasses.asdict(a) for a in r.artifacts],
                "problems": list(r.problems),
                "record": str(r.record),
            }
            for r in results
        ],
    )


def _where(f: Finding) -> str:
    if f.package:
        return f.package
    if f.kind == "misconfiguration" and f.target.startswith("sha256:"):
        return "image config"
    return f.location or f.target


def scan_report(results: Sequence[ScanResult]) -> Report:
    rows = []
    hidden = 0
    for r in results:
        for v in r.verdicts:
            if v.verdict == "pass":
                hidden += 1
                continue
            f = v.finding
            rows.append(
                (
                    str(r.target),
                    f.id,
                    _where(f),
                    f.installed_version,
                    f.fixed_version,
                    f.severity,
                    v.verdict,
                    v.why,
                )
            )
    notes = []
    for r in results:
        db = r.database
        kind = "FIXTURE database (made here, no real advisories)" if db.fixture else "database"
        age = f"{db.age_hours:.0f} h old" + (
            f", too old but exempt: {db.exempt}" if db.exempt else ""
        )
        counts: dict[str, int] = {}
        for v in r.verdicts:
            counts[v.verdict] = counts.get(v.verdict, 0) + 1
        tally = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no findings"
        notes.append(
            f"{r.target}: {'PASSED' if r.passed else 'FAILED'} ({tally}); {kind} {age}; "
            f"reports in {Path(r.reports['json']).parent}"
        )
    if hidden:
        notes.append(f"{hidden} finding(s) below the policy's bar not shown (see --format json).")
    return Report(
        title="Scan (Trivy: vuln, secret, misconfig; verdicts from scan-policy.toml)",
        columns=columns(
            "image",
            "id",
            "package / where",
            "installed",
            "fixed",
            "severity",
            "verdict",
            "why",
            no_wrap=("image", "id"),
        ),
        rows=tuple(rows),
        notes=tuple(notes),
        data=[
            {
                "image": r.target.image,
                "variant": r.target.variant,
                "image_id": r.image_id,
                "passed": r.passed,
                "database": {**dataclasses.asdict(r.database), "path": str(r.database.path)},
                "problems": list(r.problems),
                "reports": dict(r.reports),
                "record": str(r.record),
                "findings": [
                    {**dataclasses.asdict(v.finding), "verdict": v.verdict, "why": v.why}
                    for v in r.verdicts
                ],
            }
            for r in results
        ],
    )


def lint_report(findings: Sequence[LintFinding]) -> Report:
    failing = [f for f in findings if f.failing]
    note = (
        "No finding at warning or above."
        if not failing
        else f"{len(failing)} finding(s) at warning or above: lint fails."
    )
    return Report(
        title="Lint (hadolint, trivy config, compose-spec)",
        columns=columns("tool", "file", "line", "code", "level", "message", right=("line",)),
        rows=tuple(
            (f.tool, f.file, str(f.line or ""), f.code, f.level, f.message) for f in findings
        ),
        notes=(note,),
        data=[{**dataclasses.asdict(f), "failing": f.failing} for f in findings],
    )
