"""The verify gate on the five images of the fixture profile: one test per check, each failing
with what the check found and where. Every check runs once per image (session fixture: one
docker save, one container, one helper); the tests below read its outcome."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from mt5forge.records import VerifyRecord, read_record
from mt5forge.stages.verify import VerifyResult, requests_from_builds, verify_all
from mt5forge.verify.checks import CHECK_NAMES
from mt5forge.verify.compose import load_service
from mt5forge.verify.cst import run_cst, write_config
from mt5forge.verify.expectations import expectation_for, load
from mt5forge.verify.live import Canary
from mt5forge.verify.run import ImageVerdict

pytestmark = [pytest.mark.infra, pytest.mark.slow]

TARGETS = ["terminal:slim", "terminal:secure", "bot:slim", "bot:secure", "terminal-sim:slim"]


@pytest.fixture(scope="session")
def verified(built: Any, verify_canary: Canary) -> VerifyResult:
    """`invoke verify`'s core on every image `built` made, as the verify stage asks for them:
    each by its build's image id, judged by its tag; records and JUnit XML included."""
    requests = requests_from_builds(built.first.values())
    assert {str(r.target): r.image_id for r in requests} == {
        k: b.image_id for k, b in built.first.items()
    }
    return verify_all(built.settings, requests, fail=False, canary=verify_canary)


@pytest.fixture(params=TARGETS)
def verdict(request: pytest.FixtureRequest, verified: VerifyResult) -> ImageVerdict:
    image, variant = request.param.split(":")
    for v in verified.verdicts:
        if (v.image, v.variant) == (image, variant):
            return v
    raise AssertionError(f"{request.param} was not verified")


#: Where a check does not apply, and why (a fragment of its reason); everywhere else it must
#: pass. A check that silently turns "not applicable" on another image fails its test.
NOT_APPLICABLE = {
    "files.licenses": {"bot:secure": "/usr/share/doc is stripped"},
    "bridge.isolation": {t: "a bot serves no bridge" for t in ("bot:slim", "bot:secure")},
    "bridge.tls": {t: "a bot serves no bridge" for t in ("bot:slim", "bot:secure")},
    "hardening": {t: "slim variants run as their compose file runs them, unhardened"
                  for t in ("terminal:slim", "bot:slim", "terminal-sim:slim")},
    "pair.terminal": {t: "the terminal image's own bridge is exercised by its pair check"
                      for t in ("terminal:slim", "terminal:secure", "terminal-sim:slim")},
}  # fmt: skip
#: What the real MetaTrader5 package answers through the fixture terminal's Wine bridge:
#: initialize() returns False and last_error() is this (no terminal64.exe to attach to).
FIXTURE_ANSWER = "(-10003) IPC initialize failed, MetaTrader 5 x64 not found"


def expected(v: ImageVerdict, name: str) -> str:
    """The check's outcome on this image must be the expected one: "not applicable" where
    NOT_APPLICABLE says, with its reason, and "passed" everywhere else. Returns the detail."""
    o = v.outcome(name)
    target = f"{v.image}:{v.variant}"
    reason = NOT_APPLICABLE.get(name, {}).get(target)
    want = "not applicable" if reason is not None else "passed"
    assert o.status == want, f"{target} {name}: {o.status}, expected {want}: {o.detail}"
    if reason is not None:
        assert reason in o.detail, f"{target} {name}: another reason: {o.detail}"
    return o.detail


def test_the_expected_outcomes_name_real_checks_and_images() -> None:
    assert set(NOT_APPLICABLE) <= set(CHECK_NAMES)
    assert {t for by in NOT_APPLICABLE.values() for t in by} <= set(TARGETS)


# One test per check: each passes on every image, or is not applicable where NOT_APPLICABLE
# says so, for the reason it gives.


def test_user_config(verdict: ImageVerdict) -> None:
    expected(verdict, "user.config")


def test_user_processes(verdict: ImageVerdict) -> None:
    expected(verdict, "user.processes")


def test_no_sudo(verdict: ImageVerdict) -> None:
    expected(verdict, "user.no_sudo")


def test_setuid_files(verdict: ImageVerdict) -> None:
    detail = expected(verdict, "files.setuid")
    if verdict.variant == "secure":
        assert detail.startswith("0 setuid")


def test_shell(verdict: ImageVerdict) -> None:
    detail = expected(verdict, "files.shell")
    if (verdict.image, verdict.variant) == ("bot", "secure"):
        assert detail == "no shell"


def test_writable_paths(verdict: ImageVerdict) -> None:
    expected(verdict, "files.writable")


def test_unnecessary_files(verdict: ImageVerdict) -> None:
    expected(verdict, "files.unnecessary")


def test_apt_caches(verdict: ImageVerdict) -> None:
    expected(verdict, "files.apt_caches")


def test_licenses(verdict: ImageVerdict) -> None:
    expected(verdict, "files.licenses")


def test_secrets_in_config(verdict: ImageVerdict) -> None:
    expected(verdict, "secrets.config")


def test_secrets_in_history(verdict: ImageVerdict) -> None:
    expected(verdict, "secrets.history")


def test_secrets_in_layers(verdict: ImageVerdict) -> None:
    expected(verdict, "secrets.layers")


def test_canary(verdict: ImageVerdict) -> None:
    expected(verdict, "secrets.canary")


def test_ports_exposed(verdict: ImageVerdict) -> None:
    expected(verdict, "ports.exposed")


def test_ports_listeners(verdict: ImageVerdict) -> None:
    expected(verdict, "ports.listeners")


def test_bridge_port_not_published(verdict: ImageVerdict) -> None:
    expected(verdict, "ports.not_published")


def test_bridge_isolation(verdict: ImageVerdict) -> None:
    expected(verdict, "bridge.isolation")


def test_bridge_tls(verdict: ImageVerdict) -> None:
    expected(verdict, "bridge.tls")


def test_health(verdict: ImageVerdict) -> None:
    expected(verdict, "health")


def test_hardening(verdict: ImageVerdict) -> None:
    detail = expected(verdict, "hardening")
    if verdict.variant == "secure":  # the engine runs here: its cgroups are ours to read
        assert "the kernel's cgroup agrees on 3 limits" in detail


def test_bot_secure_runs_as_its_compose_service(verified: VerifyResult, built: Any) -> None:
    """bot:secure runs as compose/docker-compose.secure.yml runs it: its user (not the
    image's 1000, so it cannot rewrite the terminal's audit trail), no swap, a volume on /logs
    and its state directory in /tmp; every process has the compose user's uid:gid."""
    v = next(v for v in verified.verdicts if (v.image, v.variant) == ("bot", "secure"))
    svc = load_service(built.settings.root, "bot")
    assert svc.user == "1001:1000" and svc.memswap_limit == svc.mem_limit
    procs = v.outcome("user.processes")
    assert procs.status == "passed", procs.detail
    assert "all 1001:1000 (the bot service's user" in procs.detail
    hard = v.outcome("hardening")
    assert hard.status == "passed", hard.detail
    assert "and no swap" in hard.detail and "user 1001:1000" in hard.detail
    assert "volumes /config /logs" in hard.detail and "MT5BOT_STATE_DIR" in hard.detail
    # The image's own user is still the configured one: compose, not the image, changes it.
    assert v.outcome("user.config").detail == (
        f"User {built.settings.runtime.uid}:{built.settings.runtime.gid}"
    )


def test_verify_runs_records_and_pairs_this_runs_builds_by_id(
    verified: VerifyResult, built: Any
) -> None:
    """Each image is read, run and recorded by its build's id and judged by its tag; its
    partners are this run's builds, by id, not whatever the tags point at now."""
    prefix = built.settings.images.prefix
    ids = {k: b.image_id for k, b in built.first.items()}
    for v in verified.verdicts:
        key = f"{v.image}:{v.variant}"
        assert v.image_id == ids[key]
        assert v.reference == f"{prefix}/{key}"
        assert f"tag {key}" in v.outcome("metadata").detail
        partners = dict(v.partners)
        if v.image == "bot":
            assert partners == {"terminal-sim:slim": ids["terminal-sim:slim"],
                                "terminal:slim": ids["terminal:slim"]}  # fmt: skip
            record = read_record(built.settings.run_dir, "verify", v.image_id)
            assert record["partners"] == partners
        if v.image == "terminal" and v.outcome("pair").status == "passed":
            assert partners == {"bot:secure": ids["bot:secure"]}


def test_pair(verdict: ImageVerdict) -> None:
    detail = expected(verdict, "pair")
    if verdict.image == "bot":
        assert detail.startswith("simulator:") and "demo order placed and closed" in detail
    if verdict.image == "terminal":
        assert detail == f"fixture terminal: the MetaTrader5 package answered {FIXTURE_ANSWER}"


def test_pair_with_the_terminal_image(verdict: ImageVerdict) -> None:
    detail = expected(verdict, "pair.terminal")
    if verdict.image == "bot":
        assert detail == f"fixture terminal: the MetaTrader5 package answered {FIXTURE_ANSWER}"


def test_accounts(verdict: ImageVerdict) -> None:
    expected(verdict, "accounts")


def test_history(verdict: ImageVerdict) -> None:
    expected(verdict, "history")


def test_metadata(verdict: ImageVerdict) -> None:
    expected(verdict, "metadata")


def test_every_check_has_a_test() -> None:
    tested = {
        "user.config", "user.processes", "user.no_sudo", "files.setuid", "files.shell",
        "files.writable", "files.unnecessary", "files.apt_caches", "files.licenses",
        "secrets.config", "secrets.history", "secrets.layers", "secrets.canary", "ports.exposed",
        "ports.listeners", "ports.not_published", "bridge.isolation", "bridge.tls", "health",
        "hardening", "pair", "pair.terminal", "accounts", "history", "metadata",
    }  # fmt: skip
    assert set(CHECK_NAMES) == tested


def test_record_and_junit_name_every_check_and_the_terminal(
    verified: VerifyResult, built: Any, verify_canary: Canary
) -> None:
    assert verified.passed, [
        (v.image, v.variant, [o.name for o in v.failed]) for v in verified.verdicts
    ]
    suites = ET.parse(verified.junit).getroot()  # noqa: S314  # our own file
    for v in verified.verdicts:
        record = read_record(built.settings.run_dir, "verify", v.image_id)
        assert isinstance(record, VerifyRecord) and record.passed
        assert [c["name"] for c in record["checks"]] == list(CHECK_NAMES)
        want = "simulator" if v.image != "terminal" else "fixture terminal"
        assert record.terminal == want
        suite = suites.find(f"testsuite[@name='verify {v.image}:{v.variant}']")
        assert suite is not None
        assert {p.get("name"): p.get("value") for p in suite.iter("property")}["image_id"] == (
            v.image_id
        )
        assert [c.get("name") for c in suite.iter("testcase")] == list(CHECK_NAMES)
        assert record.path is not None
        own = ET.parse(record.path.with_suffix(".xml")).getroot()  # noqa: S314  # ours
        assert [c.get("name") for c in own.iter("testcase")] == list(CHECK_NAMES)
        text = record.path.read_text()
        assert json.loads(text)["image_id"] == v.image_id
        assert not [c for c in verify_canary.secrets() if c in text], "a canary is in the record"
    junit = verified.junit.read_text()
    assert not [c for c in verify_canary.secrets() if c in junit], "a canary is in the JUnit XML"


def test_container_structure_test_agrees_on_bot_slim(
    verified: VerifyResult, built: Any, tmp_path: Path
) -> None:
    """Google's container-structure-test, with a config generated from the same expectations,
    passes the image verify passed: two tools, one answer."""
    settings = built.settings
    e = expectation_for(load(settings.root / "build"), "bot", "slim")
    config = write_config(tmp_path / "cst.yaml", e, settings.runtime.uid, settings.runtime.gid)
    results = run_cst(f"{settings.images.prefix}/bot:slim", config)
    kinds = {r.name.split(":")[0] for r in results}
    assert kinds >= {"Command Test", "File Existence Test", "File Content Test", "Metadata Test"}
    assert [r for r in results if not r.passed] == []
    ours = next(v for v in verified.verdicts if (v.image, v.variant) == ("bot", "slim"))
    for name in ("user.config", "user.processes", "user.no_sudo", "files.shell", "ports.exposed"):
        assert ours.outcome(name).status == "passed"
