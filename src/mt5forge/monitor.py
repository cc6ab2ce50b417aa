"""Follow the engine for ``invoke watch``: Docker's event stream and one stats stream per running
container, fed to :class:`mt5forge.watch.Rules`; each finding becomes a redacted
:class:`mt5forge.alerts.Alert` handed to ``on_alert`` on a sender thread.

Threads: one reads the event stream, one per running container reads its stats, one sends
alerts; the caller's thread runs the rules, so they need no lock. The queues between them are
bounded: a flood of events can make the watch drop stats readings (said in the log), never grow
without end or block the engine's stream. The event stream is opened again, from the time of
the last event read, if the engine drops it (a restarted daemon).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import docker.errors
import requests
from mt5bridge.redact import Redactor

from mt5forge.alerts import Alert, container_secrets, redact_lines
from mt5forge.config import Settings
from mt5forge.watch import (
    Event,
    Finding,
    RestartRule,
    Rules,
    Thresholds,
    parse_event,
    parse_stats,
    restart_rule,
)

log = logging.getLogger(__name__)

COMPOSE_PROJECT = "com.docker.compose.project"
LOG_READ_CAP = 8 * 2**20
"""Bytes of a container's log read for one alert at most (a log of one endless line)."""
LOG_KEEP = 256 * 2**10
"""Bytes kept of what was read: the end of it, where the last lines are."""
MAX_STATS_STREAMS = 64
_ENGINE_ERRORS = (docker.errors.DockerException, requests.RequestException, OSError)


def selector(pair: str | None, label: str) -> str:
    """The label filter for the project's containers: one pair (compose project) or all ours."""
    return f"{COMPOSE_PROJECT}={pair}" if pair else label


def restarts_again(attrs: Mapping[str, Any], code: int) -> bool:
    """Whether Docker's restart policy starts the container again after it exited ``code``."""
    policy = (attrs.get("HostConfig") or {}).get("RestartPolicy") or {}
    name = policy.get("Name") or "no"
    if name in {"always", "unless-stopped"}:
        return True
    if name == "on-failure" and code != 0:
        most = int(policy.get("MaximumRetryCount") or 0)
        return most == 0 or int(attrs.get("RestartCount") or 0) < most
    return False


def own_rule(attrs: Mapping[str, Any], default: RestartRule) -> RestartRule:
    """The container's own MT5_RESTART_MAX / MT5_RESTART_WINDOW, as its supervisor reads them."""
    env = dict(str(e).partition("=")[::2] for e in ((attrs.get("Config") or {}).get("Env") or ()))
    values = {}
    for key, var in (("max", "MT5_RESTART_MAX"), ("window", "MT5_RESTART_WINDOW")):
        raw = env.get(var, "")
        values[key] = int(raw) if raw.isdigit() and int(raw) > 0 else getattr(default, key)
    return RestartRule(**values)


@dataclasses.dataclass
class _Known:
    attrs: Mapping[str, Any]
    rule: RestartRule
    redactor: Redactor
    stats: threading.Event | None = None
    """Set to end this container's stats thread."""


class Watcher:
    """Watch the containers matching ``label_filter`` until ``stop`` is set."""

    def __init__(
        self,
        client: Any,
        *,
        label_filter: str,
        thresholds: Thresholds,
        on_alert: Callable[[Alert], None],
        log_lines: int = 20,
        extra_secrets: Iterable[str] = (),
    ) -> None:
        self.client = client
        self.label_filter = label_filter
        self.rules = Rules(thresholds)
        self.thresholds = thresholds
        self.on_alert = on_alert
        self.log_lines = log_lines
        self.extra_secrets = tuple(extra_secrets)
        self.stop = threading.Event()
        self.ready = threading.Event()
        """Set once the event stream is open: what happens from then on is seen."""
        self._items: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=10_000)
        self._alerts: queue.Queue[Alert | None] = queue.Queue(maxsize=1_000)
        self._known: dict[str, _Known] = {}
        self._stream: Any = None
        self._since = f"{time.time():.9f}"
        """Events from this time on are read, even those before the stream opens."""

    # --- the caller's thread: rules --------------------------------------------------------------

    def run(self) -> None:
        sender = threading.Thread(target=self._send_loop, name="watch-send", daemon=True)
        sender.start()
        events = threading.Thread(target=self._event_loop, name="watch-events", daemon=True)
        events.start()
        try:
            while not self.stop.is_set():
                try:
                    kind, item = self._items.get(timeout=0.5)
                except queue.Empty:
                    kind, item = "tick", None
                try:
                    self._handle(kind, item)
                except Exception:  # one bad item must not end the watch
                    log.exception("watch: could not handle a %s", kind)
        finally:
            self.stop.set()
            if self._stream is not None:
                with contextlib.suppress(Exception):
                    self._stream.close()
            for known in self._known.values():
                if known.stats:
                    known.stats.set()
            with contextlib.suppress(queue.Full):  # a full queue: the sender ends at the deadline
                self._alerts.put(None, timeout=1)
            sender.join(timeout=30)

    def _handle(self, kind: str, item: Any) -> None:
        findings: list[Finding] = []
        if kind == "event":
            ev = parse_event(item)
            if ev is not None:
                findings += self._event(ev)
        elif kind == "sample":
            known = self._known.get(item.container)
            findings += self.rules.feed(item, known.rule if known else None)
        elif kind == "running":
            self._start_stats(item["Id"], (item.get("Names") or ["/?"])[0].lstrip("/"))
        findings += self.rules.tick(time.time())
        for finding in findings:
            self._raise(finding)

    def _inspect(self, container: str) -> _Known | None:
        try:
            attrs = self.client.api.inspect_container(container)
        except _ENGINE_ERRORS as e:
            log.debug("watch: cannot inspect %s: %s", container[:12], e)
            known = self._known.get(container)
            return known
        secrets, accounts = container_secrets(attrs)
        known = self._known.get(container)
        stats = known.stats if known else None
        known = _Known(
            attrs=attrs,
            rule=own_rule(attrs, self.thresholds.restart),
            redactor=Redactor(secrets | set(self.extra_secrets), accounts),
            stats=stats,
        )
        self._known[container] = known
        return known

    def _event(self, ev: Event) -> list[Finding]:
        known = self._known.get(ev.container)
        if ev.action in {"start", "die"} or known is None:
            known = self._inspect(ev.container)
        if ev.action == "die" and known is not None:
            state = known.attrs.get("State") or {}
            ev = dataclasses.replace(
                ev,
                restarts=restarts_again(known.attrs, ev.exit_code or 0),
                oom_killed=bool(state.get("OOMKilled")),
            )
        if ev.action == "start":
            self._start_stats(ev.container, ev.name)
        elif ev.action in {"die", "destroy"} and known is not None and known.stats:
            known.stats.set()
            known.stats = None
        findings = self.rules.feed(ev, known.rule if known else None)
        if ev.action == "destroy":
            self._known.pop(ev.container, None)
        return findings

    def _raise(self, finding: Finding) -> None:
        # Inspected again: the health check's last probes are in its state now.
        known = self._inspect(finding.container)
        attrs: Mapping[str, Any] = known.attrs if known else {}
        redactor = known.redactor if known else Redactor(self.extra_secrets)
        lines = self._last_lines(finding.container)
        if finding.reason == "unhealthy":
            probes = ((attrs.get("State") or {}).get("Health") or {}).get("Log") or []
            if probes:
                last = probes[-1]
                out = str(last.get("Output", "")).strip().split("\n")[-3:]
                lines += [f"[health check exit {last.get('ExitCode')}] {o}" for o in out]
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        alert = Alert(
            finding=finding,
            pair=str(labels.get(COMPOSE_PROJECT, "")),
            image=str((attrs.get("Config") or {}).get("Image", "?")),
            log_lines=redact_lines(lines, redactor),
        )
        try:
            self._alerts.put_nowait(alert)
        except queue.Full:
            log.error("watch: alert queue full, dropped %s of %s", finding.reason, finding.name)

    def _last_lines(self, container: str) -> list[str]:
        """The container's last ``log_lines`` lines, read with a cap (see LOG_READ_CAP)."""
        kept: collections.deque[bytes] = collections.deque()
        size = read = 0
        try:
            stream = self.client.api.logs(container, stream=True, follow=False,
                                          tail=self.log_lines)  # fmt: skip
            for chunk in stream:
                kept.append(chunk)
                size += len(chunk)
                read += len(chunk)
                while size > LOG_KEEP and len(kept) > 1:
                    size -= len(kept.popleft())
                if read > LOG_READ_CAP:
                    kept.append(b"\n[log read cut at 8 MiB]")
                    break
        except _ENGINE_ERRORS as e:
            return [f"(no log: {type(e).__name__})"]
        text = b"".join(kept)[-LOG_KEEP:].decode("utf-8", "replace")
        # Lines end at "\n" only, as the container wrote them: str.splitlines() would also
        # break at "\r", "\x1c" or "\u2028" and let a line pass for several.
        lines = text.removesuffix("\n").split("\n") if text else []
        return [line.removesuffix("\r") for line in lines][-self.log_lines :]

    # --- other threads ---------------------------------------------------------------------------

    def _put(self, kind: str, item: Any) -> None:
        try:
            self._items.put((kind, item), timeout=1)
        except queue.Full:
            log.warning("watch: falling behind the engine; a %s was dropped", kind)

    def _event_loop(self) -> None:
        backoff = 1.0
        while not self.stop.is_set():
            try:
                self._stream = self.client.api.events(
                    since=self._since,
                    filters={"type": "container", "label": [self.label_filter]},
                    decode=True,
                )
                if not self.ready.is_set():
                    self._seed()
                    self.ready.set()
                backoff = 1.0
                for raw in self._stream:
                    if self.stop.is_set():
                        return
                    if isinstance(raw, dict):
                        nanos = raw.get("timeNano")
                        if isinstance(nanos, int):  # reopened after this one, not with it
                            after = nanos + 1
                            self._since = f"{after // 10**9}.{after % 10**9:09d}"
                        self._put("event", raw)
            except Exception as e:  # a closed or broken stream: whatever the library raises
                if self.stop.is_set():
                    return
                log.warning("watch: event stream lost (%s); again in %.0f s", e, backoff)
            if self.stop.wait(backoff):
                return
            backoff = min(backoff * 2, 30)

    def _seed(self) -> None:
        """Containers already running: their stats, and a health check already unhealthy (the
        rules' thread starts the stats streams)."""
        try:
            running = self.client.api.containers(filters={"label": [self.label_filter]})
        except _ENGINE_ERRORS as e:
            log.warning("watch: cannot list containers: %s", e)
            return
        for c in running:
            name = (c.get("Names") or ["/?"])[0].lstrip("/")
            self._put("running", c)
            status = str(c.get("Status", ""))
            if "(unhealthy)" in status:
                self._put("event", {"Type": "container", "Action": "health_status: unhealthy",
                                    "Actor": {"ID": c["Id"], "Attributes": {"name": name}},
                                    "time": int(time.time())})  # fmt: skip

    def _start_stats(self, container: str, name: str) -> None:
        known = self._known.get(container)
        if known is not None and known.stats is not None:
            return
        if sum(1 for k in self._known.values() if k.stats) >= MAX_STATS_STREAMS:
            log.warning("watch: %d stats streams already; %s gets none", MAX_STATS_STREAMS, name)
            return
        if known is None:
            known = self._inspect(container)
            if known is None:
                return
        known.stats = threading.Event()
        threading.Thread(
            target=self._stats_loop, args=(container, name, known.stats),
            name=f"watch-stats-{name}", daemon=True,
        ).start()  # fmt: skip

    def _stats_loop(self, container: str, name: str, done: threading.Event) -> None:
        try:
            for raw in self.client.api.stats(container, stream=True, decode=True):
                if done.is_set() or self.stop.is_set():
                    return
                sample = parse_stats(raw, container=container, name=name, time=time.time())
                if sample is not None:
                    self._put("sample", sample)
        except _ENGINE_ERRORS as e:
            log.debug("watch: stats of %s ended: %s", name, e)

    def _send_loop(self) -> None:
        while True:
            try:
                alert = self._alerts.get(timeout=1)
            except queue.Empty:
                if self.stop.is_set() and self._alerts.empty():
                    return
                continue
            if alert is None:
                return
            try:
                self.on_alert(alert)
            except Exception:  # a target's failure must not end the watch
                log.exception("watch: delivering an alert failed")


def make_watcher(
    settings: Settings,
    client: Any,
    *,
    pair: str | None,
    on_alert: Callable[[Alert], None],
    extra_secrets: Iterable[str] = (),
) -> Watcher:
    """A :class:`Watcher` set up from ``[watch]`` (thresholds, the supervisor's restart rule)."""
    w = settings.watch
    thresholds = Thresholds(
        restart=restart_rule(settings.root, w.restart_max, w.restart_window),
        settle=w.settle,
        cpu_percent=w.cpu_percent,
        memory_percent=w.memory_percent,
        period=w.period,
    )
    return Watcher(
        client,
        label_filter=selector(pair, w.label),
        thresholds=thresholds,
        on_alert=on_alert,
        log_lines=w.log_lines,
        extra_secrets=extra_secrets,
    )
