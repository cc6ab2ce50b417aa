"""Refusals: RPyC classic clients by default, plain TCP off loopback, mutual TLS failures, and
an RPyC major mismatch. Real processes, real sockets, certificates made in the test run."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import mt5bridge.remote as mt5
import pytest
import rpyc
from conftest import (
    SIM_LOGIN,
    SIM_PASSWORD,
    SIM_SERVER,
    RunningServer,
    run_server_expecting_exit,
    sim_env,
)
from mt5bridge.errors import BridgeConnectionError, HandshakeError
from mt5bridge.handshake import client_handshake
from mt5bridge.tls import TlsFiles

from mt5forge.certs import issue, make_ca, write_bundle, write_cert, write_key

pytestmark = pytest.mark.integration


def test_classic_client_executing_code_is_refused_by_default(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = start_server()
    marker = tmp_path / "pwned"
    # rpyc.classic.connect already sends a request; either step may be the one that fails.
    with pytest.raises((EOFError, ConnectionError, OSError)):
        conn = rpyc.classic.connect("127.0.0.1", server.port)
        conn.execute(f"open({str(marker)!r}, 'w').write('x')")
    assert not marker.exists()
    assert server.wait_for_log("classic mode is off")


def test_classic_mode_serves_mt5linux_clients_when_asked(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server("--classic")
    conn = rpyc.classic.connect("127.0.0.1", server.port)
    try:
        conn.execute("import MetaTrader5 as mt5")
        ok = conn.eval(
            f"mt5.initialize(login={SIM_LOGIN}, password={SIM_PASSWORD!r}, server={SIM_SERVER!r})"
        )
        assert ok is True
        assert conn.eval("mt5.symbol_info_tick('EURUSD')").bid > 0
    finally:
        conn.close()
    # Our own clients still work on the same port, against the same simulator.
    bridge = mt5.Bridge("127.0.0.1", server.port)
    # Its own session: it initializes as any MetaTrader5 client does.
    assert bridge.initialize(login=SIM_LOGIN, password=SIM_PASSWORD, server=SIM_SERVER)
    assert bridge.account_info().login == SIM_LOGIN
    bridge.close()


def test_classic_mode_is_refused_in_the_secure_variant() -> None:
    code, err = run_server_expecting_exit("--classic", "--variant", "secure")
    assert code == 2 and "refused in the secure variant" in err


def test_plain_tcp_off_loopback_is_refused_at_start() -> None:
    code, err = run_server_expecting_exit("--host", "0.0.0.0")  # noqa: S104  # refused
    assert code == 2 and "without mutual TLS" in err


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MT5_SIM_BALANCE", "lots", "invalid float value"),
        ("MT5_SIM_SEED", "1.5", "invalid int value"),
        ("MT5_BRIDGE_LOG_LEVEL", "loud", "MT5_BRIDGE_LOG_LEVEL must be one of"),
    ],
)
def test_malformed_server_settings_exit_2_with_a_message(
    name: str, value: str, message: str
) -> None:
    code, err = run_server_expecting_exit(env=sim_env(**{name: value}))
    assert code == 2 and message in err and "Traceback" not in err


def test_rpyc_major_mismatch_fails_the_handshake_with_a_message(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server()
    expected = r"rpyc major version mismatch.*rpyc 5\.0\.1"
    with (
        socket.create_connection(("127.0.0.1", server.port)) as sock,
        pytest.raises(HandshakeError, match=expected),
    ):
        client_handshake(sock, rpyc_version="5.0.1")
    assert server.wait_for_log("rpyc major version mismatch")
    assert "classic mode is off" not in server.log_text()  # not mistaken for a classic client


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, TlsFiles]:
    """The deployment's bundle, plus a client from another CA and an expired client."""
    good = write_bundle(tmp_path / "deploy", server_names=("127.0.0.1", "localhost"))
    other_ca = make_ca("another CA")
    other = issue(other_ca, "intruder", client=True)
    ca = (good.ca_cert, good.ca_key)
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    deploy_ca_cert = x509.load_pem_x509_certificate(ca[0].read_bytes())
    deploy_ca_key = serialization.load_pem_private_key(ca[1].read_bytes(), password=None)
    from mt5forge.certs import Issued

    deploy_ca = Issued(key=deploy_ca_key, cert=deploy_ca_cert)  # type: ignore[arg-type]
    now = dt.datetime.now(dt.UTC)
    expired = issue(
        deploy_ca,
        "old-bot",
        client=True,
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(days=1),
    )
    files: dict[str, TlsFiles] = {
        "server": TlsFiles(ca=good.ca_cert, cert=good.server_cert, key=good.server_key),
        "client": TlsFiles(ca=good.ca_cert, cert=good.client_cert, key=good.client_key),
    }
    for name, issued in (("other", other), ("expired", expired)):
        write_cert(tmp_path / f"{name}.crt", issued.cert)
        write_key(tmp_path / f"{name}.key", issued.key)
        files[name] = TlsFiles(
            ca=good.ca_cert, cert=tmp_path / f"{name}.crt", key=tmp_path / f"{name}.key"
        )
    return files


@pytest.fixture
def tls_server(
    start_server: Callable[..., RunningServer], pki: dict[str, TlsFiles]
) -> RunningServer:
    s = pki["server"]
    return start_server("--tls-ca", str(s.ca), "--tls-cert", str(s.cert), "--tls-key", str(s.key))


def test_mtls_client_with_deployment_certificate_is_served(
    tls_server: RunningServer, pki: dict[str, TlsFiles]
) -> None:
    bridge = mt5.Bridge("127.0.0.1", tls_server.port, tls=pki["client"])
    try:
        assert bridge.initialize(login=SIM_LOGIN, password=SIM_PASSWORD, server=SIM_SERVER)
        assert bridge.symbol_info_tick("EURUSD").bid > 0
    finally:
        bridge.close()


def _refused(tls_server: RunningServer, ctx: ssl.SSLContext) -> None:
    """The connection fails before any call, and the server logs a TLS refusal."""
    with (
        socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as raw,
        pytest.raises((ssl.SSLError, OSError, HandshakeError)),
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        client_handshake(sock)
    assert tls_server.wait_for_log("TLS handshake failed")
    assert "connected" not in tls_server.log_text()  # checked after the refusal was logged


def _client_ctx(ca: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca))
    return ctx


def test_mtls_refuses_client_without_certificate(
    tls_server: RunningServer, pki: dict[str, TlsFiles]
) -> None:
    _refused(tls_server, _client_ctx(pki["server"].ca))


def test_mtls_refuses_certificate_from_another_ca(
    tls_server: RunningServer, pki: dict[str, TlsFiles]
) -> None:
    ctx = _client_ctx(pki["server"].ca)
    ctx.load_cert_chain(str(pki["other"].cert), str(pki["other"].key))
    _refused(tls_server, ctx)
    with pytest.raises(BridgeConnectionError):
        mt5.Bridge("127.0.0.1", tls_server.port, tls=pki["other"]).connect()


def test_mtls_refuses_expired_certificate(
    tls_server: RunningServer, pki: dict[str, TlsFiles]
) -> None:
    ctx = _client_ctx(pki["server"].ca)
    ctx.load_cert_chain(str(pki["expired"].cert), str(pki["expired"].key))
    _refused(tls_server, ctx)
    assert tls_server.wait_for_log("expired")


def test_mtls_refuses_plain_tcp_client(tls_server: RunningServer) -> None:
    with pytest.raises((BridgeConnectionError, HandshakeError)):
        mt5.Bridge("127.0.0.1", tls_server.port, connect_timeout=5).connect()
    assert tls_server.wait_for_log("TLS handshake failed")
