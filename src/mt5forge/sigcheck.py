"""``invoke verify-signature``: every signature on a pushed digest, each format checked by its
own tool and by ours, and skopeo made to enforce the generated policy.

Verifiers, each independent of the code that signed:

- GPG simple signing: our verifier (:func:`mt5forge.signing.verify_simple`) and the host's
  skopeo copying under ``trust/gpg/policy.json`` (``signedBy``).
- cosign: ``cosign verify`` and ``cosign verify-attestation`` (CycloneDX, SLSA provenance) in
  the tools image, and ours (:mod:`mt5forge.cosignverify`).
- both at once: the tools image's skopeo 1.18 under ``trust/full/policy.json`` (``signedBy`` and
  ``sigstoreSigned``): a pull that needs both formats.

A policy check is a real ``skopeo copy`` into a scratch ``dir:`` (removed after): skopeo judges
the signatures before it reads a layer, and refuses with a non-zero exit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from mt5forge import cosignverify, signing
from mt5forge.errors import ConfigError, Mt5ForgeError, ToolError
from mt5forge.tools import cosign, skopeo
from mt5forge.tools.toolsimage import run_in


@dataclasses.dataclass(frozen=True, kw_only=True)
class Check:
    format: str
    verifier: str
    passed: bool
    detail: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Trust:
    store: Path
    gpg_public_key: Path
    gpg_fingerprint: str
    cosign_public_key: Path
    gpg_policy: Path
    gpg_registries_d: Path
    full_policy: Path
    full_registries_d: Path


def trust_for(run_dir: Path, env: Mapping[str, str] | None = None) -> Trust:
    """The trust a run's sign stage wrote, with the public keys named in the environment
    (``SIGNING_GPG_PUBLIC_KEY``, ``SIGNING_GPG_FINGERPRINT``, ``SIGNING_COSIGN_PUBLIC_KEY``)."""
    env = os.environ if env is None else env
    names = ("SIGNING_GPG_PUBLIC_KEY", "SIGNING_GPG_FINGERPRINT", "SIGNING_COSIGN_PUBLIC_KEY")
    missing = [n for n in names if not env.get(n)]
    if missing:
        raise ConfigError(
            "Verifying signatures needs the public keys named: " + ", ".join(missing) + ".",
            hint="Set them to the keys `invoke sign` used (the demo prints them).",
        )
    t = signing.trust_dir(run_dir)
    for f in (t / "gpg" / "policy.json", t / "full" / "policy.json"):
        if not f.is_file():
            raise ConfigError(f"{f} is missing.", hint="Run `invoke sign` first (it writes it).")
    return Trust(
        store=signing.store_dir(run_dir),
        gpg_public_key=Path(env[names[0]]),
        gpg_fingerprint=signing.check_fingerprint(env[names[1]]),
        cosign_public_key=Path(env[names[2]]),
        gpg_policy=t / "gpg" / "policy.json",
        gpg_registries_d=t / "gpg" / "registries.d",
        full_policy=t / "full" / "policy.json",
        full_registries_d=t / "full" / "registries.d",
    )


def _try(fmt: str, verifier: str, fn: Callable[[], str]) -> Check:
    try:
        return Check(format=fmt, verifier=verifier, passed=True, detail=fn())
    except Mt5ForgeError as e:
        detail = e.message + (f" ({e.hint.splitlines()[-1][:200]})" if e.hint else "")
        return Check(format=fmt, verifier=verifier, passed=False, detail=detail)


def skopeo_policy_copy(
    ref: str, policy: Path, registries_d: Path, *, tools_image: str | None = None
) -> str:
    """Copy ``docker://ref`` under ``policy``; ToolError when skopeo refuses."""
    scratch = Path(tempfile.mkdtemp(prefix="mt5forge-policy-"))
    try:
        out = scratch / "image"
        if tools_image is None:
            skopeo.copy_under_policy(
                f"docker://{ref}", f"dir:{out}", policy=policy, registries_d=registries_d
            )
        else:
            run_in(
                tools_image,
                [
                    "skopeo",
                    "--policy",
                    str(policy),
                    "--registries.d",
                    str(registries_d),
                    "copy",
                    "--quiet",
                    "--src-tls-verify=false",
                    f"docker://{ref}",
                    f"dir:{out}",
                ],
                mounts=[
                    scratch,
                    policy.parent,
                    registries_d,
                    *_lookaside(registries_d),
                    *_key_dirs(policy),
                ],
                timeout=skopeo.COPY_TIMEOUT,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return "policy accepted the image"


def _key_dirs(policy: Path) -> list[Path]:
    """The directories of every key a policy names (the tools image must see them)."""
    doc = json.loads(policy.read_text(encoding="utf-8"))
    out = []
    for scopes in (doc.get("transports") or {}).values():
        for reqs in scopes.values():
            out += [Path(r["keyPath"]).parent for r in reqs if "keyPath" in r]
    return out


def _lookaside(registries_d: Path) -> list[Path]:
    out = []
    for f in registries_d.glob("*.yaml"):
        for line in f.read_text(encoding="utf-8").splitlines():
            if "lookaside: file://" in line:
                out.append(Path(line.split("file://", 1)[1].strip()))
    return out


def check_all(repository: str, digest: str, trust: Trust, *, tools_image: str) -> list[Check]:
    """Every verifier on ``repository@digest``; each check's outcome, none raising."""
    ref = f"{repository}@{digest}"
    key = trust.cosign_public_key

    def gpg_ours() -> str:
        found = signing.verify_simple(
            trust.store,
            repository,
            digest,
            public_key=trust.gpg_public_key,
            fingerprint=trust.gpg_fingerprint,
        )
        return f"{len(found)} signature(s) by {trust.gpg_fingerprint}"

    def cosign_theirs() -> str:
        return f"{len(cosign.verify(tools_image, ref, public_key=key))} signature(s)"

    def cosign_ours() -> str:
        found = cosignverify.verify_signatures(repository, digest, public_key=key)
        return f"{len(found)} signature(s)"

    def attest_theirs(kind: str) -> Callable[[], str]:
        def run() -> str:
            found = cosign.verify_attestation(tools_image, ref, public_key=key, kind=kind)
            return f"{len(found)} attestation(s)"

        return run

    def attest_ours(kind: str) -> Callable[[], str]:
        def run() -> str:
            found = cosignverify.verify_attestations(repository, digest, public_key=key, kind=kind)
            mine = [c for c in found if c.kind == cosignverify.PREDICATE_TYPES[kind]]
            return f"{len(mine)} attestation(s) of this type ({len(found)} verified in all)"

        return run

    checks = [
        _try("gpg", "ours (python-gnupg)", gpg_ours),
        _try(
            "gpg",
            "skopeo (host, signedBy)",
            lambda: skopeo_policy_copy(ref, trust.gpg_policy, trust.gpg_registries_d),
        ),
        _try("cosign", "cosign verify", cosign_theirs),
        _try("cosign", "ours (cryptography)", cosign_ours),
    ]
    for kind in ("cyclonedx", "slsaprovenance1"):
        checks.append(_try(f"cosign {kind}", "cosign verify-attestation", attest_theirs(kind)))
        checks.append(_try(f"cosign {kind}", "ours (cryptography)", attest_ours(kind)))
    checks.append(
        _try(
            "gpg + cosign",
            "skopeo 1.18 (tools image, signedBy + sigstoreSigned)",
            lambda: skopeo_policy_copy(
                ref, trust.full_policy, trust.full_registries_d, tools_image=tools_image
            ),
        )
    )
    return checks


__all__ = ["Check", "ToolError", "Trust", "check_all", "skopeo_policy_copy"]
