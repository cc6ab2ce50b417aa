"""The rules of ``invoke watch`` over events shaped as the engine sends them (engine 20.10's
``docker events --format '{{json .}}'``), and the parts around them: stats, secrets, targets."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mt5bridge.redact import Redactor

from mt5forge.alerts import LINE_CAP, container_secrets, parse_targets, redact_lines
from mt5forge.errors import ConfigError
from mt5forge.monitor import own_rule, restarts_again, selector
from mt5forge.watch import (
    Event,
    RestartRule,
    Sample,
    Thresholds,
    evaluate,
    parse_event,
    parse_stats,
    restart_rule,
    supervisor_rule,
)

RULE = RestartRule(max=5, window=600)
T = Thresholds(restart=RULE, settle=30, cpu_percent=90, memory_percent=90, period=60)
ID = "c3201016bbe8019ee6f559a85a450b68d70f440ca19de88831517fc74f916b25"


def raw(action: str, t: float, **attrs: str) -> dict[str, Any]:
    """An event as engine 20.10 sends it."""
    return {
        "status": action, "id": ID, "from": "mt5forge/terminal:slim", "Type": "container",
        "Action": action, "scope": "local", "time": int(t), "timeNano": int(t * 1e9),
        "Actor": {"ID": ID, "Attributes": {"name": "account1-terminal-1",
                                           "com.docker.compose.project": "account1", **attrs}},
    }  # fmt: skip


def ev(action: str, t: float, **kw: Any) -> Event:
    attrs = {"exitCode": str(kw.pop("code"))} if "code" in kw else {}
    event = parse_event(raw(action, t, **attrs))
    assert event is not None
    return dataclasses.replace(event, **kw)


def crash_cycle(t: float, code: int = 3, restarts: bool = True) -> list[Event | Sample | float]:
    return [ev("die", t, code=code, restarts=restarts), ev("start", t + 0.2)]


# --- parsing -----------------------------------------------------------------------------------


def test_parse_event_reads_die_health_and_names() -> None:
    die = parse_event(raw("die", 100.5, exitCode="137"))
    assert die == Event(time=100.5, container=ID, name="account1-terminal-1", action="die",
                        exit_code=137)  # fmt: skip
    health = parse_event(raw("health_status: unhealthy", 101))
    assert health is not None and (health.action, health.health) == ("health", "unhealthy")
    newer = raw("health_status", 102, health_status="healthy")
    assert parse_event(newer) == dataclasses.replace(health, time=102, health="healthy")


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"Type": "image", "Action": "pull", "Actor": {"ID": "x"}},
        raw("exec_start: sh", 1),
        raw("die", 1, exitCode="not-a-number"),
        {**raw("die", 1, exitCode="1"), "Actor": "nope"},
        {**raw("start", 1), "Actor": {"ID": ""}},
        raw("health_status: bogus", 1),
        {**raw("die", 1, exitCode="1"), "timeNano": None, "time": "soon"},
        {**raw("die", 1, exitCode="1"), "timeNano": True, "time": None},
    ],
)
def test_parse_event_ignores_what_it_does_not_read(bad: dict[str, Any]) -> None:
    assert parse_event(bad) is None


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_parse_event_and_stats_never_raise_on_junk(junk: Any) -> None:
    shapes = (
        junk,
        {"Type": "container", "Action": "die", "Actor": junk},
        {"Type": "container", "Action": "die", "time": junk, "timeNano": junk,
         "Actor": {"ID": "x", "Attributes": junk}},
        {"cpu_stats": junk, "precpu_stats": junk, "memory_stats": junk},
    )  # fmt: skip
    for shape in shapes:
        if isinstance(shape, dict):
            parse_event(shape)
            parse_stats(shape, container="c", name="n", time=0)


def stats(total: int, pre_total: int, system: int, pre_system: int, usage: int) -> dict[str, Any]:
    return {
        "cpu_stats": {"cpu_usage": {"total_usage": total}, "system_cpu_usage": system,
                      "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": pre_total}, "system_cpu_usage": pre_system},
        "memory_stats": {"usage": usage, "limit": 100 * 2**20,
                         "stats": {"total_inactive_file": 10 * 2**20}},
    }  # fmt: skip


def test_parse_stats_counts_like_docker_stats() -> None:
    s = parse_stats(stats(1_500, 1_000, 2_000, 1_000, 60 * 2**20), container="c", name="n",
                    time=5)  # fmt: skip
    assert s is not None
    assert s.cpu_percent == pytest.approx(100.0)  # half the host's 2 CPUs: one CPU
    assert s.memory_percent == pytest.approx(50.0)  # 60 MiB used, 10 MiB of it page cache
    assert s.memory_bytes == 50 * 2**20
    first = stats(1_500, 0, 2_000, 0, 0)  # the first reading has no previous one
    assert parse_stats(first, container="c", name="n", time=5) is None


def test_the_supervisor_rule_is_read_from_the_entrypoint(repo_root: Path) -> None:
    rule = supervisor_rule((repo_root / "build/terminal/entrypoint").read_text())
    assert rule == RestartRule(max=5, window=600)
    assert restart_rule(repo_root) == rule
    assert restart_rule(repo_root, 3, 0) == RestartRule(max=3, window=600)
    assert restart_rule(Path("/nonexistent"), 3, 60) == RestartRule(max=3, window=60)
    with pytest.raises(ConfigError, match="no longer says"):
        supervisor_rule("RESTART_MAX=${MT5_RESTART_MAX:-5}\n")
    with pytest.raises(ConfigError, match="Cannot read"):
        restart_rule(Path("/nonexistent"))


# --- the rules ---------------------------------------------------------------------------------


def test_a_crash_without_restart_is_reported_at_once() -> None:
    found = evaluate([ev("start", 0), ev("die", 5, code=137, restarts=False)], T)
    assert [(f.reason, f.detail) for f in found] == [
        ("crash", "crashed: exit code 137 (killed by SIGKILL)")
    ]
    assert found[0].name == "account1-terminal-1" and found[0].time == 5


def test_exit_0_and_asked_for_stops_are_not_crashes() -> None:
    assert not evaluate([ev("start", 0), ev("die", 1, code=0)], T)
    assert not evaluate([ev("kill", 1), ev("die", 1.1, code=143), ev("stop", 1.2)], T)
    # A restart asked for (docker restart: kill, die, stop, start) is not one of the loop's.
    cycle = [ev("kill", 0), ev("die", 0.1, code=137), ev("stop", 0.2), ev("start", 0.3)]
    assert not evaluate(cycle * 10, T)


def test_oom_from_the_event_or_the_state() -> None:
    by_event = evaluate([ev("oom", 1), ev("die", 1.01, code=137)], T)
    by_state = evaluate([ev("die", 1, code=137, oom_killed=True)], T)
    for found in (by_event, by_state):
        assert [(f.reason, f.detail) for f in found] == [
            ("oom", "killed by the kernel's OOM killer: exit code 137 (killed by SIGKILL)")
        ]


def test_a_restart_loop_is_one_alert_with_no_crash_alert() -> None:
    items: list[Event | Sample | float] = []
    for i in range(12):  # keeps looping after the alert
        items += crash_cycle(float(i))
    items += [45.0, 100.0]  # ticks past the settle time
    found = evaluate(items, T)
    assert [f.reason for f in found] == ["restart-loop"]
    assert found[0].detail.startswith("restarted 5 times within 600 s")
    assert "MT5_RESTART_MAX=5, MT5_RESTART_WINDOW=600" in found[0].detail
    assert found[0].time == pytest.approx(4.2)


def test_restarts_spread_wider_than_the_window_are_no_loop() -> None:
    items: list[Event | Sample | float] = []
    for i in range(8):
        items += [*crash_cycle(i * 200.0), i * 200.0 + 40]  # 3 restarts at most in any 600 s
    found = evaluate(items, T)
    assert [f.reason for f in found] == ["crash", "crash"]  # once per window, after settle


def test_one_crash_that_docker_restarts_is_reported_after_settle() -> None:
    found = evaluate([*crash_cycle(0.0), 10.0, 29.0, 31.0, 90.0], T)
    assert [(f.reason, f.time) for f in found] == [("crash", 31.0)]
    assert "Docker restarted it (1 death(s) so far)" in found[0].detail


def test_on_failure_with_a_retry_limit_ends_in_one_crash() -> None:
    # restart: on-failure:2: two restarts, then it stays down: fewer than the loop's 5.
    items = [*crash_cycle(0.0), *crash_cycle(1.0), ev("die", 2, code=3, restarts=False), 100.0]
    found = evaluate(items, T)
    assert [(f.reason, f.time) for f in found] == [("crash", 2)]
    assert found[0].detail.endswith("its death 3 in a row, and Docker restarts it no more")


def test_a_slow_loop_escalates_from_crash_to_restart_loop_once() -> None:
    items: list[Event | Sample | float] = []
    for i in range(10):
        items += [*crash_cycle(i * 50.0), i * 50.0 + 40]
    found = evaluate(items, T)
    assert [f.reason for f in found] == ["crash", "restart-loop"]
    assert found[1].detail.endswith("it had crashed before")


def test_the_containers_own_rule_wins() -> None:
    from mt5forge.watch import Rules

    rules = Rules(T)
    own = RestartRule(max=2, window=60)
    found = []
    for i in range(3):
        for item in crash_cycle(float(i)):
            assert isinstance(item, Event)
            found += rules.feed(item, own)
    assert [f.reason for f in found] == ["restart-loop"]


def test_unhealthy_once_until_healthy_again() -> None:
    states = ["starting", "healthy", "unhealthy", "unhealthy", "healthy", "unhealthy"]
    h = [ev(f"health_status: {s}", float(i)) for i, s in enumerate(states)]
    assert [(f.reason, f.time) for f in evaluate(h, T)] == [("unhealthy", 2), ("unhealthy", 5)]


def sample(t: float, cpu: float = 5, mem: float = 5) -> Sample:
    return Sample(time=t, container=ID, name="n", cpu_percent=cpu, memory_percent=mem,
                  memory_bytes=int(mem * 2**20))  # fmt: skip


def test_cpu_and_memory_held_above_for_the_period() -> None:
    busy = [sample(float(t), cpu=150) for t in range(0, 200, 10)]
    found = evaluate(busy, T)
    assert [(f.reason, f.time) for f in found] == [("cpu", 60)]
    assert found[0].detail == "cpu above 90% of one CPU for 60 s (now 150%)"
    # One dip below resets the period; a spike shorter than it says nothing.
    spiky = [sample(float(t), mem=95 if t % 50 else 10) for t in range(0, 300, 10)]
    assert not evaluate(spiky, T)
    again = [sample(0, mem=95), sample(70, mem=95), sample(80, mem=5), sample(90, mem=99),
             sample(151, mem=99)]  # fmt: skip
    assert [(f.reason, f.time) for f in evaluate(again, T)] == [("memory", 70), ("memory", 151)]


def test_destroy_forgets_a_pending_crash() -> None:
    assert not evaluate([*crash_cycle(0.0), ev("destroy", 1), 100.0], T)


# --- around the rules --------------------------------------------------------------------------


def test_selector_and_restart_policy() -> None:
    assert selector("account1", "org.mt5forge.image") == "com.docker.compose.project=account1"
    assert selector(None, "org.mt5forge.image") == "org.mt5forge.image"
    policy = lambda name, most=0, count=0: {  # noqa: E731
        "HostConfig": {"RestartPolicy": {"Name": name, "MaximumRetryCount": most}},
        "RestartCount": count,
    }
    assert restarts_again(policy("unless-stopped"), 0)
    assert not restarts_again(policy("no"), 1)
    assert not restarts_again({}, 1)
    assert restarts_again(policy("on-failure", 3, 2), 1)
    assert not restarts_again(policy("on-failure", 3, 3), 1)
    assert not restarts_again(policy("on-failure"), 0)


def test_own_rule_from_the_containers_environment() -> None:
    attrs = {"Config": {"Env": ["MT5_RESTART_MAX=2", "MT5_RESTART_WINDOW=junk", "PATH=/bin"]}}
    assert own_rule(attrs, RULE) == RestartRule(max=2, window=600)
    assert own_rule({}, RULE) == RULE


def test_container_secrets_from_variables_and_mounted_files() -> None:
    attrs = {
        "Config": {"Env": ["MT5_PASSWORD=hunter22", "MT5_LOGIN=70412345", "PATH=/usr/bin",
                           "MT5_SERVER_FILE=/run/secrets/mt5_server", "API_TOKEN=abc",
                           "MT5_LOGIN_FILE=/etc/login"]},
        "Mounts": [
            {"Source": "/host/secrets/mt5_server", "Destination": "/run/secrets/mt5_server"},
            {"Source": "/host/login", "Destination": "/etc/login"},
            {"Source": "/host/data", "Destination": "/data"},
        ],
    }  # fmt: skip
    files = {"/host/secrets/mt5_server": "Broker-Demo\n", "/host/login": "55501234"}
    read: list[str] = []

    def reader(p: Path) -> str | None:
        read.append(str(p))
        return files.get(str(p))

    secrets, accounts = container_secrets(attrs, reader)
    assert secrets == {"hunter22", "Broker-Demo"}  # "abc": too short to mask everywhere
    assert accounts == {70412345, 55501234}
    assert sorted(read) == ["/host/login", "/host/secrets/mt5_server"]  # not /host/data


def test_redact_lines_masks_escapes_and_cuts() -> None:
    r = Redactor(["hunter22"], [70412345])
    out = redact_lines(["login 70412345 pw hunter22", "forged\nline", "x" * 1000], r)
    assert out[0] == "login *****345 pw ***"
    assert out[1] == "forged\\nline"
    assert len(out[2]) == LINE_CAP + len("...[cut]")


def test_targets_take_secrets_from_the_environment_only() -> None:
    env = {"TG": "123456789:AAabcdefghijklmnop_qrstuv", "CHAT": "12315544"}
    (t,) = parse_targets(["tgram://${TG}/${CHAT}/"], env)
    assert env["TG"] in t.secrets
    assert env["TG"] not in t.shown and env["TG"] not in repr(t)
    with pytest.raises(ConfigError, match="written in the file"):
        parse_targets(["tgram://123456789:AAabcdefghijklmnop_qrstuv/12315544/"], env)
    with pytest.raises(ConfigError, match="written in the file"):
        parse_targets(["mailto://alerts:Sup3rSecret@example.com"], env)
    with pytest.raises(ConfigError, match=r"\$\{NOPE\}, which is not set"):
        parse_targets(["json://127.0.0.1/${NOPE}"], env)
    with pytest.raises(ConfigError, match="does not understand"):
        parse_targets(["gopher://127.0.0.1/"], env)
    (hook,) = parse_targets(["json://127.0.0.1:8080/alerts"], {})
    assert hook.secrets == () and hook.shown.startswith("json://127.0.0.1:8080/alerts")


def test_watch_settings_are_checked(tmp_path: Path) -> None:
    from mt5forge import config

    (tmp_path / "mt5forge.toml").write_text("[watch]\nmemory_percent = 150\n")
    with pytest.raises(ConfigError, match="memory_percent"):
        config.load(tmp_path, env={})
    s = config.load(tmp_path / "..", env={"MT5FORGE_WATCH_TARGETS": "json://a/,json://b/"})
    assert s.watch.targets == ("json://a/", "json://b/")


def test_an_alert_reads_as_the_log_record_says() -> None:
    from mt5forge.alerts import Alert
    from mt5forge.watch import Finding

    f = Finding(time=7.0, container=ID, name="account1-terminal-1", reason="oom",
                detail="killed by the kernel's OOM killer: exit code 137")  # fmt: skip
    alert = Alert(finding=f, pair="account1", image="mt5forge/terminal:slim",
                  log_lines=("a", "b"))  # fmt: skip
    assert alert.title == "mt5forge: account1/account1-terminal-1: oom"
    assert alert.body.splitlines() == [
        "container: account1-terminal-1 (c3201016bbe8, image mt5forge/terminal:slim)",
        "pair: account1",
        "reason: oom: killed by the kernel's OOM killer: exit code 137",
        "last 2 log lines:",
        "  a",
        "  b",
    ]
    record = alert.record()
    assert {k: record[k] for k in ("component", "level", "event")} == {
        "component": "watch", "level": "warning", "event": "alert",
    }  # fmt: skip
    assert record["fields"]["log"] == ["a", "b"] and record["fields"]["reason"] == "oom"
