"""The scan policy (``scan-policy.toml``): what makes the scan gate fail, decided by us.

Trivy runs with ``--exit-code 0`` and reports; this module judges each finding:

- a vulnerability or misconfiguration at or above ``fail_on`` fails, unless ``only_fixed`` is on
  and no fixed version exists, or an ``[[ignore]]`` entry covers it;
- an ignore entry needs an ``id``, a ``reason`` and an ``expires`` date; past that date it no
  longer applies and the gate says the entry expired (an old excuse must be looked at again);
- a secret always fails: no ignore entry applies to one;
- the image config overrides what Trivy gets wrong about it, with the reason recorded (its
  "no HEALTHCHECK" check, DS-0026, fires on images built with a custom ``SHELL`` by the
  classic builder even when ``Config.Healthcheck`` is set).

Accepted ignores are also written as an OpenVEX document (:func:`openvex`) so Trivy itself,
re-run with ``--vex``, agrees with the verdicts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mt5forge.errors import ConfigError
from mt5forge.tomlmodel import build, did_you_mean
from mt5forge.tools.trivy import Finding

SEVERITIES = ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")
HEALTHCHECK_CHECKS = frozenset({"DS-0026", "DS026", "AVD-DS-0026"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Ignore:
    id: str
    """The finding's id (CVE id, misconfiguration check id)."""
    reason: str
    """Why it is accepted: read by whoever reviews the policy, written into the VEX."""
    expires: str
    """Date (``2027-01-31``) after which the entry no longer applies and fails the gate."""
    package: str = ""
    """Only for this package (binary or source name); empty: any package."""

    @property
    def expiry(self) -> dt.date:
        return dt.date.fromisoformat(self.expires)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Policy:
    fail_on: str = "HIGH"
    """Lowest severity that fails the gate: UNKNOWN, LOW, MEDIUM, HIGH or CRITICAL."""
    only_fixed: bool = False
    """Fail only on vulnerabilities with a fixed version available."""
    max_db_age_hours: int = 72
    """A vulnerability database older than this fails the gate (not on the fixture profile)."""
    secret_rules: str = "scan-secrets.yaml"  # noqa: S105 (a file name)
    """Trivy secret rules added to its built-in ones (``--secret-config``)."""
    ignore: tuple[Ignore, ...] = ()
    path: Path = Path()

    @property
    def bar(self) -> int:
        return SEVERITIES.index(self.fail_on)


def load_policy(path: Path) -> Policy:
    """Read and check ``path``: unknown keys, a bad severity, an ignore without reason or
    with a malformed date are errors naming the entry."""
    if not path.is_file():
        raise ConfigError(
            f"No scan policy at {path}.",
            hint="Create scan-policy.toml (see the README's scan section) or set [scan] policy.",
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    entries = raw.get("ignore", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: 'ignore' must be an array of tables ([[ignore]]).")
    fixed: list[Any] = []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("expires"), dt.date):
            entry = {**entry, "expires": entry["expires"].isoformat()}
        fixed.append(entry)
    policy: Policy = build(Policy, {**raw, "ignore": fixed}, str(path), skip=("path",))
    policy = dataclasses.replace(policy, path=path)
    if policy.fail_on not in SEVERITIES:
        raise ConfigError(
            f"{path}: fail_on = {policy.fail_on!r} is not a severity.",
            hint=did_you_mean(policy.fail_on, SEVERITIES),
        )
    if policy.max_db_age_hours <= 0:
        raise ConfigError(f"{path}: max_db_age_hours must be a positive number of hours.")
    for i, entry in enumerate(policy.ignore):
        where = f"{path}: ignore[{i}] ({entry.id or 'no id'})"
        if not entry.id.strip():
            raise ConfigError(f"{where}: an ignore entry needs an id.")
        if len(entry.reason.strip()) < 10:
            raise ConfigError(f"{where}: an ignore entry needs a reason (a sentence, not a word).")
        try:
            entry.expiry  # noqa: B018 (parse it now: a bad date is a config error)
        except ValueError:
            raise ConfigError(
                f"{where}: expires = {entry.expires!r} is not a date (YYYY-MM-DD)."
            ) from None
    return policy


@dataclasses.dataclass(frozen=True, kw_only=True)
class Verdict:
    finding: Finding
    verdict: str
    """``fail``, ``pass`` (below the bar), ``ignored`` (an entry applies), ``expired`` (an
    entry applied but expired: fails), ``no-fix`` (below the bar by ``only_fixed``) or
    ``overridden`` (the image config shows Trivy is wrong)."""
    why: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict in ("fail", "expired")


def _matches(entry: Ignore, f: Finding, sources: Mapping[str, str]) -> bool:
    if entry.id != f.id:
        return False
    return not entry.package or entry.package in (f.package, sources.get(f.package, ""))


def judge(
    findings: Iterable[Finding],
    policy: Policy,
    *,
    image_config: Mapping[str, Any],
    today: dt.date,
    sources: Mapping[str, str] | None = None,
) -> list[Verdict]:
    """One verdict per finding. ``sources`` maps binary package names to source packages (from
    the SBOM) so an ignore can name either."""
    src = sources or {}
    out: list[Verdict] = []
    health = (image_config.get("Healthcheck") or {}).get("Test") or []
    has_health = bool(health) and health[0] != "NONE"
    for f in findings:
        if f.kind == "secret":
            out.append(Verdict(finding=f, verdict="fail", why="secrets always fail"))
            continue
        if f.kind == "misconfiguration" and f.id in HEALTHCHECK_CHECKS and has_health:
            out.append(
                Verdict(
                    finding=f,
                    verdict="overridden",
                    why="the image config has a HEALTHCHECK ("
                    + " ".join(health)[:80]
                    + "); Trivy misses it on images built with a custom SHELL",
                )
            )
            continue
        severity = f.severity.upper() if f.severity.upper() in SEVERITIES else "UNKNOWN"
        entry = next((e for e in policy.ignore if _matches(e, f, src)), None)
        if entry is not None:
            if entry.expiry < today:
                out.append(
                    Verdict(
                        finding=f,
                        verdict="expired",
                        why=f"ignore entry expired on {entry.expires}: {entry.reason}",
                    )
                )
            else:
                out.append(
                    Verdict(
                        finding=f,
                        verdict="ignored",
                        why=f"until {entry.expires}: {entry.reason}",
                    )
                )
            continue
        if SEVERITIES.index(severity) < policy.bar:
            out.append(Verdict(finding=f, verdict="pass", why=f"below {policy.fail_on}"))
        elif f.kind == "vulnerability" and policy.only_fixed and not f.fixed_version:
            out.append(Verdict(finding=f, verdict="no-fix", why="no fixed version (only_fixed)"))
        else:
            out.append(Verdict(finding=f, verdict="fail", why=f"{severity} >= {policy.fail_on}"))
    return out


def openvex(
    verdicts: Sequence[Verdict], *, document_id: str, timestamp: dt.datetime
) -> dict[str, Any]:
    """An OpenVEX (v0.2.0) document stating every accepted vulnerability ``not_affected`` for
    the package it was found in, with the policy's reason as the impact statement."""
    statements = []
    for v in verdicts:
        f = v.finding
        if v.verdict != "ignored" or f.kind != "vulnerability" or not f.purl:
            continue
        statements.append(
            {
                "vulnerability": {"name": f.id},
                "products": [{"@id": f.purl}],
                "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
                "impact_statement": v.why,
            }
        )
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": document_id,
        "author": "mt5forge scan policy",
        "timestamp": timestamp.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "version": 1,
        "statements": statements,
    }


def dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
