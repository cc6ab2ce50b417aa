"""``release`` and ``rebuild``: the whole pipeline with publishing at the end, and the
scheduled rebuild that publishes only when something in the image changed.

Release: fetch, build, sbom, scan, verify (:data:`mt5forge.stages.PIPELINE` up to verify; a
gate that fails raises before anything is pushed), then push (``latest`` and ``<variant>``
tags too), sign, and every signature checked by every verifier.

Rebuild decides "no change" *before* any build or push. Its build ID hashes what an image is
made from (:func:`mt5forge.provenance.build_id`): the lock, manifests and ``build/`` tree, the
base image's digest, and the apt snapshot: the version apt would install now of every Debian
package in the last released images (their SBOMs name them; ``apt-cache policy`` after
``apt-get update`` in one throw-away container of the base image, since the secure variants
carry no dpkg to ask). The last
release's build ID, digests and SBOMs are kept in ``<run_dir>/rebuild/state.json``. With the
same ID the rebuild stops there. Otherwise it builds fresh (``apt-get upgrade``), and publishes
only when the package set in the new SBOM differs from the last released one or a fixable
vulnerability was closed; the package diff is printed in the ``package_versions.txt`` shape
(``name version`` lines, as linuxserver's images keep it).
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mt5forge import provenance, signing
from mt5forge.config import Settings
from mt5forge.errors import RecordError
from mt5forge.files import atomic_write
from mt5forge.progress import Progress
from mt5forge.records import read_record
from mt5forge.sigcheck import Check, Trust, check_all
from mt5forge.stages import Options, run_stages, select
from mt5forge.stages.build import BuildResult
from mt5forge.stages.push import PushRequest, PushResult, push_all
from mt5forge.stages.sign import SigningKeys, SignResult, from_push, sign_all
from mt5forge.tools.run import call
from mt5forge.tools.toolsimage import ensure_tools_image

STATE = "state.json"
_PKG = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[a-z0-9]+)?$")
"""A Debian binary package name (optionally :arch): anything else never reaches apt."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Released:
    """One image of the last release, as the rebuild state keeps it."""

    image_id: str
    digest: str
    sbom: str
    """Path of its SBOM (CycloneDX JSON) kept with the state."""
    fixable: tuple[str, ...] = ()
    """Vulnerabilities with a fixed version it still had (from its scan record)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class State:
    build_id: str
    images: Mapping[str, Released]
    """``image:variant`` -> what was released."""


def state_path(run_dir: Path) -> Path:
    return run_dir / "rebuild" / STATE


def load_state(run_dir: Path) -> State | None:
    path = state_path(run_dir)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return State(
            build_id=str(doc["build_id"]),
            images={
                k: Released(
                    image_id=str(v["image_id"]),
                    digest=str(v["digest"]),
                    sbom=str(v["sbom"]),
                    fixable=tuple(str(f) for f in v.get("fixable") or ()),
                )
                for k, v in dict(doc["images"]).items()
            },
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RecordError(
            f"The rebuild state {path} cannot be read: {e}",
            hint="Delete it to start over (the next rebuild publishes).",
        ) from e


def save_state(run_dir: Path, state: State) -> Path:
    """Keep the state and a copy of each released SBOM beside it."""
    keep = state_path(run_dir).parent / "sboms"
    images: dict[str, Any] = {}
    for name, r in state.images.items():
        src = Path(r.sbom)
        dest = keep / f"{name.replace(':', '-')}.cdx.json"
        if src.is_file() and src.resolve() != dest.resolve():
            atomic_write(dest, src.read_bytes())
        images[name] = {**dataclasses.asdict(r), "sbom": str(dest), "fixable": list(r.fixable)}
    doc = {"build_id": state.build_id, "images": images}
    return atomic_write(state_path(run_dir), json.dumps(doc, indent=2, sort_keys=True) + "\n")


def apt_snapshot(
    base_image: str, packages: Sequence[str], *, timeout: float = 300
) -> dict[str, str]:
    """``package -> version`` apt would install for each of ``packages`` now: the candidate
    versions after ``apt-get update``, asked in a throw-away container of the base image (the
    released images' own apt may be gone: the secure variants drop dpkg). A package the archive
    no longer has maps to ``(none)``."""
    names = sorted({p for p in packages if _PKG.match(p)})
    if not names:
        return {}
    script = 'apt-get update -qq >/dev/null 2>&1 || exit 3; apt-cache policy -- "$@"'
    proc = call(
        "docker",
        "run",
        "--rm",
        "--network",
        "host",
        "--user",
        "0:0",
        "--entrypoint",
        "/bin/sh",
        base_image,
        "-c",
        script,
        "apt-snapshot",
        *names,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RecordError(
            f"apt in {base_image[:19]} could not refresh its package lists (exit "
            f"{proc.returncode}); the rebuild cannot tell whether a package changed.",
            hint=(proc.stderr or b"").decode("utf-8", "replace")[-300:] or None,
        )
    found: dict[str, str] = {}
    current = ""
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
        elif current and line.strip().startswith("Candidate:"):
            found[current] = line.split(":", 1)[1].strip()
    return {n: found.get(n, "(none)") for n in names}


def released_packages(state: State | None) -> list[str]:
    """The Debian packages in any released image, from its SBOM."""
    names: set[str] = set()
    for r in state.images.values() if state else ():
        path = Path(r.sbom)
        if path.is_file():
            names.update(k[4:] for k in sbom_packages(path) if k.startswith("deb:"))
    return sorted(names)


def current_build_id(root: Path, *, base_digest: str, packages: Mapping[str, str]) -> str:
    return provenance.build_id(provenance.inputs(root), base_digest=base_digest, packages=packages)


def sbom_packages(path: Path) -> dict[str, str]:
    """``type:name -> version`` of every component in a CycloneDX SBOM (the root image and
    the made-up ones left out: packages only)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for c in doc.get("components") or []:
        purl = str(c.get("purl") or "")
        if not purl.startswith("pkg:"):
            continue
        kind = purl[4:].split("/", 1)[0]
        out[f"{kind}:{c.get('name')}"] = str(c.get("version", ""))
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class PackageDiff:
    added: Mapping[str, str]
    removed: Mapping[str, str]
    changed: Mapping[str, tuple[str, str]]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def lines(self) -> list[str]:
        """``package_versions.txt`` style: ``- name old`` / ``+ name new``."""
        out = []
        for k in sorted({*self.added, *self.removed, *self.changed}):
            if k in self.changed:
                old, new = self.changed[k]
                out += [f"- {k} {old}", f"+ {k} {new}"]
            elif k in self.added:
                out.append(f"+ {k} {self.added[k]}")
            else:
                out.append(f"- {k} {self.removed[k]}")
        return out


def package_diff(old: Mapping[str, str], new: Mapping[str, str]) -> PackageDiff:
    return PackageDiff(
        added={k: v for k, v in new.items() if k not in old},
        removed={k: v for k, v in old.items() if k not in new},
        changed={k: (old[k], new[k]) for k in old.keys() & new.keys() if old[k] != new[k]},
    )


def fixable(run_dir: Path, image_id: str) -> tuple[str, ...]:
    """Vulnerabilities with a fixed version the image's scan record lists."""
    rec = read_record(run_dir, "scan", image_id)
    if rec is None:
        return ()
    return tuple(
        sorted(
            f"{f.get('id')} {f.get('package')}"
            for f in rec.get("findings") or []
            if f.get("kind") == "vulnerability" and f.get("fixed")
        )
    )


def worth_publishing(diff: PackageDiff, closed: Sequence[str]) -> bool:
    """Publish when a package changed or a fixable vulnerability was closed."""
    return not diff.empty or bool(closed)


# ---- the drivers: they run stages as a task does (mt5forge.stages.run_stages), then publish ----


@dataclasses.dataclass(frozen=True, kw_only=True)
class Published:
    pushed: tuple[PushResult, ...]
    signed: tuple[SignResult, ...]
    gates: Mapping[str, str]
    """image id -> the gates it passed, as the records say."""
    checks: Mapping[str, tuple[Check, ...]]
    """image id -> every verifier's outcome on its signatures."""

    @property
    def passed(self) -> bool:
        return all(c.passed for cs in self.checks.values() for c in cs) and len(self.signed) == len(
            self.pushed
        )


def gates_of(run_dir: Path, image_id: str) -> str:
    out = []
    for stage in ("sbom", "scan", "verify"):
        rec = read_record(run_dir, stage, image_id)
        out.append(f"{stage} {'pass' if rec is not None and rec.passed else 'FAIL'}")
    return ", ".join(out)


def trust_of(settings: Settings, keys: SigningKeys) -> Trust:
    t = signing.trust_dir(settings.run_dir)
    return Trust(
        store=signing.store_dir(settings.run_dir),
        gpg_public_key=keys.gpg_public_key,
        gpg_fingerprint=keys.gpg_fingerprint,
        cosign_public_key=keys.cosign_public_key,
        gpg_policy=t / "gpg" / "policy.json",
        gpg_registries_d=t / "gpg" / "registries.d",
        full_policy=t / "full" / "policy.json",
        full_registries_d=t / "full" / "registries.d",
    )


def publish(
    settings: Settings,
    built: Sequence[BuildResult],
    *,
    release: bool,
    registry: str | None = None,
    keys: SigningKeys | None = None,
    progress: Progress | None = None,
) -> Published:
    """Push (gated on records), sign, and check every signature with every verifier."""
    keys = keys or SigningKeys.from_env()
    requests = [
        PushRequest(target=b.target, reference=b.reference, image_id=b.image_id) for b in built
    ]
    pushed = push_all(settings, requests, release=release, registry=registry, progress=progress)
    signed = sign_all(settings, from_push(pushed), keys=keys, progress=progress)
    trust = trust_of(settings, keys)
    tools = ensure_tools_image(settings)
    checks = {
        p.image_id: tuple(check_all(p.repository, p.digest, trust, tools_image=tools))
        for p in pushed
    }
    return Published(
        pushed=tuple(pushed),
        signed=tuple(signed),
        gates={p.image_id: gates_of(settings.run_dir, p.image_id) for p in pushed},
        checks=checks,
    )


def run_release(
    settings: Settings,
    options: Options,
    *,
    registry: str | None = None,
    keys: SigningKeys | None = None,
    progress: Progress | None = None,
) -> Published:
    """fetch ... verify, then publish with the release tags. A gate that fails raises before
    any push; push refuses every image when one lacks a passing record."""
    keys = keys or SigningKeys.from_env()
    results = run_stages(settings, select(until="verify"), options=options, progress=progress)
    return publish(
        settings, results["build"], release=True, registry=registry, keys=keys, progress=progress
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Decision:
    build_id: str
    base_digest: str
    previous: str
    """The last release's build ID ('' when there is none)."""
    seconds: float

    @property
    def unchanged(self) -> bool:
        return self.build_id == self.previous


def decide(settings: Settings, *, base_digest: str) -> Decision:
    """The build ID of what a rebuild would make now, beside the last release's: computed
    from the repository, the base image and the released packages' apt snapshot, with nothing
    built or pushed."""
    started = time.monotonic()
    state = load_state(settings.run_dir)
    packages = apt_snapshot(base_digest, released_packages(state)) if state else {}
    bid = current_build_id(settings.root, base_digest=base_digest, packages=packages)
    return Decision(
        build_id=bid,
        base_digest=base_digest,
        previous=state.build_id if state else "",
        seconds=time.monotonic() - started,
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Rebuilt:
    decision: Decision
    built: bool
    diffs: Mapping[str, PackageDiff]
    closed: Mapping[str, tuple[str, ...]]
    published: Published | None

    @property
    def verdict(self) -> str:
        if self.published is not None:
            return "published"
        return "no change"


def publish_if_changed(
    settings: Settings,
    decision: Decision,
    built: Sequence[BuildResult],
    sboms: Mapping[str, Path],
    *,
    registry: str | None = None,
    keys: SigningKeys | None = None,
    progress: Progress | None = None,
) -> Rebuilt:
    """After a fresh build passed its gates: diff each image's packages against the last
    release, publish when any changed (or a fixable vulnerability closed), keep the state."""
    state = load_state(settings.run_dir)
    diffs: dict[str, PackageDiff] = {}
    closed: dict[str, tuple[str, ...]] = {}
    for b in built:
        name = str(b.target)
        new = sbom_packages(sboms[b.image_id])
        last = state.images.get(name) if state else None
        old = sbom_packages(Path(last.sbom)) if last and Path(last.sbom).is_file() else {}
        diffs[name] = package_diff(old, new)
        now_fixable = set(fixable(settings.run_dir, b.image_id))
        closed[name] = tuple(sorted(set(last.fixable) - now_fixable)) if last else ()
    if state is not None and not any(
        worth_publishing(diffs[str(b.target)], closed[str(b.target)]) for b in built
    ):
        return Rebuilt(decision=decision, built=True, diffs=diffs, closed=closed, published=None)
    published = publish(
        settings, built, release=False, registry=registry, keys=keys, progress=progress
    )
    images = {
        str(p.target): Released(
            image_id=p.image_id,
            digest=p.digest,
            sbom=str(sboms[p.image_id]),
            fixable=fixable(settings.run_dir, p.image_id),
        )
        for p in published.pushed
    }
    # The ID kept is the one the released images give now (nothing pending in them), so the
    # next scheduled run compares like with like.
    after = current_build_id(
        settings.root,
        base_digest=decision.base_digest,
        packages=apt_snapshot(
            decision.base_digest, released_packages(State(build_id="", images=images))
        ),
    )
    save_state(settings.run_dir, State(build_id=after, images=images))
    return Rebuilt(decision=decision, built=True, diffs=diffs, closed=closed, published=published)


def run_rebuild(
    settings: Settings,
    options: Options,
    *,
    registry: str | None = None,
    keys: SigningKeys | None = None,
    progress: Progress | None = None,
) -> Rebuilt:
    """Decide first; on a new build ID build fresh (apt-get upgrade), gate, and publish only
    what changed."""
    base = run_stages(settings, select(["base"]), options=options, progress=progress)["base"]
    decision = decide(settings, base_digest=str(base.image_id))
    if decision.unchanged:
        return Rebuilt(decision=decision, built=False, diffs={}, closed={}, published=None)
    stages = [s for s in select(until="verify") if s.name != "base"]
    fresh = dataclasses.replace(options, refresh=True)
    results = run_stages(settings, stages, options=fresh, progress=progress, given={"base": base})
    sboms = {r.image_id: r.path for r in results["sbom"] if r.path is not None}
    return publish_if_changed(
        settings, decision, results["build"], sboms, registry=registry, keys=keys, progress=progress
    )
