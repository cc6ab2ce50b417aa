from __future__ import annotations

import json

import pytest

from mt5forge.errors import ToolError
from mt5forge.tools.trivy import parse_report

# The shape of Trivy 0.76's JSON report (SchemaVersion 2), trimmed to the fields we read.
REPORT = {
    "SchemaVersion": 2,
    "Trivy": {"Version": "0.76.0"},
    "ArtifactName": "mt5forge/terminal:slim",
    "Results": [
        {
            "Target": "mt5forge/terminal:slim (debian 13.8)",
            "Vulnerabilities": [
                {
                    "VulnerabilityID": "CVE-2026-0001",
                    "PkgName": "bash",
                    "Severity": "HIGH",
                    "InstalledVersion": "5.2.37-2",
                    "FixedVersion": "5.2.37-3",
                    "Title": "t",
                }
            ],
        },
        {
            "Target": "/opt/leak.env",
            "Secrets": [{"RuleID": "github-pat", "Severity": "CRITICAL", "Title": "GitHub PAT"}],
        },
        {
            "Target": "Dockerfile",
            "Misconfigurations": [{"ID": "DS-0002", "Severity": "HIGH", "Title": "root user"}],
        },
        {"Target": "empty", "Vulnerabilities": None},
    ],
}


def test_parse_every_finding_kind() -> None:
    r = parse_report(json.dumps(REPORT))
    assert r.version == "0.76.0"
    assert r.artifact == "mt5forge/terminal:slim"
    kinds = {(f.kind, f.id) for f in r.findings}
    assert kinds == {
        ("vulnerability", "CVE-2026-0001"),
        ("secret", "github-pat"),
        ("misconfiguration", "DS-0002"),
    }
    vuln = next(f for f in r.findings if f.kind == "vulnerability")
    assert (vuln.package, vuln.installed_version, vuln.fixed_version) == (
        "bash",
        "5.2.37-2",
        "5.2.37-3",
    )


def test_non_json_output_is_an_error() -> None:
    with pytest.raises(ToolError, match="not JSON"):
        parse_report(b"FATAL something went wrong")
