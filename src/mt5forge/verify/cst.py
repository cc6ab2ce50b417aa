"""container-structure-test as an independent cross-check of verify's own checks.

Google's tool tests an image against a YAML config of five kinds: command, file existence,
file content, metadata and license. :func:`config_for` writes that config from the same
expectations verify judges by (build/expectations.toml), so the two tools answer the same
questions by different means; :func:`run_cst` runs it (the PyPI wheel carries the Go binary)
and returns its per-test results. A command test needs a shell-free ``id`` in the image and a
container it starts itself; images without ``/bin/sh`` get none. No license test: CST's
``debian: true`` fails every Debian image, because base-files' copyright file names the AGPL
among the common licences (measured on bot:slim); verify's ``files.licenses`` checks the
copyright files are there and the SBOM stage records each package's licence.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from mt5forge.errors import VerificationError
from mt5forge.files import atomic_write
from mt5forge.tools.run import call
from mt5forge.verify.expectations import Expectation

CST = "container-structure-test"
TIMEOUT = 300

#: Files no image may carry, whatever its variant.
FORBIDDEN = ("/usr/bin/sudo", "/etc/sudoers", "/usr/bin/doas")


@dataclasses.dataclass(frozen=True, kw_only=True)
class CstResult:
    name: str
    passed: bool
    errors: tuple[str, ...]


def config_for(e: Expectation, uid: int, gid: int) -> dict[str, Any]:
    """The structure-test config that says what ``e`` says, in the tool's own terms."""
    files: list[dict[str, Any]] = [
        {"name": f"no {p}", "path": p, "shouldExist": False} for p in FORBIDDEN
    ]
    files.append({"name": "/bin/sh as expected", "path": "/usr/bin/sh", "shouldExist": e.shell})
    files += [
        {"name": f"allowed setuid {p}", "path": p, "shouldExist": True}
        for p in e.setuid_allowed[:3]
    ]
    if not e.setuid_allowed:
        # Debian's setuid programs stay in secure images, their bits cleared: mode 0755.
        files += [
            {"name": f"{p} not setuid", "path": p, "shouldExist": True,
             "permissions": "-rwxr-xr-x"}
            for p in ("/usr/bin/passwd", "/usr/bin/chsh")
        ]  # fmt: skip
    config: dict[str, Any] = {
        "schemaVersion": "2.0.0",
        "metadataTest": {
            "user": f"{uid}:{gid}",
            "exposedPorts": [p.split("/")[0] for p in e.exposed],
            "workdir": "/config",
        },
        "fileExistenceTests": files,
        "fileContentTests": [
            {
                "name": "runtime user in /etc/passwd",
                "path": "/etc/passwd",
                "expectedContents": [rf"(?m)^mt5:x:{uid}:{gid}:"],
            }
        ],
    }
    if e.shell:
        config["commandTests"] = [
            {
                "name": "runs as the runtime user",
                "command": "id",
                "args": ["-u"],
                "expectedOutput": [f"^{uid}\\n?$"],
            },
            {
                "name": "no sudo on PATH",
                "command": "sh",
                "args": ["-c", "command -v sudo || true"],
                "excludedOutput": ["sudo"],
            },
        ]
    return config


def write_config(path: Path, e: Expectation, uid: int, gid: int) -> Path:
    return atomic_write(path, yaml.safe_dump(config_for(e, uid, gid), sort_keys=False))


def run_cst(reference: str, config: Path) -> list[CstResult]:
    """Run the structure tests against the local image ``reference``; every test's result."""
    proc = call(
        CST, "test", "--image", reference, "--config", config, "--output", "json",
        "--no-color", timeout=TIMEOUT, check=False,
    )  # fmt: skip
    text = proc.stdout.decode("utf-8", "replace")
    start = text.find("{")
    try:
        report = json.loads(text[start:]) if start >= 0 else None
    except ValueError:
        report = None
    if not isinstance(report, dict) or "Results" not in report:
        detail = proc.stderr.decode("utf-8", "replace")[-800:] or text[-800:]
        raise VerificationError(f"{CST} gave no JSON report for {reference}.", hint=detail)
    return [
        CstResult(
            name=str(r.get("Name")),
            passed=bool(r.get("Pass")),
            errors=tuple(str(x) for x in r.get("Errors") or ()),
        )
        for r in report["Results"] or []
    ]
