"""Stage 5, ``scan``: Trivy (vuln + secret + misconfig) over every image, judged by our policy.

For each image the build stage returned:

1. The vulnerability database is located (``[scan] db_dir`` or Trivy's cache) and its age read
   from ``trivy version --format json``: ``--skip-db-update`` warns about nothing, so a database
   older than the policy's ``max_db_age_hours`` fails here (the fixture profile is exempt: its
   database is made on this machine, and the record says so).
2. One Trivy run, JSON, ``--exit-code 0``, with the policy's secret rules added; the same JSON
   is turned into SARIF by ``trivy convert`` (one scan, both outputs).
3. :func:`mt5forge.scanpolicy.judge` gives each finding a verdict; the image config decides
   what Trivy gets wrong about it (the healthcheck). Secrets always fail.
4. Accepted ignores are written as OpenVEX, and Trivy is re-run with ``--vex`` to prove it
   agrees: a finding it still reports is a failure of the gate.
5. Reports go to ``<run_dir>/scan/<image>-<variant>/`` and the record to the records store.

Every image is scanned; the stage fails at the end naming each failing finding.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from mt5forge.config import Settings
from mt5forge.errors import Mt5ForgeError, ScanError
from mt5forge.files import atomic_write
from mt5forge.images import Target
from mt5forge.progress import NullProgress, Progress
from mt5forge.records import write_record
from mt5forge.scanpolicy import Policy, Verdict, dumps, judge, load_policy, openvex
from mt5forge.stages import Job, refuse_failed
from mt5forge.stages.build import BuildResult
from mt5forge.stages.sbom import SbomResult
from mt5forge.tools import docker as dockertool
from mt5forge.tools import trivy

log = logging.getLogger(__name__)

SCANNERS = ("vuln", "secret", "misconfig")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Database:
    path: Path
    updated_at: str
    age_hours: float
    fixture: bool
    """Made by mt5forge's fixture kit: no real advisories."""
    too_old: bool
    exempt: str = ""
    """Why the age does not fail this run (the fixture profile), or empty."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScanResult:
    target: Target
    reference: str
    image_id: str
    verdicts: tuple[Verdict, ...]
    database: Database
    problems: tuple[str, ...]
    """Everything that fails the gate, one line each."""
    reports: Mapping[str, str]
    record: Path

    @property
    def passed(self) -> bool:
        return not self.problems


def database(settings: Settings, profile: str, policy: Policy, now: dt.datetime) -> Database:
    """The vulnerability database this run uses and whether its age fails the gate."""
    cache = settings.path(settings.scan.db_dir or settings.scan.cache_dir)
    info = trivy.db_info(cache)
    if info is None:
        raise ScanError(
            f"No Trivy vulnerability database in {cache / 'db'}.",
            hint="Give one with --db DIR (a directory holding db/trivy.db and db/metadata.json, "
            "e.g. made where the internet is reachable by `trivy image --download-db-only "
            "--cache-dir DIR`), or set [scan] db_dir.",
        )
    age = (now - info.updated_at).total_seconds() / 3600
    too_old = age > policy.max_db_age_hours
    exempt = ""
    if too_old and profile == "fixture":
        exempt = "the fixture profile (its database is made on this machine)"
    return Database(
        path=cache / "db",
        updated_at=info.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        age_hours=round(age, 1),
        fixture=(cache / "db" / trivy.FIXTURE_MARKER).is_file(),
        too_old=too_old,
        exempt=exempt,
    )


def _makes_layer(step: Mapping[str, Any]) -> bool:
    """Whether a history step added a layer: RUN, COPY, ADD and an import do; metadata
    instructions (``#(nop) ENV``, ``LABEL``, ``CMD`` ...) do not."""
    created = str(step.get("CreatedBy", ""))
    return "#(nop)" not in created or bool(re.search(r"#\(nop\)\s+(ADD|COPY)\b", created))


def layer_names(attrs: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """DiffID -> "layer N/M (instruction)", to say where in the image a finding is."""
    diff_ids = list((attrs.get("RootFS") or {}).get("Layers") or [])
    steps = [h for h in reversed(history) if _makes_layer(h)]
    out: dict[str, str] = {}
    for i, diff in enumerate(diff_ids):
        how = ""
        if len(steps) == len(diff_ids):
            created = str(steps[i].get("CreatedBy", "")).replace("#(nop)", "")
            # The shell the engine ran the step with is noise here: keep the instruction.
            created = re.sub(r"^\s*/bin/\S+(\s+-o\s+\S+)*\s+-c\s+", "", created)
            how = " ".join(created.split())[:80]
        out[diff] = f"layer {i + 1}/{len(diff_ids)} {diff[7:19]}" + (f" ({how})" if how else "")
    return out


def _source_names(sbom_path: Path | None) -> dict[str, str]:
    """Binary package -> source package, from the SBOM's Trivy properties."""
    if sbom_path is None or not sbom_path.is_file():
        return {}
    doc = json.loads(sbom_path.read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for c in doc.get("components") or []:
        for p in c.get("properties") or []:
            if p.get("name") == "aquasecurity:trivy:SrcName":
                out[str(c.get("name"))] = str(p.get("value"))
    return out


def scan_all(
    settings: Settings,
    *,
    built: Sequence[BuildResult],
    sboms: Sequence[SbomResult] = (),
    policy_path: Path | None = None,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> list[ScanResult]:
    shown = progress or NullProgress()
    now = now or dt.datetime.now(dt.UTC)
    policy = load_policy(policy_path or settings.path(settings.scan.policy))
    rules = policy.path.parent / policy.secret_rules
    if not rules.is_file():
        raise ScanError(f"The policy's secret rules file {rules} does not exist.")
    client = dockertool.connect()
    sbom_paths = {s.image_id: s.path for s in sboms}
    results: list[ScanResult] = []
    for b in built:
        key = f"scan {b.target}"
        shown.start(key, key, total=None, unit="status")
        try:
            result = _one(settings, client, b, policy, rules, sbom_paths.get(b.image_id), now,
                          shown, key)  # fmt: skip
        except Mt5ForgeError:
            shown.finish(key, "failed")
            raise
        shown.finish(key, "passed" if result.passed else "failed")
        results.append(result)
    refuse_failed(
        results,
        ScanError,
        "The scan gate",
        hint=f"Fix the image, or accept a finding in {policy.path} with a reason and an "
        "expiry date (secrets cannot be accepted).",
    )
    return results


def _one(
    settings: Settings,
    client: Any,
    b: BuildResult,
    policy: Policy,
    rules: Path,
    sbom_path: Path | None,
    now: dt.datetime,
    shown: Progress,
    key: str,
) -> ScanResult:
    image = client.images.get(b.image_id)
    attrs = image.attrs
    config = attrs.get("Config") or {}
    profile = (config.get("Labels") or {}).get("org.mt5forge.profile", settings.fetch.profile)
    db = database(settings, profile, policy, now)
    out_dir = settings.run_dir / "scan" / f"{b.target.image}-{b.target.variant}"
    out_dir.mkdir(parents=True, exist_ok=True)

    shown.step(key, message=f"{b.target}: trivy image ({', '.join(SCANNERS)})")
    report = trivy.scan_image(
        b.image_id, scanners=SCANNERS, cache_dir=db.path.parent, secret_config=rules
    )
    raw = json.dumps(report.raw, indent=2, sort_keys=True) + "\n"
    json_path = atomic_write(out_dir / "trivy.json", raw)
    shown.step(key, message=f"{b.target}: trivy convert --format sarif")
    sarif_path = atomic_write(out_dir / "trivy.sarif", trivy.convert(json_path, "sarif"))

    layers = layer_names(attrs, image.history())
    findings = [
        dataclasses.replace(f, location=f"{f.location} in {layers[f.layer]}")
        if f.kind == "secret" and f.layer in layers
        else f
        for f in report.findings
    ]
    verdicts = judge(
        findings,
        policy,
        image_config=config,
        today=now.date(),
        sources=_source_names(sbom_path),
    )
    problems = [
        f"{v.finding.kind} {v.finding.id}"
        + (f" in {v.finding.package} {v.finding.installed_version}" if v.finding.package else "")
        + (f" at {v.finding.location}" if v.finding.kind == "secret" else "")
        + f" ({v.finding.severity}): {v.why}"
        for v in verdicts
        if v.failed
    ]
    if db.too_old and not db.exempt:
        problems.append(
            f"the vulnerability database is {db.age_hours:.0f} h old (updated {db.updated_at}), "
            f"older than the policy's {policy.max_db_age_hours} h"
        )

    vex_doc = openvex(verdicts, document_id=f"urn:mt5forge:vex:{b.image_id}", timestamp=now)
    vex_path = atomic_write(out_dir / "vex.openvex.json", dumps(vex_doc))
    vex_agrees: bool | None = None
    if vex_doc["statements"]:
        shown.step(key, message=f"{b.target}: trivy image --vex (does Trivy agree?)")
        again = trivy.scan_image(
            b.image_id,
            scanners=("vuln",),
            cache_dir=db.path.parent,
            vex=(vex_path,),
        )
        accepted = {(v.finding.id, v.finding.purl) for v in verdicts if v.verdict == "ignored"}
        still = sorted(
            f"{f.id} ({f.package})"
            for f in again.findings
            if f.kind == "vulnerability" and (f.id, f.purl) in accepted
        )
        vex_agrees = not still
        if still:
            problems.append("Trivy with the written VEX still reports: " + ", ".join(still))

    policy_sha = hashlib.sha256(policy.path.read_bytes()).hexdigest()
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    record = write_record(
        settings.run_dir,
        "scan",
        b.image_id,
        {
            "image": b.target.image,
            "variant": b.target.variant,
            "reference": b.reference,
            "trivy": report.version,
            "scanners": list(SCANNERS),
            "policy": {
                "path": str(policy.path),
                "sha256": policy_sha,
                "fail_on": policy.fail_on,
                "only_fixed": policy.only_fixed,
            },
            "database": {**dataclasses.asdict(db), "path": str(db.path)},
            "verdicts": counts,
            "findings": [
                {
                    "kind": v.finding.kind,
                    "id": v.finding.id,
                    "package": v.finding.package,
                    "installed": v.finding.installed_version,
                    "fixed": v.finding.fixed_version,
                    "severity": v.finding.severity,
                    "where": v.finding.location or v.finding.target,
                    "verdict": v.verdict,
                    "why": v.why,
                }
                for v in verdicts
            ],
            "vex_agrees": vex_agrees,
            "problems": problems,
            "reports": {"json": str(json_path), "sarif": str(sarif_path), "vex": str(vex_path)},
        },
        passed=not problems,
    )
    return ScanResult(
        target=b.target,
        reference=b.reference,
        image_id=b.image_id,
        verdicts=tuple(verdicts),
        database=db,
        problems=tuple(problems),
        reports={"json": str(json_path), "sarif": str(sarif_path), "vex": str(vex_path)},
        record=record,
    )


class ScanStage:
    name: ClassVar[str] = "scan"
    summary: ClassVar[str] = "Trivy vuln/secret/misconfig scan judged by scan-policy.toml"
    needs: ClassVar[tuple[str, ...]] = ("build", "sbom")

    def run(self, job: Job) -> tuple[ScanResult, ...]:
        return tuple(
            scan_all(
                job.settings,
                built=job.result("build", tuple),
                sboms=job.result("sbom", tuple),
                progress=job.progress,
            )
        )
