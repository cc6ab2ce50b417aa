"""Hostile input to our own verifiers: junk, oversized and crafted signatures are refused
with a clear VerificationError, never an uncaught exception. Real GnuPG and a real HTTP server
on 127.0.0.1 standing in for a registry that serves crafted cosign manifests."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mt5forge import cosignverify, signing
from mt5forge.errors import VerificationError

DIGEST = "sha256:" + "1" * 64
REPO = "127.0.0.1:5000/mt5forge/bot"
PASSPHRASE = "p-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def gpg_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[signing.GpgKey]:
    key = signing.make_gpg_key(
        tmp_path_factory.mktemp("gpg") / "home", name="t", passphrase=PASSPHRASE
    )
    yield key
    signing.stop_agent(key.home)


def _store(tmp_path: Path, blobs: list[bytes]) -> Path:
    store = tmp_path / "store"
    signing.write_signatures(store, REPO, DIGEST, blobs)
    return store


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x00" * 100,
        b"-----BEGIN PGP MESSAGE-----\njunk\n-----END PGP MESSAGE-----\n",
        secrets.token_bytes(2000),
    ],
    ids=["empty", "zeros", "armored-junk", "random"],
)
def test_junk_simple_signatures_are_refused(
    gpg_key: signing.GpgKey, tmp_path: Path, blob: bytes
) -> None:
    store = _store(tmp_path, [blob])
    with pytest.raises(VerificationError):
        signing.verify_simple(
            store, REPO, DIGEST, public_key=gpg_key.public_key, fingerprint=gpg_key.fingerprint
        )


def test_an_oversized_signature_is_refused_unread(gpg_key: signing.GpgKey, tmp_path: Path) -> None:
    store = _store(tmp_path, [b"x" * (signing.MAX_SIGNATURE_BYTES + 1)])
    with pytest.raises(VerificationError, match="not a signature"):
        signing.verify_simple(
            store, REPO, DIGEST, public_key=gpg_key.public_key, fingerprint=gpg_key.fingerprint
        )


def test_a_signed_non_payload_is_refused(gpg_key: signing.GpgKey, tmp_path: Path) -> None:
    """A good signature by the pinned key over something that is not a simple-signing
    payload."""
    gpg = signing._gpg(gpg_key.home)
    signed = gpg.sign(
        b'{"hello": 1}',
        keyid=gpg_key.fingerprint,
        passphrase=PASSPHRASE,
        binary=True,
        clearsign=False,
        extra_args=["--pinentry-mode", "loopback"],
    )
    assert signed.data
    store = _store(tmp_path, [bytes(signed.data)])
    with pytest.raises(VerificationError, match="not a simple signing payload"):
        signing.verify_simple(
            store, REPO, DIGEST, public_key=gpg_key.public_key, fingerprint=gpg_key.fingerprint
        )


def test_no_signature_and_short_key_ids_are_refused(
    gpg_key: signing.GpgKey, tmp_path: Path
) -> None:
    with pytest.raises(VerificationError, match="No simple signature"):
        signing.verify_simple(
            tmp_path, REPO, DIGEST, public_key=gpg_key.public_key, fingerprint=gpg_key.fingerprint
        )
    with pytest.raises(VerificationError, match="full OpenPGP fingerprint"):
        signing.check_fingerprint(gpg_key.fingerprint[-16:])
    with pytest.raises(VerificationError, match="not a sha256"):
        signing.signature_dir(tmp_path, REPO, "sha256:../../etc")


# ---- cosign: a real HTTP server serving crafted manifests and blobs ----


class Crafted:
    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}


@pytest.fixture
def served() -> Iterator[tuple[str, Crafted]]:
    crafted = Crafted()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = crafted.routes.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}/mt5forge/bot", crafted
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def ec_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[ec.EllipticCurvePrivateKey, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path_factory.mktemp("ec") / "cosign.pub"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, pub


def _publish(
    crafted: Crafted,
    repo: str,
    layers: list[tuple[bytes, dict[str, str]]],
    suffix: str = ".sig",
    digest_override: str | None = None,
) -> None:
    path = repo.partition("/")[2]
    entries = []
    for blob, ann in layers:
        d = "sha256:" + hashlib.sha256(blob).hexdigest()
        crafted.routes[f"/v2/{path}/blobs/{digest_override or d}"] = blob
        entries.append({"digest": digest_override or d, "size": len(blob), "annotations": ann})
    manifest = json.dumps({"schemaVersion": 2, "layers": entries}).encode()
    crafted.routes[f"/v2/{path}/manifests/{DIGEST.replace(':', '-')}{suffix}"] = manifest


def _payload(repo: str, digest: str = DIGEST) -> bytes:
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": repo},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            }
        }
    ).encode()


def _sig(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def test_cosign_control_a_good_crafted_signature_verifies(
    served: tuple[str, Crafted], ec_key: tuple[ec.EllipticCurvePrivateKey, Path]
) -> None:
    repo, crafted = served
    key, pub = ec_key
    body = _payload(repo)
    _publish(crafted, repo, [(body, {cosignverify.SIG_ANNOTATION: _sig(key, body)})])
    assert cosignverify.verify_signatures(repo, DIGEST, public_key=pub)[0].detail == repo


@pytest.mark.parametrize(
    "case",
    [
        "no-sig",
        "bad-base64",
        "blob-swapped",
        "other-digest",
        "other-repo",
        "not-json",
        "no-manifest",
    ],
)
def test_cosign_crafted_signatures_are_refused(
    served: tuple[str, Crafted], ec_key: tuple[ec.EllipticCurvePrivateKey, Path], case: str
) -> None:
    repo, crafted = served
    key, pub = ec_key
    body = _payload(repo)
    sig = _sig(key, body)
    if case == "no-sig":
        _publish(crafted, repo, [(body, {})])
    elif case == "bad-base64":
        _publish(crafted, repo, [(body, {cosignverify.SIG_ANNOTATION: "!!!"})])
    elif case == "blob-swapped":
        # The manifest names one digest, the server answers other bytes for it.
        _publish(
            crafted,
            repo,
            [(body + b" ", {cosignverify.SIG_ANNOTATION: sig})],
            digest_override="sha256:" + hashlib.sha256(body).hexdigest(),
        )
    elif case == "other-digest":
        other = _payload(repo, "sha256:" + "2" * 64)
        _publish(crafted, repo, [(other, {cosignverify.SIG_ANNOTATION: _sig(key, other)})])
    elif case == "other-repo":
        other = _payload("127.0.0.1:5000/evil/bot")
        _publish(crafted, repo, [(other, {cosignverify.SIG_ANNOTATION: _sig(key, other)})])
    elif case == "not-json":
        crafted.routes[f"/v2/{repo.partition('/')[2]}/manifests/{DIGEST.replace(':', '-')}.sig"] = (
            b"\xff not json"
        )
    with pytest.raises(VerificationError):
        cosignverify.verify_signatures(repo, DIGEST, public_key=pub)


def test_cosign_an_oversized_manifest_is_refused(
    served: tuple[str, Crafted], ec_key: tuple[ec.EllipticCurvePrivateKey, Path]
) -> None:
    repo, crafted = served
    crafted.routes[f"/v2/{repo.partition('/')[2]}/manifests/{DIGEST.replace(':', '-')}.sig"] = (
        b" " * (cosignverify.MAX_MANIFEST + 1)
    )
    with pytest.raises(VerificationError, match="larger than"):
        cosignverify.verify_signatures(repo, DIGEST, public_key=ec_key[1])


def test_cosign_crafted_attestations_are_refused(
    served: tuple[str, Crafted], ec_key: tuple[ec.EllipticCurvePrivateKey, Path]
) -> None:
    repo, crafted = served
    key, pub = ec_key
    statement = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://cyclonedx.org/bom",
            "subject": [{"name": repo, "digest": {"sha256": "3" * 64}}],
            "predicate": {},
        }
    ).encode()
    ptype = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype.encode(), len(statement), statement)
    env = json.dumps(
        {
            "payloadType": ptype,
            "payload": base64.b64encode(statement).decode(),
            "signatures": [{"sig": _sig(key, pae)}],
        }
    ).encode()
    _publish(crafted, repo, [(env, {})], suffix=".att")
    with pytest.raises(VerificationError, match="subject is not"):
        cosignverify.verify_attestations(repo, DIGEST, public_key=pub, kind="cyclonedx")
    _publish(crafted, repo, [(b'{"payloadType": 1}', {})], suffix=".att")
    with pytest.raises(VerificationError, match="not a DSSE envelope"):
        cosignverify.verify_attestations(repo, DIGEST, public_key=pub, kind="cyclonedx")
