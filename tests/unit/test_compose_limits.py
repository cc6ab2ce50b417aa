"""The pair compose files keep their limits: every service caps CPU, memory without swap, and
pids (a leak or a runaway loop in one pair must not starve the host or the other pairs); the
secure pair's services all run on a read-only root; and only log-export may write the host's
export directory, the one place logs leave the containers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "compose"
PAIRS = ("docker-compose.yml", "docker-compose.secure.yml")
SECURE = "docker-compose.secure.yml"
EXPORT_WRITER = "log-export"
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _services(name: str) -> dict[str, dict[str, Any]]:
    services = yaml.safe_load((COMPOSE / name).read_text(encoding="utf-8"))["services"]
    assert isinstance(services, dict) and services, name
    return services


def _defaults(text: str) -> str:
    """`${VAR:-default}` and `${VAR-default}` as compose reads them with VAR unset."""
    return re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", text)


def _bytes(value: object) -> int:
    m = re.fullmatch(r"(\d+)([bkmg]?)b?", str(value).strip().lower())
    assert m, f"not a memory size: {value!r}"
    return int(m.group(1)) * _UNITS[m.group(2)]


def _limits(svc: dict[str, Any]) -> dict[str, Any]:
    """cpus, memory, swap and pids, from the service keys or from deploy.resources.limits."""
    deploy = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    return {
        "cpus": svc.get("cpus", deploy.get("cpus")),
        "memory": svc.get("mem_limit", deploy.get("memory")),
        "memswap": svc.get("memswap_limit"),
        "pids": svc.get("pids_limit", deploy.get("pids")),
    }


def _binds(svc: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Host-directory mounts as (host path, container path, writable); named volumes left out."""
    binds = []
    for vol in svc.get("volumes") or []:
        if isinstance(vol, dict):
            if vol.get("type") != "bind":
                continue
            source, target = _defaults(str(vol["source"])), str(vol["target"])
            writable = not vol.get("read_only", False)
        else:
            parts = _defaults(str(vol)).split(":")
            if len(parts) < 2 or not parts[0].startswith((".", "/", "~")):
                continue
            source, target = parts[0], parts[1]
            modes = parts[2].split(",") if len(parts) > 2 else []
            writable = "ro" not in modes
        binds.append((source, target, writable))
    return binds


def _is_export(source: str, target: str) -> bool:
    """The host's export directory (./export, or MT5_EXPORT_DIR's default), or anything
    mounted where the exporter writes."""
    return Path(source).parts[-1:] == ("export",) or target.rstrip("/") == "/export"


@pytest.mark.parametrize("name", PAIRS)
def test_every_service_caps_cpu_memory_without_swap_and_pids(name: str) -> None:
    for service, svc in _services(name).items():
        limits = _limits(svc)
        where = f"{name}: {service}"
        assert limits["cpus"] is not None and float(limits["cpus"]) > 0, where
        assert limits["memory"] is not None and _bytes(limits["memory"]) > 0, where
        # memswap_limit equal to mem_limit: no swap, so a leak is an OOM kill that is reported.
        assert limits["memswap"] is not None, f"{where}: no memswap_limit"
        assert _bytes(limits["memswap"]) == _bytes(limits["memory"]), where
        assert limits["pids"] is not None and int(limits["pids"]) > 0, where


def test_every_secure_service_has_a_read_only_root() -> None:
    for service, svc in _services(SECURE).items():
        assert svc.get("read_only") is True, service


@pytest.mark.parametrize("name", PAIRS)
def test_only_log_export_writes_the_export_directory(name: str) -> None:
    writers = {
        service
        for service, svc in _services(name).items()
        for source, target, writable in _binds(svc)
        if _is_export(source, target) and writable
    }
    assert writers == {EXPORT_WRITER}, name


@pytest.mark.parametrize(
    ("svc", "broken"),
    [
        ({"cpus": 1, "mem_limit": "1g", "memswap_limit": "2g", "pids_limit": 9}, "swap"),
        ({"cpus": 1, "mem_limit": "1g", "memswap_limit": "1g"}, "pids"),
        ({"mem_limit": "1g", "memswap_limit": "1024m", "pids_limit": 9}, "cpus"),
        (
            {
                "deploy": {"resources": {"limits": {"cpus": "1", "memory": "1g", "pids": 9}}},
                "memswap_limit": "1g",
            },
            "",
        ),
    ],
)
def test_the_limit_reading_sees_a_missing_or_unequal_limit(
    svc: dict[str, Any], broken: str
) -> None:
    """The readers above are not vacuous: each kind of gap is seen, the deploy form is read."""
    limits = _limits(svc)
    ok = {
        "cpus": limits["cpus"] is not None,
        "pids": limits["pids"] is not None,
        "swap": limits["memswap"] is not None
        and _bytes(limits["memswap"]) == _bytes(limits["memory"]),
    }
    assert [k for k, v in ok.items() if not v] == ([broken] if broken else [])


def test_the_mount_reading_sees_a_writable_export() -> None:
    svc = {
        "volumes": [
            "logs:/logs:ro",
            "${MT5_EXPORT_DIR:-./export}:/export:ro,z",
            {"type": "bind", "source": "./export", "target": "/x"},
            "/srv/export:/e",
            "/srv/logs:/export",
            "./exported:/data",
        ]
    }
    assert [(s, w) for s, t, w in _binds(svc) if _is_export(s, t)] == [
        ("./export", False),
        ("./export", True),
        ("/srv/export", True),
        ("/srv/logs", True),
    ]
