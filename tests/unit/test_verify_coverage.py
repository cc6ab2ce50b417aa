"""The peers' checklists, as issue 12 names them: every dockle checkpoint and every
container-structure-test kind is covered by a check's ``covers`` or has its reason in
``NOT_APPLICABLE``, never both, never neither; and docs/verify.md's coverage table says what
the code says."""

from __future__ import annotations

import re
from pathlib import Path

from mt5forge.verify.checks import CHECK_NAMES, CHECKS, NOT_APPLICABLE

REPO = Path(__file__).resolve().parents[2]

#: Issue 12, "Coverage of the peers' checklists".
DOCKLE = (
    "CIS-DI-0001", "CIS-DI-0005", "CIS-DI-0006", "CIS-DI-0007", "CIS-DI-0008", "CIS-DI-0009",
    "CIS-DI-0010", "DKL-DI-0001", "DKL-DI-0002", "DKL-DI-0003", "DKL-DI-0005", "DKL-DI-0006",
    "DKL-LI-0001", "DKL-LI-0002", "DKL-LI-0003",
)  # fmt: skip
CST = ("cst:command", "cst:fileExistence", "cst:fileContent", "cst:metadata", "cst:license")
#: How docs/verify.md names the structure-test kinds.
CST_DOCS = {"command": "cst:command", "file existence": "cst:fileExistence",
            "file content": "cst:fileContent", "metadata": "cst:metadata",
            "license": "cst:license"}  # fmt: skip


def covered() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for check in CHECKS:
        for item in check.covers:
            out.setdefault(item, set()).add(check.name)
    return out


def test_every_checkpoint_and_kind_is_covered_or_has_a_reason() -> None:
    by = covered()
    assert set(NOT_APPLICABLE) <= set(DOCKLE + CST), "a reason for an item nobody asked about"
    both = sorted(set(by) & set(NOT_APPLICABLE))
    assert not both, f"covered and not applicable at once: {both}"
    neither = [i for i in DOCKLE + CST if i not in by and i not in NOT_APPLICABLE]
    assert not neither, f"neither covered by a check nor given a reason: {neither}"
    unknown = sorted(set(by) - set(DOCKLE + CST))
    assert not unknown, f"checks cover items of no checklist (a typo?): {unknown}"
    for item, reason in NOT_APPLICABLE.items():
        assert len(reason.split()) >= 8, f"{item}: {reason!r} is not a reason"


def test_content_trust_is_the_one_not_applicable_and_says_why() -> None:
    assert set(NOT_APPLICABLE) == {"CIS-DI-0005"}
    assert "Content Trust" in NOT_APPLICABLE["CIS-DI-0005"]
    assert "sign stage" in NOT_APPLICABLE["CIS-DI-0005"]


def _docs_rows() -> dict[str, tuple[set[str], str]]:
    """docs/verify.md's coverage table: item -> (checks named in "covered by", the row)."""
    text = (REPO / "docs" / "verify.md").read_text(encoding="utf-8")
    section = text.split("## Coverage of dockle's checkpoints", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[set[str], str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("checkpoint / kind", "---"):
            continue
        m = re.match(r"(CIS-DI-\d{4}|DKL-(?:DI|LI)-\d{4})\b", cells[0])
        if m:
            item = m[1]
        else:
            kind = cells[0].removeprefix("CST ").strip()
            assert kind in CST_DOCS, f"docs/verify.md names an unknown kind: {cells[0]!r}"
            item = CST_DOCS[kind]
        named = {n for n in re.findall(r"`([a-z_.]+)`", cells[1]) if n in CHECK_NAMES}
        rows[item] = (named, line)
    return rows


def test_the_docs_table_says_what_the_code_says() -> None:
    rows = _docs_rows()
    assert set(rows) == set(DOCKLE + CST)
    by = covered()
    for item, (named, line) in rows.items():
        if item in NOT_APPLICABLE:
            assert not named and "not applicable" in line, line
            assert NOT_APPLICABLE[item] in line, f"docs/verify.md gives another reason: {line}"
        else:
            assert named == by[item], f"{item}: docs name {sorted(named)}, code {sorted(by[item])}"
