"""Authenticode against crafted files (issue 14), signed for real with osslsigncode.

mt5setup.exe is replaced on the 127.0.0.1 mirror by a crafted, really signed program, and the lock
is re-pinned to its sha256, so only the Authenticode check stands between it and the cache. The
attacker is given the most: their own certificates are added to the trusted CA bundle (as if a
public CA had issued them), so each refusal comes from the rule under test, not from a chain
that fails anyway. The fixture's own signer is pinned by full subject, issuer and fingerprint.
"""

from __future__ import annotations

import dataclasses
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from mt5forge.cache import Cache, sha256_file
from mt5forge.config import Settings
from mt5forge.errors import VerificationError
from mt5forge.fetch import fetch_all
from mt5forge.fixtures import (
    AUTHENTICODE_SUBJECT,
    FixtureKit,
    authenticode_sign,
    build_exe,
    make_authenticode_cert,
)
from mt5forge.lock import read_lock, write_lock
from mt5forge.tools import authenticode
from mt5forge.tools.run import call

pytestmark = pytest.mark.integration

MT5 = "mt5setup"


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unsigned PE program (mingw), built once."""
    d = tmp_path_factory.mktemp("program")
    return build_exe(d / "program.exe", marker_name="mt5setup.exe")


@dataclasses.dataclass
class Attack:
    """Certificates made for one test, the trusted bundle, and the settings to fetch with."""

    kit: FixtureKit
    tmp: Path
    served: Path
    make_settings: Callable[..., Settings]
    bundle: Path

    def cert(self, name: str, subject: dict[str, str]) -> tuple[Path, Path]:
        """A throw-away signer the attacker controls, trusted as if a public CA issued it."""
        d = self.tmp / name
        d.mkdir()
        cert, key = make_authenticode_cert(d, subject)
        with open(self.bundle, "ab") as f:
            f.write(cert.read_bytes())
        return cert, key

    @property
    def pinned(self) -> tuple[Path, Path]:
        return self.kit.authenticode_cert, self.kit.authenticode_key

    def serve(self, exe: Path) -> Settings:
        """Serve ``exe`` as mt5setup.exe, pinned by sha256, with the bundle as the CA file."""
        shutil.copyfile(exe, self.served / "mt5setup.exe")
        lock = read_lock(self.kit.lock_dir)
        lock[MT5] = dataclasses.replace(lock[MT5], sha256=sha256_file(exe), size=exe.stat().st_size)
        write_lock(self.tmp / "lock", lock)
        overlay = self.tmp / "trust.toml"
        text = self.kit.trust_overlay.read_text()
        overlay.write_text(text.replace(str(self.kit.authenticode_cert), str(self.bundle)))
        return self.make_settings(lock_dir=str(self.tmp / "lock"), trust_overlay=str(overlay))

    def refused(self, exe: Path, *reasons: str) -> str:
        s = self.serve(exe)
        with pytest.raises(VerificationError) as info:
            fetch_all(s, names=[MT5])
        text = str(info.value)
        for reason in reasons:
            assert reason in text, f"{reason!r} not in {text!r}"
        entry = read_lock(s.path(s.fetch.lock_dir))[MT5]
        assert not Cache(s.cache_dir).entry(entry.sha256, entry.filename).exists()
        partial = s.cache_dir / "partial"
        assert not partial.is_dir() or not any(partial.iterdir())
        return text


@pytest.fixture
def attack(
    fixture_profile: FixtureKit,
    tmp_path: Path,
    served: Path,
    make_settings: Callable[..., Settings],
) -> Attack:
    bundle = tmp_path / "trusted.pem"
    shutil.copyfile(fixture_profile.authenticode_cert, bundle)
    return Attack(fixture_profile, tmp_path, served, make_settings, bundle)


def signed(program: Path, dest: Path, cert: Path, key: Path) -> Path:
    shutil.copyfile(program, dest)
    authenticode_sign(dest, cert, key)
    return dest


def nest(exe: Path, cert: Path, key: Path) -> None:
    """Append a nested signature by ``cert`` (osslsigncode ``-nest``)."""
    out = exe.with_name(exe.name + ".nested")
    call(
        "osslsigncode", "sign", "-nest", "-certs", cert, "-key", key, "-h", "sha256",
        "-in", exe, "-out", out, timeout=120,
    )  # fmt: skip
    out.replace(exe)


def osslsigncode_alone(exe: Path, bundle: Path) -> str:
    """What osslsigncode by itself says of ``exe``: the attack must pass it to be an attack."""
    proc = call(
        "osslsigncode", "verify", "-CAfile", bundle, "-TSA-CAfile", bundle, "-ignore-crl",
        "-in", exe, timeout=60, check=False,
    )  # fmt: skip
    return (proc.stdout + proc.stderr).decode()


# --- every signature counts ----------------------------------------------------------------------


def test_a_good_file_from_the_pinned_signer_passes(attack: Attack, program: Path) -> None:
    exe = signed(program, attack.tmp / "good.exe", *attack.pinned)
    [a] = fetch_all(attack.serve(exe), names=[MT5])
    assert a.path.is_file() and a.sha256 == sha256_file(exe)


def test_nested_signature_by_another_signer_is_refused(attack: Attack, program: Path) -> None:
    exe = signed(program, attack.tmp / "nested.exe", *attack.pinned)
    nest(exe, *attack.cert("other", {"CN": "Somebody Else", "O": "Elsewhere"}))
    assert "Number of verified signatures: 2" in osslsigncode_alone(exe, attack.bundle)
    attack.refused(exe, "nested signature #1 is by /CN=Somebody Else/O=Elsewhere", "not an allowed")


def test_failing_primary_does_not_pass_on_a_nested_signature(
    attack: Attack, program: Path, tmp_path: Path
) -> None:
    """The primary signer's chain is not trusted; the nested one is the pinned signer. The
    osslsigncode 2.9 run alone ends with "Succeeded"."""
    d = tmp_path / "untrusted"
    d.mkdir()
    cert, key = make_authenticode_cert(d, {"CN": "Untrusted", "O": "Nowhere"})  # not in bundle
    exe = signed(program, attack.tmp / "primary-bad.exe", cert, key)
    nest(exe, *attack.pinned)
    alone = osslsigncode_alone(exe, attack.bundle)
    assert "Signature verification: failed" in alone and "Succeeded" in alone, alone
    attack.refused(exe, "the primary signature, by /CN=Untrusted/O=Nowhere; every signature")


def test_primary_by_another_signer_with_the_pinned_one_nested_is_refused(
    attack: Attack, program: Path
) -> None:
    exe = signed(program, attack.tmp / "swap.exe", *attack.cert("x", {"CN": "X", "O": "X"}))
    nest(exe, *attack.pinned)
    attack.refused(exe, "primary signature is by /CN=X/O=X")


# --- the signer is the whole name, the issuer and the certificate --------------------------------


def test_same_cn_and_o_with_one_more_attribute_is_refused(attack: Attack, program: Path) -> None:
    subject = {"C": "CY", **AUTHENTICODE_SUBJECT}
    exe = signed(program, attack.tmp / "more.exe", *attack.cert("more", subject))
    attack.refused(
        exe, "primary signature is by /C=CY/CN=mt5forge fixture signer", "not an allowed"
    )


def test_same_full_name_from_another_certificate_is_refused_by_fingerprint(
    attack: Attack, program: Path
) -> None:
    """Same subject, same issuer (self-signed, like the pinned one): only the certificate's
    fingerprint tells them apart, and it is pinned."""
    twin = attack.cert("twin", dict(AUTHENTICODE_SUBJECT))
    exe = signed(program, attack.tmp / "twin.exe", *twin)
    attack.refused(exe, "not an allowed signer", "certificate SHA-256")


def test_same_subject_from_another_issuer_is_refused(
    attack: Attack, program: Path, tmp_path: Path
) -> None:
    """A certificate named like the pinned signer but issued by another CA (trusted too)."""
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    ca_key, ca_cert = ca_dir / "ca.key", ca_dir / "ca.pem"
    call(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=Some Public CA/O=Some CA", "-keyout", ca_key, "-out", ca_cert,
        "-addext", "basicConstraints=critical,CA:TRUE", timeout=120,
    )  # fmt: skip
    key, csr, cert = ca_dir / "leaf.key", ca_dir / "leaf.csr", ca_dir / "leaf.pem"
    subj = "".join(f"/{k}={v}" for k, v in AUTHENTICODE_SUBJECT.items())
    call("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", subj,
         "-keyout", key, "-out", csr, timeout=120)  # fmt: skip
    ext = ca_dir / "ext.cnf"
    ext.write_text("extendedKeyUsage=codeSigning\n")
    call("openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
         "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert, timeout=120)  # fmt: skip
    with open(attack.bundle, "ab") as f:
        f.write(ca_cert.read_bytes())
    chain = ca_dir / "chain.pem"
    chain.write_bytes(cert.read_bytes() + ca_cert.read_bytes())
    exe = signed(program, attack.tmp / "issuer.exe", chain, key)
    assert "Signature verification: ok" in osslsigncode_alone(exe, attack.bundle)
    attack.refused(exe, "(issuer /CN=Some Public CA/O=Some CA)", "not an allowed signer")


# --- nothing outside the signature ---------------------------------------------------------------


def _security_entry(data: bytes) -> int:
    """File offset of the certificate table's data directory entry (written here, not taken
    from the code under test)."""
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    magic = struct.unpack_from("<H", data, pe + 24)[0]
    return pe + 24 + (96 if magic == 0x10B else 112) + 4 * 8


def _grow_table(exe: Path, extra: bytes, *, into_entry: bool) -> None:
    """Append ``extra`` to the file and the certificate table (and, with ``into_entry``, to the
    WIN_CERTIFICATE's own length): bytes osslsigncode's digest does not cover."""
    data = bytearray(exe.read_bytes())
    at = _security_entry(data)
    offset, size = struct.unpack_from("<II", data, at)
    assert offset + size == len(data)
    struct.pack_into("<II", data, at, offset, size + len(extra))
    if into_entry:
        length = struct.unpack_from("<I", data, offset)[0]
        assert length == size, "osslsigncode writes one entry filling the table"
        struct.pack_into("<I", data, offset, length + len(extra))
    exe.write_bytes(bytes(data) + extra)


def test_bytes_after_the_certificate_table_are_refused(attack: Attack, program: Path) -> None:
    exe = signed(program, attack.tmp / "trailing.exe", *attack.pinned)
    with open(exe, "ab") as f:
        f.write(b"payload: anything at all" * 4)
    attack.refused(exe, "96 bytes follow the certificate table (WIN_CERTIFICATE)")


def test_non_zero_padding_inside_the_signature_is_refused(attack: Attack, program: Path) -> None:
    exe = signed(program, attack.tmp / "padding.exe", *attack.pinned)
    _grow_table(exe, b"MZ\x90\x00evil" * 2, into_entry=True)
    assert "Signature verification: ok" in osslsigncode_alone(exe, attack.bundle)
    attack.refused(exe, "the signature's padding holds non-zero bytes")


def test_a_second_entry_in_the_certificate_table_is_refused(attack: Attack, program: Path) -> None:
    exe = signed(program, attack.tmp / "second.exe", *attack.pinned)
    second = struct.pack("<IHH", 16, 0x0200, 0x0002) + b"12345678"
    _grow_table(exe, second, into_entry=False)
    attack.refused(exe, "16 more bytes follow the WIN_CERTIFICATE", "a second entry")


def test_zero_padding_is_fine(attack: Attack, program: Path) -> None:
    """Zeros up to an 8-byte boundary are what signing tools write: not refused."""
    exe = signed(program, attack.tmp / "zeros.exe", *attack.pinned)
    _grow_table(exe, b"\0" * 8, into_entry=True)
    der = authenticode.check_certificate_table(exe, name="zeros")
    assert der[0] == 0x30 and authenticode.signed_data_certificates(der)
    [a] = fetch_all(attack.serve(exe), names=[MT5])
    assert a.path.is_file()
