"""The fixture profile: stand-ins for the upstream artifacts, made on this machine at run time.

WineHQ, python.org and MetaQuotes cannot be reached from the test machines, so tests and the
offline demo (``invoke demo``) fetch stand-ins that keep the upstream file names, through the same
code path as the real thing (mirror override, lock, signature checks), with their own lock, keys
and trust overlay:

- each ``.msi`` is a real MSI built with ``wixl`` that installs one marker file;
- each ``.exe`` is a real Windows program built with ``x86_64-w64-mingw32-gcc`` that writes its
  marker (and, for ``mt5setup.exe``, ``C:\\Program Files\\MetaTrader 5\\terminal64.exe``, a copy of
  itself) and exits 0, whatever its arguments (``/auto``, ``/quiet``);
- what upstream signs with OpenPGP is signed by a throw-away ed25519 key (1 day);
- what upstream signs with Authenticode is signed with ``osslsigncode`` by a throw-away
  certificate made with ``openssl req -x509``.

Private keys live only in the destination directory (under a temp or cache dir); nothing here
is committed. :func:`serve_fixture_profile` serves the stand-ins on 127.0.0.1 with Range support
and, for tests, scripted faults.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from mt5forge.cache import sha256_file
from mt5forge.config import Settings
from mt5forge.hosttools import ensure_programs
from mt5forge.lock import LockEntry, write_lock
from mt5forge.manifest import Manifest, load_manifests
from mt5forge.tools.run import call

log = logging.getLogger(__name__)

#: Host programs the generator needs (Debian packages: wixl, gcc-mingw-w64-x86-64, osslsigncode,
#: openssl, gnupg).
FIXTURE_PROGRAMS = ("wixl", "x86_64-w64-mingw32-gcc", "osslsigncode", "openssl", "gpg")

#: Windows directory every fixture marker is written to. C:\ProgramData is the same path in a
#: 32- and a 64-bit prefix (ProgramFilesFolder is not: x86 MSIs land in "Program Files (x86)").
MARKER_DIR = "C:\\ProgramData\\mt5forge-fixture"
MT5_TERMINAL = "C:\\Program Files\\MetaTrader 5\\terminal64.exe"
AUTHENTICODE_SUBJECT = {"CN": "mt5forge fixture signer", "O": "mt5forge fixture"}
OPENPGP_UID = "mt5forge fixture release key <fixture@mt5forge.invalid>"


def marker_path(filename: str) -> str:
    """Windows path of the marker that the stand-in for ``filename`` creates when installed."""
    return f"{MARKER_DIR}\\{filename}.txt"


@dataclasses.dataclass(frozen=True, kw_only=True)
class FixtureProfile:
    """A generated fixture profile; point ``[fetch]`` at it with :meth:`settings_overrides`.

    Known marker paths (Windows paths inside a Wine prefix), one per artifact:

    - ``wine-mono-9.4.0-x86.msi``, ``wine-gecko-2.47.4-x86.msi``, ``wine-gecko-2.47.4-x86_64.msi``:
      ``msiexec /i FILE /qn`` installs ``C:\\ProgramData\\mt5forge-fixture\\<file name>.txt``
      (the MSI's ``CommonAppDataFolder``); its text is ``mt5forge fixture <file name>``.
    - ``python-3.12.10-amd64.exe``: running it (any arguments) writes
      ``C:\\ProgramData\\mt5forge-fixture\\python-3.12.10-amd64.exe.txt`` and exits 0. It is not
      a Python: images built from the fixture profile use ``terminal-sim`` for the bridge.
    - ``mt5setup.exe``: running it (also ``/auto``) creates
      ``C:\\Program Files\\MetaTrader 5\\terminal64.exe`` (a copy of the stub, which exits 0) and
      ``C:\\ProgramData\\mt5forge-fixture\\mt5setup.exe.txt``, and exits 0.

    ``markers`` maps each upstream file name to the paths it creates.
    """

    root: Path
    serve_dir: Path
    """The stand-ins and their signatures, under the upstream file names (the mirror)."""
    lock_dir: Path
    keys_dir: Path
    trust_overlay: Path
    manifests_dir: Path
    gnupghome: Path
    """Holds the throw-away secret key; tests use it to sign other bytes."""
    openpgp_fingerprint: str
    authenticode_cert: Path
    authenticode_key: Path
    markers: Mapping[str, tuple[str, ...]]
    artifacts: Mapping[str, str]
    """Artifact name -> upstream file name."""

    def settings_overrides(self, mirror: str, cache_dir: Path | None = None) -> dict[str, Any]:
        """``config.load(overrides=...)`` values that select this profile and mirror."""
        fetch: dict[str, Any] = {
            "profile": "fixture",
            "mirror": mirror,
            "manifests_dir": str(self.manifests_dir),
            "lock_dir": str(self.lock_dir),
            "keys_dir": str(self.keys_dir),
            "trust_overlay": str(self.trust_overlay),
        }
        if cache_dir is not None:
            fetch["cache_dir"] = str(cache_dir)
        return {"fetch": fetch}


# --- stand-in builders ---------------------------------------------------------------------------

_SETUP_C = r"""
#include <windows.h>
/* mt5forge fixture stand-in: writes its marker (and a stub terminal), exits 0. */
static void mkdirs(const char *path) {
    char buf[MAX_PATH]; size_t i;
    lstrcpynA(buf, path, MAX_PATH);
    for (i = 3; buf[i]; i++) {
        if (buf[i] == '\\') { buf[i] = 0; CreateDirectoryA(buf, NULL); buf[i] = '\\'; }
    }
    CreateDirectoryA(buf, NULL);
}
static int write_text(const char *dir, const char *file, const char *text) {
    char path[MAX_PATH]; HANDLE h; DWORD n;
    mkdirs(dir);
    wsprintfA(path, "%s\\%s", dir, file);
    h = CreateFileA(path, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) return 1;
    WriteFile(h, text, lstrlenA(text), &n, NULL);
    CloseHandle(h);
    return 0;
}
int main(void) {
    int rc = write_text(MARKER_DIR, MARKER_FILE, "mt5forge fixture " MARKER_NAME "\r\n");
#ifdef TERMINAL_DIR
    char self[MAX_PATH], target[MAX_PATH];
    mkdirs(TERMINAL_DIR);
    GetModuleFileNameA(NULL, self, MAX_PATH);
    wsprintfA(target, "%s\\terminal64.exe", TERMINAL_DIR);
    if (lstrcmpiA(self, target) != 0 && !CopyFileA(self, target, FALSE)) rc = 1;
#endif
    return rc;
}
"""


def _c_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_exe(dest: Path, *, marker_name: str, terminal: bool = False) -> Path:
    """A real Windows x86_64 program (mingw) that writes its marker; see the module docstring."""
    work = Path(tempfile.mkdtemp(prefix="mt5forge-build-"))
    try:
        src = work / "setup.c"
        src.write_text(_SETUP_C, encoding="ascii")
        defines = [
            f"-DMARKER_DIR={_c_string(MARKER_DIR)}",
            f"-DMARKER_FILE={_c_string(marker_name + '.txt')}",
            f"-DMARKER_NAME={_c_string(marker_name)}",
        ]
        if terminal:
            defines.append(f"-DTERMINAL_DIR={_c_string(MT5_TERMINAL.rsplit(chr(92), 1)[0])}")
        call("x86_64-w64-mingw32-gcc", "-O2", "-s", *defines, "-o", dest, src, timeout=120)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def build_msi(dest: Path, *, marker_name: str, arch: str = "x86") -> Path:
    """A real MSI (wixl) installing ``CommonAppDataFolder\\mt5forge-fixture\\<name>.txt``."""
    work = Path(tempfile.mkdtemp(prefix="mt5forge-build-"))
    try:
        payload = work / f"{marker_name}.txt"
        payload.write_text(f"mt5forge fixture {marker_name}\r\n", encoding="ascii")
        ns = uuid.UUID("5d6c1c0e-6a0b-4e43-9d0e-0c9f3f6a3a10")
        upgrade = uuid.uuid5(ns, f"upgrade:{marker_name}")
        component = uuid.uuid5(ns, f"component:{marker_name}")
        win64 = ' Win64="yes"' if arch == "x64" else ""
        wxs = work / "fixture.wxs"
        wxs.write_text(
            f"""<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="*" Name={quoteattr("mt5forge fixture " + marker_name)} Language="1033"
           Version="1.0.0" Manufacturer="mt5forge fixture" UpgradeCode="{upgrade}">
    <Package InstallerVersion="200" Compressed="yes" InstallScope="perMachine"
             Comments="Stand-in made by mt5forge's fixture profile; not the upstream file."/>
    <Media Id="1" Cabinet="fixture.cab" EmbedCab="yes"/>
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="CommonAppDataFolder">
        <Directory Id="FIXTUREDIR" Name="mt5forge-fixture">
          <Component Id="Marker" Guid="{component}"{win64}>
            <File Id="MarkerFile" Name={quoteattr(payload.name)} Source={quoteattr(payload.name)}
                  KeyPath="yes"/>
          </Component>
        </Directory>
      </Directory>
    </Directory>
    <Feature Id="Main" Level="1"><ComponentRef Id="Marker"/></Feature>
  </Product>
</Wix>
""",
            encoding="utf-8",
        )
        call("wixl", "-a", arch, "-o", dest.resolve(), wxs.name, timeout=120, cwd=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def make_authenticode_cert(dest_dir: Path, subject: Mapping[str, str]) -> tuple[Path, Path]:
    """A throw-away self-signed code-signing certificate (2 days) and its key."""
    cert, key = dest_dir / "authenticode-ca.pem", dest_dir / "authenticode-key.pem"
    subj = "".join(f"/{k}={v}" for k, v in subject.items())
    call(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", subj, "-addext", "extendedKeyUsage=codeSigning",
        "-keyout", key, "-out", cert, timeout=120,
    )  # fmt: skip
    key.chmod(0o600)
    return cert, key


def authenticode_sign(exe: Path, cert: Path, key: Path) -> None:
    """Sign ``exe`` in place with osslsigncode."""
    out = exe.with_name(exe.name + ".signed")
    call(
        "osslsigncode", "sign", "-certs", cert, "-key", key, "-n", "mt5forge fixture",
        "-h", "sha256", "-in", exe, "-out", out, timeout=120,
    )  # fmt: skip
    os.replace(out, exe)


def _gpg(home: Path, *args: str | os.PathLike[str], input: bytes | None = None) -> bytes:
    proc = call(
        "gpg", "--batch", "--no-tty", "--homedir", home, *args,
        timeout=120, input=input,
    )  # fmt: skip
    return proc.stdout


def make_openpgp_key(
    home: Path, uid: str = OPENPGP_UID, *, expire: str = "1d", faked_time: str | None = None
) -> str:
    """Generate a throw-away ed25519 signing key in ``home``; return its fingerprint."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    extra = ["--faked-system-time", faked_time] if faked_time else []
    _gpg(home, *extra, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", expire)
    listing = _gpg(home, "--with-colons", "--list-keys", uid).decode()
    for line in listing.splitlines():
        if line.startswith("fpr:"):
            return line.split(":")[9]
    raise RuntimeError(f"gpg made no key for {uid}")  # pragma: no cover


def export_openpgp_key(home: Path, fingerprint: str, dest: Path) -> Path:
    dest.write_bytes(_gpg(home, "--armor", "--export", fingerprint))
    return dest


def openpgp_sign(
    home: Path, fingerprint: str, data: Path, signature: Path, *, faked_time: str | None = None
) -> Path:
    """Detached armored signature of ``data`` by ``fingerprint``."""
    extra = ["--faked-system-time", faked_time] if faked_time else []
    _gpg(home, *extra, "--yes", "--local-user", fingerprint, "--armor", "--detach-sign",
         "--output", signature, data)  # fmt: skip
    return signature


def revoke_openpgp_key(home: Path, fingerprint: str) -> None:
    """Import the revocation certificate gpg made with the key: the key is revoked."""
    rev = home / "openpgp-revocs.d" / f"{fingerprint}.rev"
    text = rev.read_text(encoding="ascii").replace(":-----BEGIN", "-----BEGIN")
    _gpg(home, "--import", input=text.encode())


def stop_gpg_agent(home: Path) -> None:
    """gpg leaves an agent per GNUPGHOME; stop ours (never anyone else's)."""
    with contextlib.suppress(Exception):
        call("gpgconf", "--homedir", home, "--kill", "all", timeout=30, check=False)


def _default_manifests_dir() -> Path:
    here = Path(__file__).resolve().parents[2] / "manifests"
    return here if here.is_dir() else Path.cwd() / "manifests"


def make_fixture_profile(dest: Path, *, manifests_dir: Path | None = None) -> FixtureProfile:
    """Build stand-ins for every manifest, their signatures, keys, lock and trust overlay."""
    ensure_programs(FIXTURE_PROGRAMS)
    manifests_dir = (manifests_dir or _default_manifests_dir()).resolve()
    manifests = load_manifests(manifests_dir)
    dest = dest.resolve()
    serve, lock_dir, keys_dir = dest / "serve", dest / "checksums", dest / "keys"
    for d in (serve, lock_dir, keys_dir):
        d.mkdir(parents=True, exist_ok=True)
    home = dest / "gnupg"
    started = time.monotonic()
    fpr = make_openpgp_key(home)
    export_openpgp_key(home, fpr, keys_dir / "fixture-release.asc")
    cert, key = make_authenticode_cert(dest, AUTHENTICODE_SUBJECT)

    lock: dict[str, LockEntry] = {}
    markers: dict[str, tuple[str, ...]] = {}
    overlay: list[str] = [
        "# Written by mt5forge.fixtures: trust material of the FIXTURE profile only.",
        'profile = "fixture"',
        "",
    ]
    for m in manifests:
        path = serve / m.filename
        _build_standin(m, path)
        if m.authenticode:
            authenticode_sign(path, cert, key)
        if m.openpgp:
            openpgp_sign(home, fpr, path, serve / m.signature_filename)
        sha = sha256_file(path)
        lock[m.name] = LockEntry(
            name=m.name,
            filename=m.filename,
            sha256=sha,
            size=path.stat().st_size,
            note="fixture stand-in made by mt5forge.fixtures (not the upstream file)",
        )
        markers[m.filename] = _markers_for(m)
        overlay += _overlay_for(m, sha, fpr, cert)
    stop_gpg_agent(home)
    write_lock(lock_dir, lock)
    trust = dest / "trust.toml"
    trust.write_text("\n".join(overlay) + "\n", encoding="utf-8")
    log.info("fixture profile in %s (%.1f s)", dest, time.monotonic() - started)
    return FixtureProfile(
        root=dest,
        serve_dir=serve,
        lock_dir=lock_dir,
        keys_dir=keys_dir,
        trust_overlay=trust,
        manifests_dir=manifests_dir,
        gnupghome=home,
        openpgp_fingerprint=fpr,
        authenticode_cert=cert,
        authenticode_key=key,
        markers=markers,
        artifacts={m.name: m.filename for m in manifests},
    )


def _build_standin(m: Manifest, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".msi":
        build_msi(path, marker_name=m.filename, arch="x64" if "x86_64" in m.filename else "x86")
    elif suffix == ".exe":
        build_exe(path, marker_name=m.filename, terminal=m.filename == "mt5setup.exe")
    else:
        # Any other kind: a small file with the right name is enough to exercise the checks.
        path.write_text(f"mt5forge fixture {m.filename}\n", encoding="ascii")


def _markers_for(m: Manifest) -> tuple[str, ...]:
    if m.filename == "mt5setup.exe":
        return (MT5_TERMINAL, marker_path(m.filename))
    return (marker_path(m.filename),)


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _overlay_for(m: Manifest, sha: str, fpr: str, cert: Path) -> list[str]:
    lines = [f"[artifacts.{m.name}.pin]", 'source = "mt5forge fixture generator"']
    if m.pin.sha256:
        # The stand-in cannot match Wine's addons.c constant; the overlay pins the stand-in.
        lines.append(f'sha256 = "{sha}"')
    lines.append("")
    if m.openpgp:
        lines += [
            f"[artifacts.{m.name}.openpgp]",
            'keys = ["fixture-release.asc"]',
            f'fingerprints = ["{fpr}"]',
            'source = "throw-away key made by mt5forge.fixtures"',
            f"signature_url = {_toml_str(m.signature_url)}",
            "",
        ]
    if m.authenticode:
        subject = ", ".join(f"{k} = {_toml_str(v)}" for k, v in AUTHENTICODE_SUBJECT.items())
        lines += [
            f"[artifacts.{m.name}.authenticode]",
            f"subject = {{ {subject} }}",
            'source = "throw-away certificate made by mt5forge.fixtures"',
            f"ca_file = {_toml_str(str(cert))}",
            "",
        ]
    return lines


# --- the local HTTP server -----------------------------------------------------------------------

#: Scripted faults, consumed one per request for a file name (tests):
#: "404", "500": that status; "drop": half the body then the connection closes;
#: "truncate": declares the full length, sends all but the last 100 bytes, closes;
#: "stall": headers, then silence for ``stall_seconds``; "corrupt": one byte flipped;
#: "norange": ignore Range (answer 200 with the whole file).
FAULTS = ("404", "500", "drop", "truncate", "stall", "corrupt", "norange")


class FileServer:
    """A threaded HTTP server for one directory on 127.0.0.1, with Range and scripted faults."""

    def __init__(self, root: Path, *, stall_seconds: float = 5.0) -> None:
        self.root = root
        self.stall_seconds = stall_seconds
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str]] = []
        """(file name, Range header or "") per request, for assertions."""
        self._lock = threading.Lock()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, filename: str, *faults: str) -> None:
        for f in faults:
            if f not in FAULTS:
                raise ValueError(f"unknown fault {f!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            self.faults.setdefault(filename, []).extend(faults)

    def _next_fault(self, filename: str) -> str:
        with self._lock:
            queue = self.faults.get(filename)
            return queue.pop(0) if queue else ""

    def start(self) -> FileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("fixture server: " + format, *args)

            def do_GET(self) -> None:
                name = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
                rng = self.headers.get("Range", "")
                with server._lock:
                    server.requests.append((name, rng))
                fault = server._next_fault(name)
                path = server.root / name
                if fault == "404" or not name or not path.is_file():
                    return self._status(404, "Not Found")
                if fault == "500":
                    return self._status(500, "Internal Server Error")
                size = path.stat().st_size
                start = 0
                if rng.startswith("bytes=") and rng.endswith("-") and fault != "norange":
                    start = int(rng[6:-1])
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return None
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size - start))
                self.end_headers()
                if fault == "stall":
                    time.sleep(server.stall_seconds)
                    return self._abort()
                limit = size - start
                if fault == "drop":
                    limit = max(1, limit // 2)
                elif fault == "truncate":
                    limit = max(0, limit - 100)
                with open(path, "rb") as f:
                    f.seek(start)
                    sent = 0
                    while sent < limit:
                        block = f.read(min(1 << 20, limit - sent))
                        if not block:
                            break
                        if fault == "corrupt" and sent == 0:
                            block = bytes([block[0] ^ 0xFF]) + block[1:]
                        try:
                            self.wfile.write(block)
                        except (BrokenPipeError, ConnectionResetError):
                            return None
                        sent += len(block)
                if fault in ("drop", "truncate"):
                    return self._abort()
                return None

            def _status(self, code: int, text: str) -> None:
                body = f"{code} {text}\n".encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _abort(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)

        return Handler


@contextlib.contextmanager
def serve_directory(root: Path, *, stall_seconds: float = 5.0) -> Iterator[FileServer]:
    """Serve ``root`` on 127.0.0.1 (a free port) for the duration of the block."""
    server = FileServer(root, stall_seconds=stall_seconds).start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def serve_fixture_profile(profile: FixtureProfile) -> Iterator[str]:
    """Serve the profile's stand-ins on 127.0.0.1; yields the base URL to use as the mirror."""
    with serve_directory(profile.serve_dir) as server:
        yield server.url


# --- the fixture profile as a place on disk (invoke fetch --fixture, invoke demo) ---------------

_PROFILE_FILE = "profile.json"

#: A saved profile is reused only this long. Its OpenPGP key expires a day after it was made and
#: its Authenticode certificate after two, and from then on every fetch of it fails verification
#: ("signing key has expired"); a profile well inside both lifetimes is made again instead.
MAX_PROFILE_AGE = 12 * 3600.0


def save_profile(profile: FixtureProfile) -> Path:
    data = {
        f.name: (str(v) if isinstance(v, Path) else v)
        for f in dataclasses.fields(profile)
        for v in [getattr(profile, f.name)]
    }
    data["markers"] = {k: list(v) for k, v in profile.markers.items()}
    data["artifacts"] = dict(profile.artifacts)
    path = profile.root / _PROFILE_FILE
    path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    return path


def load_profile_dir(root: Path) -> FixtureProfile | None:
    """A profile made earlier in ``root``, or None when there is none (or it is incomplete)."""
    path = root / _PROFILE_FILE
    if not path.is_file():
        return None
    paths = {f.name for f in dataclasses.fields(FixtureProfile)} - {
        "openpgp_fingerprint",
        "markers",
        "artifacts",
    }
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        kwargs: dict[str, Any] = {k: Path(data[k]) for k in paths}
        kwargs["openpgp_fingerprint"] = data["openpgp_fingerprint"]
        kwargs["markers"] = {k: tuple(v) for k, v in data["markers"].items()}
        kwargs["artifacts"] = dict(data["artifacts"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        # Half written, or saved by another version: make a new one rather than fail.
        log.info("fixture profile %s is unreadable (%s); making a new one", path, e)
        return None
    profile = FixtureProfile(**kwargs)
    if not all((profile.serve_dir / f).is_file() for f in profile.artifacts.values()):
        return None
    return profile


def ensure_fixture_profile(root: Path, *, manifests_dir: Path | None = None) -> FixtureProfile:
    """Reuse the profile in ``root`` when it covers the same manifests and its throw-away key
    and certificate are far from expiry (:data:`MAX_PROFILE_AGE`); else make a new one.

    Reuse keeps the stand-ins' hashes stable, so a second fetch is all cache hits.
    """
    manifests_dir = (manifests_dir or _default_manifests_dir()).resolve()
    wanted = {m.name: m.filename for m in load_manifests(manifests_dir)}
    existing = load_profile_dir(root)
    if existing is not None and dict(existing.artifacts) == wanted:
        age = time.time() - (root / _PROFILE_FILE).stat().st_mtime
        if age < MAX_PROFILE_AGE:
            return existing
        log.info("fixture profile %s is %.0f h old; making a new one", root, age / 3600)
    if root.exists():
        shutil.rmtree(root)
    profile = make_fixture_profile(root, manifests_dir=manifests_dir)
    save_profile(profile)
    return profile


def fixture_root(settings: Settings) -> Path:
    """Where ``invoke fetch --fixture`` keeps its profile: beside the artifact cache."""
    return settings.cache_dir.parent / "fixture-profile"


@contextlib.contextmanager
def fixture_session(settings: Settings) -> Iterator[tuple[FixtureProfile, Settings]]:
    """Make (or reuse) the fixture profile, serve it on 127.0.0.1, and yield settings that
    fetch it through the mirror override into the usual cache, with the fixture's trust."""
    profile = ensure_fixture_profile(
        fixture_root(settings), manifests_dir=settings.path(settings.fetch.manifests_dir)
    )
    with serve_fixture_profile(profile) as url:
        values = profile.settings_overrides(url)["fetch"]
        yield (
            profile,
            dataclasses.replace(settings, fetch=dataclasses.replace(settings.fetch, **values)),
        )
