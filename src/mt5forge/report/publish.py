"""Reports of push, sign, verify-signature and release: where each image went and what
vouches for it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mt5forge.report import Report, columns
from mt5forge.sigcheck import Check
from mt5forge.stages.push import PushResult
from mt5forge.stages.sign import SignResult


def push_report(results: Sequence[PushResult]) -> Report:
    rows = tuple(
        (str(r.target), r.image_id[7:19], r.pinned, ", ".join(r.tags), r.profile or "?")
        for r in results
    )
    notes = []
    if any(r.profile != "upstream" for r in results):
        notes.append(
            "Images built from fixture artifacts (stand-ins made on this machine) went to a "
            "registry on 127.0.0.1 only."
        )
    return Report(
        title="Push (by digest, tags after)",
        columns=columns("image", "id", "pushed as", "tags", "profile", no_wrap=("pushed as",)),
        rows=rows,
        notes=tuple(notes),
        data=[
            {
                "image": str(r.target),
                "image_id": r.image_id,
                "repository": r.repository,
                "digest": r.digest,
                "tags": list(r.tags),
                "profile": r.profile,
            }
            for r in results
        ],
    )


def sign_report(results: Sequence[SignResult], *, store: str, trust: str) -> Report:
    rows = tuple(
        (
            str(r.target),
            r.pinned,
            f"{len(r.gpg)} simple signature(s)",
            "signature + " + ", ".join(k.rsplit("/", 2)[-2] for k in r.cosign[1:]),
        )
        for r in results
    )
    return Report(
        title="Sign",
        columns=columns("image", "digest", "GPG", "cosign", no_wrap=("digest",)),
        rows=rows,
        notes=(f"Lookaside store: {store}; policy.json + registries.d: {trust}.",),
        data=[
            {
                "image": str(r.target),
                "repository": r.repository,
                "digest": r.digest,
                "gpg": list(r.gpg),
                "cosign": list(r.cosign),
            }
            for r in results
        ],
    )


def checks_report(ref: str, checks: Sequence[Check]) -> Report:
    return Report(
        title=f"Signatures of {ref}",
        columns=columns("format", "verifier", "result", "detail"),
        rows=tuple(
            (c.format, c.verifier, "PASS" if c.passed else "FAIL", c.detail) for c in checks
        ),
        data=[
            {"format": c.format, "verifier": c.verifier, "passed": c.passed, "detail": c.detail}
            for c in checks
        ],
    )


def release_report(
    pushed: Sequence[PushResult],
    signed: Sequence[SignResult],
    gates: Mapping[str, str],
    checks: Mapping[str, Sequence[Check]],
) -> Report:
    """One row per image: id, digest, tags, gates, signatures (and how many verifiers
    accepted them)."""
    by_id = {s.image_id: s for s in signed}
    rows = []
    for p in pushed:
        s = by_id.get(p.image_id)
        ok = checks.get(p.image_id, ())
        sigs = (
            f"gpg {len(s.gpg)}, cosign {len(s.cosign)}; "
            f"{sum(c.passed for c in ok)}/{len(ok)} verifier checks"
            if s
            else "NOT SIGNED"
        )
        rows.append(
            (
                str(p.target),
                p.image_id[7:19],
                p.pinned,
                ", ".join(p.tags),
                gates.get(p.image_id, "?"),
                sigs,
            )
        )
    return Report(
        title="Release",
        columns=columns(
            "image", "id", "digest", "tags", "gates", "signatures", no_wrap=("digest",)
        ),
        rows=tuple(rows),
        data=[
            {
                "image": str(p.target),
                "image_id": p.image_id,
                "digest": p.pinned,
                "tags": list(p.tags),
                "gates": gates.get(p.image_id, "?"),
                "signatures": row[5],
            }
            for p, row in zip(pushed, rows, strict=True)
        ],
    )


def where_report(rows: Sequence[tuple[str, str]], *, fixture: bool) -> Report:
    """The demo's last table: where every image, signature, key and report is."""
    notes = (
        (
            "These images contain FIXTURE artifacts (stand-in installers, MSIs and a stand-in "
            "terminal64.exe made on this machine, served on 127.0.0.1), not MetaTrader 5 or "
            "upstream files; they may be pushed only to a registry on 127.0.0.1.",
        )
        if fixture
        else ()
    )
    return Report(
        title="Where everything is",
        columns=columns("what", "where"),
        rows=tuple(rows),
        notes=notes,
        data={k: v for k, v in rows},
    )
