"""The verify report: one row per image, every failed check under it, the slowest checks."""

from __future__ import annotations

from mt5forge.report import Report, columns
from mt5forge.stages.verify import VerifyResult, record_payload


def verify_report(result: VerifyResult, *, slowest: int = 5) -> Report:
    rows = []
    notes = []
    for v in result.verdicts:
        counts = {s: sum(o.status == s for o in v.outcomes)
                  for s in ("passed", "failed", "not applicable")}  # fmt: skip
        rows.append((
            v.image, v.variant, v.image_id[7:19], v.terminal, str(counts["passed"]),
            str(counts["failed"]), str(counts["not applicable"]), f"{v.seconds:.1f}",
            "PASS" if v.passed else "FAIL",
        ))  # fmt: skip
        notes += [f"{v.image}:{v.variant} {o.name} FAILED: {o.detail}" for o in v.failed]
    timed = sorted(((o.seconds, f"{v.image}:{v.variant} {o.name}") for v in result.verdicts
                    for o in v.outcomes), reverse=True)[:slowest]  # fmt: skip
    if timed:
        notes.append("Slowest checks: " + ", ".join(f"{n} {s:.1f} s" for s, n in timed) + ".")
    notes.append(
        f"JUnit XML: {result.junit}; verify records: " + ", ".join(map(str, result.records))
    )
    return Report(
        title="Verify",
        columns=columns(
            "image",
            "variant",
            "id",
            "terminal",
            "passed",
            "failed",
            "n/a",
            "seconds",
            "result",
            right=("passed", "failed", "n/a", "seconds"),
            no_wrap=("id",),
        ),
        rows=tuple(rows),
        notes=tuple(notes),
        data={
            "passed": result.passed,
            "junit": str(result.junit),
            "images": [
                {**record_payload(v), "image_id": v.image_id, "passed": v.passed}
                for v in result.verdicts
            ],
        },
    )
