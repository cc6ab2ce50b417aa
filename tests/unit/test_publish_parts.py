"""Pure parts of publishing: the policy and registries.d that skopeo reads, the lookaside
layout, the provenance predicate, the build ID's inputs, tags and the loopback rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mt5forge import provenance, release, signing
from mt5forge.errors import RecordError, VerificationError
from mt5forge.stages.push import is_loopback, tls_verify

DIGEST = "sha256:" + "a" * 64


def test_policy_rejects_by_default_and_demands_each_key(tmp_path: Path) -> None:
    g, c = tmp_path / "k.gpg", tmp_path / "c.pub"
    doc = signing.policy("127.0.0.1:5000/mt5forge", gpg_key=g, cosign_key=c)
    assert doc["default"] == [{"type": "reject"}]
    reqs = doc["transports"]["docker"]["127.0.0.1:5000/mt5forge"]
    assert [r["type"] for r in reqs] == ["signedBy", "sigstoreSigned"]
    assert reqs[0]["keyPath"] == str(g.resolve()) and reqs[0]["keyType"] == "GPGKeys"
    assert reqs[1]["signedIdentity"] == {"type": "matchRepository"}
    with pytest.raises(VerificationError):
        signing.policy("x/y")


def test_registries_d_points_at_the_store(tmp_path: Path) -> None:
    text = signing.registries_d("h:1/p", tmp_path, sigstore_attachments=True)
    assert f"lookaside: file://{tmp_path.resolve()}" in text
    assert "use-sigstore-attachments: true" in text
    assert "use-sigstore" not in signing.registries_d("h:1/p", tmp_path, sigstore_attachments=False)


def test_lookaside_layout_is_what_containers_image_reads(tmp_path: Path) -> None:
    where = signing.signature_dir(tmp_path, "127.0.0.1:5000/mt5forge/bot", DIGEST)
    assert where == tmp_path / f"mt5forge/bot@sha256={'a' * 64}"
    paths = signing.write_signatures(tmp_path, "127.0.0.1:5000/mt5forge/bot", DIGEST, [b"1", b"2"])
    assert [p.name for p in paths] == ["signature-1", "signature-2"]
    # Signing again replaces, never appends to, what was there.
    signing.write_signatures(tmp_path, "127.0.0.1:5000/mt5forge/bot", DIGEST, [b"3"])
    assert [
        p.name for p in signing.read_signatures(tmp_path, "127.0.0.1:5000/mt5forge/bot", DIGEST)
    ] == ["signature-1"]


def test_payload_names_digest_and_identity() -> None:
    doc = json.loads(signing.payload(DIGEST, "r/x:t", now=5))
    assert doc["critical"] == {
        "type": "atomic container signature",
        "image": {"docker-manifest-digest": DIGEST},
        "identity": {"docker-reference": "r/x:t"},
    }
    assert doc["optional"]["timestamp"] == 5


def test_provenance_names_base_revision_and_inputs() -> None:
    labels = {
        "org.opencontainers.image.base.name": "mt5forge/base:trixie",
        "org.opencontainers.image.base.digest": "sha256:" + "b" * 64,
        "org.opencontainers.image.source": "https://example.invalid/r",
        "org.opencontainers.image.revision": "c" * 40 + "-dirty",
    }
    p = provenance.predicate(
        image="bot",
        variant="slim",
        profile="fixture",
        labels=labels,
        inputs={"checksums/x": "d" * 64},
        builder_id="me",
        invocation="i",
        started="t",
    )
    deps = p["buildDefinition"]["resolvedDependencies"]
    assert {"uri": "mt5forge/base:trixie", "digest": {"sha256": "b" * 64}} in deps
    assert any(d["digest"].get("gitCommit") == "c" * 40 for d in deps)
    assert {"uri": "checksums/x", "digest": {"sha256": "d" * 64}} in deps
    assert p["runDetails"]["builder"]["id"] == "me"


def test_tree_digest_follows_content_and_skips_caches(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("1")
    one = provenance.tree_sha256(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_text("junk")
    assert provenance.tree_sha256(tmp_path) == one
    (tmp_path / "a").write_text("2")
    assert provenance.tree_sha256(tmp_path) != one


@pytest.mark.parametrize(
    ("address", "loop"),
    [
        ("127.0.0.1:5000", True),
        ("127.1.2.3:80", True),
        ("localhost:5000", False),
        ("ghcr.io", False),
        ("10.0.0.1:5000", False),
        ("[::1]:5000", False),
    ],
)
def test_loopback_rule(address: str, loop: bool) -> None:
    assert is_loopback(address) is loop
    assert tls_verify(address) is not loop


def test_rebuild_publishes_on_a_package_change_or_a_closed_fix() -> None:
    same = release.package_diff({"deb:a": "1"}, {"deb:a": "1"})
    assert same.empty and not release.worth_publishing(same, [])
    assert release.worth_publishing(same, ["CVE-2099-1 openssl"])
    assert release.worth_publishing(release.package_diff({}, {"deb:a": "1"}), [])
    gone = release.package_diff({"deb:a": "1"}, {})
    assert gone.lines() == ["- deb:a 1"] and release.worth_publishing(gone, [])


def test_sbom_packages_and_the_state_round_trip(tmp_path: Path) -> None:
    sbom = tmp_path / "x.cdx.json"
    sbom.write_text(
        json.dumps(
            {
                "components": [
                    {"name": "bash", "version": "5.2", "purl": "pkg:deb/debian/bash@5.2"},
                    {"name": "requests", "version": "2.32", "purl": "pkg:pypi/requests@2.32"},
                    {"name": "wine-mono", "version": "9", "type": "file"},
                ]
            }
        )
    )
    assert release.sbom_packages(sbom) == {"deb:bash": "5.2", "pypi:requests": "2.32"}
    run = tmp_path / "run"
    assert release.load_state(run) is None
    img = release.Released(
        image_id="sha256:" + "1" * 64, digest=DIGEST, sbom=str(sbom), fixable=("CVE-1 x",)
    )
    release.save_state(run, release.State(build_id="b", images={"bot:slim": img}))
    back = release.load_state(run)
    assert back is not None and back.build_id == "b"
    kept = back.images["bot:slim"]
    assert kept.fixable == ("CVE-1 x",)
    assert Path(kept.sbom).read_text() == sbom.read_text()  # a copy kept beside the state
    release.state_path(run).write_text("{broken")
    with pytest.raises(RecordError, match="cannot be read"):
        release.load_state(run)
