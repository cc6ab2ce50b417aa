"""``invoke demo``: the main job, end to end, on the offline demo profile."""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import Any

from invoke.context import Context
from invoke.tasks import task

from mt5forge.base import BaseImage
from mt5forge.config import Settings
from mt5forge.engine import ensure_engine
from mt5forge.errors import VerificationError
from mt5forge.pairing import SIM_START, run_pair
from mt5forge.registry import start_registry
from mt5forge.release import trust_of
from mt5forge.report.publish import checks_report, push_report, sign_report, where_report
from mt5forge.report.verify import verify_report
from mt5forge.report.views import (
    artifacts_report,
    base_report,
    build_report,
    sbom_report,
    scan_report,
    summary_report,
)
from mt5forge.sigcheck import check_all
from mt5forge.signing import PASSPHRASE_ENV, make_gpg_key, stop_agent
from mt5forge.stages import PIPELINE, run_stages
from mt5forge.stages.build import BuildResult
from mt5forge.stages.fetch import FetchResult
from mt5forge.stages.push import PushResult
from mt5forge.stages.sbom import SbomResult
from mt5forge.stages.scan import ScanResult
from mt5forge.stages.sign import SigningKeys, SignResult, store_dir, trust_dir
from mt5forge.stages.verify import VerifyResult
from mt5forge.tasks._common import console, enter_fixture, show, task_context
from mt5forge.tasks._progress import RichProgress
from mt5forge.tools import cosign
from mt5forge.tools.toolsimage import ensure_tools_image


def throwaway_keys(settings: Settings) -> SigningKeys:
    """GnuPG and cosign keys made now under the run directory for this demo only; their
    passphrases are random, live in this process's environment, and are never printed."""
    where = settings.run_dir / "demo-keys" / secrets.token_hex(4)
    gpg_pass, cosign_pass = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    gkey = make_gpg_key(where / "gnupg", name="mt5forge demo (throw-away)", passphrase=gpg_pass)
    tools = ensure_tools_image(settings)
    ckey, cpub = cosign.generate_key_pair(tools, where / "cosign" / "cosign", password=cosign_pass)
    os.environ[PASSPHRASE_ENV] = gpg_pass
    os.environ[cosign.PASSWORD_ENV] = cosign_pass
    keys = SigningKeys(
        gpg_home=gkey.home,
        gpg_fingerprint=gkey.fingerprint,
        gpg_public_key=gkey.public_key,
        cosign_key=ckey,
        cosign_public_key=cpub,
    )
    os.environ.update(keys.as_env())
    return keys


@task(help={"verbose": "Show debug logs and tracebacks."})
def demo(c: Context, verbose: bool = False) -> None:
    """Run the pipeline end to end on the offline demo profile (no accounts, no upstream)."""
    steps = len(PIPELINE) + 3
    with task_context(verbose) as settings:
        console.rule(f"1/{steps} engine")
        status = ensure_engine(settings)
        console.print(f"Docker Engine {status.version} at {status.host}.")

        results: dict[str, Any] = {}
        with contextlib.ExitStack() as stack:
            fixture_settings = enter_fixture(stack, settings)
            for n, stage in enumerate(PIPELINE, start=2):
                console.rule(f"{n}/{steps} {stage.name}: {stage.summary}")
                if stage.name == "push":
                    reg = start_registry(fixture_settings)
                    console.print(f"Local registry at {reg.url} (storage {reg.root}).")
                if stage.name == "sign":
                    with console.status("Making throw-away GnuPG and cosign keys..."):
                        keys = throwaway_keys(fixture_settings)
                    console.print(
                        f"Throw-away keys (made now, never committed): GnuPG "
                        f"{keys.gpg_fingerprint}, cosign {keys.cosign_public_key}."
                    )
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
        pushed: tuple[PushResult, ...] = results["push"]
        signed: tuple[SignResult, ...] = results["sign"]
        show(push_report(pushed))
        show(
            sign_report(
                signed,
                store=str(store_dir(fixture_settings)),
                trust=str(trust_dir(fixture_settings)),
            )
        )

        console.rule(f"{steps - 1}/{steps} verify every signature (skopeo, cosign, ours)")
        trust = trust_of(fixture_settings, keys)
        tools = ensure_tools_image(fixture_settings)
        checks = {
            p.pinned: check_all(p.repository, p.digest, trust, tools_image=tools) for p in pushed
        }
        for ref, cs in checks.items():
            show(checks_report(ref, cs))
        stop_agent(keys.gpg_home)  # the throw-away key's gpg-agent ends with the signing
        bad = [c for cs in checks.values() for c in cs if not c.passed]
        if bad:
            raise VerificationError(f"{len(bad)} signature check(s) failed (see above).")

        console.rule(f"{steps}/{steps} pair a bot with its terminal")
        with console.status("Starting terminal-sim and a secure bot in its network namespace..."):
            pair = run_pair(settings)
        console.print(
            f"  terminal-sim's simulated market clock starts at {SIM_START} (a Wednesday, so "
            "the demo order trades whatever day this runs)"
        )
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
                    "push",
                    f"{len(pushed)} image(s) to {reg.url} by digest, then tagged (fixture "
                    "images: 127.0.0.1 only)",
                ),
                (
                    "sign",
                    f"{len(signed)} digest(s) signed twice: GPG simple signing (key "
                    f"{keys.gpg_fingerprint[-16:]}) and cosign (signature, CycloneDX SBOM and "
                    "SLSA provenance attestations); throw-away keys made for this run",
                ),
                (
                    "verify signatures",
                    f"{sum(c.passed for cs in checks.values() for c in cs)}/"
                    f"{sum(len(cs) for cs in checks.values())} checks passed: skopeo (host "
                    "1.9 and tools image 1.18 under the generated policy), cosign 2.5, ours",
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
    where: list[tuple[str, str]] = [
        (f"image {b.target}", f"{b.reference} ({b.image_id[:19]}) in the local engine")
        for b in built
    ]
    where += [(f"pushed {p.target}", f"{p.pinned}  tags: {', '.join(p.tags)}") for p in pushed]
    where += [
        ("registry", f"{reg.url} (storage {reg.root}; `invoke registry.stop` ends it)"),
        ("GPG simple signatures", f"{store_dir(fixture_settings)} (lookaside store)"),
        ("cosign signatures", "in the registry beside each image (sha256-<hex>.sig / .att)"),
        ("policy.json + registries.d", f"{trust_dir(fixture_settings)}/gpg and /full"),
        ("public keys", f"{keys.gpg_public_key}, {keys.cosign_public_key}"),
        ("SBOMs", str(settings.path(settings.sbom.dir))),
        ("scan reports", str(fixture_settings.run_dir / "scan")),
        ("records", str(fixture_settings.run_dir / "records")),
    ]
    show(where_report(where, fixture=True))
