"""``sign`` and ``verify-signature``: GPG simple signing and cosign on a pushed digest, each
checked by its own tool (skopeo, cosign) and by ours; for each format a tampered signature, a
signature by another key and one for another digest are refused by both; the generated policy
makes ``skopeo copy`` refuse an unsigned image.

Keys are throw-away ones made here at run time (GnuPG and cosign)."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mt5forge import cosignverify, signing
from mt5forge.errors import ToolError, VerificationError
from mt5forge.registry import start_registry, stop_registry
from mt5forge.release import trust_of
from mt5forge.sigcheck import Trust, check_all, skopeo_policy_copy
from mt5forge.stages.push import PushRequest, push_all
from mt5forge.stages.sign import SigningKeys, from_push, sign_all, write_trust_files
from mt5forge.tools import cosign

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclasses.dataclass(frozen=True)
class Signed:
    settings: Any
    registry: str
    repository: str
    digest: str
    keys: SigningKeys
    trust: Trust
    tools: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def signed(
    gated: Any,
    signing_keys: SigningKeys,
    tools_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Signed]:
    """The gated image pushed to a registry of this module's own and signed both ways."""
    root = tmp_path_factory.mktemp("sign")
    settings = gated.settings
    reg = start_registry(settings, address=f"127.0.0.1:{_free_port()}", root=root / "storage")
    try:
        req = PushRequest(
            target=gated.build.target,
            reference=gated.build.reference,
            image_id=gated.build.image_id,
        )
        pushed = push_all(settings, [req], registry=reg.address)
        [result] = sign_all(settings, from_push(pushed), keys=signing_keys)
        yield Signed(
            settings=settings,
            registry=reg.address,
            repository=result.repository,
            digest=result.digest,
            keys=signing_keys,
            trust=trust_of(settings, signing_keys),
            tools=tools_image,
        )
    finally:
        stop_registry(settings, address=reg.address)


def _copy(src: str, dest: str, *extra: str) -> None:
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            *extra,
            f"docker://{src}",
            f"docker://{dest}",
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )


def _digest(registry: str, path: str, tag: str) -> str:
    r = requests.head(
        f"http://{registry}/v2/{path}/manifests/{tag}",
        timeout=10,
        headers={"Accept": MANIFEST + ", application/vnd.docker.distribution.manifest.v2+json"},
    )
    return str(r.headers["Docker-Content-Digest"])


def _case_repo(s: Signed, name: str) -> str:
    """The signed image copied (same digest) to ``<scope>/<name>``, with no signature."""
    repo = f"{s.registry}/mt5forge/{name}"
    _copy(f"{s.repository}@{s.digest}", f"{repo}:case", "--preserve-digests")
    return repo


def test_every_verifier_accepts_what_sign_made(signed: Signed) -> None:
    checks = check_all(signed.repository, signed.digest, signed.trust, tools_image=signed.tools)
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    verifiers = {c.verifier for c in checks}
    assert {"cosign verify", "skopeo (host, signedBy)", "ours (python-gnupg)"} <= verifiers
    assert any("skopeo 1.18" in v for v in verifiers)
    kinds = {c.format for c in checks}
    assert {"cosign cyclonedx", "cosign slsaprovenance1"} <= kinds
    # One simple signature per tag, laid out as containers/image expects.
    where = signing.signature_dir(signed.trust.store, signed.repository, signed.digest)
    assert where.name == "bot@sha256=" + signed.digest.removeprefix("sha256:")
    assert (where / "signature-1").is_file()


def test_the_provenance_names_the_inputs(signed: Signed) -> None:
    [env] = cosign.verify_attestation(
        signed.tools,
        f"{signed.repository}@{signed.digest}",
        public_key=signed.keys.cosign_public_key,
        kind="slsaprovenance1",
    )
    import base64

    statement = json.loads(base64.b64decode(env["payload"]))
    assert statement["subject"][0]["digest"]["sha256"] == signed.digest.removeprefix("sha256:")
    deps = {d["uri"] for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert "build/" in deps and any(u.startswith("checksums/") for u in deps)
    assert any(u.startswith("manifests/") for u in deps)
    assert any(u.startswith("git+") for u in deps)


def test_policy_makes_skopeo_refuse_an_unsigned_image(signed: Signed) -> None:
    repo = _case_repo(signed, "unsigned")
    with pytest.raises(ToolError):
        skopeo_policy_copy(f"{repo}:case", signed.trust.gpg_policy, signed.trust.gpg_registries_d)
    with pytest.raises(ToolError):
        skopeo_policy_copy(
            f"{repo}:case",
            signed.trust.full_policy,
            signed.trust.full_registries_d,
            tools_image=signed.tools,
        )
    # The same bytes under the signed name are accepted: the refusal is about signatures.
    skopeo_policy_copy(
        f"{signed.repository}@{signed.digest}",
        signed.trust.gpg_policy,
        signed.trust.gpg_registries_d,
    )


# ---- GPG simple signing: tampered, another key, another digest ----


def _gpg_case(s: Signed, tmp_path: Path, blob: bytes) -> tuple[Path, Path, Path]:
    """A lookaside store holding only ``blob`` as the signature of the signed digest, and
    the policy files pointing at it."""
    store = tmp_path / "store"
    signing.write_signatures(store, s.repository, s.digest, [blob])
    scope = s.repository.rsplit("/", 1)[0]
    policy, regd = signing.write_trust(
        tmp_path / "trust", scope, store, gpg_key=s.keys.gpg_public_key
    )
    return store, policy, regd


def _good_blob(s: Signed) -> bytes:
    [path, *_] = signing.read_signatures(s.trust.store, s.repository, s.digest)
    return path.read_bytes()


def _refused_by_both_gpg(s: Signed, store: Path, policy: Path, regd: Path, match: str) -> None:
    with pytest.raises(VerificationError, match=match):
        signing.verify_simple(
            store,
            s.repository,
            s.digest,
            public_key=s.keys.gpg_public_key,
            fingerprint=s.keys.gpg_fingerprint,
        )
    with pytest.raises(ToolError):
        skopeo_policy_copy(f"{s.repository}@{s.digest}", policy, regd)


def test_gpg_control_the_good_signature_passes_in_a_fresh_store(
    signed: Signed, tmp_path: Path
) -> None:
    store, policy, regd = _gpg_case(signed, tmp_path, _good_blob(signed))
    signing.verify_simple(
        store,
        signed.repository,
        signed.digest,
        public_key=signed.keys.gpg_public_key,
        fingerprint=signed.keys.gpg_fingerprint,
    )
    skopeo_policy_copy(f"{signed.repository}@{signed.digest}", policy, regd)


def test_gpg_tampered_signature_is_refused(signed: Signed, tmp_path: Path) -> None:
    blob = bytearray(_good_blob(signed))
    blob[len(blob) // 2] ^= 0x01
    store, policy, regd = _gpg_case(signed, tmp_path, bytes(blob))
    _refused_by_both_gpg(signed, store, policy, regd, match="signature-1")


def test_gpg_signature_by_another_key_is_refused(signed: Signed, tmp_path: Path) -> None:
    passphrase = secrets.token_hex(8)
    other = signing.make_gpg_key(tmp_path / "other", name="another signer", passphrase=passphrase)
    blob = signing.sign_simple(
        home=other.home,
        fingerprint=other.fingerprint,
        digest=signed.digest,
        identity=f"{signed.repository}:x",
        passphrase=passphrase,
    )
    signing.stop_agent(other.home)
    store, policy, regd = _gpg_case(signed, tmp_path, blob)
    _refused_by_both_gpg(signed, store, policy, regd, match="not the pinned")


def test_gpg_signature_for_another_digest_is_refused(signed: Signed, tmp_path: Path) -> None:
    other = "sha256:" + "ab" * 32
    blob = signing.sign_simple(
        home=signed.keys.gpg_home,
        fingerprint=signed.keys.gpg_fingerprint,
        digest=other,
        identity=f"{signed.repository}:x",
    )
    store, policy, regd = _gpg_case(signed, tmp_path, blob)
    _refused_by_both_gpg(signed, store, policy, regd, match="signed for " + other)


# ---- cosign: tampered, another key, another digest ----


def _cosign_only_policy(s: Signed, tmp_path: Path) -> tuple[Path, Path]:
    scope = s.repository.rsplit("/", 1)[0]
    return signing.write_trust(
        tmp_path / "trust", scope, tmp_path / "empty-store", cosign_key=s.keys.cosign_public_key
    )


def _refused_by_both_cosign(s: Signed, repo: str, digest: str, tmp_path: Path) -> None:
    with pytest.raises(VerificationError, match="cosign refused"):
        cosign.verify(s.tools, f"{repo}@{digest}", public_key=s.keys.cosign_public_key)
    with pytest.raises(VerificationError):
        cosignverify.verify_signatures(repo, digest, public_key=s.keys.cosign_public_key)
    policy, regd = _cosign_only_policy(s, tmp_path)
    with pytest.raises(ToolError):
        skopeo_policy_copy(f"{repo}@{digest}", policy, regd, tools_image=s.tools)


def test_cosign_control_the_copied_signature_passes(signed: Signed, tmp_path: Path) -> None:
    """The .sig copied unchanged to another repository still verifies there (the cases below
    differ from this only in what they change)."""
    repo = _case_repo(signed, "cosign-control")
    sig_tag = signed.digest.replace(":", "-") + ".sig"
    _copy(f"{signed.repository}:{sig_tag}", f"{repo}:{sig_tag}", "--preserve-digests")
    # cosign's identity is the repository it signed in; ours checks it, so rewrite nothing and
    # check only the signature and digest here with cosign itself.
    cosign.verify(signed.tools, f"{repo}@{signed.digest}", public_key=signed.keys.cosign_public_key)
    policy, regd = _cosign_only_policy(signed, tmp_path)
    skopeo_policy_copy(
        f"{signed.repository}@{signed.digest}", policy, regd, tools_image=signed.tools
    )


def test_cosign_tampered_signature_is_refused(signed: Signed, tmp_path: Path) -> None:
    repo = _case_repo(signed, "cosign-tampered")
    sig_tag = signed.digest.replace(":", "-") + ".sig"
    _copy(f"{signed.repository}:{sig_tag}", f"{repo}:{sig_tag}", "--preserve-digests")
    registry, _, path = repo.partition("/")
    url = f"http://{registry}/v2/{path}/manifests/{sig_tag}"
    manifest = requests.get(url, headers={"Accept": MANIFEST}, timeout=10).json()
    import base64

    ann = manifest["layers"][0]["annotations"]
    raw = bytearray(base64.b64decode(ann[cosignverify.SIG_ANNOTATION]))
    raw[-1] ^= 0x01
    ann[cosignverify.SIG_ANNOTATION] = base64.b64encode(bytes(raw)).decode()
    put = requests.put(
        url, data=json.dumps(manifest), headers={"Content-Type": MANIFEST}, timeout=10
    )
    assert put.status_code == 201, put.text
    _refused_by_both_cosign(signed, repo, signed.digest, tmp_path)


def test_cosign_signature_by_another_key_is_refused(signed: Signed, tmp_path: Path) -> None:
    repo = _case_repo(signed, "cosign-otherkey")
    password = secrets.token_hex(8)
    key, _pub = cosign.generate_key_pair(signed.tools, tmp_path / "k" / "cosign", password=password)
    cosign.sign(signed.tools, f"{repo}@{signed.digest}", key=key, password=password)
    _refused_by_both_cosign(signed, repo, signed.digest, tmp_path)


def test_cosign_signature_for_another_digest_is_refused(signed: Signed, tmp_path: Path) -> None:
    """The image in OCI form has another manifest digest; the good .sig of the signed digest
    put under the other digest's tag is refused."""
    repo = f"{signed.registry}/mt5forge/cosign-otherdigest"
    _copy(f"{signed.repository}@{signed.digest}", f"{repo}:oci", "--format", "oci")
    registry, _, path = repo.partition("/")
    other = _digest(registry, path, "oci")
    assert other != signed.digest
    sig_tag = signed.digest.replace(":", "-") + ".sig"
    _copy(
        f"{signed.repository}:{sig_tag}",
        f"{repo}:{other.replace(':', '-')}.sig",
        "--preserve-digests",
    )
    _refused_by_both_cosign(signed, repo, other, tmp_path)


def test_keys_stay_out_of_records_and_logs(signed: Signed) -> None:
    """The sign record names keys by fingerprint and path; no private key material or
    passphrase is in it."""
    rec = next((signed.settings.run_dir / "records").glob("*/sign.json")).read_text()
    assert "PRIVATE KEY" not in rec and "ENCRYPTED" not in rec
    for env in (signing.PASSPHRASE_ENV, cosign.PASSWORD_ENV):
        assert os.environ[env] not in rec


# ---- `invoke verify-signature --ref`, the real task in a process of its own ----

REPO = Path(__file__).resolve().parents[3]
VERIFIERS = {
    ("gpg", "ours (python-gnupg)"),
    ("gpg", "skopeo (host, signedBy)"),
    ("cosign", "cosign verify"),
    ("cosign", "ours (cryptography)"),
    ("cosign cyclonedx", "cosign verify-attestation"),
    ("cosign cyclonedx", "ours (cryptography)"),
    ("cosign slsaprovenance1", "cosign verify-attestation"),
    ("cosign slsaprovenance1", "ours (cryptography)"),
    ("gpg + cosign", "skopeo 1.18 (tools image, signedBy + sigstoreSigned)"),
}
GPG_VERIFIERS = {v for v in VERIFIERS if v[0].startswith("gpg")}


def _verify_cli(s: Signed, ref: str, run_dir: Path) -> tuple[int, list[dict[str, Any]], str]:
    """``invoke verify-signature --ref REF --format json`` from the repository root, the
    run directory and public keys named in the environment as a person would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5FORGE_")}
    env.update(
        MT5FORGE_PATHS_RUN_DIR=str(run_dir),
        SIGNING_GPG_PUBLIC_KEY=str(s.keys.gpg_public_key),
        SIGNING_GPG_FINGERPRINT=s.keys.gpg_fingerprint,
        SIGNING_COSIGN_PUBLIC_KEY=str(s.keys.cosign_public_key),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "verify-signature", "--ref", ref, "--format", "json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    start = proc.stdout.find("{")
    rows = json.loads(proc.stdout[start:])["data"] if start >= 0 else []
    return proc.returncode, rows, proc.stderr


def _pairs(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["format"], r["verifier"]) for r in rows]


def test_cli_verifies_by_digest_one_row_per_verifier(signed: Signed) -> None:
    code, rows, err = _verify_cli(
        signed, f"{signed.repository}@{signed.digest}", signed.settings.run_dir
    )
    assert code == 0, err
    assert sorted(_pairs(rows)) == sorted(VERIFIERS)  # each verifier once, no more
    assert all(r["passed"] for r in rows), rows


def test_cli_verifies_by_tag(signed: Signed) -> None:
    registry, _, path = signed.repository.partition("/")
    tags = requests.get(f"http://{registry}/v2/{path}/tags/list", timeout=10).json()["tags"]
    [tag, *_] = sorted(t for t in tags if not t.startswith("sha256-"))  # not cosign's tags
    code, rows, err = _verify_cli(signed, f"{signed.repository}:{tag}", signed.settings.run_dir)
    assert code == 0, err
    assert sorted(_pairs(rows)) == sorted(VERIFIERS)
    assert all(r["passed"] for r in rows), rows


def test_cli_refuses_tampered_simple_signatures_naming_the_verifiers(
    signed: Signed, tmp_path: Path
) -> None:
    """A run directory whose lookaside store holds the signatures with a byte flipped (its
    policy files written for it): the GPG verifiers refuse, each named; cosign still passes."""
    run_dir = tmp_path / "run"
    shutil.copytree(signed.trust.store, signing.store_dir(run_dir))
    mine = dataclasses.replace(
        signed.settings,
        paths=dataclasses.replace(signed.settings.paths, run_dir=str(run_dir)),
    )
    write_trust_files(mine, signed.keys, signed.repository)
    blobs = signing.read_signatures(signing.store_dir(run_dir), signed.repository, signed.digest)
    assert blobs
    for path in blobs:
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        path.write_bytes(bytes(raw))
    code, rows, err = _verify_cli(signed, f"{signed.repository}@{signed.digest}", run_dir)
    assert code != 0
    failed = {(r["format"], r["verifier"]) for r in rows if not r["passed"]}
    assert failed == GPG_VERIFIERS, rows
    for fmt, verifier in GPG_VERIFIERS:
        assert f"{fmt} by {verifier}" in err, err
    assert "by cosign verify" not in err, err


def test_cli_refuses_an_unsigned_image(signed: Signed) -> None:
    repo = _case_repo(signed, "cli-unsigned")
    code, rows, err = _verify_cli(signed, f"{repo}@{signed.digest}", signed.settings.run_dir)
    assert code != 0
    assert sorted(_pairs(rows)) == sorted(VERIFIERS)
    assert not any(r["passed"] for r in rows), rows
    assert "9 of 9 signature check(s)" in err and "cosign by cosign verify" in err, err
