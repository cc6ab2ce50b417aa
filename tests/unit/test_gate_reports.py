"""The gates' reports (report/views.py): what `invoke sbom` and `invoke scan` print is text made
from the stage results, with the counts, the findings and their verdicts; the JSON carries it
all. The SBOM's summary and the Windows CPython's platform come from the real enrich/summarize
over a small Trivy-shaped document, validated by the real CycloneDX validator."""

from __future__ import annotations

import json
from pathlib import Path

from mt5forge.images import Target
from mt5forge.report import render
from mt5forge.report.views import sbom_report, scan_report
from mt5forge.sbom import ArtifactFacts, ImageFacts, Summary, enrich, summarize
from mt5forge.sbom import render as render_sbom
from mt5forge.scanpolicy import Verdict
from mt5forge.stages.sbom import SbomResult
from mt5forge.stages.scan import Database, ScanResult
from mt5forge.tools.trivy import Finding

TRIVY_DOC = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.6",
    "version": 1,
    "metadata": {
        "component": {"type": "container", "name": "mt5forge/terminal:slim", "bom-ref": "root"}
    },
    "components": [
        {
            "type": "library",
            "name": "libc6",
            "version": "2.41-12",
            "bom-ref": "deb-libc6",
            "purl": "pkg:deb/debian/libc6@2.41-12?arch=amd64&distro=debian-13",
            "properties": [{"name": "aquasecurity:trivy:SrcName", "value": "glibc"}],
        },
        {
            "type": "library",
            "name": "rpyc",
            "version": "6.0.2",
            "bom-ref": "pypi-rpyc",
            "purl": "pkg:pypi/rpyc@6.0.2",
            "properties": [
                {
                    "name": "aquasecurity:trivy:FilePath",
                    "value": "home/mt5/.wine/drive_c/Python312/Lib/site-packages/"
                    "rpyc-6.0.2.dist-info/METADATA",
                }
            ],
        },
    ],
}
PYTHON = ArtifactFacts(
    name="python-windows",
    version="3.12.9",
    filename="python-3.12.9-embed-amd64.zip",
    sha256="d" * 64,
    origin="real-from-PyPI",
    verified_by="sha256 + Authenticode (31 PE files)",
    upstream_url="https://www.python.org/ftp/python/3.12.9/python-3.12.9-embed-amd64.zip",
)
MT5SETUP = ArtifactFacts(
    name="mt5setup",
    version="unversioned",
    filename="mt5setup.exe",
    sha256="e" * 64,
    origin="fixture",
    verified_by="sha256 [fixture]",
    upstream_url="https://download.mql5.com/cdn/web/metaquotes.software.corp/mt5/mt5setup.exe",
)
TARGET = Target(image="terminal", variant="slim")


def _sbom() -> tuple[str, Summary]:
    bom = enrich(
        TRIVY_DOC,
        facts=ImageFacts(
            reference="mt5forge/terminal:slim",
            image_id="sha256:" + "1" * 64,
            image="terminal",
            variant="slim",
            profile="fixture",
            base_name="mt5forge/base:trixie",
            base_digest="sha256:" + "2" * 64,
        ),
        artifacts=[PYTHON, MT5SETUP],
        wheel_hashes={"rpyc": ("6.0.2", "f" * 64)},
    )
    text = render_sbom(bom)
    return text, summarize(text, TRIVY_DOC)


def test_the_windows_cpython_is_marked_windows_and_counted_apart_from_the_wheels() -> None:
    text, summary = _sbom()
    comps = {c["name"]: c for c in json.loads(text)["components"]}
    props = {n: {p["name"]: p["value"] for p in c.get("properties", [])} for n, c in comps.items()}
    assert props["python-windows"]["mt5forge:platform"] == "win_amd64 (Wine prefix)"
    assert props["python-windows"]["mt5forge:verified-by"] == PYTHON.verified_by
    assert props["python-windows"]["mt5forge:upstream-url"] == PYTHON.upstream_url
    assert "mt5forge:platform" not in props["mt5setup"]
    assert props["rpyc"]["mt5forge:platform"] == "win_amd64 (Wine prefix)"
    assert props["libc6"]["aquasecurity:trivy:SrcName"] == "glibc"
    assert summary.windows_wheels == 1 and summary.artifacts == 2
    assert (summary.components, summary.trivy_components, summary.debian) == (4, 2, 1)


def test_sbom_report_renders_the_counts_and_the_artifacts(tmp_path: Path) -> None:
    _, summary = _sbom()
    ok = SbomResult(
        target=TARGET,
        reference="mt5forge/terminal:slim",
        image_id="sha256:" + "1" * 64,
        path=tmp_path / "terminal-slim.cdx.json",
        summary=summary,
        problems=(),
        record=tmp_path / "r.json",
        artifacts=(PYTHON, MT5SETUP),
    )
    bad = SbomResult(
        target=Target(image="bot", variant="slim"),
        reference="mt5forge/bot:slim",
        image_id="sha256:" + "3" * 64,
        path=None,
        summary=None,
        problems=("numpy is pinned at 2.2.6 but 2.2.5 is installed",),
        record=tmp_path / "b.json",
    )
    report = sbom_report([ok, bad])
    assert report.rows[0][1:6] == ("file 2, library 2", "1", "1 (1 win)", "2", "4 / 2")
    assert report.rows[1][6] == "FAILED: numpy is pinned at 2.2.6 but 2.2.5 is installed"
    text = render(report, "table", width=200)
    for piece in (
        "SBOMs",
        "terminal:slim",
        "file 2, library 2",
        "1 (1 win)",
        "4 / 2",
        "FAILED: numpy is pinned at 2.2.6",
        "python-windows 3.12.9 sha256 dddddddddddddddd",
        "real-from-PyPI, sha256 + Authenticode (31 PE files)",
    ):
        assert piece in text, piece
    data = json.loads(render(report, "json"))["data"]
    assert data[0]["summary"]["windows_wheels"] == 1 and data[1]["problems"]


def _finding(kind: str, id: str, severity: str, **kw: str) -> Finding:
    return Finding(
        kind=kind, id=id, severity=severity, target=kw.pop("target", "t"), title="t", **kw
    )


def test_scan_report_renders_the_findings_their_verdicts_and_the_database(tmp_path: Path) -> None:
    db = Database(
        path=tmp_path / "db",
        updated_at="2026-11-22T00:00:00Z",
        age_hours=240.0,
        fixture=True,
        too_old=True,
        exempt="the fixture profile (its database is made on this machine)",
    )
    verdicts = (
        Verdict(
            finding=_finding(
                "vulnerability",
                "CVE-2099-41001",
                "HIGH",
                package="bash",
                installed_version="5.2.37-2",
                fixed_version="99.0-1",
            ),
            verdict="fail",
            why="HIGH >= HIGH",
        ),
        Verdict(
            finding=_finding(
                "vulnerability",
                "CVE-2099-41002",
                "LOW",
                package="apt",
                installed_version="3.0.3",
                fixed_version="99",
            ),
            verdict="pass",
            why="below HIGH",
        ),
        Verdict(
            finding=_finding(
                "secret",
                "vnc-password",
                "CRITICAL",
                location="/opt/app/vnc.env:1 in layer 2/3 (COPY)",
            ),
            verdict="fail",
            why="secrets always fail",
        ),
        Verdict(
            finding=_finding("misconfiguration", "DS-0026", "LOW", target="sha256:ab"),
            verdict="overridden",
            why="the image config has a HEALTHCHECK (CMD true)",
        ),
    )
    result = ScanResult(
        target=TARGET,
        reference="mt5forge/terminal:slim",
        image_id="sha256:" + "1" * 64,
        verdicts=verdicts,
        database=db,
        problems=("secret vnc-password ...",),
        reports={"json": str(tmp_path / "scan" / "trivy.json")},
        record=tmp_path / "r.json",
    )
    report = scan_report([result])
    rows = {r[1]: r for r in report.rows}
    assert set(rows) == {"CVE-2099-41001", "vnc-password", "DS-0026"}  # passes are hidden
    assert rows["CVE-2099-41001"][2:7] == ("bash", "5.2.37-2", "99.0-1", "HIGH", "fail")
    assert rows["vnc-password"][2] == "/opt/app/vnc.env:1 in layer 2/3 (COPY)"
    assert rows["DS-0026"][2] == "image config" and rows["DS-0026"][6] == "overridden"
    text = render(report, "table", width=220)
    for piece in (
        "CVE-2099-41001",
        "vnc-password",
        "DS-0026",
        "overridden",
        "secrets always fail",
        "terminal:slim: FAILED (2 fail, 1 overridden, 1 pass)",
        "FIXTURE database (made here, no real advisories) 240 h old, too old but exempt: "
        "the fixture profile",
        "1 finding(s) below the policy's bar not shown",
    ):
        assert piece in text, piece
    data = json.loads(render(report, "json"))["data"][0]
    assert data["passed"] is False and data["database"]["exempt"].startswith("the fixture")
    assert [f["verdict"] for f in data["findings"]] == ["fail", "pass", "fail", "overridden"]
