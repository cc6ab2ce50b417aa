from __future__ import annotations

import datetime as dt
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from mt5forge.certs import issue, make_ca, write_bundle
from mt5forge.errors import CertError


def test_bundle_files_keys_private_and_chain_verifies(tmp_path: Path) -> None:
    b = write_bundle(tmp_path, server_names=("terminal", "127.0.0.1"))
    for key in (b.ca_key, b.server_key, b.client_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    server = x509.load_pem_x509_certificate(b.server_cert.read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["terminal"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    # OpenSSL accepts the pair as a server context trusting the deployment CA.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(b.server_cert, b.server_key)
    ctx.load_verify_locations(b.ca_cert)


def test_existing_bundle_is_not_replaced_without_force(tmp_path: Path) -> None:
    first = write_bundle(tmp_path)
    before = first.ca_cert.read_bytes()
    with pytest.raises(CertError, match="already exists"):
        write_bundle(tmp_path)
    assert first.ca_cert.read_bytes() == before
    first.client_key.chmod(0o644)
    write_bundle(tmp_path, force=True)
    assert first.ca_cert.read_bytes() != before
    assert stat.S_IMODE(first.client_key.stat().st_mode) == 0o600  # not the old file's mode


def test_issue_validates_its_inputs() -> None:
    ca = make_ca()
    with pytest.raises(CertError):
        issue(ca, "x")
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(CertError, match="before it starts"):
        issue(ca, "x", client=True, not_before=now, not_after=now - dt.timedelta(days=1))
    with pytest.raises(CertError):
        write_bundle(Path("/nonexistent-dir-for-test"), days=0)
