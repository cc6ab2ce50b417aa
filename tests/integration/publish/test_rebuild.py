"""``rebuild``: "no change" decided before any build or push when the build ID is the last
release's; a package that changed since the last release is published (pushed and signed),
an unchanged package set is not."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mt5forge import provenance
from mt5forge import release as release_module
from mt5forge.progress import NullProgress
from mt5forge.registry import Registry
from mt5forge.release import (
    Decision,
    Rebuilt,
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


def _tags(reg: Registry, repo: str) -> list[str]:
    r = requests.get(f"{reg.url}/v2/{repo}/tags/list", timeout=10)
    return [] if r.status_code == 404 else list(r.json().get("tags") or [])


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


def test_a_new_build_id_builds_and_publishes_a_closed_fix_then_nothing_more(
    gated: Any,
    built: Any,
    local_registry: Registry,
    signing_keys: SigningKeys,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One real rebuild. The last release's state has another build ID and a fixable finding
    its scan listed, ``CVE-x pkg``, which the fresh build's scan (fixture database) lacks:
    run_rebuild builds bot:slim fresh (apt-get upgrade), gates it, diffs its SBOM against the
    last one and publishes for the closed fix. Then the same build against the state that
    publish kept (its own package set, nothing fixable) is "no change" and pushes nothing, and
    the next scheduled run decides "no change" before building."""
    base = gated.settings
    run_dir = tmp_path / "run"
    # The session's fixture settings with a run directory (and SBOM directory) of this test's
    # own: the fresh build's SBOM and records must not replace the gated image's.
    settings = dataclasses.replace(
        base,
        paths=dataclasses.replace(base.paths, run_dir=str(run_dir)),
        sbom=dataclasses.replace(base.sbom, dir=str(run_dir / "sbom")),
    )
    last = Released(
        image_id=gated.build.image_id,
        digest="sha256:" + "f" * 64,
        sbom=str(_sbom(gated)),
        fixable=("CVE-x pkg",),
    )
    save_state(run_dir, State(build_id="an older build id", images={"bot:slim": last}))
    seen: list[tuple[Any, ...]] = []

    def spy(*args: Any, **kwargs: Any) -> Rebuilt:
        """The real publish_if_changed; only remembers what the build gave it."""
        seen.append(args)
        return publish_if_changed(*args, **kwargs)

    monkeypatch.setattr(release_module, "publish_if_changed", spy)
    progress = Seen()
    options = Options(images=("bot",), variants=("slim",))
    out = run_rebuild(
        settings, options, registry=local_registry.address, keys=signing_keys, progress=progress
    )

    # It built, and every gate ran, before deciding.
    assert out.built and not out.decision.unchanged
    assert out.decision.previous == "an older build id"
    assert "bot:slim" in progress.keys, progress.keys  # the build stage's key
    for stage in ("sbom", "scan", "verify"):
        assert any(k.startswith(stage) for k in progress.keys), (stage, progress.keys)
    [(_, decision, fresh, sboms)] = seen
    [new] = fresh
    # The diff is of the fresh build's SBOM against the last released one.
    assert out.diffs["bot:slim"] == package_diff(
        sbom_packages(_sbom(gated)), sbom_packages(sboms[new.image_id])
    )
    # The closed fix alone is reason to publish: pushed, signed, every signature checked.
    assert out.closed == {"bot:slim": ("CVE-x pkg",)}
    assert out.verdict == "published" and out.published is not None
    assert out.published.passed, out.published.checks
    [pushed] = out.published.pushed
    assert pushed.image_id == new.image_id
    assert _catalog(local_registry) == ["mt5forge/bot"]
    tags = sorted(_tags(local_registry, "mt5forge/bot"))
    state = load_state(run_dir)
    assert state is not None and state.build_id != "an older build id"
    kept = state.images["bot:slim"]
    assert (kept.image_id, kept.digest, kept.fixable) == (new.image_id, pushed.digest, ())
    assert sbom_packages(Path(kept.sbom)) == sbom_packages(sboms[new.image_id])

    # The same build against what was just released: no package changed, nothing to close.
    again = publish_if_changed(
        settings, decision, fresh, sboms, registry=local_registry.address, keys=signing_keys
    )
    assert again.verdict == "no change" and again.published is None
    assert again.diffs["bot:slim"].empty and again.closed == {"bot:slim": ()}
    assert sorted(_tags(local_registry, "mt5forge/bot")) == tags  # nothing more pushed

    # And the next scheduled run stops at the decision.
    monkeypatch.undo()
    quiet = Seen()
    later = run_rebuild(
        settings, options, registry=local_registry.address, keys=signing_keys, progress=quiet
    )
    assert later.verdict == "no change" and not later.built and later.decision.unchanged
    assert not [k for k in quiet.keys if k == "bot:slim" or k.startswith(("push", "sign"))]
    assert sorted(_tags(local_registry, "mt5forge/bot")) == tags
