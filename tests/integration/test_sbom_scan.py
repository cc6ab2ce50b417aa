"""The sbom and scan gates against the five real images, the real Trivy binary and real
CycloneDX validation. The vulnerability database is a fixture (made-up advisories, written at
test time by mt5forge.fixtures.trivydb) against packages really in the images."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import secrets
import string
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from mt5forge.config import Settings
from mt5forge.errors import ScanError
from mt5forge.fixtures.trivydb import Advisory, write_db
from mt5forge.images import Target
from mt5forge.manifest import load_manifests
from mt5forge.records import read_record, require
from mt5forge.scanpolicy import load_policy
from mt5forge.stages import run_stages, select
from mt5forge.stages.build import BuildResult
from mt5forge.stages.scan import ScanResult, database, scan_all
from mt5forge.tools import trivy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAKE_CVE = "CVE-2099-41001"
PYTHON_URL = "https://www.python.org/ftp/python/3.12.9/python-3.12.9-embed-amd64.zip"
NOW = dt.datetime.now(dt.UTC)
REPO_RULES = Path(__file__).resolve().parents[2] / "scan-secrets.yaml"


@pytest.fixture(scope="module")
def sboms(built: Any) -> dict[str, Any]:
    """The sbom stage over every built image, as `invoke sbom` runs it (given the earlier
    stages' results of the session's run)."""
    results = run_stages(built.settings, select(["sbom"]), given=built.results)
    return {str(r.target): r for r in results["sbom"]}


def _policy(tmp_path: Path, ignores: str = "", extra: str = "") -> Path:
    (tmp_path / "scan-secrets.yaml").write_text(REPO_RULES.read_text())
    path = tmp_path / "scan-policy.toml"
    path.write_text(f'fail_on = "HIGH"\n{extra}\n{ignores}\n')
    return path


def _settings_with_db(built: Any, db_root: Path, run_dir: Path) -> Settings:
    """The session's settings with this database, and a run directory of the test's own: the
    failing scan records written here must not land beside the session's passing ones, which
    other tests (push) read for the same image ids."""
    return dataclasses.replace(
        built.settings,
        scan=dataclasses.replace(built.settings.scan, db_dir=str(db_root)),
        paths=dataclasses.replace(built.settings.paths, run_dir=str(run_dir)),
    )


@pytest.fixture(scope="module")
def fake_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fixture database with one made-up HIGH advisory against bash's source package (bash
    is in every image) and a LOW one against apt."""
    root = tmp_path_factory.mktemp("trivy-db")
    write_db(
        root,
        [
            Advisory(id=FAKE_CVE, source_package="bash", fixed_version="99.0-1"),
            Advisory(id="CVE-2099-41002", source_package="apt", fixed_version="99", severity="LOW"),
        ],
    )
    return root


def test_every_sbom_validates_and_carries_debian_python_and_artifacts(
    built: Any, sboms: dict[str, Any]
) -> None:
    assert set(sboms) == set(built.first)
    for name, r in sboms.items():
        assert r.passed, r.problems
        doc = json.loads(r.path.read_text())
        assert doc["specVersion"] == "1.6"
        purls = [c.get("purl", "") for c in doc["components"]]
        assert sum(p.startswith("pkg:deb/debian/") for p in purls) > 50, name
        root = doc["metadata"]["component"]
        assert root["type"] == "container" and root["version"] == r.image_id
        props = {p["name"]: p["value"] for p in root.get("properties", [])}
        assert props["mt5forge:variant"] == r.target.variant
        # The base image the image was built FROM, by the stable tag and the engine's id.
        assert props["mt5forge:base-image"] == built.base.reference, name
        assert props["mt5forge:base-digest"] == built.base.image_id, name
        assert props["mt5forge:profile"] == "fixture"
        # Debian packages carry their source package (what Debian's advisories are keyed by),
        # as Trivy gives it: libc6 is built from glibc.
        debs = [c for c in doc["components"] if c.get("purl", "").startswith("pkg:deb/debian/")]
        src = {
            c["name"]: p["value"]
            for c in debs
            for p in c.get("properties", [])
            if p["name"] == "aquasecurity:trivy:SrcName"
        }
        assert set(src) == {c["name"] for c in debs}, name
        assert src["libc6"] == "glibc" and src["bash"] == "bash", name
        record = read_record(built.settings.run_dir, "sbom", r.image_id)
        assert record is not None and record.passed


def test_terminal_sbom_has_every_pinned_artifact_hash_and_the_windows_wheels(
    built: Any, sboms: dict[str, Any]
) -> None:
    fetched = {a.name: a for a in built.results["fetch"].artifacts}
    s = built.settings
    manifests = {m.name: m for m in load_manifests(s.path(s.fetch.manifests_dir))}
    for variant in ("slim", "secure"):
        doc = json.loads(sboms[f"terminal:{variant}"].path.read_text())
        comps = doc["components"]
        hashes = {h["content"] for c in comps for h in c.get("hashes", [])}
        for a in fetched.values():
            assert a.sha256 in hashes, f"{a.name} missing from terminal:{variant}'s SBOM"
        origins = {
            c["name"]: {p["name"]: p["value"] for p in c.get("properties", [])}
            for c in comps
            if c.get("purl", "").startswith("pkg:generic/")
        }
        assert origins["python-windows"]["mt5forge:origin"] == "real-from-PyPI"
        assert origins["mt5setup"]["mt5forge:origin"] == "fixture"
        # How each was verified (as the fetch stage did it) and where upstream has it; the
        # Windows CPython is marked as such, like the wheels in the same Wine prefix.
        for name, props in origins.items():
            assert props["mt5forge:verified-by"] == fetched[name].verified_by != "", name
            assert props["mt5forge:upstream-url"] == manifests[name].url, name
        assert origins["python-windows"]["mt5forge:upstream-url"] == PYTHON_URL
        assert origins["python-windows"]["mt5forge:platform"] == "win_amd64 (Wine prefix)"
        assert all(
            "mt5forge:platform" not in p for n, p in origins.items() if n != "python-windows"
        )
        dist = {
            c["name"]: [r["url"] for r in c.get("externalReferences", [])]
            for c in comps
            if c.get("purl", "").startswith("pkg:generic/")
        }
        assert dist["python-windows"] == [PYTHON_URL]
        wheels = {
            c["name"].lower(): c
            for c in comps
            if c.get("purl", "").startswith("pkg:pypi/")
            and any(p["value"].startswith("win_amd64") for p in c.get("properties", []))
        }
        assert {"metatrader5", "numpy", "rpyc"} <= set(wheels)
        sha256 = {h["content"] for h in wheels["metatrader5"]["hashes"] if h["alg"] == "SHA-256"}
        assert sha256 == {"b94b1f8f52087ae36dfac5f352a96f5d04fe308704d9515f82cf5d1470bc31d4"}
        # The summary counts wheels only, not the Windows CPython artifact.
        assert sboms[f"terminal:{variant}"].summary.windows_wheels == len(wheels)


def test_scan_fails_on_a_fixture_cve_naming_it(
    built: Any, sboms: dict[str, Any], fake_db: Path, tmp_path: Path
) -> None:
    b = built.first["bot:slim"]
    settings = _settings_with_db(built, fake_db, tmp_path / "run")
    with pytest.raises(ScanError) as info:
        scan_all(
            settings,
            built=[b],
            sboms=[sboms["bot:slim"]],
            policy_path=_policy(tmp_path),
        )
    assert FAKE_CVE in str(info.value) and "bash" in str(info.value)
    (result,) = info.value.results  # type: ignore[misc]
    assert isinstance(result, ScanResult) and not result.passed
    low = [v for v in result.verdicts if v.finding.id == "CVE-2099-41002"]
    assert low and all(v.verdict == "pass" for v in low)
    record = read_record(settings.run_dir, "scan", b.image_id)
    assert record is not None and not record.passed
    assert record["database"]["fixture"] is True
    sarif = json.loads(Path(result.reports["sarif"]).read_text())
    assert sarif["version"] == "2.1.0"


def test_ignore_with_future_expiry_passes_and_trivy_agrees_through_vex(
    built: Any, sboms: dict[str, Any], fake_db: Path, tmp_path: Path
) -> None:
    until = (NOW.date() + dt.timedelta(days=30)).isoformat()
    policy = _policy(
        tmp_path,
        f'[[ignore]]\nid = "{FAKE_CVE}"\npackage = "bash"\n'
        f'reason = "Made-up advisory for the test; bash is not run by the bot."\n'
        f"expires = {until}\n",
    )
    b = built.first["bot:slim"]
    settings = _settings_with_db(built, fake_db, tmp_path / "run")
    (result,) = scan_all(settings, built=[b], sboms=[sboms["bot:slim"]], policy_path=policy)
    assert result.passed
    ignored = [v for v in result.verdicts if v.verdict == "ignored"]
    assert {v.finding.id for v in ignored} == {FAKE_CVE}
    # Trivy itself, given the VEX the gate wrote, no longer reports the CVE.
    again = trivy.scan_image(
        b.image_id, scanners=("vuln",), cache_dir=fake_db, vex=(Path(result.reports["vex"]),)
    )
    assert FAKE_CVE not in {f.id for f in again.findings}
    without = trivy.scan_image(b.image_id, scanners=("vuln",), cache_dir=fake_db)
    assert FAKE_CVE in {f.id for f in without.findings}
    record = read_record(settings.run_dir, "scan", b.image_id)
    assert record is not None and record.passed and record["vex_agrees"] is True


def test_expired_ignore_fails_and_says_so(
    built: Any, sboms: dict[str, Any], fake_db: Path, tmp_path: Path
) -> None:
    policy = _policy(
        tmp_path,
        f'[[ignore]]\nid = "{FAKE_CVE}"\n'
        'reason = "Accepted once, for a while; the while is over."\nexpires = 2026-01-31\n',
    )
    with pytest.raises(ScanError, match="expired on 2026-01-31"):
        scan_all(
            _settings_with_db(built, fake_db, tmp_path / "run"),
            built=[built.first["terminal-sim:slim"]],
            sboms=[sboms["terminal-sim:slim"]],
            policy_path=policy,
        )


def test_an_old_database_fails_the_real_profile_only(built: Any, tmp_path: Path) -> None:
    root = tmp_path / "old-db"
    write_db(root, [], updated_at=NOW - dt.timedelta(days=10))
    settings = _settings_with_db(built, root, tmp_path / "run")
    policy = load_policy(_policy(tmp_path))
    real = database(settings, "upstream", policy, NOW)
    assert real.too_old and not real.exempt and real.age_hours > 230
    fixture = database(settings, "fixture", policy, NOW)
    assert fixture.too_old and "fixture" in fixture.exempt


def test_no_database_is_a_clear_error(built: Any, tmp_path: Path) -> None:
    settings = _settings_with_db(built, tmp_path / "empty", tmp_path / "run")
    with pytest.raises(ScanError, match="No Trivy vulnerability database"):
        database(settings, "upstream", load_policy(_policy(tmp_path)), NOW)


def _image(docker_client: Any, tag: str, files: dict[str, str]) -> Any:
    """An image built by the engine's classic builder (as docker-py builds) from ``files``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    image, _ = docker_client.images.build(fileobj=buf, custom_context=True, tag=tag, rm=True)
    return image


def _as_built(image: Any, tag: str, tmp_path: Path) -> BuildResult:
    """A build result for an image made by the test, as the scan stage is given one."""
    return BuildResult(
        target=Target(image="bot", variant="slim"),
        reference=tag,
        image_id=image.id,
        size=0,
        layers=0,
        seconds=0,
        steps=0,
        cached=0,
        record=tmp_path / "none",
        log_file=tmp_path / "none",
    )


def _random(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _leaky_image(docker_client: Any, base_ref: str, values: dict[str, str]) -> Any:
    """A private key, an MT5_PASSWORD line, a VNC password and the bridge's TLS key given
    inline, in one layer, all deleted in the next."""
    key_pem = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        + "\n".join(_random(string.ascii_letters + string.digits, 70) for _ in range(6))
        + "\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    return _image(
        docker_client,
        "mt5forge-test/leaky:1",
        {
            "Dockerfile": (
                f"FROM {base_ref}\nCOPY secrets/ /opt/app/\n"
                "RUN rm -rf /opt/app/id_ed25519 /opt/app/account.env /opt/app/vnc.env "
                "/opt/app/bridge.env\n"
                "USER 1000:1000\n"
                'HEALTHCHECK CMD ["true"]\n'
            ),
            "secrets/id_ed25519": key_pem,
            "secrets/account.env": f"MT5_LOGIN=51234567\nMT5_PASSWORD={values['mt5']}\n",
            "secrets/vnc.env": f"VNC_PASSWORD={values['vnc']}\n",
            "secrets/bridge.env": f"MT5_BRIDGE_TLS_KEY={values['tls']}\n",
        },
    )


def test_secrets_in_a_layer_deleted_later_fail_naming_the_layer(
    built: Any, docker_client: Any, tmp_path: Path
) -> None:
    """Real Trivy, with scan-secrets.yaml, through the scan gate: the custom MT5 password, VNC
    password and inline bridge TLS key rules (and the built-in private-key one) each fire on
    their file in the COPY layer the next layer deletes from, and no report or record carries
    a value."""
    values = {
        "mt5": "Tr4d3" + _random(string.ascii_letters, 12),
        "vnc": "Vnc" + _random(string.ascii_letters + string.digits, 12),
        "tls": _random(string.ascii_letters + string.digits + "+/", 64) + "==",
    }
    settings = dataclasses.replace(
        built.settings,
        paths=dataclasses.replace(built.settings.paths, run_dir=str(tmp_path / "run")),
    )
    image = _leaky_image(docker_client, built.base.reference, values)
    try:
        b = _as_built(image, "mt5forge-test/leaky:1", tmp_path)
        with pytest.raises(ScanError) as info:
            scan_all(settings, built=[b], policy_path=_policy(tmp_path))
        text = str(info.value)
        rule_ids = {r["id"] for r in yaml.safe_load(REPO_RULES.read_text())["rules"]}
        expected = {
            "mt5-password": "opt/app/account.env",
            "vnc-password": "opt/app/vnc.env",
            "mt5-bridge-tls-key": "opt/app/bridge.env",
            "private-key": "opt/app/id_ed25519",
        }
        assert {"mt5-password", "vnc-password", "mt5-bridge-tls-key"} <= rule_ids
        (result,) = info.value.results  # type: ignore[misc]
        for rule, path in expected.items():
            lines = [p for p in result.problems if p.startswith(f"secret {rule} ")]
            assert len(lines) == 1, (rule, result.problems)
            assert path in lines[0] and "layer 2/" in lines[0] and "COPY" in lines[0], lines
            assert rule in text and path in text
        # The report and the record name the secret, never carry it.
        record = read_record(settings.run_dir, "scan", image.id)
        assert record is not None
        for blob in (text, record.path.read_text(), Path(result.reports["json"]).read_text()):
            for value in values.values():
                assert value not in blob
        with pytest.raises(Exception, match="failed: scan"):
            require(settings.run_dir, image.id, ["scan"])
    finally:
        docker_client.images.remove(image.id, force=True)


_SMALL = 'USER 1000:1000\nHEALTHCHECK CMD ["true"]\n'
"""A clean tail: a non-root user and a healthcheck, so only what a test adds is found."""


def test_an_old_database_fails_the_gate_on_the_real_profile_and_is_recorded_on_the_fixture(
    built: Any, docker_client: Any, tmp_path: Path
) -> None:
    """The scan gate itself, not only database(): an image of the upstream profile fails on the
    age alone; one of the fixture profile passes, with the age and the exemption recorded."""
    root = tmp_path / "old-db"
    write_db(root, [], updated_at=NOW - dt.timedelta(days=10))
    settings = _settings_with_db(built, root, tmp_path / "run")
    policy = _policy(tmp_path)
    images = {
        profile: _image(
            docker_client,
            f"mt5forge-test/db-age:{profile}",
            {
                "Dockerfile": f"FROM {built.base.reference}\n"
                f"LABEL org.mt5forge.profile={profile}\n{_SMALL}"
            },
        )
        for profile in ("upstream", "fixture")
    }
    try:
        real = _as_built(images["upstream"], "mt5forge-test/db-age:upstream", tmp_path)
        with pytest.raises(ScanError, match=r"the vulnerability database is 2\d\d h old") as info:
            scan_all(settings, built=[real], policy_path=policy)
        (failed,) = info.value.results  # type: ignore[misc]
        assert len(failed.problems) == 1 and "older than the policy's 72 h" in failed.problems[0]
        assert failed.database.too_old and not failed.database.exempt
        record = read_record(settings.run_dir, "scan", real.image_id)
        assert record is not None and not record.passed

        fixture = _as_built(images["fixture"], "mt5forge-test/db-age:fixture", tmp_path)
        (passed,) = scan_all(settings, built=[fixture], policy_path=policy)
        assert passed.passed and passed.database.too_old
        record = read_record(settings.run_dir, "scan", fixture.image_id)
        assert record is not None and record.passed
        db = record["database"]
        assert db["too_old"] is True and "fixture profile" in db["exempt"]
        assert db["age_hours"] > 230 and db["updated_at"] == passed.database.updated_at
    finally:
        for image in images.values():
            docker_client.images.remove(image.id, force=True)


def test_trivys_missed_healthcheck_is_overridden_with_the_reason_recorded(
    built: Any, docker_client: Any, tmp_path: Path
) -> None:
    """Trivy 0.76 reports DS-0026 ("No HEALTHCHECK defined") on an image built by the classic
    builder with a custom SHELL, though its config has one; the same image without the SHELL
    line draws no DS-0026. The gate reads the config and records the override and why."""
    write_db(tmp_path / "db", [])
    settings = _settings_with_db(built, tmp_path / "db", tmp_path / "run")
    body = "RUN echo hello > /tmp/hello\n" + _SMALL
    shell = 'SHELL ["/bin/bash", "-o", "pipefail", "-c"]\n'
    tags = {"shell": "mt5forge-test/healthcheck:shell", "plain": "mt5forge-test/healthcheck:plain"}
    images = {
        kind: _image(
            docker_client,
            tag,
            {
                "Dockerfile": f"FROM {built.base.reference}\n"
                + (shell if kind == "shell" else "")
                + body
            },
        )
        for kind, tag in tags.items()
    }
    try:
        results = scan_all(
            settings,
            built=[_as_built(images[k], tags[k], tmp_path) for k in ("shell", "plain")],
            policy_path=_policy(tmp_path),
        )
        with_shell, plain = results
        health = [v for v in with_shell.verdicts if v.finding.id == "DS-0026"]
        assert [v.verdict for v in health] == ["overridden"], with_shell.verdicts
        assert "HEALTHCHECK (CMD true)" in health[0].why and "custom SHELL" in health[0].why
        assert with_shell.passed
        record = read_record(settings.run_dir, "scan", images["shell"].id)
        assert record is not None and record.passed
        (entry,) = [f for f in record["findings"] if f["id"] == "DS-0026"]
        assert entry["verdict"] == "overridden" and entry["why"] == health[0].why
        assert record["verdicts"].get("overridden") == 1
        assert "DS-0026" not in {v.finding.id for v in plain.verdicts}
    finally:
        for image in images.values():
            docker_client.images.remove(image.id, force=True)
