"""The release report: one row per image (id, digest, tags, gates, signatures), and the JSON
form that ``.github/workflows/release.yml`` reads (``data[i]["digest"]`` as the reference cosign
signs keyless, ``data[i]["image_id"]`` to find the provenance statement)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from mt5forge.images import Target
from mt5forge.report import render
from mt5forge.report.publish import release_report
from mt5forge.sigcheck import Check
from mt5forge.stages.push import PushResult
from mt5forge.stages.sign import SignResult

REPO = Path(__file__).resolve().parents[2]
REGISTRY = "127.0.0.1:5999/mt5forge"
IDS = {"bot:slim": "sha256:" + "a1" * 32, "terminal:secure": "sha256:" + "b2" * 32}
DIGESTS = {"bot:slim": "sha256:" + "c3" * 32, "terminal:secure": "sha256:" + "d4" * 32}


def _pushed(name: str) -> PushResult:
    image, variant = name.split(":")
    return PushResult(
        target=Target(image=image, variant=variant),
        reference=f"mt5forge/{name}",
        image_id=IDS[name],
        repository=f"{REGISTRY}/{image}",
        digest=DIGESTS[name],
        tags=(f"{variant}-1.0", variant, "latest"),
        profile="fixture",
        record=Path("/nonexistent/push.json"),
    )


def _signed(p: PushResult) -> SignResult:
    return SignResult(
        target=p.target,
        image_id=p.image_id,
        repository=p.repository,
        digest=p.digest,
        gpg=("sig-1", "sig-2", "sig-3"),
        cosign=("signature", "https://cyclonedx.org/bom", "https://slsa.dev/provenance/v1"),
        record=Path("/nonexistent/sign.json"),
    )


def _report() -> tuple[list[PushResult], str, str]:
    pushed = [_pushed("bot:slim"), _pushed("terminal:secure")]
    # bot:slim is signed and every verifier passed; terminal:secure was never signed.
    signed = [_signed(pushed[0])]
    gates = {IDS["bot:slim"]: "sbom pass, scan pass, verify pass"}
    checks = {
        IDS["bot:slim"]: (
            Check(format="gpg", verifier="ours", passed=True, detail="1"),
            Check(format="cosign", verifier="cosign verify", passed=False, detail="refused"),
        )
    }
    report = release_report(pushed, signed, gates, checks)
    return pushed, render(report, "table", width=400), render(report, "json")


def test_the_table_has_one_row_per_image_with_its_columns() -> None:
    pushed = [_pushed("bot:slim"), _pushed("terminal:secure")]
    report = release_report(pushed, [_signed(pushed[0])], {}, {})
    assert [c.name for c in report.columns] == [
        "image",
        "id",
        "digest",
        "tags",
        "gates",
        "signatures",
    ]
    assert [r[0] for r in report.rows] == ["bot:slim", "terminal:secure"]
    bot, terminal = report.rows
    assert bot[1] == IDS["bot:slim"][7:19]
    assert bot[2] == f"{REGISTRY}/bot@{DIGESTS['bot:slim']}"
    assert bot[3] == "slim-1.0, slim, latest"
    assert bot[4] == "?"  # no gates known for it: never shown as passed
    assert terminal[5] == "NOT SIGNED"


def test_the_table_counts_signatures_and_verifier_checks() -> None:
    _, table, _ = _report()
    assert "gpg 3, cosign 3; 1/2 verifier checks" in table
    assert "sbom pass, scan pass, verify pass" in table
    assert "NOT SIGNED" in table


def test_json_carries_digest_and_image_id_for_the_release_workflow() -> None:
    pushed, _, text = _report()
    data = json.loads(text)["data"]
    assert [row["image"] for row in data] == ["bot:slim", "terminal:secure"]
    for row, p in zip(data, pushed, strict=True):
        # The reference cosign signs: repository@digest, never a bare digest or a tag.
        assert row["digest"] == f"{p.repository}@{p.digest}"
        assert row["image_id"] == p.image_id
        assert row["tags"] == list(p.tags)
    assert data[1]["signatures"] == "NOT SIGNED"


def _workflow_script() -> str:
    """The Python that release.yml runs on ``release.json``, as the workflow holds it."""
    doc = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())
    runs = [
        s["run"] for s in doc["jobs"]["release"]["steps"] if 'release.json"))' in s.get("run", "")
    ]
    assert len(runs) == 1, "release.yml no longer reads release.json in one step"
    m = re.search(r"<<'PY'[^\n]*\n(.*?)\n\s*PY\n", runs[0], re.S)
    assert m, runs[0]
    return m.group(1)


def test_the_release_workflow_reads_what_the_report_writes(tmp_path: Path) -> None:
    """The workflow's own snippet, run on the report's JSON, gives one ``ref id`` line per
    image: the pinned reference and the hex id of ``runs/attest/<hex>/``."""
    pushed, _, text = _report()
    (tmp_path / "release.json").write_text(text)
    out = subprocess.run(
        [sys.executable, "-c", _workflow_script()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split("\n")
    assert out[:-1] == [f"{p.pinned} {p.image_id.removeprefix('sha256:')}" for p in pushed]
