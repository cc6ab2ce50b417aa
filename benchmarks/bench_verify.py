"""The verify gate's cost: seconds per image (docker save and the layer scan apart from the
checks against the running container), and the slowest checks. Not a test: it prints a table.

Runs in one process, as `invoke verify` does, with one canary for the run: an image that shares
layers with one verified before it (slim and secure of one Dockerfile) reads them from the
process's layer cache; the "read" column shows it. ``--cold`` gives each image its own canary,
so every layer is read.

Usage: python benchmarks/bench_verify.py [--image terminal,bot,terminal-sim] [--variant ...]
       [--cold] [--slowest 8]
Needs the images built (`invoke build --fixture`) and the base image (`invoke base`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mt5forge import config
from mt5forge.stages.verify import context, requests_for
from mt5forge.verify.expectations import expectation_for, load
from mt5forge.verify.live import Canary
from mt5forge.verify.run import ImageVerdict, verify_image

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image")
    p.add_argument("--variant")
    p.add_argument("--cold", action="store_true")
    p.add_argument("--slowest", type=int, default=8)
    args = p.parse_args()
    settings = config.load(ROOT, env={})
    split = lambda v: tuple(v.split(",")) if v else None  # noqa: E731
    requests = requests_for(settings, split(args.image), split(args.variant))
    table = load(settings.root / "build")
    ctx = context(settings)
    canary = Canary.make()
    verdicts: list[ImageVerdict] = []
    started = time.monotonic()
    for req in requests:
        e = expectation_for(table, req.target.image, req.target.variant)
        verdicts.append(
            verify_image(ctx, e, req.reference, canary=Canary.make() if args.cold else canary)
        )
    total = time.monotonic() - started

    print(f"verify, {'cold (every layer read)' if args.cold else 'one run (layer cache shared)'}")
    print("| image | seconds | read (save + scan) | checks | result | terminal |")
    print("|---|---:|---:|---:|---|---|")
    for v in verdicts:
        checks = sum(o.seconds for o in v.outcomes)
        print(
            f"| {v.image}:{v.variant} | {v.seconds:.1f} | {v.read_seconds:.1f} | {checks:.1f} "
            f"| {'pass' if v.passed else 'FAIL ' + ','.join(o.name for o in v.failed)} "
            f"| {v.terminal} |"
        )
    print(f"| all | {total:.1f} | | | | |")
    print()
    print("| slowest checks | seconds |")
    print("|---|---:|")
    timed = sorted(
        ((o.seconds, f"{v.image}:{v.variant} {o.name}") for v in verdicts for o in v.outcomes),
        reverse=True,
    )
    for seconds, name in timed[: args.slowest]:
        print(f"| {name} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
