"""Per-deployment mutual-TLS material for a bridge that listens off loopback.

One CA per deployment, a server certificate for the terminal's bridge and a client certificate
for the bot, all signed by that CA and nothing else: the bridge trusts only its own CA, so a
certificate from any other CA (a public one included) is refused. Keys are EC P-256 and written
owner-readable only; they are meant to be mounted as Docker secrets, never baked into an image.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mt5forge.errors import CertError

DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1", "terminal")
DEFAULT_CLIENT_NAME = "mt5bot"
# 825 days: the longest leaf lifetime Apple's TLS policy accepts, a common upper bound.
DEFAULT_DAYS = 825


@dataclass(frozen=True, kw_only=True)
class Issued:
    """A private key and the certificate for it."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


@dataclass(frozen=True, kw_only=True)
class CertBundle:
    """Where `write_bundle` put each file."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mt5forge deployment"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(
    common_name: str = "mt5forge bridge CA",
    *,
    not_before: dt.datetime | None = None,
    days: int = DEFAULT_DAYS,
) -> Issued:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key=key, cert=cert)


def issue(
    ca: Issued,
    common_name: str,
    *,
    server_names: Sequence[str] = (),
    client: bool = False,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    days: int = DEFAULT_DAYS,
) -> Issued:
    """A leaf certificate signed by `ca`: for a server (with `server_names` as subject
    alternative names, IP addresses recognised) or for a client."""
    if not server_names and not client:
        raise CertError("a certificate needs server names or the client role")
    if server_names and client:
        raise CertError("issue server and client certificates separately")
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    end = not_after or start + dt.timedelta(days=days)
    if end <= start:
        raise CertError(f"certificate for {common_name} would end before it starts")
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if server_names:
        alt: list[x509.GeneralName] = []
        for name in server_names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return Issued(key=key, cert=builder.sign(ca.key, hashes.SHA256()))


def write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write a private key readable by its owner only, created so from the first byte."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # O_CREAT's mode applies only to a new file: replacing one (--force) must not keep a
    # looser mode it had, so remove it first and insist on creating.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def write_bundle(
    out_dir: Path,
    *,
    server_names: Sequence[str] = DEFAULT_SERVER_NAMES,
    client_name: str = DEFAULT_CLIENT_NAME,
    days: int = DEFAULT_DAYS,
    force: bool = False,
) -> CertBundle:
    """Make a CA, a server and a client certificate under `out_dir`.

    Existing files are not replaced unless `force`: a new CA silently invalidates every
    certificate already deployed.
    """
    if days < 1:
        raise CertError(f"certificate lifetime must be at least one day, got {days}")
    if not server_names:
        raise CertError("the server certificate needs at least one name", hint="--server-name")
    bundle = CertBundle(
        ca_cert=out_dir / "ca.crt",
        ca_key=out_dir / "ca.key",
        server_cert=out_dir / "server.crt",
        server_key=out_dir / "server.key",
        client_cert=out_dir / "client.crt",
        client_key=out_dir / "client.key",
    )
    paths = [
        bundle.ca_cert, bundle.ca_key, bundle.server_cert, bundle.server_key,
        bundle.client_cert, bundle.client_key,
    ]  # fmt: skip
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise CertError(
            f"{existing[0]} already exists; replacing the CA invalidates deployed certificates",
            hint="pass --force to replace them, or choose another --out directory",
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        ca = make_ca(days=days)
        server = issue(ca, server_names[0], server_names=server_names, days=days)
        client = issue(ca, client_name, client=True, days=days)
        for issued, cert_path, key_path in (
            (ca, bundle.ca_cert, bundle.ca_key),
            (server, bundle.server_cert, bundle.server_key),
            (client, bundle.client_cert, bundle.client_key),
        ):
            write_cert(cert_path, issued.cert)
            write_key(key_path, issued.key)
    except OSError as exc:
        raise CertError(f"cannot write certificates under {out_dir}: {exc.strerror}") from exc
    return bundle
