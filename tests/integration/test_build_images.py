"""The build stage against a real engine: all five images from the fixture profile.

One session-scoped build makes every image (terminal slim/secure, bot slim/secure,
terminal-sim); the tests then read the images, their layers and their filesystems. The build
uses a CA bundle that carries a marker line, so a test can prove the bundle is in no layer of
any final image. Images are kept (they are the cache); containers are removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path, PureWindowsPath
from typing import Any

import pytest

from mt5forge.context import stage_context
from mt5forge.images import Target, build_args
from mt5forge.records import read_record
from mt5forge.stages.build import base_info
from mt5forge.tools.docker import build_image

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PREFIX_TEMPLATE = "/opt/mt5forge/wine"
EXPOSED = {
    "terminal:slim": set(),
    "terminal:secure": {"3000/tcp"},
    "bot:slim": set(),
    "bot:secure": set(),
    "terminal-sim:slim": set(),
}


@contextlib.contextmanager
def container(client: Any, image: str, **kw: Any) -> Iterator[Any]:
    c = client.containers.create(image, **kw)
    try:
        yield c
    finally:
        c.remove(force=True)


def run(client: Any, image: str, command: list[str], **kw: Any) -> tuple[int, str]:
    with container(client, image, command=command, **kw) as c:
        c.start()
        code = c.wait(timeout=120)["StatusCode"]
        return int(code), c.logs().decode("utf-8", "replace")


def exported_members(client: Any, image: str) -> Iterator[tarfile.TarInfo]:
    """The image's filesystem as `docker export` gives it (a created, never started container)."""
    with container(client, image, command=["/nothing"]) as c, tempfile.TemporaryFile() as f:
        for chunk in c.export():
            f.write(chunk)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            yield from tar


def test_all_five_images_built(built: Any) -> None:
    assert sorted(built.first) == sorted(EXPOSED)
    for name, r in built.first.items():
        assert r.image_id.startswith("sha256:"), name
        assert r.size > 0 and r.layers > 0, name


def test_second_build_is_all_cache_hits(built: Any) -> None:
    for name, r in built.second.items():
        assert r.all_cached, f"{name}: {r.cached}/{r.steps} steps from the cache"
        assert r.image_id == built.first[name].image_id, name


def test_build_records_keyed_by_image_id(built: Any) -> None:
    for name, r in built.second.items():
        record = read_record(built.settings.run_dir, "build", r.image_id)
        assert record is not None, name
        assert record["reference"] == r.reference
        assert record["profile"] == "fixture"
        assert record["labels"]["org.mt5forge.profile"] == "fixture"


def test_labels(built: Any, docker_client: Any) -> None:
    for name, r in built.first.items():
        labels = docker_client.images.get(r.image_id).labels
        for key in ("source", "revision", "version", "created", "base.name", "base.digest"):
            assert labels.get(f"org.opencontainers.image.{key}"), f"{name}: no {key} label"
        assert labels["org.mt5forge.profile"] == "fixture", name
        if name.startswith("terminal:"):
            for filename in built.profile.markers:
                shas = [v for k, v in labels.items() if k.endswith(".sha256")]
                assert len(shas) >= len(built.profile.markers), name
                assert filename in labels.values(), f"{name}: no label names {filename}"


def test_runtime_user_healthcheck_entrypoint_and_ports(built: Any, docker_client: Any) -> None:
    uid, gid = built.settings.runtime.uid, built.settings.runtime.gid
    for name, r in built.first.items():
        cfg = docker_client.images.get(r.image_id).attrs["Config"]
        assert cfg["User"] == f"{uid}:{gid}", f"{name}: runs as {cfg['User']!r}"
        assert cfg.get("Healthcheck", {}).get("Test"), f"{name}: no HEALTHCHECK"
        assert cfg["Healthcheck"]["Test"][0] == "CMD", f"{name}: HEALTHCHECK is not exec form"
        assert cfg["Entrypoint"][0] == "/usr/bin/tini", f"{name}: entrypoint {cfg['Entrypoint']}"
        assert cfg["Cmd"] and cfg["Cmd"][0] != "/bin/sh", f"{name}: CMD {cfg['Cmd']}"
        assert set(cfg.get("ExposedPorts") or {}) == EXPOSED[name], name


def test_runtime_uid_and_gid_come_from_the_config(
    built: Any, docker_client: Any, tmp_path: Path
) -> None:
    """[runtime] uid/gid reach the image, not only the Dockerfiles' defaults (1000, as is the
    config's): terminal-sim built with 911:912 runs as 911:912 and owns /config. Built under
    another name from the same base, so the session's images and tags stay as they are."""
    s = dataclasses.replace(
        built.settings, runtime=dataclasses.replace(built.settings.runtime, uid=911, gid=912)
    )
    target = Target(image="terminal-sim", variant="slim")
    base = base_info(built.settings, built.base)
    reference = "mt5forge-test-uid/terminal-sim:slim"
    image_id = build_image(
        docker_client,
        stage_context(target, s, tmp_path / "context"),
        reference=reference,
        target=target.variant,
        buildargs=build_args(target, s, base),
        labels={},
        log_file=tmp_path / "build.log",
    ).image_id
    try:
        assert docker_client.images.get(image_id).attrs["Config"]["User"] == "911:912"
        probe = "import os; print(os.getuid(), os.getgid(), os.stat('/config').st_uid)"
        code, out = run(docker_client, image_id, ["python3", "-c", probe])
        assert (code, out.split()) == (0, ["911", "912", "911"]), out
    finally:
        docker_client.images.remove(reference)


def test_cmd_passes_through_the_entrypoint_as_the_runtime_user(
    built: Any, docker_client: Any
) -> None:
    """A CMD given at run time runs as given, and as the configured non-root user, not root."""
    want = f"{built.settings.runtime.uid}:{built.settings.runtime.gid}"
    probe = ["python3", "-c", "import os; print(f'{os.getuid()}:{os.getgid()}')"]
    for name, r in built.first.items():
        code, out = run(docker_client, r.image_id, probe)
        assert (code, out.strip()) == (0, want), f"{name}: {code} {out}"
    code, out = run(docker_client, built.first["terminal:slim"].image_id, ["wine", "--version"])
    assert code == 0 and "wine-10.0" in out, out


def test_ca_bundle_in_no_layer_of_any_final_image(built: Any, docker_client: Any) -> None:
    bundle_sha = hashlib.sha256(built.bundle.read_bytes()).hexdigest()
    seen_layers: set[str] = set()
    scanned = 0
    for name, r in built.first.items():
        image = docker_client.images.get(r.image_id)
        # Config (labels, environment, build arguments of the last step) and history.
        meta = json.dumps([image.attrs, image.history()])
        assert built.marker.decode() not in meta, name
        assert "build-ca" not in meta, name
        with tempfile.TemporaryFile() as f:
            for chunk in image.save():
                f.write(chunk)
            f.seek(0)
            with tarfile.open(fileobj=f) as saved:
                # manifest.json names the layers in both save formats: <id>/layer.tar (engines
                # before 25) and blobs/sha256/<digest> (OCI layout, 25 on).
                index = saved.extractfile("manifest.json")
                assert index is not None
                for layer_name in json.load(index)[0]["Layers"]:
                    if layer_name in seen_layers:
                        continue
                    seen_layers.add(layer_name)
                    layer = saved.extractfile(layer_name)
                    assert layer is not None
                    with tarfile.open(fileobj=layer, mode="r|") as tar:
                        for entry in tar:
                            assert "build-ca" not in entry.name, f"{name}: {entry.name}"
                            if not entry.isfile():
                                continue
                            data = tar.extractfile(entry)
                            assert data is not None
                            content = data.read()
                            scanned += 1
                            assert built.marker not in content, f"{name}: marker in {entry.name}"
                            assert hashlib.sha256(content).hexdigest() != bundle_sha, entry.name
    assert scanned > 1000 and len(seen_layers) >= 5


def windows_to_prefix(path: str, prefix: str = PREFIX_TEMPLATE) -> str:
    p = PureWindowsPath(path)
    return f"{prefix}/drive_c/" + "/".join(p.parts[1:])


def read_files(client: Any, image: str, paths: list[str]) -> dict[str, bytes]:
    """Files out of an image, through a created (never started) container."""
    out: dict[str, bytes] = {}
    with container(client, image, command=["/nothing"]) as c:
        for path in paths:
            stream, _ = c.get_archive(path)
            with tempfile.TemporaryFile() as f:
                for chunk in stream:
                    f.write(chunk)
                f.seek(0)
                with tarfile.open(fileobj=f) as tar:
                    member = tar.next()
                    assert member is not None and member.isfile(), f"{image}: {path}"
                    data = tar.extractfile(member)
                    assert data is not None
                    out[path] = data.read()
    return out


def uninstall_entries(system_reg: str) -> list[str]:
    """The blocks of Wine's system.reg under ...\\CurrentVersion\\Uninstall\\."""
    return [
        block for block in system_reg.split("\n\n")
        if "\\\\CurrentVersion\\\\Uninstall\\\\" in block.split("\n", 1)[0]
    ]  # fmt: skip


def python_exe_in(zip_path: Path) -> bytes:
    """The one python.exe inside an embeddable CPython zip (at its root or under cp312/)."""
    with zipfile.ZipFile(zip_path) as z:
        (name,) = [n for n in z.namelist() if n.rsplit("/", 1)[-1] == "python.exe"]
        return z.read(name)


def test_fixture_installers_ran_in_the_prefix(built: Any, docker_client: Any) -> None:
    """msiexec installed each fixture MSI; the CPython and MT5 installers ran under Wine.

    A file at the MSI's target path alone would not show that msiexec ran (msitools can extract
    it on Linux), so each MSI must also have the entry only Windows Installer writes: its
    product in the Uninstall key of the prefix's registry, marked "WindowsInstaller"=1. The
    .exe stand-ins wrote their CRLF marker text through the Windows API, and mt5setup.exe
    wrote the signed stand-in terminal it carries: terminal64.exe has exactly those bytes.
    """
    markers = built.profile.markers
    assert "MetaTrader 5\\terminal64.exe" in " ".join(markers["mt5setup.exe"])
    msis = [f for f in markers if f.endswith(".msi")]
    assert any(f.startswith("wine-mono-") for f in msis)
    assert any(f.startswith("wine-gecko-") and f.endswith("x86_64.msi") for f in msis)
    assert built.profile.terminal_exe is not None
    terminal = built.profile.terminal_exe.read_bytes()
    paths = {windows_to_prefix(p): (f, p) for f, ps in markers.items() for p in ps}
    for name in ("terminal:slim", "terminal:secure"):
        image = built.first[name].image_id
        files = read_files(docker_client, image, [*paths, f"{PREFIX_TEMPLATE}/system.reg"])
        for path, (filename, windows_path) in paths.items():
            if windows_path.endswith("terminal64.exe"):
                assert files[path] == terminal, f"{name}: {windows_path} is not the stand-in"
            elif windows_path.endswith("python.exe"):
                # The real embeddable CPython (not a stand-in): its python.exe, byte for byte.
                want = python_exe_in(built.profile.serve_dir / filename)
                assert files[path] == want, f"{name}: {windows_path} is not the zip's python.exe"
            else:
                want = f"mt5forge fixture {filename}\r\n".encode()
                assert files[path] == want, f"{name}: {windows_path} holds {files[path]!r}"
        entries = uninstall_entries(
            files[f"{PREFIX_TEMPLATE}/system.reg"].decode("utf-8", "replace")
        )
        for filename in msis:
            found = [
                e for e in entries
                if f'"DisplayName"="mt5forge fixture {filename}"' in e
                and '"WindowsInstaller"=dword:00000001' in e
            ]  # fmt: skip
            assert len(found) == 1, f"{name}: msiexec registered {filename} {len(found)} times"


def test_windows_side_of_the_bridge_is_in_the_prefix(built: Any, docker_client: Any) -> None:
    site = f"{PREFIX_TEMPLATE}/drive_c/Python312/Lib/site-packages"
    code, out = run(
        docker_client,
        built.first["terminal:slim"].image_id,
        ["ls", f"{site}/MetaTrader5", f"{site}/numpy-1.26.4.dist-info", f"{site}/mt5bridge"],
    )
    assert code == 0, out


def test_no_setuid_no_shell_no_package_manager_in_secure(built: Any, docker_client: Any) -> None:
    for name in ("terminal:secure", "bot:secure"):
        special = [
            m.name for m in exported_members(docker_client, built.first[name].image_id)
            if m.isfile() and m.mode & 0o6000
        ]  # fmt: skip
        assert special == [], f"{name}: setuid/setgid files {special}"
    names = {m.name for m in exported_members(docker_client, built.first["bot:secure"].image_id)}
    for gone in ("usr/bin/sh", "usr/bin/bash", "usr/bin/dash", "usr/bin/apt-get", "usr/bin/dpkg"):
        assert gone not in names, f"bot:secure still has /{gone}"
    assert not [n for n in names if "/site-packages/pip/" in n], "bot:secure still has pip"


def test_apt_lists_and_caches_removed(built: Any, docker_client: Any) -> None:
    for name, r in built.first.items():
        left = [
            m.name
            for m in exported_members(docker_client, r.image_id)
            if m.isfile()
            and (
                (m.name.startswith("var/lib/apt/lists/") and not m.name.endswith("/lock"))
                or m.name.endswith(".deb")
                or (m.name.startswith("var/cache/apt/") and m.name.endswith(".bin"))
            )
        ]
        assert left == [], f"{name}: {left[:5]}"


def test_secure_terminal_refuses_to_start_without_a_vnc_password(
    built: Any, docker_client: Any
) -> None:
    with container(docker_client, built.first["terminal:secure"].image_id, tmpfs={"/tmp": ""}) as c:
        c.start()
        code = c.wait(timeout=60)["StatusCode"]
        logs = c.logs().decode()
    assert code == 2, logs
    assert "refusing to start the GUI" in logs


def test_secure_terminal_gui_on_read_only_root_and_clean_stop(
    built: Any, docker_client: Any
) -> None:
    """With a password: VNC on 127.0.0.1 only, noVNC on 3000, the bridge on 127.0.0.1 beside
    the fixture's stand-in terminal (which stays up); SIGTERM stops it all, exit 0."""
    with container(
        docker_client,
        built.first["terminal:secure"].image_id,
        read_only=True,
        tmpfs={"/tmp": "mode=1777", "/config": f"uid={built.settings.runtime.uid}"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        environment={"MT5_VNC_PASSWORD": "fixture-pw"},
    ) as c:
        c.start()
        listening: set[str] = set()
        deadline = time.monotonic() + 60
        want = {"0100007F:170C", "00000000:0BB8", "0100007F:497C"}  # VNC, noVNC, bridge
        while time.monotonic() < deadline and not want <= listening:
            time.sleep(1)
            _code, out = c.exec_run(["cat", "/proc/net/tcp"])
            listening = {
                f"{cols[1]}" for cols in (line.split() for line in out.decode().splitlines()[1:])
                if cols[3] == "0A"
            }  # fmt: skip
        assert "0100007F:170C" in listening, f"VNC not on 127.0.0.1:5900: {listening}"
        assert "00000000:0BB8" in listening, f"noVNC not on :3000: {listening}"
        assert "0100007F:497C" in listening, f"bridge not on 127.0.0.1:18812: {listening}"
        assert not [a for a in listening if a.endswith(":497C") and a != "0100007F:497C"]
        assert not [a for a in listening if a.endswith(":170C") and a != "0100007F:170C"]
        started = time.monotonic()
        c.stop(timeout=30)
        took = time.monotonic() - started
        c.reload()
        assert c.attrs["State"]["ExitCode"] == 0, c.logs().decode()[-2000:]
        assert took < 25, f"stopping took {took:.1f} s"


def test_terminal_sim_answers_its_health_command(built: Any, docker_client: Any) -> None:
    with container(
        docker_client,
        built.first["terminal-sim:slim"].image_id,
        environment={"MT5_LOGIN": "1234", "MT5_PASSWORD": "sim-pw", "MT5_SERVER": "Sim"},
    ) as c:
        c.start()
        out = b""
        for _ in range(30):
            code, out = c.exec_run(["/usr/local/bin/mt5-healthcheck"])
            if code == 0:
                break
            time.sleep(1)
        assert code == 0, out
