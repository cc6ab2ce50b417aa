"""``rebuild``: "no change" decided before any build or push when the build ID is the last
release's; a package that changed since the last release is published (pushed and signed),
an unchanged package set is not."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mt5forge import provenance
from mt5forge.progress import NullProgress
from mt5forge.registry import Registry
from mt5forge.release import (
    Decision,
    Released,
    State,
    apt_snapshot,
    decide,
    load_state,
    package_diff,
    publish_if_changed,
    run_rebuild,
    save_state,
    sbom_packages,
    state_path,
)
from mt5forge.stages import Options
from mt5forge.stages.sign import SigningKeys

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Seen(NullProgress):
    """Remembers which progress keys a run started: a build or push would start one."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def start(self, key: str, label: str, *, total: float | None = None, unit: str = "") -> None:
        self.keys.append(key)


@pytest.fixture
def clean_state(gated: Any) -> Iterator[Path]:
    path = state_path(gated.settings.run_dir)
    shutil.rmtree(path.parent, ignore_errors=True)
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


def _sbom(gated: Any) -> Path:
    [r] = gated.results["sbom"]
    return Path(r.path)


def _catalog(reg: Registry) -> list[str]:
    return list(requests.get(f"{reg.url}/v2/_catalog", timeout=5).json()["repositories"])


def test_apt_snapshot_gives_a_candidate_for_every_released_package(gated: Any, built: Any) -> None:
    debs = {k[4:]: v for k, v in sbom_packages(_sbom(gated)).items() if k.startswith("deb:")}
    snap = apt_snapshot(built.base.image_id, [*debs, "no-such-package-mt5forge", "bad name;x"])
    assert set(snap) == {*debs, "no-such-package-mt5forge"}  # a malformed name never reaches apt
    assert snap["no-such-package-mt5forge"] == "(none)"
    # apt's candidate is what the image has, except where an update landed since it was built.
    moved = [p for p in debs if debs[p] != snap[p]]
    assert len(moved) < len(debs) / 2, moved


def test_no_change_is_decided_before_any_build_or_push(
    gated: Any, built: Any, local_registry: Registry, clean_state: Path, signing_keys: SigningKeys
) -> None:
    settings = gated.settings
    released = Released(
        image_id=gated.build.image_id, digest="sha256:" + "0" * 64, sbom=str(_sbom(gated))
    )
    save_state(settings.run_dir, State(build_id="", images={"bot:slim": released}))
    now = decide(settings, base_digest=built.base.image_id)
    save_state(settings.run_dir, State(build_id=now.build_id, images={"bot:slim": released}))
    seen = Seen()
    out = run_rebuild(
        settings,
        Options(images=("bot",), variants=("slim",)),
        registry=local_registry.address,
        keys=signing_keys,
        progress=seen,
    )
    assert out.verdict == "no change" and not out.built and out.published is None
    assert out.decision.unchanged
    assert not [k for k in seen.keys if k.startswith(("push", "sign", "sbom", "scan"))]
    assert not any(k.startswith("bot:") or "build" in k for k in seen.keys), seen.keys
    assert _catalog(local_registry) == []


def test_a_changed_input_changes_the_build_id() -> None:
    inputs = {"checksums/a.lock": "1" * 64, "build/": "2" * 64}
    one = provenance.build_id(inputs, base_digest="sha256:b", packages={"x|bash": "5.2-1"})
    assert one == provenance.build_id(
        dict(inputs), base_digest="sha256:b", packages={"x|bash": "5.2-1"}
    )
    assert one != provenance.build_id(inputs, base_digest="sha256:b", packages={"x|bash": "5.2-2"})
    assert one != provenance.build_id(inputs, base_digest="sha256:c", packages={"x|bash": "5.2-1"})
    assert one != provenance.build_id(
        {**inputs, "build/": "3" * 64}, base_digest="sha256:b", packages={"x|bash": "5.2-1"}
    )


def _last_release_with(gated: Any, tmp_path: Path, edit: bool) -> None:
    """The last release's state: the image's real SBOM, with bash one version older when
    ``edit`` (the history a package update makes)."""
    doc = json.loads(_sbom(gated).read_text())
    if edit:
        for c in doc["components"]:
            if c.get("name") == "bash" and str(c.get("purl", "")).startswith("pkg:deb/"):
                c["version"] = "5.1-0mt5forge-older"
    old = tmp_path / "last.cdx.json"
    old.write_text(json.dumps(doc))
    released = Released(image_id="sha256:" + "e" * 64, digest="sha256:" + "f" * 64, sbom=str(old))
    save_state(gated.settings.run_dir, State(build_id="old", images={"bot:slim": released}))


def _decision(built: Any) -> Decision:
    return Decision(build_id="new", base_digest=built.base.image_id, previous="old", seconds=0)


def test_a_changed_package_is_pushed_and_signed(
    gated: Any,
    built: Any,
    local_registry: Registry,
    clean_state: Path,
    signing_keys: SigningKeys,
    tmp_path: Path,
) -> None:
    _last_release_with(gated, tmp_path, edit=True)
    sboms = {gated.build.image_id: _sbom(gated)}
    out = publish_if_changed(
        gated.settings,
        _decision(built),
        [gated.build],
        sboms,
        registry=local_registry.address,
        keys=signing_keys,
    )
    assert out.published is not None and out.verdict == "published"
    lines = out.diffs["bot:slim"].lines()
    assert "- deb:bash 5.1-0mt5forge-older" in lines
    assert any(line.startswith("+ deb:bash ") for line in lines)
    assert len(lines) == 2, lines
    assert _catalog(local_registry) == ["mt5forge/bot"]
    assert out.published.passed, out.published.checks
    state = load_state(gated.settings.run_dir)
    assert state is not None and state.images["bot:slim"].image_id == gated.build.image_id


def test_the_same_packages_are_not_published(
    gated: Any,
    built: Any,
    local_registry: Registry,
    clean_state: Path,
    signing_keys: SigningKeys,
    tmp_path: Path,
) -> None:
    _last_release_with(gated, tmp_path, edit=False)
    sboms = {gated.build.image_id: _sbom(gated)}
    out = publish_if_changed(
        gated.settings,
        _decision(built),
        [gated.build],
        sboms,
        registry=local_registry.address,
        keys=signing_keys,
    )
    assert out.verdict == "no change" and out.published is None
    assert out.diffs["bot:slim"].empty
    assert _catalog(local_registry) == []


def test_package_diff_lines() -> None:
    d = package_diff({"deb:a": "1", "deb:b": "2"}, {"deb:a": "1", "deb:b": "3", "deb:c": "1"})
    assert d.lines() == ["- deb:b 2", "+ deb:b 3", "+ deb:c 1"]
