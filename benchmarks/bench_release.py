"""Benchmark (not a test): a no-change ``rebuild`` decision against a cold ``release``.

Run: ``.venv/bin/python benchmarks/bench_release.py [--image bot --variant slim] [--runs N]``
(``--image all``: every configured image and variant).

1. Cold release on the fixture profile, timed stage by stage: fetch, build with the engine's
   cache off (``no_cache``: every step runs), sbom, scan, verify, push to a local registry on
   127.0.0.1, sign (GPG simple signing + cosign signature and two attestations, throw-away keys
   made first and not timed), then every signature checked by every verifier.
2. The rebuild state is then what that release left (build ID, images, SBOMs); ``rebuild``'s
   decision is timed ``--runs`` times: base stage (reuse), the repository inputs hashed, the
   apt snapshot of every released Debian package (``apt-get update`` + ``apt-cache policy`` in
   one throw-away container of the base image), the build ID compared. Nothing is built or
   pushed.

The goal is a decision within 2 % of the cold release. Prints one table and writes
``<run_dir>/bench/release.json``. The images contain fixture artifacts.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mt5forge import config, signing
from mt5forge.engine import ensure_engine
from mt5forge.fixtures import fixture_session
from mt5forge.registry import start_registry, stop_registry
from mt5forge.release import (
    Released,
    State,
    apt_snapshot,
    current_build_id,
    decide,
    publish,
    released_packages,
    save_state,
)
from mt5forge.stages import Options, run_stages, select
from mt5forge.stages.sign import SigningKeys
from mt5forge.tools import cosign
from mt5forge.tools.toolsimage import ensure_tools_image


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="bot")
    parser.add_argument("--variant", default="slim")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    # A benchmark stopped with SIGTERM (a timeout, kill) still stops its registry and gpg-agent.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    settings = config.load(Path(__file__).resolve().parents[1])
    ensure_engine(settings)
    console = Console()
    timings: dict[str, float] = {}
    with fixture_session(settings) as (_, fs):
        base = run_stages(fs, select(["base"]))["base"]
        tools = ensure_tools_image(fs)
        keys_dir = fs.run_dir / "bench" / "release-keys" / secrets.token_hex(4)
        gpass, cpass = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        gkey = signing.make_gpg_key(keys_dir / "gnupg", name="bench", passphrase=gpass)
        ckey, cpub = cosign.generate_key_pair(tools, keys_dir / "cosign" / "k", password=cpass)
        os.environ[signing.PASSPHRASE_ENV] = gpass
        os.environ[cosign.PASSWORD_ENV] = cpass
        keys = SigningKeys(
            gpg_home=gkey.home,
            gpg_fingerprint=gkey.fingerprint,
            gpg_public_key=gkey.public_key,
            cosign_key=ckey,
            cosign_public_key=cpub,
        )
        reg = start_registry(fs, address=f"127.0.0.1:{_port()}", root=fs.run_dir / "bench" / "reg")
        try:
            every = args.image == "all"
            options = Options(
                images=None if every else (args.image,),
                variants=None if every else (args.variant,),
                no_cache=True,
            )
            results: dict[str, Any] = {"base": base}
            for stage in select(until="verify")[1:]:
                t = time.monotonic()
                results.update(run_stages(fs, [stage], options=options, given=results))
                timings[stage.name] = time.monotonic() - t
            t = time.monotonic()
            out = publish(fs, results["build"], release=True, registry=reg.address, keys=keys)
            timings["push + sign + verify signatures"] = time.monotonic() - t
            cold = sum(timings.values())
            sboms = {r.image_id: r.path for r in results["sbom"]}
            images = {
                str(p.target): Released(
                    image_id=p.image_id, digest=p.digest, sbom=str(sboms[p.image_id])
                )
                for p in out.pushed
            }
            bid = current_build_id(
                fs.root,
                base_digest=str(base.image_id),
                packages=apt_snapshot(
                    str(base.image_id), released_packages(State(build_id="", images=images))
                ),
            )
            save_state(fs.run_dir, State(build_id=bid, images=images))
            decisions = []
            for _ in range(args.runs):
                t = time.monotonic()
                b2 = run_stages(fs, select(["base"]))["base"]
                d = decide(fs, base_digest=str(b2.image_id))
                decisions.append(time.monotonic() - t)
                assert d.unchanged, "the decision must be 'no change' right after a release"
        finally:
            stop_registry(fs, address=reg.address)
            signing.stop_agent(gkey.home)
    median = statistics.median(decisions)
    table = Table(
        title="Cold release vs no-change rebuild ("
        + ("every image" if args.image == "all" else f"{args.image}:{args.variant}")
        + ", fixture profile)"
    )
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for k, v in timings.items():
        table.add_row(f"release: {k}", f"{v:.1f}")
    table.add_row("release: total (cold)", f"{cold:.1f}")
    table.add_row(
        f"rebuild: no-change decision (median of {args.runs}; min {min(decisions):.1f},"
        f" max {max(decisions):.1f})",
        f"{median:.1f}",
    )
    table.add_row("decision / cold release", f"{100 * median / cold:.2f} %  (goal <= 2 %)")
    console.print(table)
    dest = settings.run_dir / "bench" / "release.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(
        json.dumps(
            {
                "release": timings,
                "cold": cold,
                "decisions": decisions,
                "image": f"{args.image}:{args.variant}",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
