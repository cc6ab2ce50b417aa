"""The scan policy: parsing refuses what it cannot trust, and each verdict rule holds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mt5forge.errors import ConfigError
from mt5forge.scanpolicy import judge, load_policy, openvex
from mt5forge.tools.trivy import Finding

TODAY = dt.date(2026, 12, 2)
HEALTHY = {"Healthcheck": {"Test": ["CMD", "mt5bot-health"]}}


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "scan-policy.toml"
    p.write_text(text)
    return p


def vuln(id: str, severity: str, fixed: str = "1.1", package: str = "libfoo1") -> Finding:
    return Finding(
        kind="vulnerability",
        id=id,
        severity=severity,
        target="img (debian 13)",
        title="t",
        package=package,
        installed_version="1.0",
        fixed_version=fixed,
        purl=f"pkg:deb/debian/{package}@1.0?arch=amd64",
    )


def test_the_repository_policy_loads() -> None:
    policy = load_policy(Path(__file__).resolve().parents[2] / "scan-policy.toml")
    assert policy.fail_on == "HIGH" and policy.max_db_age_hours > 0


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('fail_on = "HIGH"\nfail_onn = "LOW"\n', "unknown key 'fail_onn'"),
        ('fail_on = "SEVERE"\n', "not a severity"),
        ("[[ignore]]\nid = 'CVE-1'\nexpires = 2027-01-01\n", "missing key"),
        ("[[ignore]]\nid = 'CVE-1'\nreason = 'ok'\nexpires = 2027-01-01\n", "needs a reason"),
        (
            "[[ignore]]\nid = 'CVE-1'\nreason = 'a real reason, long enough'\nexpires = 'soon'\n",
            "not a date",
        ),
        (
            "[[ignore]]\nid = 'CVE-1'\nreason = 'a real reason, long enough'\n"
            "expires = 2027-01-01\nuntil = 1\n",
            "unknown key 'until'",
        ),
        ("max_db_age_hours = 0\n", "positive"),
        ("fail_on = [\n", "not valid TOML"),
    ],
)
def test_bad_policies_are_refused_with_the_reason(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_policy(_write(tmp_path, text))


def test_missing_policy_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No scan policy"):
        load_policy(tmp_path / "nope.toml")


def test_verdicts_follow_the_bar_fixes_ignores_and_expiry(tmp_path: Path) -> None:
    policy = load_policy(
        _write(
            tmp_path,
            'fail_on = "HIGH"\nonly_fixed = true\n'
            "[[ignore]]\nid = 'CVE-3'\npackage = 'glibc'\n"
            "reason = 'not reachable from the bot, see the review'\nexpires = 2027-01-01\n"
            "[[ignore]]\nid = 'CVE-4'\nreason = 'accepted until the last release only'\n"
            "expires = 2026-12-01\n",
        )
    )
    findings = [
        vuln("CVE-1", "MEDIUM"),
        vuln("CVE-2", "CRITICAL"),
        vuln("CVE-3", "HIGH", package="libc6"),
        vuln("CVE-4", "HIGH"),
        vuln("CVE-5", "HIGH", fixed=""),
        vuln("CVE-3", "HIGH", package="openssl"),
    ]
    got = judge(findings, policy, image_config=HEALTHY, today=TODAY, sources={"libc6": "glibc"})
    assert [v.verdict for v in got] == ["pass", "fail", "ignored", "expired", "no-fix", "fail"]
    assert "expired on 2026-12-01" in got[3].why
    assert [v.failed for v in got] == [False, True, False, True, False, True]


def test_secrets_always_fail_even_when_an_ignore_names_them(tmp_path: Path) -> None:
    policy = load_policy(
        _write(
            tmp_path,
            "[[ignore]]\nid = 'mt5-password'\nreason = 'trying to wave a secret through'\n"
            "expires = 2099-01-01\n",
        )
    )
    secret = Finding(kind="secret", id="mt5-password", severity="LOW", target="/x", title="t")
    (v,) = judge([secret], policy, image_config=HEALTHY, today=TODAY)
    assert v.verdict == "fail" and v.failed


def test_healthcheck_finding_is_overridden_only_when_the_config_has_one(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, 'fail_on = "LOW"\n'))
    ds26 = Finding(
        kind="misconfiguration", id="DS-0026", severity="LOW", target="Dockerfile", title="t"
    )
    (with_health,) = judge([ds26], policy, image_config=HEALTHY, today=TODAY)
    assert with_health.verdict == "overridden" and "mt5bot-health" in with_health.why
    (none,) = judge([ds26], policy, image_config={}, today=TODAY)
    assert none.verdict == "fail"
    disabled = {"Healthcheck": {"Test": ["NONE"]}}
    (off,) = judge([ds26], policy, image_config=disabled, today=TODAY)
    assert off.verdict == "fail"


def test_openvex_states_only_accepted_vulnerabilities(tmp_path: Path) -> None:
    policy = load_policy(
        _write(
            tmp_path,
            "[[ignore]]\nid = 'CVE-9'\nreason = 'the vulnerable code path is never loaded'\n"
            "expires = 2027-06-01\n",
        )
    )
    verdicts = judge(
        [vuln("CVE-9", "HIGH"), vuln("CVE-8", "HIGH")],
        policy,
        image_config=HEALTHY,
        today=TODAY,
    )
    doc = openvex(verdicts, document_id="urn:x", timestamp=dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
    assert doc["@context"].startswith("https://openvex.dev/ns/")
    (stmt,) = doc["statements"]
    assert stmt["vulnerability"]["name"] == "CVE-9"
    assert stmt["products"] == [{"@id": "pkg:deb/debian/libfoo1@1.0?arch=amd64"}]
    assert stmt["status"] == "not_affected" and "never loaded" in stmt["impact_statement"]
