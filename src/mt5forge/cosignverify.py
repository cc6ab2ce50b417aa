"""Our own verifier of cosign's key-based signatures and attestations, independent of cosign.

cosign keeps what it made for ``repo@sha256:<hex>`` in the same repository, under the tags
``sha256-<hex>.sig`` (signatures) and ``sha256-<hex>.att`` (attestations). Each layer of the
``.sig`` manifest is a simple-signing payload whose ECDSA signature is the layer's annotation
``dev.cosignproject.cosign/signature``; each layer of ``.att`` is a DSSE envelope holding an
in-toto statement. Here they are fetched over the registry API (bounded sizes, every blob's
digest checked), the signatures checked with the public key alone (``cryptography``), and the
payload must name the exact digest. Something wrong in any of them refuses; at least one good
signature (or attestation of the type asked for) is needed.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mt5forge.errors import VerificationError

SIG_ANNOTATION = "dev.cosignproject.cosign/signature"
MAX_MANIFEST = 4 << 20
MAX_BLOB = 64 << 20
MAX_LAYERS = 256
_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
PREDICATE_TYPES = {
    "cyclonedx": "https://cyclonedx.org/bom",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Checked:
    kind: str
    """``signature`` or the attestation's predicate type."""
    digest: str
    detail: str


def _base(registry: str) -> str:
    host = registry.rsplit(":", 1)[0]
    scheme = "http" if host.startswith("127.") or host == "localhost" else "https"
    return f"{scheme}://{registry}"


def _get(url: str, cap: int, accept: str | None = None) -> bytes | None:
    try:
        with requests.get(
            url, headers={"Accept": accept} if accept else {}, stream=True, timeout=(10, 60)
        ) as r:
            if r.status_code == 404:
                return None
            if r.status_code != 200:
                raise VerificationError(f"{url} answered HTTP {r.status_code}.")
            out = bytearray()
            for chunk in r.iter_content(1 << 16):
                out += chunk
                if len(out) > cap:
                    raise VerificationError(f"{url} is larger than {cap} bytes; refused.")
            return bytes(out)
    except requests.RequestException as e:
        raise VerificationError(f"Cannot read {url}: {e}") from e


def _key(public_key: Path) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_public_key(public_key.read_bytes())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise VerificationError(f"{public_key} is not an ECDSA public key (cosign's kind).")
    return key


def _layers(repository: str, digest: str, suffix: str) -> list[tuple[dict[str, Any], bytes]]:
    registry, _, path = repository.partition("/")
    tag = digest.replace(":", "-") + suffix
    raw = _get(f"{_base(registry)}/v2/{path}/manifests/{tag}", MAX_MANIFEST, _ACCEPT)
    if raw is None:
        return []
    try:
        layers = json.loads(raw)["layers"]
    except (ValueError, KeyError, TypeError) as e:
        raise VerificationError(f"{repository}:{tag} is not an image manifest.") from e
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
        raise VerificationError(f"{repository}:{tag} has a malformed layer list.")
    out = []
    for layer in layers:
        d = str(layer.get("digest", ""))
        blob = _get(f"{_base(registry)}/v2/{path}/blobs/{d}", MAX_BLOB)
        if blob is None or "sha256:" + hashlib.sha256(blob).hexdigest() != d:
            raise VerificationError(f"The blob {d} of {repository}:{tag} is missing or altered.")
        out.append((layer, blob))
    return out


def verify_signatures(repository: str, digest: str, *, public_key: Path) -> list[Checked]:
    """Every cosign signature on ``repository@digest`` must verify with ``public_key`` and
    name ``digest``; VerificationError otherwise, or when there is none."""
    key = _key(public_key)
    layers = _layers(repository, digest, ".sig")
    if not layers:
        raise VerificationError(f"No cosign signature for {repository}@{digest}.")
    out = []
    for layer, blob in layers:
        sig_b64 = ((layer.get("annotations") or {}).get(SIG_ANNOTATION)) or ""
        try:
            key.verify(base64.b64decode(sig_b64, validate=True), blob, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError) as e:
            raise VerificationError(
                f"A cosign signature on {repository}@{digest} does not verify with "
                f"{public_key.name} (tampered, or made by another key)."
            ) from e
        try:
            doc = json.loads(blob)
            named = doc["critical"]["image"]["docker-manifest-digest"]
            identity = str(doc["critical"]["identity"]["docker-reference"])
        except (ValueError, KeyError, TypeError) as e:
            raise VerificationError("A cosign signature's payload is not simple signing.") from e
        if named != digest:
            raise VerificationError(f"A cosign signature is for {named}, not {digest}.")
        if identity != repository:
            raise VerificationError(f"A cosign signature is for {identity}, not {repository}.")
        out.append(Checked(kind="signature", digest=digest, detail=identity))
    return out


def _pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def verify_attestations(
    repository: str, digest: str, *, public_key: Path, kind: str
) -> list[Checked]:
    """Every attestation on ``repository@digest`` must verify with ``public_key`` and have
    ``digest`` as its subject; at least one must be of ``kind``."""
    key = _key(public_key)
    want = PREDICATE_TYPES.get(kind, kind)
    out = []
    for _layer, blob in _layers(repository, digest, ".att"):
        try:
            env = json.loads(blob)
            body = base64.b64decode(env["payload"], validate=True)
            sigs = [base64.b64decode(s["sig"], validate=True) for s in env["signatures"]]
            ptype = str(env["payloadType"])
        except (ValueError, KeyError, TypeError) as e:
            raise VerificationError("An attestation is not a DSSE envelope.") from e
        good = False
        for sig in sigs:
            try:
                key.verify(sig, _pae(ptype, body), ec.ECDSA(hashes.SHA256()))
                good = True
            except InvalidSignature:
                continue
        if not good:
            raise VerificationError(
                f"An attestation on {repository}@{digest} does not verify with "
                f"{public_key.name} (tampered, or made by another key)."
            )
        try:
            statement = json.loads(body)
            subjects = statement["subject"]
            predicate_type = str(statement["predicateType"])
        except (ValueError, KeyError, TypeError) as e:
            raise VerificationError("An attestation's payload is not an in-toto statement.") from e
        hexes = {str((s.get("digest") or {}).get("sha256")) for s in subjects}
        if digest.removeprefix("sha256:") not in hexes:
            raise VerificationError(f"An attestation's subject is not {digest}.")
        out.append(Checked(kind=predicate_type, digest=digest, detail=predicate_type))
    if not any(c.kind == want for c in out):
        raise VerificationError(f"No verified {kind} attestation for {repository}@{digest}.")
    return out
