"""What ``invoke watch`` alerts on, as rules over Docker's events and stats: no engine, no clock.

The engine's event stream (``docker events``) and stats stream are parsed here into small frozen
values (:func:`parse_event`, :func:`parse_stats`), and :class:`Rules` turns them into findings.
Time comes only from the events and from :meth:`Rules.tick`'s argument, so every rule can be
driven by a list of events in a unit test (:func:`evaluate`).

One incident, one alert:

- **crash**: a container dies with a non-zero code (``oom`` when the kernel's OOM killer did it),
  and nobody asked it to stop (a ``kill`` or ``stop`` through the API comes first then: an
  operator's ``docker stop`` or ``compose down`` is not a crash). A container Docker will not
  restart is reported at once. One Docker restarts is given ``settle`` seconds: if it dies
  again and again, that is one **restart-loop** alert instead of a crash alert per death.
- **restart-loop**: ``restart_max`` restarts within ``restart_window`` seconds: the rule the
  terminal's supervisor applies to its processes (build/terminal/entrypoint, ``MT5_RESTART_MAX``
  and ``MT5_RESTART_WINDOW``), applied to the container, with the same numbers.
- **unhealthy**: the health check turned unhealthy; again only after it was healthy (or
  starting) in between.
- **cpu** / **memory**: above the threshold in every sample for ``period`` seconds; again only
  after a sample below it.

A crash or restart loop of a container is reported once per ``restart_window``: later deaths in
it are counted into the open incident, and only a restart loop (the worse state) escalates it.
"""

from __future__ import annotations

import dataclasses
import re
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from mt5forge.errors import ConfigError

Reason = Literal["crash", "oom", "restart-loop", "unhealthy", "cpu", "memory"]

#: The terminal supervisor: its restart defaults are the watch's (one place for the numbers).
SUPERVISOR = Path("build/terminal/entrypoint")
_SUPERVISOR_DEFAULT = re.compile(r"^(?P<var>RESTART_MAX|RESTART_WINDOW)=\$\(number MT5_\1 (\d+)\)")

#: Signals by number, for "killed by SIGKILL" in a crash's reason (exit code 128 + n).
_SIGNALS = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 6: "SIGABRT", 9: "SIGKILL", 11: "SIGSEGV"}
_SIGNALS |= {13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class RestartRule:
    max: int
    """Restarts allowed within ``window``; one more is a loop."""
    window: int
    """Seconds."""


def supervisor_rule(text: str) -> RestartRule:
    """The supervisor's defaults, read from the entrypoint's own lines
    (``RESTART_MAX=$(number MT5_RESTART_MAX 5)``), so they are written in one place only."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        m = _SUPERVISOR_DEFAULT.match(line.strip())
        if m:
            found[m["var"]] = int(m.group(2))
    if set(found) != {"RESTART_MAX", "RESTART_WINDOW"}:
        raise ConfigError(
            f"{SUPERVISOR} no longer says RESTART_MAX=$(number MT5_RESTART_MAX N) and "
            "RESTART_WINDOW=$(number MT5_RESTART_WINDOW S); the watch reads its defaults there.",
            hint="Set [watch] restart_max and restart_window in mt5forge.toml meanwhile.",
        )
    return RestartRule(max=found["RESTART_MAX"], window=found["RESTART_WINDOW"])


def restart_rule(root: Path, restart_max: int = 0, restart_window: int = 0) -> RestartRule:
    """The configured numbers; a 0 takes the supervisor's default from ``root/SUPERVISOR``."""
    if restart_max and restart_window:
        return RestartRule(max=restart_max, window=restart_window)
    path = root / SUPERVISOR
    try:
        default = supervisor_rule(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(
            f"Cannot read the supervisor's restart defaults from {path}: {e.strerror}.",
            hint="Run from the project checkout, or set [watch] restart_max and restart_window.",
        ) from e
    return RestartRule(max=restart_max or default.max, window=restart_window or default.window)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Thresholds:
    restart: RestartRule
    settle: float = 30
    cpu_percent: float = 90
    memory_percent: float = 90
    period: float = 60


@dataclasses.dataclass(frozen=True, kw_only=True)
class Event:
    """One container event from the engine, reduced to what the rules read."""

    time: float
    container: str
    """The container's id."""
    name: str
    action: str
    """``die``, ``oom``, ``start``, ``kill``, ``stop``, ``destroy``, ``health``, ..."""
    exit_code: int | None = None
    """For ``die``."""
    health: str = ""
    """For ``health``: ``healthy``, ``unhealthy`` or ``starting``."""
    restarts: bool | None = None
    """For ``die``: whether Docker's restart policy starts it again (the watcher looks; None:
    unknown, taken as no)."""
    oom_killed: bool = False
    """For ``die``: the engine's ``State.OOMKilled`` (the ``oom`` event may come late or,
    on some engines, not at all)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sample:
    """One stats reading of a container."""

    time: float
    container: str
    name: str
    cpu_percent: float
    """Of one CPU, as ``docker stats`` counts it (a busy two-CPU process is 200)."""
    memory_percent: float
    """Of the container's limit (the host's memory when it has none), page cache excluded."""
    memory_bytes: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Finding:
    time: float
    container: str
    name: str
    reason: Reason
    detail: str


_EVENT_ACTIONS = {"die", "oom", "start", "kill", "stop", "destroy", "restart"}


def parse_event(raw: Mapping[str, Any]) -> Event | None:
    """A decoded ``docker events`` JSON object as an :class:`Event`; None for what the rules do
    not read (other types, ``exec_start``, ``attach``, ...) or for a malformed object."""
    if raw.get("Type", raw.get("type")) != "container":
        return None
    action = raw.get("Action", raw.get("status"))
    actor = raw.get("Actor")
    if not isinstance(action, str) or not isinstance(actor, Mapping):
        return None
    attrs = actor.get("Attributes")
    attrs = attrs if isinstance(attrs, Mapping) else {}
    ident = actor.get("ID", raw.get("id"))
    if not isinstance(ident, str) or not ident:
        return None
    nanos, seconds = raw.get("timeNano"), raw.get("time")
    if isinstance(nanos, int) and not isinstance(nanos, bool):
        when = nanos / 1e9
    elif isinstance(seconds, int | float) and not isinstance(seconds, bool):
        when = float(seconds)
    else:
        return None
    name = str(attrs.get("name", ident[:12]))
    health = ""
    if action.startswith("health_status"):
        # "health_status: unhealthy" (engines up to 24), or the status in an attribute.
        health = action.partition(":")[2].strip() or str(attrs.get("health_status", ""))
        action = "health"
        if health not in {"healthy", "unhealthy", "starting"}:
            return None
    elif action not in _EVENT_ACTIONS:
        return None
    code = None
    if action == "die":
        try:
            code = int(attrs.get("exitCode", ""))
        except ValueError:
            return None
    return Event(
        time=when, container=ident, name=name, action=action, exit_code=code, health=health
    )


def parse_stats(raw: Mapping[str, Any], *, container: str, name: str, time: float) -> Sample | None:
    """One ``/containers/ID/stats`` reading as a :class:`Sample` (None for the first reading,
    which has no previous one to take the CPU's share from, and for a stopped container)."""
    try:
        cpu = raw["cpu_stats"]
        pre = raw["precpu_stats"]
        cpu_delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
        cpus = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or ()) or 1
        mem = raw["memory_stats"]
        usage = int(mem.get("usage", 0))
        limit = int(mem.get("limit", 0))
        detail = mem.get("stats") or {}
        # What `docker stats` shows: cgroup v1 subtracts total_inactive_file, v2 inactive_file.
        cache = int(detail.get("total_inactive_file", detail.get("inactive_file", 0)))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if system_delta <= 0 or limit <= 0 or not pre.get("system_cpu_usage"):
        return None
    used = max(0, usage - cache)
    return Sample(
        time=time,
        container=container,
        name=name,
        cpu_percent=max(0.0, cpu_delta / system_delta * cpus * 100.0),
        memory_percent=used / limit * 100.0,
        memory_bytes=used,
    )


def describe_exit(code: int) -> str:
    if code > 128 and code - 128 in _SIGNALS:
        return f"exit code {code} (killed by {_SIGNALS[code - 128]})"
    return f"exit code {code}"


@dataclasses.dataclass
class _Pending:
    time: float
    code: int
    oom: bool


@dataclasses.dataclass
class _State:
    name: str
    requested: bool = False
    """A kill or stop came through the API: the next death is asked for, not a crash."""
    died: bool = False
    """It died and has not started since (a start now is a restart)."""
    restarts: deque[float] = dataclasses.field(default_factory=deque)
    deaths: int = 0
    """Deaths that were not asked for, in the open incident."""
    oom: bool = False
    """An ``oom`` event came for the current run."""
    pending: _Pending | None = None
    incident: float | None = None
    """When its last crash or restart-loop alert went out ..."""
    looped: bool = False
    """... and whether that one was a restart loop (nothing escalates it further)."""
    health: str = ""
    above: dict[str, float] = dataclasses.field(default_factory=dict)
    """Resource -> since when every sample was above the threshold."""
    fired: set[str] = dataclasses.field(default_factory=set)
    """Resources alerted on and not since seen below the threshold."""


class Rules:
    """The rules' state: one :class:`_State` per container. ``feed`` an event or a sample,
    ``tick`` with the time now and then; each returns the findings it makes."""

    def __init__(self, thresholds: Thresholds) -> None:
        self.t = thresholds
        self._states: dict[str, _State] = {}

    def _state(self, container: str, name: str) -> _State:
        st = self._states.get(container)
        if st is None:
            st = self._states[container] = _State(name=name)
        st.name = name or st.name
        return st

    def feed(self, item: Event | Sample, restart: RestartRule | None = None) -> list[Finding]:
        """``restart``: this container's own rule (its MT5_RESTART_* variables), if it has one."""
        if isinstance(item, Sample):
            return self._sample(item)
        ev = item
        if ev.action == "destroy":
            self._states.pop(ev.container, None)
            return []
        st = self._state(ev.container, ev.name)
        rule = restart or self.t.restart
        if ev.action in {"kill", "stop"}:
            st.requested = True
        elif ev.action == "oom":
            st.oom = True
        elif ev.action == "die":
            return self._die(ev, st, rule)
        elif ev.action == "start":
            return self._start(ev, st, rule)
        elif ev.action == "health":
            previous, st.health = st.health, ev.health
            if ev.health == "unhealthy" and previous != "unhealthy":
                return [self._finding(ev, st, "unhealthy", "the health check turned unhealthy")]
        return []

    def _finding(self, ev: Event | Sample, st: _State, reason: Reason, detail: str) -> Finding:
        return Finding(time=ev.time, container=ev.container, name=st.name, reason=reason,
                       detail=detail)  # fmt: skip

    def _in_incident(self, st: _State, now: float, rule: RestartRule) -> bool:
        return st.incident is not None and now - st.incident < rule.window

    def _die(self, ev: Event, st: _State, rule: RestartRule) -> list[Finding]:
        code = ev.exit_code if ev.exit_code is not None else 0
        oom = st.oom or ev.oom_killed
        requested, st.requested, st.oom = st.requested, False, False
        st.died = not requested  # a start after an asked-for stop is no restart of a loop
        if requested or (code == 0 and not oom):
            return []
        in_incident = self._in_incident(st, ev.time, rule)
        if not in_incident and st.pending is None:
            st.deaths = 0
        st.deaths += 1
        if in_incident:
            return []  # counted into the open incident; a loop still escalates a crash
        if ev.restarts:
            if st.pending is None:
                st.pending = _Pending(time=ev.time, code=code, oom=oom)
            return []
        return [self._crash(ev.time, ev.container, st, code, oom, restarted=False)]

    def _crash(
        self, now: float, container: str, st: _State, code: int, oom: bool, *, restarted: bool
    ) -> Finding:
        st.incident, st.pending, st.looped = now, None, False
        what = "killed by the kernel's OOM killer" if oom else "crashed"
        detail = f"{what}: {describe_exit(code)}"
        if restarted:
            detail += f"; Docker restarted it ({st.deaths} death(s) so far)"
        elif st.deaths > 1:
            detail += f"; its death {st.deaths} in a row, and Docker restarts it no more"
        return Finding(time=now, container=container, name=st.name,
                       reason="oom" if oom else "crash", detail=detail)  # fmt: skip

    def _start(self, ev: Event, st: _State, rule: RestartRule) -> list[Finding]:
        was_down, st.died = st.died, False
        st.requested = False
        if not was_down:
            return []
        st.restarts.append(ev.time)
        while st.restarts and ev.time - st.restarts[0] >= rule.window:
            st.restarts.popleft()
        if len(st.restarts) < rule.max:
            return []
        st.restarts.clear()
        if st.looped and self._in_incident(st, ev.time, rule):
            return []  # still the loop already reported
        escalates = self._in_incident(st, ev.time, rule)
        st.pending, st.incident, st.looped = None, ev.time, True
        detail = (
            f"restarted {rule.max} times within {rule.window} s (the supervisor's rule: "
            f"MT5_RESTART_MAX={rule.max}, MT5_RESTART_WINDOW={rule.window})"
        )
        if escalates:
            detail += "; it had crashed before"
        return [self._finding(ev, st, "restart-loop", detail)]

    def tick(self, now: float) -> list[Finding]:
        """Crashes of restarted containers that stayed up ``settle`` seconds are reported now."""
        out = []
        for container, st in self._states.items():
            p = st.pending
            if p is not None and now - p.time >= self.t.settle:
                out.append(self._crash(now, container, st, p.code, p.oom, restarted=True))
        return out

    def _sample(self, s: Sample) -> list[Finding]:
        st = self._state(s.container, s.name)
        out = []
        readings: tuple[tuple[Reason, float, float], ...] = (
            ("cpu", s.cpu_percent, self.t.cpu_percent),
            ("memory", s.memory_percent, self.t.memory_percent),
        )
        for resource, value, limit in readings:
            if value <= limit:
                st.above.pop(resource, None)
                st.fired.discard(resource)
                continue
            since = st.above.setdefault(resource, s.time)
            if resource in st.fired or s.time - since < self.t.period:
                continue
            st.fired.add(resource)
            unit = "of one CPU" if resource == "cpu" else "of its memory limit"
            detail = f"{resource} above {limit:g}% {unit} for {s.time - since:.0f} s (now "
            detail += f"{value:.0f}%" + (
                f", {s.memory_bytes / 2**20:.0f} MiB)" if resource == "memory" else ")"
            )
            out.append(self._finding(s, st, resource, detail))
        return out


def evaluate(items: Iterable[Event | Sample | float], thresholds: Thresholds) -> list[Finding]:
    """Run the rules over ``items`` in order: events, samples, and bare times (a tick)."""
    rules = Rules(thresholds)
    out: list[Finding] = []
    for item in items:
        out += rules.tick(item) if isinstance(item, float | int) else rules.feed(item)
    return out
