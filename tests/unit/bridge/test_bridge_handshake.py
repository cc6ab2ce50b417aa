from __future__ import annotations

import socket
import threading

import pytest
from mt5bridge.errors import ConfigError, HandshakeError
from mt5bridge.handshake import RPYC_VERSION, client_handshake, server_handshake
from mt5bridge.server import ServerOptions, check_options
from mt5bridge.tls import TlsFiles


def _pair(client_version: str) -> tuple[BaseException | None, BaseException | None]:
    a, b = socket.socketpair()
    errors: list[BaseException | None] = [None, None]

    def serve() -> None:
        try:
            server_handshake(b)
        except HandshakeError as exc:
            errors[1] = exc

    t = threading.Thread(target=serve)
    t.start()
    try:
        client_handshake(a, rpyc_version=client_version)
    except HandshakeError as exc:
        errors[0] = exc
    t.join(5)
    a.close()
    b.close()
    return errors[0], errors[1]


def test_same_major_passes() -> None:
    assert _pair(RPYC_VERSION) == (None, None)


def test_other_major_fails_on_both_sides_and_says_why() -> None:
    client_err, server_err = _pair("5.3.1")
    for err in (client_err, server_err):
        assert isinstance(err, HandshakeError)
        assert "rpyc major version mismatch" in str(err) and "5.3.1" in str(err)
        assert RPYC_VERSION in str(err)


def test_rpyc_bytes_instead_of_a_hello_are_refused() -> None:
    a, b = socket.socketpair()
    a.sendall(b"\x00\x00\x00\x12\x00rpyc-frame")
    with pytest.raises(HandshakeError, match="not an mt5bridge peer"):
        server_handshake(b)
    a.close()
    b.close()


TLS = TlsFiles(
    ca=__import__("pathlib").Path("ca"),
    cert=__import__("pathlib").Path("c"),
    key=__import__("pathlib").Path("k"),
)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ServerOptions(host="0.0.0.0"), "without mutual TLS"),  # noqa: S104
        (ServerOptions(host="192.0.2.10"), "without mutual TLS"),
        (ServerOptions(classic=True, variant="secure"), "secure variant"),
        (ServerOptions(classic=True, tls=TLS), "plain loopback only"),
        (ServerOptions(variant="fat"), "unknown variant"),
    ],
)
def test_server_refuses_unsafe_configurations(options: ServerOptions, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_options(options)


@pytest.mark.parametrize(
    "options",
    [ServerOptions(), ServerOptions(host="::1"), ServerOptions(host="0.0.0.0", tls=TLS)],  # noqa: S104
)
def test_server_accepts_loopback_or_mtls(options: ServerOptions) -> None:
    check_options(options)
