"""Off loopback with mutual TLS: the probe verify's bridge.tls check uses is refused without the
right certificate, from the host and from a third container, and answered with it (the
positive control that proves the probe can tell the difference)."""

from __future__ import annotations

import json
import socket
import ssl
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for_bridge

from mt5forge.certs import write_bundle
from mt5forge.verify.checks import BRIDGE_MAGIC, _probe_from_host

pytestmark = [pytest.mark.infra, pytest.mark.slow]

PORT = 18812


@pytest.fixture(scope="module")
def tls_bridge(
    built: Any, docker_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, Any, Any]]:
    """terminal-sim listening on 0.0.0.0 with mutual TLS; a bundle from another CA beside."""
    root = tmp_path_factory.mktemp("tls")
    good = write_bundle(root / "good", server_names=["mt5bridge"])
    other = write_bundle(root / "other", server_names=["mt5bridge"])
    root.chmod(0o755)
    for path in (root / "good").iterdir():
        path.chmod(0o644)  # test-time keys; the container's UID is not ours
    (root / "good").chmod(0o755)
    # The point of the test: the bridge on every address, with mutual TLS.
    everywhere = "0.0.0.0"  # noqa: S104
    c = docker_client.containers.run(
        f"{built.settings.images.prefix}/terminal-sim:slim", detach=True,
        environment={"MT5_LOGIN": "10000001", "MT5_PASSWORD": "tls-test-pw", "MT5_SERVER": "S",
                     "MT5_BRIDGE_HOST": everywhere, "MT5_BRIDGE_TLS_CA": "/run/tls/ca.crt",
                     "MT5_BRIDGE_TLS_CERT": "/run/tls/server.crt",
                     "MT5_BRIDGE_TLS_KEY": "/run/tls/server.key"},
        volumes={str(root / "good"): {"bind": "/run/tls", "mode": "ro"}},
        labels={"org.mt5forge.test": "infra"},
    )  # fmt: skip
    try:
        wait_for_bridge(c, "the TLS terminal-sim")
        c.reload()
        yield c, good, other
    finally:
        c.remove(force=True)


def _hello(sock: Any) -> bytes:
    body = json.dumps({"protocol": 1, "rpyc": "6.0.2", "status": True}).encode()
    sock.sendall(BRIDGE_MAGIC + struct.pack(">H", len(body)) + body)
    return bytes(sock.recv(4))


def _tls_client(bundle: Any) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(bundle.ca_cert))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(bundle.client_cert), str(bundle.client_key))
    return ctx


def test_listener_is_off_loopback(tls_bridge: Any) -> None:
    c, _, _ = tls_bridge
    assert b"listening on 0.0.0.0:18812" in c.logs()


def test_a_client_without_a_certificate_is_refused(tls_bridge: Any) -> None:
    c, _, _ = tls_bridge
    ip = c.attrs["NetworkSettings"]["IPAddress"]
    result = _probe_from_host(ip, PORT)
    assert result != "answered", result
    assert "TLS without a certificate" in result


def test_a_client_from_another_ca_is_refused(tls_bridge: Any) -> None:
    c, _, other = tls_bridge
    ip = c.attrs["NetworkSettings"]["IPAddress"]
    ctx = _tls_client(other)
    with (
        pytest.raises((ssl.SSLError, OSError)),
        socket.create_connection((ip, PORT), timeout=5) as raw,
        ctx.wrap_socket(raw) as s,
    ):
        s.settimeout(5)
        assert _hello(s) != BRIDGE_MAGIC
        raise OSError("no bridge reply")


def test_the_right_client_certificate_is_answered(tls_bridge: Any) -> None:
    c, good, _ = tls_bridge
    ip = c.attrs["NetworkSettings"]["IPAddress"]
    with (
        socket.create_connection((ip, PORT), timeout=5) as raw,
        _tls_client(good).wrap_socket(raw) as s,
    ):
        s.settimeout(5)
        assert _hello(s) == BRIDGE_MAGIC


def test_a_third_container_without_a_certificate_is_refused(
    tls_bridge: Any, built: Any, docker_client: Any
) -> None:
    c, _, _ = tls_bridge
    ip = c.attrs["NetworkSettings"]["IPAddress"]
    probe = (
        "import socket,ssl,sys\n"
        "ctx=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname=False\n"
        "ctx.verify_mode=ssl.CERT_NONE\n"
        "try:\n"
        "    s=ctx.wrap_socket(socket.create_connection((sys.argv[1],18812),timeout=5))\n"
        "    s.settimeout(5); s.sendall(b'MT5B\\x00\\x02{}'); r=s.recv(4)\n"
        "    print('ANSWERED' if r==b'MT5B' else 'REFUSED no reply')\n"
        "except (OSError, ssl.SSLError) as e:\n"
        "    print('REFUSED', type(e).__name__)\n"
    )
    out = docker_client.containers.run(
        f"{built.settings.images.prefix}/bot:slim", ["python3", "-c", probe, ip], remove=True
    ).decode()
    assert out.startswith("REFUSED"), out


def test_certificate_keys_stay_out_of_the_repository_and_the_container(tls_bridge: Any) -> None:
    """The server key is made at test time outside the tree and reaches the bridge only through
    a read-only mount: none of its lines is in the container's exported filesystem (image layers
    plus whatever the running bridge wrote)."""
    c, good, _ = tls_bridge
    assert not Path(good.server_key).is_relative_to(Path(__file__).resolve().parents[2])
    body = [
        line.encode()
        for line in Path(good.server_key).read_text().splitlines()
        if line and not line.startswith("-----")
    ]
    needle = max(body, key=len)
    assert len(needle) >= 40, "the key should have a long base64 line to look for"
    # Control: the running bridge does see the key, at its mount.
    mounted = c.exec_run(["python3", "-c", "print(open('/run/tls/server.key').read())"])
    assert mounted.exit_code == 0 and needle in mounted.output, mounted.output[-200:]
    tail, seen = b"", 0
    for chunk in c.export(chunk_size=1 << 20):
        window = tail + chunk
        assert needle not in window, "a line of the bridge's TLS key is in the container"
        tail = window[-len(needle) :]
        seen += len(chunk)
    assert seen > 10_000_000, f"the export was only {seen} bytes: not the container's filesystem"
