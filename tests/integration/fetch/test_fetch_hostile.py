"""Fetch against hostile servers, mirrors and caches (issue 14), all real: HTTP servers on
127.0.0.1 that lie about lengths, never stop, encode bodies or drip bytes; a cache on a full or
read-only tmpfs; links planted in the cache.

Every refusal asserts what the issue asks: a clear error naming the artifact and the reason,
nothing partial left, and (where it applies) the next mirror tried.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mt5forge.cache import Cache
from mt5forge.config import Settings
from mt5forge.errors import BuildError, FetchError, VerificationError
from mt5forge.fetch import FetchIncomplete, fetch_all, pin_all
from mt5forge.fixtures import FileServer, FixtureKit, serve_directory
from mt5forge.lock import read_lock, write_lock
from mt5forge.report import render
from mt5forge.report.views import artifacts_report
from mt5forge.tools.http import DeadlineError, Refused
from mt5forge.tools.run import call

pytestmark = pytest.mark.integration

MONO = "wine-mono"
MONO_FILE = "wine-mono-9.4.0-x86.msi"
GECKO = "wine-gecko-x86"
REPO = Path(__file__).resolve().parents[3]


# --- a hostile server ----------------------------------------------------------------------------


class Hostile:
    """Serves ``root`` on 127.0.0.1 and misbehaves per file name, as ``modes`` says:

    - ``endless``: no Content-Length, the file then random bytes until the client hangs up;
    - ``long-length``: a Content-Length of 10 GB, then the file;
    - ``gzip``: the file gzip-compressed, with ``Content-Encoding: gzip``;
    - ``drip``: the right headers, then one byte every 0.2 s (never 1 s without data).

    Counts the bytes it managed to send per file, and keeps each request's headers.
    """

    def __init__(self, root: Path, modes: dict[str, str]) -> None:
        self.root, self.modes = root, modes
        self.sent: dict[str, int] = {}
        self.headers: list[dict[str, str]] = []
        hostile = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                hostile.headers.append(dict(self.headers.items()))
                path = hostile.root / name
                if not path.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = path.read_bytes()
                mode = hostile.modes.get(name, "")
                with contextlib.suppress(OSError):
                    self._serve(name, data, mode)

            def _serve(self, name: str, data: bytes, mode: str) -> None:
                self.send_response(200)
                if mode == "gzip":
                    data = gzip.compress(data)
                    self.send_header("Content-Encoding", "gzip")
                if mode == "endless":
                    self.send_header("Connection", "close")
                    self.close_connection = True
                else:
                    length = 10**10 if mode == "long-length" else len(data)
                    self.send_header("Content-Length", str(length))
                self.end_headers()
                if mode == "drip":
                    for i in range(len(data)):
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        hostile.sent[name] = i + 1
                        time.sleep(0.2)
                    return
                self.wfile.write(data)
                hostile.sent[name] = len(data)
                if mode in ("endless", "long-length"):
                    block = os.urandom(64 * 1024)
                    while hostile.sent[name] < 1 << 30:
                        self.wfile.write(block)
                        hostile.sent[name] += len(block)
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


@contextlib.contextmanager
def hostile(root: Path, **modes: str) -> Iterator[Hostile]:
    h = Hostile(root, {k.replace("__", "."): v for k, v in modes.items()})
    h.thread.start()
    try:
        yield h
    finally:
        h.httpd.shutdown()
        h.httpd.server_close()


def mono_modes(mode: str) -> dict[str, str]:
    return {MONO_FILE.replace(".", "__"): mode}


def no_partials(settings: Settings) -> bool:
    d = settings.cache_dir / "partial"
    return not d.is_dir() or not any(d.iterdir())


def not_cached(settings: Settings, name: str) -> bool:
    entry = read_lock(settings.path(settings.fetch.lock_dir))[name]
    return not Cache(settings.cache_dir).entry(entry.sha256, entry.filename).exists()


# --- size cap ------------------------------------------------------------------------------------


def test_endless_body_stops_at_the_lock_size(make_settings, served: Path) -> None:
    with hostile(served, **mono_modes("endless")) as h:
        s = make_settings(mirror=h.url)
        with pytest.raises(Refused) as info:
            fetch_all(s, names=[MONO])
    text = str(info.value)
    assert "wine-mono" in text and "over the cap of 9728 bytes" in text, text
    assert "removed the partial file" in text
    # Stopped at once: the server got rid of socket buffers' worth, not the endless body
    # (it would write up to 1 GiB before giving up by itself).
    assert h.sent[MONO_FILE] < 64 << 20, h.sent
    assert no_partials(s) and not_cached(s, MONO)


def test_content_length_over_the_cap_is_refused_before_the_body(
    make_settings, served: Path
) -> None:
    with hostile(served, **mono_modes("long-length")) as h:
        s = make_settings(mirror=h.url)
        with pytest.raises(Refused, match=r"sent 10000000000 bytes or more, over the cap of 9728"):
            fetch_all(s, names=[MONO])
    assert no_partials(s) and not_cached(s, MONO)


def test_manifest_max_size_caps_pin_while_no_size_is_pinned(
    make_settings, fixture_profile: FixtureKit, served: Path, tmp_path: Path
) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(fixture_profile.manifests_dir, manifests, ignore=shutil.ignore_patterns("keys"))
    toml = manifests / "wine-mono.toml"
    toml.write_text(toml.read_text().replace("\n[pin]", "\nmax_size = 4096\n[pin]", 1))
    lock_dir = tmp_path / "lock"
    shutil.copytree(fixture_profile.lock_dir, lock_dir)
    with hostile(served, **mono_modes("endless")) as h:
        s = make_settings(mirror=h.url, manifests_dir=str(manifests), lock_dir=str(lock_dir))
        with pytest.raises(Refused, match=r"wine-mono: .* over the cap of 4096 bytes"):
            pin_all(s, names=[MONO])
    assert not list((s.cache_dir / "tmp").glob("pin-*")), "pin left a partial download"


# --- encodings -----------------------------------------------------------------------------------


def test_content_encoding_is_refused_never_decoded(make_settings, served: Path) -> None:
    with hostile(served, **mono_modes("gzip")) as h:
        s = make_settings(mirror=h.url)
        with pytest.raises(Refused) as info:
            fetch_all(s, names=[MONO])
    text = str(info.value)
    assert "Content-Encoding: 'gzip'" in text and "byte for byte" in text, text
    assert h.headers and all(r.get("Accept-Encoding") == "identity" for r in h.headers)
    assert no_partials(s) and not_cached(s, MONO)


# --- deadline and mirrors ------------------------------------------------------------------------


def test_dripping_server_fails_in_bounded_time(make_settings, served: Path) -> None:
    """One byte every 0.2 s never trips the 1 s read timeout; the overall deadline does:
    2 x (2 s connect + 1 s read) + 9728 bytes at 256 KiB/s, about 6 s."""
    with hostile(served, **mono_modes("drip")) as h:
        s = make_settings(mirror=h.url)
        with pytest.raises(DeadlineError) as info:
            fetch_all(s, names=[MONO])
    # The overall deadline ended it (no read ever timed out), before the file was complete.
    assert "did not deliver the file within the deadline of 6" in str(info.value)
    assert h.sent[MONO_FILE] < 9728


def test_dripping_mirror_then_the_next_mirror_serves(
    make_settings, served: Path, server: FileServer
) -> None:
    with hostile(served, **mono_modes("drip")) as h:
        s = make_settings(mirror=f"{h.url},{server.url}")
        [a] = fetch_all(s, names=[MONO])
    assert a.url == f"{server.url}/{MONO_FILE}" and a.path.is_file()
    assert h.sent[MONO_FILE] < 9728  # the dripping mirror was given up, not waited out


def test_bad_bytes_are_blamed_on_that_mirror_for_that_artifact_only(
    make_settings, served: Path, server: FileServer, caplog: pytest.LogCaptureFixture
) -> None:
    with serve_directory(served) as good:
        server.script(MONO_FILE, "corrupt")
        s = make_settings(mirror=f"{server.url},{good.url}")
        with caplog.at_level(logging.WARNING, logger="mt5forge.fetch"):
            mono, gecko = fetch_all(s, names=[MONO, GECKO])
    assert mono.url == f"{good.url}/{MONO_FILE}", "wine-mono comes from the second mirror"
    assert gecko.url.startswith(server.url), "the first mirror still serves the other artifact"
    said = caplog.text
    assert f"wrong bytes from {server.url}/{MONO_FILE}" in said, said
    assert f"taken from {good.url}/{MONO_FILE}" in said


def test_every_mirror_failing_says_what_each_served(
    make_settings, served: Path, server: FileServer
) -> None:
    with hostile(served, **mono_modes("gzip")) as h:
        server.script(MONO_FILE, "corrupt")
        s = make_settings(mirror=f"{server.url},{h.url}")
        with pytest.raises(VerificationError) as info:
            fetch_all(s, names=[MONO])
    text = str(info.value)
    assert "wine-mono: every mirror failed" in text
    assert f"wrong bytes from {server.url}/{MONO_FILE}" in text
    assert f"{h.url}/{MONO_FILE} answered with Content-Encoding" in text
    assert no_partials(s) and not_cached(s, MONO)


# --- one bad artifact does not hide the others ---------------------------------------------------


def test_every_artifact_is_tried_and_the_summary_names_each_failure(
    make_settings, served: Path, server: FileServer, fixture_profile: FixtureKit
) -> None:
    (served / MONO_FILE).unlink()
    server.script("mt5setup.exe", "corrupt")
    s = make_settings()
    with pytest.raises(FetchIncomplete) as info:
        fetch_all(s)
    err = info.value
    assert sorted(f.name for f in err.failures) == ["mt5setup", MONO]
    good = {a.name for a in err.artifacts}
    assert good == set(fixture_profile.artifacts) - {"mt5setup", MONO}
    assert all(a.path.is_file() for a in err.artifacts), "the good ones are kept"
    assert err.exit_code == VerificationError.exit_code
    text = render(
        artifacts_report(err.artifacts, "Artifacts", failures=err.failures), "table", width=220
    )
    assert text.count("FAILED") >= 2 and "HTTP 404" in text and "wrong bytes" in text, text


def test_invoke_fetch_prints_the_table_and_exits_non_zero(
    fixture_profile: FixtureKit, served: Path, server: FileServer, tmp_path: Path
) -> None:
    """The task end to end: a project whose config points at the fixture profile."""
    (served / MONO_FILE).unlink()
    project = tmp_path / "project"
    project.mkdir()
    for name in ("tasks.py", "pyproject.toml"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, project / name)
    over = fixture_profile.settings_overrides(server.url, tmp_path / "cache")["fetch"]
    body = "".join(f'{k} = "{v}"\n' for k, v in over.items())
    (project / "mt5forge.toml").write_text(
        f"[fetch]\n{body}connect_timeout = 2\nread_timeout = 1\nretries = 1\nbackoff_ms = 10\n"
    )
    proc = subprocess.run(
        ["invoke", "fetch"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "220"},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == FetchError.exit_code, out
    assert "FAILED" in proc.stdout and "HTTP 404" in proc.stdout, out
    assert "downloaded" in proc.stdout, "the good artifacts are in the table too"
    assert "1 of 5 artifact(s) failed" in out, out


def test_incomplete_lock_refuses_up_front_naming_what_would_be_fetched(
    make_settings, fixture_profile: FixtureKit, server: FileServer, tmp_path: Path
) -> None:
    lock = read_lock(fixture_profile.lock_dir)
    del lock[MONO]
    write_lock(tmp_path / "lock", lock)
    s = make_settings(lock_dir=str(tmp_path / "lock"))
    with pytest.raises(VerificationError) as info:
        fetch_all(s, names=[MONO, GECKO])
    assert f"this run would have fetched: {MONO}, {GECKO}" in str(info.value)
    assert server.requests == []


# --- disk errors (a real tmpfs; mounting needs root) ---------------------------------------------


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    mounted: list[Path] = []

    def mount(size: str, *, read_only: bool = False) -> Path:
        d = tmp_path / f"tmpfs-{len(mounted)}"
        d.mkdir()
        opts = f"size={size}" + (",ro" if read_only else "")
        proc = call("mount", "-t", "tmpfs", "-o", opts, "tmpfs", d, timeout=30, check=False)
        if proc.returncode != 0:
            why = f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}"
            # As root (CI, the README's command) the disk-error tests must run, never skip.
            if os.geteuid() == 0:
                pytest.fail(why)
            pytest.skip(why)
        mounted.append(d)
        return d

    yield mount
    for d in mounted:
        call("umount", "-l", d, timeout=30, check=False)


def test_disk_full_is_a_clear_error_and_leaves_nothing(make_settings, tmpfs) -> None:
    cache = tmpfs("8k")  # wine-mono is 9728 bytes: the partial file hits ENOSPC on the way
    s = make_settings(cache_dir=str(cache))
    with pytest.raises(FetchError) as info:
        fetch_all(s, names=[MONO])
    text = str(info.value)
    assert f"{MONO}: cannot write" in text and "the disk is full" in text, text
    assert "OSError" not in text and "Errno" not in text
    assert no_partials(s) and not_cached(s, MONO)


def test_read_only_cache_is_a_clear_error(make_settings, tmpfs) -> None:
    cache = tmpfs("1m", read_only=True)
    s = make_settings(cache_dir=str(cache))
    with pytest.raises(FetchError) as info:
        fetch_all(s, names=[MONO])
    assert "read-only" in str(info.value), str(info.value)


# --- links in the cache --------------------------------------------------------------------------


def test_a_link_at_the_partial_file_is_never_written_through(make_settings, tmp_path: Path) -> None:
    s = make_settings()
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    entry = read_lock(s.path(s.fetch.lock_dir))[MONO]
    part = Cache(s.cache_dir).partial(entry.sha256)
    part.symlink_to(victim)
    [a] = fetch_all(s, names=[MONO])
    assert victim.read_bytes() == b"precious"
    assert a.path.is_file() and not a.path.is_symlink()


def test_a_link_at_a_cache_entry_is_refused_not_read(make_settings, tmp_path: Path) -> None:
    s = make_settings()
    [a] = fetch_all(s, names=[MONO])
    planted = tmp_path / "planted.msi"
    shutil.copyfile(a.path, planted)  # the right bytes, but outside the cache
    a.path.chmod(0o644)
    a.path.unlink()
    a.path.symlink_to(planted)
    with pytest.raises(VerificationError, match="is a symbolic link; the cache never follows"):
        fetch_all(s, names=[MONO])


def test_a_linked_directory_in_the_cache_is_refused(make_settings, tmp_path: Path) -> None:
    s = make_settings()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    s.cache_dir.mkdir(parents=True)
    (s.cache_dir / "sha256").symlink_to(elsewhere)
    with pytest.raises(VerificationError, match="symbolic link or not a directory"):
        fetch_all(s, names=[MONO])
    assert not any(elsewhere.iterdir()), "nothing written through the link"


# --- invoke pin refuses a rollback ---------------------------------------------------------------


@pytest.fixture
def newer_lock(make_settings, fixture_profile: FixtureKit, tmp_path: Path) -> Settings:
    """A lock that says wine-mono 9.5.0 was pinned; the manifest names 9.4.0."""
    import dataclasses

    lock = read_lock(fixture_profile.lock_dir)
    lock[MONO] = dataclasses.replace(lock[MONO], version="9.5.0", sha256="0" * 64)
    write_lock(tmp_path / "lock", lock)
    return make_settings(lock_dir=str(tmp_path / "lock"))


def test_pin_refuses_an_older_version(newer_lock: Settings, server: FileServer) -> None:
    before = (newer_lock.path(newer_lock.fetch.lock_dir) / "artifacts.lock.toml").read_text()
    with pytest.raises(VerificationError) as info:
        pin_all(newer_lock, names=[MONO])
    assert "wine-mono 9.5.0 -> 9.4.0" in str(info.value) and "--allow-downgrade" in str(info.value)
    assert server.requests == [], "refused before any download"
    after = (newer_lock.path(newer_lock.fetch.lock_dir) / "artifacts.lock.toml").read_text()
    assert after == before


def test_pin_allow_downgrade_says_so_in_the_diff(newer_lock: Settings) -> None:
    result = pin_all(newer_lock, names=[MONO], allow_downgrade=True)
    assert result.written
    [change] = result.changes
    assert change.downgrade == "9.5.0 -> 9.4.0"
    assert '+note = "DOWNGRADE 9.5.0 -> 9.4.0, allowed with --allow-downgrade' in result.diff
    assert '-version = "9.5.0"' in result.diff and '+version = "9.4.0"' in result.diff


# --- the build context gets copies ---------------------------------------------------------------


def test_build_context_gets_copies_not_links_of_the_cache(make_settings, tmp_path: Path) -> None:
    from mt5forge.context import stage_context
    from mt5forge.images import Target, terminal_artifacts

    s = make_settings()
    roles = terminal_artifacts(fetch_all(s))
    dest = stage_context(Target(image="terminal", variant="slim"), s, tmp_path / "ctx", roles)
    for a in roles.values():
        copy = dest / "artifacts" / a.filename
        cached, staged = os.stat(a.path), os.stat(copy)
        assert staged.st_ino != cached.st_ino and staged.st_nlink == 1 == cached.st_nlink
        assert not copy.is_symlink()
    # A cache entry swapped for a link (to the right bytes, even) is not followed.
    a = next(iter(roles.values()))
    elsewhere = tmp_path / "elsewhere"
    shutil.copyfile(a.path, elsewhere)
    a.path.chmod(0o644)
    a.path.unlink()
    a.path.symlink_to(elsewhere)
    with pytest.raises(BuildError, match="cannot be read as a regular file"):
        stage_context(Target(image="terminal", variant="slim"), s, tmp_path / "ctx2", roles)
