"""``invoke demo``: the main job, end to end, on the offline demo profile."""

from __future__ import annotations

import contextlib
from typing import Any

from invoke.context import Context
from invoke.tasks import task

from mt5forge.base import BaseImage
from mt5forge.engine import ensure_engine
from mt5forge.pairing import run_pair
from mt5forge.report.verify import verify_report
from mt5forge.report.views import (
    artifacts_report,
    base_report,
    build_report,
    sbom_report,
    scan_report,
    summary_report,
)
from mt5forge.stages import PIPELINE, run_stages
from mt5forge.stages.build import BuildResult
from mt5forge.stages.fetch import FetchResult
from mt5forge.stages.sbom import SbomResult
from mt5forge.stages.scan import ScanResult
from mt5forge.stages.verify import VerifyResult
from mt5forge.tasks._common import console, enter_fixture, show, task_context
from mt5forge.tasks._progress import RichProgress


@task(help={"verbose": "Show debug logs and tracebacks."})
def demo(c: Context, verbose: bool = False) -> None:
    """Run the pipeline end to end on the offline demo profile (no accounts, no upstream)."""
    steps = len(PIPELINE) + 2
    with task_context(verbose) as settings:
        console.rule(f"1/{steps} engine")
        status = ensure_engine(settings)
        console.print(f"Docker Engine {status.version} at {status.host}.")

        results: dict[str, Any] = {}
        with contextlib.ExitStack() as stack:
            fixture_settings = enter_fixture(stack, settings)
            for n, stage in enumerate(PIPELINE, start=2):
                console.rule(f"{n}/{steps} {stage.name}: {stage.summary}")
                with RichProgress(console) as progress:
                    results.update(
                        run_stages(fixture_settings, [stage], progress=progress, given=results)
                    )
        base: BaseImage = results["base"]
        fetched: FetchResult = results["fetch"]
        built: tuple[BuildResult, ...] = results["build"]
        show(base_report(base))
        show(artifacts_report(fetched.artifacts, f"Artifacts ({fetched.profile} profile)"))
        show(build_report(built, str(settings.run_dir / "records")))
        sboms: tuple[SbomResult, ...] = results["sbom"]
        scans: tuple[ScanResult, ...] = results["scan"]
        show(sbom_report(sboms))
        show(scan_report(scans))
        verified: VerifyResult = results["verify"]
        show(verify_report(verified))

        console.rule(f"{steps}/{steps} pair a bot with its terminal")
        with console.status("Starting terminal-sim and a secure bot in its network namespace..."):
            pair = run_pair(settings)
        for line in pair.reports:
            console.print(f"  {line.split(' INFO ', 1)[-1]}")
        # The fixture terminal: real Windows CPython and the real MetaTrader5 package under
        # Wine, beside a stand-in terminal64.exe. No MetaTrader 5 runs, so the package answers
        # initialize() with its own IPC error; the bot prints what the bridge passed on.
        with console.status("Starting the fixture terminal (Wine) and a secure bot beside it..."):
            real = run_pair(settings, terminal="terminal", terminal_variant="slim")
        answer = real.last_error or ("?", "no answer")
        console.print(
            f"  {real.terminal_image}: {real.backend} backend, MetaTrader5.initialize() -> False, "
            f"last_error() -> {answer} (the real package's answer: no MetaTrader 5 terminal "
            "runs in the fixture image)"
        )

    console.rule("done")
    show(
        summary_report(
            "Demo profile: what ran",
            [
                ("engine", f"Docker Engine {status.version}"),
                ("base", f"{base.reference} from {base.source} ({base.image_id[:19]})"),
                (
                    "fetch",
                    "fixture artifacts (stand-ins made here, served on 127.0.0.1), verified "
                    "through the mirror override; not upstream files",
                ),
                ("build", f"{len(built)} image(s): " + ", ".join(str(r.target) for r in built)),
                (
                    "sbom",
                    f"{len(sboms)} CycloneDX 1.6 SBOM(s), validated, in "
                    f"{settings.path(settings.sbom.dir)}",
                ),
                (
                    "scan",
                    f"{sum(r.passed for r in scans)}/{len(scans)} image(s) passed Trivy's "
                    "secret and misconfiguration checks; vulnerabilities against a FIXTURE "
                    "database (made here, no real advisories)"
                    if all(r.database.fixture for r in scans)
                    else f"{sum(r.passed for r in scans)}/{len(scans)} image(s) passed",
                ),
                (
                    "pair",
                    f"{pair.bot_image} in the namespace of {pair.terminal_image} ({pair.backend} "
                    f"backend): logged in, {len(pair.reports)} account+tick reports, no secret "
                    "in its log",
                ),
                (
                    "pair (fixture terminal)",
                    f"{real.bot_image} beside {real.terminal_image} ({real.backend} backend under "
                    f"Wine): initialize() False, last_error() {answer}; the terminal is a "
                    "stand-in, not MetaTrader 5",
                ),
            ],
        )
    )
