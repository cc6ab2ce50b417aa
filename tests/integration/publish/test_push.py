"""``push``: refused without passing gates for the exact image id, by digest then tags, and a
registry failing part-way leaves no tag on a partial image."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
import requests
from faultproxy import fault_proxy

from mt5forge.config import Settings
from mt5forge.errors import RecordError, RegistryError
from mt5forge.records import image_key, read_record, records_dir, write_record
from mt5forge.registry import Registry
from mt5forge.stages.push import PushRequest, push_all, tags_for
from mt5forge.tools import skopeo

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _with_run_dir(settings: Settings, run_dir: Path) -> Settings:
    return dataclasses.replace(
        settings, paths=dataclasses.replace(settings.paths, run_dir=str(run_dir))
    )


def _request(gated: Any) -> PushRequest:
    return PushRequest(
        target=gated.build.target, reference=gated.build.reference, image_id=gated.build.image_id
    )


def _tags(registry: str, repo: str) -> list[str]:
    r = requests.get(f"http://{registry}/v2/{repo}/tags/list", timeout=10)
    if r.status_code == 404:
        return []
    return list(r.json().get("tags") or [])


def _copy_records(gated: Any, run_dir: Path, stages: list[str]) -> None:
    """The real records of the gated image, only ``stages`` of them, in another run dir."""
    key = image_key(gated.build.image_id)
    src = records_dir(gated.settings.run_dir) / key
    dest = records_dir(run_dir) / key
    dest.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        shutil.copy2(src / f"{stage}.json", dest / f"{stage}.json")


def test_push_by_digest_then_tags(gated: Any, local_registry: Registry) -> None:
    today = dt.date(2026, 12, 2)
    [result] = push_all(
        gated.settings, [_request(gated)], registry=local_registry.address, today=today
    )
    repo = f"mt5forge/{gated.build.target.image}"
    assert result.repository == f"{local_registry.address}/{repo}"
    assert set(_tags(local_registry.address, repo)) == set(result.tags)
    assert "slim-20261202" in result.tags and "latest" not in result.tags
    # The registry serves the manifest by its digest, and its config is the image id.
    manifest = requests.get(
        f"{local_registry.url}/v2/{repo}/manifests/{result.digest}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=10,
    )
    assert manifest.status_code == 200
    assert manifest.headers["Docker-Content-Digest"] == result.digest
    assert manifest.json()["config"]["digest"] == gated.build.image_id
    for tag in result.tags:
        by_tag = requests.head(
            f"{local_registry.url}/v2/{repo}/manifests/{tag}",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
            timeout=10,
        )
        assert by_tag.headers["Docker-Content-Digest"] == result.digest
    record = read_record(gated.settings.run_dir, "push", gated.build.image_id)
    assert record is not None and record["digest"] == result.digest
    # Pushing again gives the same digest: the push is repeatable.
    [again] = push_all(
        gated.settings, [_request(gated)], registry=local_registry.address, today=today
    )
    assert again.digest == result.digest


@pytest.mark.parametrize(
    ("have", "match"),
    [
        (["sbom", "scan"], "no record from verify"),
        ([], "no record from sbom, scan, verify"),
    ],
)
def test_push_refused_without_records(
    gated: Any, local_registry: Registry, tmp_path: Path, have: list[str], match: str
) -> None:
    _copy_records(gated, tmp_path, have)
    with pytest.raises(RecordError, match=match):
        push_all(
            _with_run_dir(gated.settings, tmp_path),
            [_request(gated)],
            registry=local_registry.address,
        )
    assert requests.get(f"{local_registry.url}/v2/_catalog", timeout=5).json()["repositories"] == []


def test_push_refused_with_a_failing_verify_record(
    gated: Any, local_registry: Registry, tmp_path: Path
) -> None:
    _copy_records(gated, tmp_path, ["sbom", "scan", "verify"])
    real = read_record(tmp_path, "verify", gated.build.image_id)
    assert real is not None and real.passed
    # The refusal logic is under test: the same record, marked failed.
    write_record(tmp_path, "verify", gated.build.image_id, dict(real.data), passed=False)
    with pytest.raises(RecordError, match=r"failed: verify"):
        push_all(
            _with_run_dir(gated.settings, tmp_path),
            [_request(gated)],
            registry=local_registry.address,
        )
    assert _tags(local_registry.address, "mt5forge/bot") == []


def test_push_refused_with_records_of_another_image(
    gated: Any, built: Any, local_registry: Registry, tmp_path: Path
) -> None:
    """Records for bot:slim do not let bot:secure (another id) go, and a record file put under
    bot:secure's key that describes bot:slim is named as mismatched."""
    _copy_records(gated, tmp_path, ["sbom", "scan", "verify"])
    other = built.first["bot:secure"]
    assert other.image_id != gated.build.image_id
    settings = _with_run_dir(gated.settings, tmp_path)
    req = PushRequest(target=other.target, reference=other.reference, image_id=other.image_id)
    with pytest.raises(RecordError, match="no record from sbom, scan, verify"):
        push_all(settings, [req], registry=local_registry.address)
    moved = records_dir(tmp_path) / image_key(other.image_id)
    moved.mkdir(parents=True)
    src = records_dir(tmp_path) / image_key(gated.build.image_id)
    for stage in ("sbom", "scan", "verify"):
        shutil.copy2(src / f"{stage}.json", moved / f"{stage}.json")
    with pytest.raises(RecordError, match="mismatched or unreadable: sbom"):
        push_all(settings, [req], registry=local_registry.address)
    # One refused image stops the whole push: the gated one is not pushed either.
    with pytest.raises(RecordError):
        push_all(settings, [_request(gated), req], registry=local_registry.address)
    assert _tags(local_registry.address, "mt5forge/bot") == []


@pytest.mark.parametrize(
    "fail",
    [
        pytest.param(lambda m, p, n: m == "PUT" and "/manifests/" in p, id="manifest-500"),
        pytest.param(
            lambda m, p, n: m in {"PATCH", "PUT"} and "/blobs/uploads/" in p and n > 6,
            id="blob-500-part-way",
        ),
    ],
)
def test_registry_failing_mid_push_leaves_no_tag_and_a_rerun_works(
    gated: Any, local_registry: Registry, fail: Any
) -> None:
    repo = "mt5forge/bot"
    with fault_proxy(local_registry.address, fail) as proxy:
        with pytest.raises(RegistryError, match="Pushing to"):
            push_all(gated.settings, [_request(gated)], registry=proxy)
        assert _tags(proxy, repo) == []
    assert _tags(local_registry.address, repo) == []
    # The layout stays for the re-run, complete and checked; a changed blob is not reused.
    work = gated.settings.run_dir / "push" / gated.build.image_id.removeprefix("sha256:")
    digest = skopeo.reuse_staged(work, gated.build.image_id)
    assert digest is not None
    blob = next(p for p in work.iterdir() if len(p.name) == 64 and p.stat().st_size < 20000)
    original = blob.read_bytes()
    blob.write_bytes(original + b" ")
    assert skopeo.reuse_staged(work, gated.build.image_id) is None
    blob.write_bytes(original)
    [result] = push_all(gated.settings, [_request(gated)], registry=local_registry.address)
    assert result.digest == digest
    assert set(_tags(local_registry.address, repo)) == set(result.tags)
    assert not work.exists()


def test_registry_stopped_mid_push_leaves_no_tag(gated: Any, local_registry: Registry) -> None:
    """A registry that goes away after the first uploads (from then on the proxy closes every
    connection unanswered): the push fails, no tag exists."""
    with (
        fault_proxy(local_registry.address, lambda m, p, n: n > 4, drop=True) as proxy,
        pytest.raises(RegistryError),
    ):
        push_all(gated.settings, [_request(gated)], registry=proxy)
    assert _tags(local_registry.address, "mt5forge/bot") == []


@pytest.mark.parametrize(
    "address", ["registry.example.test:5000", "localhost:5000", "10.0.0.1:5000"]
)
def test_fixture_images_go_only_to_127_0_0_1(gated: Any, address: str) -> None:
    with pytest.raises(RegistryError, match=r"only to a registry on 127\.0\.0\.1"):
        push_all(gated.settings, [_request(gated)], registry=address)


def test_an_auth_file_inside_the_tree_is_refused(
    gated: Any, local_registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(gated.settings.root / "auth.json"))
    with pytest.raises(RegistryError, match="inside the project tree"):
        push_all(gated.settings, [_request(gated)], registry=local_registry.address)


def test_tags() -> None:
    day = dt.date(2026, 1, 2)
    assert tags_for("slim", "0.1.0", "abcdef0123", today=day, release=False, first=True) == (
        "slim-0.1.0",
        "slim-20260102",
        "slim-abcdef0",
    )
    assert tags_for("secure", "0.1.0", "unknown", today=day, release=True, first=False) == (
        "secure-0.1.0",
        "secure-20260102",
        "secure",
    )
    assert "latest" in tags_for("slim", "1", "r", today=day, release=True, first=True)
    dirty = tags_for("slim", "1", "abcdef0123-dirty", today=day, release=False, first=True)
    assert dirty[-1] == "slim-abcdef0-dirty"
