"""``invoke watch`` against real containers: each trouble makes exactly one alert, with the
container, the reason and the last log lines, delivered through Apprise's real HTTP path
(``json://``) to a webhook receiver on 127.0.0.1; a secret given at run time is in none.

The containers run the project's base image (a shell, coreutils): nothing to build."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from mt5bridge.redact import Redactor
from waiting import wait_for

from mt5forge.alerts import Alert, deliver, parse_targets
from mt5forge.base import BaseImage
from mt5forge.config import Settings
from mt5forge.monitor import COMPOSE_PROJECT, Watcher, make_watcher
from mt5forge.watch import Event, Finding, parse_event

pytestmark = pytest.mark.integration

IMAGE = "mt5forge/base:trixie"
BODY_CAP = 1 << 20


class Receiver:
    """A webhook receiver on 127.0.0.1: every JSON body POSTed to it, as Apprise sent it."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # never raises: a bad body is answered 400
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                    if not 0 < length <= BODY_CAP:
                        raise ValueError(f"length {length}")
                    body = json.loads(self.rfile.read(length))
                    if not isinstance(body, dict):
                        raise ValueError("not an object")
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                with outer.lock:
                    outer.posts.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def about(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for p in self.posts if f"container: {name} " in p.get("message", "")]

    def wait_for(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.about(name)
            if got:
                return got[0]
            time.sleep(0.1)
        with self.lock:
            raise AssertionError(f"no alert about {name} in {timeout:.0f} s; got {self.posts}")


class CountingWatcher(Watcher):
    """The real watcher, noting each Docker event its rules have handled and each finding they
    raised: a test waits for the event it needs instead of a fixed quiet time. A finding is
    noted in the rules' thread, before it is queued for sending, so "no finding about X after
    X's event was handled" is exact, and holds for the receiver too."""

    def __init__(self, base: Watcher) -> None:
        super().__init__(base.client, label_filter=base.label_filter, thresholds=base.thresholds,
                         on_alert=base.on_alert, log_lines=base.log_lines,
                         extra_secrets=base.extra_secrets)  # fmt: skip
        self.handled: list[Event] = []
        self.findings: list[Finding] = []
        self.noted = threading.Lock()

    def _handle(self, kind: str, item: Any) -> None:
        try:
            super()._handle(kind, item)
        finally:
            ev = parse_event(item) if kind == "event" else None
            if ev is not None:
                with self.noted:
                    self.handled.append(ev)

    def _raise(self, finding: Finding) -> None:
        with self.noted:
            self.findings.append(finding)
        super()._raise(finding)

    def events_of(self, container: str, action: str) -> list[Event]:
        with self.noted:
            return [e for e in self.handled if e.container == container and e.action == action]

    def findings_about(self, container: str) -> list[Finding]:
        with self.noted:
            return [f for f in self.findings if f.container == container]


@dataclasses.dataclass
class Watching:
    pair: str
    receiver: Receiver
    watcher: CountingWatcher
    client: Any
    hook_secret: str

    def gone(self, c: Any) -> None:
        """Remove `c` and wait until the watcher has handled its `destroy`: every event about it
        is behind the rules then (one queue, in order), and its state is dropped, so no later
        alert can come about it."""
        c.remove(force=True)
        wait_for(
            f"the watcher to handle {c.name}'s destroy event",
            lambda: self.watcher.events_of(c.id, "destroy"),
            timeout=60,
            every=0.1,
        )

    def only_one(self, c: Any) -> None:
        """Exactly one alert about `c`: one finding raised in all, and one POST received."""
        self.gone(c)
        findings = self.watcher.findings_about(c.id)
        assert len(findings) == 1, f"{len(findings)} findings about {c.name}: {findings}"
        got = self.receiver.about(c.name)
        assert len(got) == 1, f"{len(got)} alerts about {c.name}: {got}"

    def none_about(self, c: Any) -> None:
        """No alert about `c`, once the watcher has handled its `die` and it is gone."""
        wait_for(
            f"the watcher to handle {c.name}'s die event",
            lambda: self.watcher.events_of(c.id, "die"),
            timeout=60,
            every=0.1,
        )
        self.gone(c)
        assert self.watcher.findings_about(c.id) == []
        assert not self.receiver.about(c.name)

    def run(self, name: str, command: str, **kwargs: Any) -> Any:
        labels = {COMPOSE_PROJECT: self.pair, "org.mt5forge.image": "watch-test"}
        return self.client.containers.run(
            IMAGE, ["sh", "-c", command], name=f"{self.pair}-{name}", labels=labels,
            detach=True, **kwargs,
        )  # fmt: skip


@pytest.fixture(scope="module")
def watching(docker_client: Any, settings: Settings, base_image: BaseImage) -> Iterator[Watching]:
    """One watcher for the module, on a pair of its own, alerting through Apprise. The
    containers run the project's base image (made on first use by the ``base_image`` fixture,
    never skipped for want of it)."""
    assert base_image.reference == IMAGE, base_image.reference
    pair = f"watchtest{secrets.token_hex(4)}"
    receiver = Receiver()
    hook_secret = "hook-" + secrets.token_hex(8)
    targets = parse_targets(
        [f"json://watch:${{HOOK_PW}}@127.0.0.1:{receiver.port}/alerts"], {"HOOK_PW": hook_secret}
    )
    local = dataclasses.replace(
        settings,
        watch=dataclasses.replace(
            settings.watch, settle=8, cpu_percent=25, memory_percent=50, period=2, log_lines=5
        ),
    )
    extra = [s for t in targets for s in t.secrets]

    def on_alert(alert: Alert) -> None:
        results = deliver(alert, targets, Redactor(extra))
        assert all(d.ok for d in results), results

    watcher = CountingWatcher(make_watcher(local, docker_client, pair=pair, on_alert=on_alert,
                                           extra_secrets=extra))  # fmt: skip
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    assert watcher.ready.wait(30), "the event stream did not open"
    try:
        yield Watching(pair, receiver, watcher, docker_client, hook_secret)
    finally:
        for c in docker_client.containers.list(
            all=True, filters={"label": f"{COMPOSE_PROJECT}={pair}"}
        ):
            c.remove(force=True)
        watcher.stop.set()
        thread.join(30)
        receiver.server.shutdown()


def _lines(post: dict[str, Any]) -> str:
    return str(post["message"])


def test_the_rule_is_the_supervisors(watching: Watching, repo_root: Path) -> None:
    text = (repo_root / "build/terminal/entrypoint").read_text()
    rule = watching.watcher.thresholds.restart
    assert f"RESTART_MAX=$(number MT5_RESTART_MAX {rule.max})" in text
    assert f"RESTART_WINDOW=$(number MT5_RESTART_WINDOW {rule.window})" in text


def test_a_crash_with_a_nonzero_exit(watching: Watching) -> None:
    # Under an init (as the terminal runs under tini): PID 1 cannot be sent SIGKILL from inside.
    c = watching.run("crash", "echo starting up; echo giving up now >&2; sleep 1; kill -KILL $$",
                     init=True)  # fmt: skip
    post = watching.receiver.wait_for(c.name, timeout=30)
    watching.only_one(c)
    assert post["title"] == f"mt5forge: {watching.pair}/{watching.pair}-crash: crash"
    assert "reason: crash: crashed: exit code 137 (killed by SIGKILL)" in _lines(post)
    # stdout and stderr lines may come in either order
    assert {"  starting up", "  giving up now"} <= set(_lines(post).splitlines())
    assert post["type"] == "failure"


def test_a_stop_asked_for_is_no_crash(watching: Watching) -> None:
    """docker stop (SIGTERM, then SIGKILL) and docker kill end with codes a crash has too."""
    stopped = watching.run("stopped", "trap '' TERM; echo up; sleep 300 & wait")
    killed = watching.run("killed", "echo up; sleep 300")
    time.sleep(1)
    stopped.stop(timeout=1)
    killed.kill()
    stopped.reload()
    assert stopped.attrs["State"]["ExitCode"] == 137
    watching.none_about(stopped)
    watching.none_about(killed)


def test_an_oom_kill_under_a_small_memory_limit(watching: Watching) -> None:
    c = watching.run("oom", "echo filling memory; exec tail /dev/zero",
                     mem_limit="16m", memswap_limit="16m")  # fmt: skip
    post = watching.receiver.wait_for(c.name, timeout=30)
    c.reload()
    assert c.attrs["State"]["OOMKilled"] is True
    watching.only_one(c)
    assert "reason: oom: killed by the kernel's OOM killer: exit code 137" in _lines(post)
    assert "  filling memory" in _lines(post)


def test_a_restart_loop_is_one_alert_not_one_per_crash(watching: Watching) -> None:
    c = watching.run("loop", "echo run starts; echo cannot open the database >&2; exit 3",
                     restart_policy={"Name": "always"})  # fmt: skip
    post = watching.receiver.wait_for(c.name, timeout=60)
    rule = watching.watcher.thresholds.restart
    assert f"reason: restart-loop: restarted {rule.max} times within {rule.window} s" in _lines(
        post
    )
    assert "  cannot open the database" in _lines(post)
    # It keeps crashing past the settle time (8 s here): still that one alert. Waited for as
    # the watcher sees it: a death handled more than `settle` after the loop was reported.
    found = watching.watcher.findings_about(c.id)
    assert len(found) == 1, found
    loop = found[0]
    settle = watching.watcher.thresholds.settle

    def died_after_settle() -> bool:
        return any(e.time > loop.time + settle for e in watching.watcher.events_of(c.id, "die"))

    wait_for("a death past the settle time", died_after_settle, timeout=120, every=0.2)
    c.reload()
    assert c.attrs["RestartCount"] > rule.max
    watching.only_one(c)


def test_a_health_check_turning_unhealthy(watching: Watching) -> None:
    c = watching.run(
        "health",
        "echo serving; sleep 2; echo lost the broker >&2; touch /tmp/bad; sleep 300",
        healthcheck={
            "test": ["CMD-SHELL", "test ! -e /tmp/bad || { echo broker unreachable; exit 1; }"],
            "interval": 500_000_000,
            "timeout": 2_000_000_000,
            "retries": 1,
        },
    )
    post = watching.receiver.wait_for(c.name, timeout=30)
    assert "reason: unhealthy: the health check turned unhealthy" in _lines(post)
    assert "  lost the broker" in _lines(post)
    assert "[health check exit 1] broker unreachable" in _lines(post)
    watching.only_one(c)


def test_cpu_above_the_threshold_for_the_period(watching: Watching) -> None:
    c = watching.run("busy", "echo spinning; while :; do :; done")
    post = watching.receiver.wait_for(c.name, timeout=30)
    assert "reason: cpu: cpu above 25% of one CPU for" in _lines(post)
    watching.only_one(c)


def test_memory_above_the_threshold_for_the_period(watching: Watching) -> None:
    # /dev/shm is charged to the container's memory, and is not page cache that can be dropped.
    c = watching.run("hog", "head -c 40000000 /dev/zero > /dev/shm/x; echo holding; sleep 300",
                     mem_limit="64m", memswap_limit="64m")  # fmt: skip
    post = watching.receiver.wait_for(c.name, timeout=30)
    assert "reason: memory: memory above 50% of its memory limit for" in _lines(post)
    watching.only_one(c)


def test_a_hostile_log_is_cut_and_cannot_forge_lines(watching: Watching) -> None:
    """A 20 MB line without a newline, a carriage return and an escape sequence: the alert
    still comes, and each line stays one line of at most LINE_CAP characters."""
    c = watching.run(
        "hostile",
        r"head -c 20000000 /dev/zero | tr '\0' x; echo; "
        r"printf 'ok\rreason: restart-loop: forged\033[2J\n'; exit 1",
    )
    post = watching.receiver.wait_for(c.name, timeout=60)
    watching.only_one(c)
    body = _lines(post)
    assert len(body) < 4000, len(body)
    lines = body.splitlines()
    assert sum(1 for line in lines if line.startswith("reason:")) == 1
    assert r"  ok\rreason: restart-loop: forged\x1b[2J" in lines
    assert any(line.endswith("...[cut]") for line in lines)


def test_a_failing_target_hides_no_other(watching: Watching) -> None:
    """Apprise's real HTTP path: one target refuses connections, the next one still gets it."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # closed when the block ends: nothing listens there
    targets = parse_targets(
        [f"json://127.0.0.1:{dead}/", f"json://127.0.0.1:{watching.receiver.port}/"], {}
    )
    finding = Finding(time=time.time(), container="0" * 64, name="nowhere", reason="crash",
                      detail="crashed: exit code 1")  # fmt: skip
    alert = Alert(finding=finding, pair="", image="x", log_lines=("bye",))
    results = deliver(alert, targets, Redactor())
    assert [d.ok for d in results] == [False, True], results
    assert str(dead) in results[0].target
    assert watching.receiver.wait_for("nowhere", timeout=5)


def test_a_secret_given_at_run_time_is_in_no_alert(watching: Watching, tmp_path: Path) -> None:
    password = "pw-" + secrets.token_hex(8)
    token = "tok-" + secrets.token_hex(8)
    login = "70412345"
    secret_file = tmp_path / "api_token"
    secret_file.write_text(token + "\n")
    secret_file.chmod(0o444)
    b64 = base64.b64encode(password.encode()).decode()
    c = watching.run(
        "leaky",
        f"echo connecting as {login} with {password}; echo header Basic {b64}; "
        f'echo "token $(cat /run/secrets/api_token)"; echo hook {watching.hook_secret}; '
        "exit 2",
        environment={"MT5_PASSWORD": password, "MT5_LOGIN": login,
                     "MT5_API_TOKEN_FILE": "/run/secrets/api_token"},
        volumes={str(secret_file): {"bind": "/run/secrets/api_token", "mode": "ro"}},
    )  # fmt: skip
    post = watching.receiver.wait_for(c.name, timeout=30)
    logs = c.logs().decode()
    assert password in logs and token in logs  # the container did print them
    watching.only_one(c)
    text = json.dumps(post)
    for secret in (password, token, b64, login, watching.hook_secret):
        assert secret not in text, f"{secret} leaked: {text}"
    assert "connecting as *****345 with ***" in _lines(post)


def test_the_task_dry_run_prints_what_it_would_send(
    docker_client: Any, repo_root: Path, watching: Watching
) -> None:
    """`invoke watch --dry-run` as a user runs it: one alert printed, nothing sent."""
    pair = f"watchcli{secrets.token_hex(4)}"
    env = {**os.environ, "MT5FORGE_WATCH_TARGETS": f"json://127.0.0.1:{watching.receiver.port}/"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "watch", "--pair", pair, "--dry-run", "--duration", "8"],
        cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        assert "watching containers labelled" in proc.stderr.readline()
        before = len(watching.receiver.posts)
        name = f"{pair}-crash"
        docker_client.containers.run(
            IMAGE, ["sh", "-c", "echo bye; sleep 1; exit 4"], name=name, detach=True,
            labels={COMPOSE_PROJECT: pair},
        )  # fmt: skip
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        for c in docker_client.containers.list(
            all=True, filters={"label": f"{COMPOSE_PROJECT}={pair}"}
        ):
            c.remove(force=True)
    assert proc.returncode == 0, err
    assert out.count("would send") == 1, out
    assert f"mt5forge: {pair}/{name}: crash" in out
    assert "reason: crash: crashed: exit code 4" in out
    assert f"to json://127.0.0.1:{watching.receiver.port}/" in out
    assert len(watching.receiver.posts) == before  # dry run: nothing sent


def test_the_task_sends_one_alert_through_apprise(
    docker_client: Any, repo_root: Path, watching: Watching
) -> None:
    """`invoke watch` as a user runs it, not a dry run: the target from the environment (its
    secret from another variable), one container exits non-zero, one POST reaches the receiver
    through Apprise and one JSON line is logged; SIGTERM ends the watch with exit 0."""
    pair = f"watchsend{secrets.token_hex(4)}"
    hook_pw = "pw-" + secrets.token_hex(8)
    url = f"json://watch:${{WATCH_HOOK_PW}}@127.0.0.1:{watching.receiver.port}/alerts"
    env = {**os.environ, "MT5FORGE_WATCH_TARGETS": url, "WATCH_HOOK_PW": hook_pw}
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "watch", "--pair", pair],
        cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    name = f"{pair}-crash"
    try:
        assert proc.stderr is not None
        started = proc.stderr.readline()
        assert "watching containers labelled" in started and "1 target(s)" in started, started
        docker_client.containers.run(
            IMAGE, ["sh", "-c", "echo bye from the task test; sleep 1; exit 5"], name=name,
            detach=True, labels={COMPOSE_PROJECT: pair},
        )  # fmt: skip
        post = watching.receiver.wait_for(name, timeout=60)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        for c in docker_client.containers.list(
            all=True, filters={"label": f"{COMPOSE_PROJECT}={pair}"}
        ):
            c.remove(force=True)
    assert proc.returncode == 0, err
    # The watch has ended, its sender drained first: nothing more can come from it.
    assert watching.receiver.about(name) == [post]
    assert post["title"] == f"mt5forge: {pair}/{name}: crash"
    assert "reason: crash: crashed: exit code 5" in _lines(post)
    assert "  bye from the task test" in _lines(post)
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    [record] = lines
    assert (record["component"], record["event"]) == ("watch", "alert")
    fields = record["fields"]
    assert (fields["container"], fields["pair"], fields["reason"]) == (name, pair, "crash")
    assert fields["detail"] == "crashed: exit code 5"
    assert hook_pw not in out + err and "not delivered" not in err
