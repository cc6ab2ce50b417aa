"""Stage ``sign``: two independent signature formats on each pushed digest.

For each image the push stage returned (or whose push record ``invoke sign`` finds):

1. GPG simple signing (:mod:`mt5forge.signing`): one signature per tag, by the key named with
   its full fingerprint, into the lookaside store ``<run_dir>/sigstore`` laid out as
   containers/image expects. ``<run_dir>/trust/`` gets the ``policy.json`` and ``registries.d``
   that make skopeo and podman demand it (and, in ``trust/full/``, the cosign signature too).
2. cosign (in the tools image, key-based, offline): a signature on the digest, the SBOM as a
   CycloneDX attestation and an in-toto SLSA v1 provenance statement
   (:mod:`mt5forge.provenance`: builder, git revision, base image, lock and manifests with
   their digests).
3. Our own verifiers check what was just made (a signature that does not verify is not left
   claimed in the record), and a sign record lists every signature.

Keys come from the environment (:class:`SigningKeys`); passphrases are read from it and handed
to gpg and cosign on a pipe or by variable name, never logged. ``invoke demo`` and the tests
make throw-away keys at run time under the run directory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from mt5forge import cosignverify, provenance, signing
from mt5forge.config import Settings
from mt5forge.errors import ConfigError, RecordError, VerificationError
from mt5forge.files import atomic_write
from mt5forge.images import Target
from mt5forge.progress import NullProgress, Progress
from mt5forge.records import PushRecord, read_record, write_record
from mt5forge.stages import Job
from mt5forge.stages.push import PushResult
from mt5forge.tools import cosign
from mt5forge.tools import docker as dockertool
from mt5forge.tools.toolsimage import ensure_tools_image

ENV = {
    "gpg_home": "SIGNING_GPG_HOME",
    "gpg_fingerprint": "SIGNING_GPG_FINGERPRINT",
    "gpg_public_key": "SIGNING_GPG_PUBLIC_KEY",
    "cosign_key": "SIGNING_COSIGN_KEY",
    "cosign_public_key": "SIGNING_COSIGN_PUBLIC_KEY",
}
"""Where the keys are named. Passphrases: SIGNING_GPG_PASSPHRASE (or gpg-agent) and
COSIGN_PASSWORD."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SigningKeys:
    gpg_home: Path
    gpg_fingerprint: str
    gpg_public_key: Path
    cosign_key: Path
    cosign_public_key: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SigningKeys:
        env = os.environ if env is None else env
        missing = [v for v in ENV.values() if not env.get(v)]
        if missing:
            raise ConfigError(
                "Signing needs its keys named: " + ", ".join(missing) + " not set.",
                hint="Set them (and SIGNING_GPG_PASSPHRASE / COSIGN_PASSWORD, or use gpg-agent)"
                ", or run `invoke demo`, which makes throw-away keys.",
            )
        return cls(
            gpg_home=Path(env[ENV["gpg_home"]]),
            gpg_fingerprint=signing.check_fingerprint(env[ENV["gpg_fingerprint"]]),
            gpg_public_key=Path(env[ENV["gpg_public_key"]]),
            cosign_key=Path(env[ENV["cosign_key"]]),
            cosign_public_key=Path(env[ENV["cosign_public_key"]]),
        )

    def as_env(self) -> dict[str, str]:
        return {
            ENV["gpg_home"]: str(self.gpg_home),
            ENV["gpg_fingerprint"]: self.gpg_fingerprint,
            ENV["gpg_public_key"]: str(self.gpg_public_key),
            ENV["cosign_key"]: str(self.cosign_key),
            ENV["cosign_public_key"]: str(self.cosign_public_key),
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class SignTarget:
    """A pushed image: what sign needs of a push result or record."""

    target: Target
    image_id: str
    repository: str
    digest: str
    tags: tuple[str, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SignResult:
    target: Target
    image_id: str
    repository: str
    digest: str
    gpg: tuple[str, ...]
    """Lookaside files written (one per tag)."""
    cosign: tuple[str, ...]
    """What cosign attached: ``signature`` and each attestation's predicate type."""
    record: Path

    @property
    def pinned(self) -> str:
        return f"{self.repository}@{self.digest}"


def store_dir(settings: Settings) -> Path:
    return signing.store_dir(settings.run_dir)


def trust_dir(settings: Settings) -> Path:
    return signing.trust_dir(settings.run_dir)


def scope(repository: str) -> str:
    """The policy scope: ``host:port/prefix`` (every image of the project)."""
    return repository.rsplit("/", 1)[0]


def from_push(results: Sequence[PushResult]) -> list[SignTarget]:
    return [
        SignTarget(
            target=r.target,
            image_id=r.image_id,
            repository=r.repository,
            digest=r.digest,
            tags=r.tags,
        )
        for r in results
    ]


def from_records(run_dir: Path, image_ids: Mapping[Target, str]) -> list[SignTarget]:
    """The pushed images, from their push records; RecordError when one was never pushed."""
    out = []
    for target, image_id in image_ids.items():
        rec = read_record(run_dir, "push", image_id)
        if not isinstance(rec, PushRecord) or not rec.passed:
            raise RecordError(
                f"{target} ({image_id[:19]}) has no push record.",
                hint="Push it first (`invoke push`); signatures go on the pushed digest.",
            )
        out.append(
            SignTarget(
                target=target,
                image_id=image_id,
                repository=rec.repository,
                digest=rec.digest,
                tags=rec.tags,
            )
        )
    return out


def write_trust_files(settings: Settings, keys: SigningKeys, repository: str) -> dict[str, Path]:
    """policy.json + registries.d: ``gpg`` (any skopeo: simple signing) and ``full`` (skopeo
    1.18: simple signing and cosign)."""
    s = scope(repository)
    gpol, gregd = signing.write_trust(
        trust_dir(settings) / "gpg", s, store_dir(settings), gpg_key=keys.gpg_public_key
    )
    fpol, fregd = signing.write_trust(
        trust_dir(settings) / "full",
        s,
        store_dir(settings),
        gpg_key=keys.gpg_public_key,
        cosign_key=keys.cosign_public_key,
    )
    return {
        "gpg_policy": gpol,
        "gpg_registries_d": gregd,
        "full_policy": fpol,
        "full_registries_d": fregd,
    }


def sign_all(
    settings: Settings,
    pushed: Sequence[SignTarget],
    *,
    keys: SigningKeys | None = None,
    progress: Progress | None = None,
) -> list[SignResult]:
    keys = keys or SigningKeys.from_env()
    shown = progress or NullProgress()
    tools = ensure_tools_image(settings)
    client = dockertool.connect()
    password = os.environ.get(cosign.PASSWORD_ENV, "")
    results: list[SignResult] = []
    for p in pushed:
        key = f"sign {p.target}"
        shown.start(key, key, total=None, unit="status")
        try:
            results.append(_sign_one(settings, client, tools, keys, password, p, shown, key))
        except Exception:
            shown.finish(key, "failed")
            raise
        shown.finish(key, "signed")
    if pushed:
        write_trust_files(settings, keys, pushed[0].repository)
    return results


def _sign_one(
    settings: Settings,
    client: object,
    tools: str,
    keys: SigningKeys,
    password: str,
    p: SignTarget,
    shown: Progress,
    key: str,
) -> SignResult:
    pinned = f"{p.repository}@{p.digest}"
    shown.step(key, message=f"{p.target}: GPG simple signing, {len(p.tags)} tag(s)")
    identities = [f"{p.repository}:{t}" for t in p.tags] or [p.repository]
    blobs = [
        signing.sign_simple(
            home=keys.gpg_home, fingerprint=keys.gpg_fingerprint, digest=p.digest, identity=identity
        )
        for identity in identities
    ]
    files = signing.write_signatures(store_dir(settings), p.repository, p.digest, blobs)
    signing.verify_simple(
        store_dir(settings),
        p.repository,
        p.digest,
        public_key=keys.gpg_public_key,
        fingerprint=keys.gpg_fingerprint,
    )

    shown.step(key, message=f"{p.target}: cosign sign {p.digest[:19]}")
    cosign.sign(tools, pinned, key=keys.cosign_key, password=password)
    attached = ["signature"]
    predicates = settings.run_dir / "attest" / p.image_id.removeprefix("sha256:")
    sbom = read_record(settings.run_dir, "sbom", p.image_id)
    sbom_path = Path(str(sbom.get("sbom"))) if sbom is not None and sbom.get("sbom") else None
    if sbom_path is None or not sbom_path.is_file():
        raise VerificationError(
            f"{p.target}: no SBOM file for {p.image_id[:19]} to attest.",
            hint="Run `invoke sbom` for this image.",
        )
    shown.step(key, message=f"{p.target}: cosign attest --type cyclonedx")
    sbom_copy = atomic_write(predicates / "sbom.cdx.json", sbom_path.read_bytes())
    cosign.attest(
        tools, pinned, key=keys.cosign_key, password=password, predicate=sbom_copy, kind="cyclonedx"
    )
    attached.append(cosignverify.PREDICATE_TYPES["cyclonedx"])
    shown.step(key, message=f"{p.target}: cosign attest --type slsaprovenance1")
    image = dockertool.image_or_none(client, p.image_id)
    labels = dict(((image.attrs.get("Config") or {}).get("Labels") or {}) if image else {})
    prov = provenance.predicate(
        image=p.target.image,
        variant=p.target.variant,
        profile=labels.get("org.mt5forge.profile", ""),
        labels=labels,
        inputs=provenance.inputs(settings.root),
        builder_id=builder_id(),
        invocation=str(uuid.uuid4()),
        started=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    prov_path = atomic_write(predicates / "provenance.slsa1.json", json.dumps(prov, indent=2))
    cosign.attest(
        tools,
        pinned,
        key=keys.cosign_key,
        password=password,
        predicate=prov_path,
        kind="slsaprovenance1",
    )
    attached.append(cosignverify.PREDICATE_TYPES["slsaprovenance1"])
    cosignverify.verify_signatures(p.repository, p.digest, public_key=keys.cosign_public_key)

    record = write_record(
        settings.run_dir,
        "sign",
        p.image_id,
        {
            "image": p.target.image,
            "variant": p.target.variant,
            "repository": p.repository,
            "digest": p.digest,
            "signatures": [
                {
                    "format": "gpg simple signing",
                    "fingerprint": keys.gpg_fingerprint,
                    "store": str(store_dir(settings)),
                    "files": [str(f) for f in files],
                },
                {
                    "format": "cosign",
                    "public_key": str(keys.cosign_public_key),
                    "attached": attached,
                    "tlog": False,
                },
            ],
        },
    )
    return SignResult(
        target=p.target,
        image_id=p.image_id,
        repository=p.repository,
        digest=p.digest,
        gpg=tuple(str(f) for f in files),
        cosign=tuple(attached),
        record=record,
    )


def builder_id() -> str:
    """Who built: the CI workflow run when there is one, else this host."""
    server = os.environ.get("GITHUB_SERVER_URL")
    repo = os.environ.get("GITHUB_REPOSITORY")
    wf = os.environ.get("GITHUB_WORKFLOW_REF")
    if server and repo and wf:
        return f"{server}/{wf}"
    return f"mt5forge on {platform.node() or 'localhost'}"


class SignStage:
    name: ClassVar[str] = "sign"
    summary: ClassVar[str] = "GPG simple signing + cosign signature, SBOM and SLSA attestations"
    needs: ClassVar[tuple[str, ...]] = ("push",)

    def run(self, job: Job) -> tuple[SignResult, ...]:
        pushed = job.result("push", tuple)
        return tuple(sign_all(job.settings, from_push(pushed), progress=job.progress))
