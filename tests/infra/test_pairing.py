"""A bot paired with its terminal, and a bridge nobody else reaches (shared/DESIGN.md checks)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from waiting import wait_for_bridge

from mt5forge.pairing import run_pair

pytestmark = [pytest.mark.infra, pytest.mark.slow]

BRIDGE_PORT = 18812
PROBE = (
    "import socket,sys\n"
    "s=socket.socket(); s.settimeout(3)\n"
    "try:\n    s.connect((sys.argv[1], int(sys.argv[2]))); print('CONNECTED')\n"
    "except OSError as e:\n    print('REFUSED', type(e).__name__)\n"
)


def test_secure_bot_in_the_terminal_namespace_logs_in_and_reads_ticks(built: Any) -> None:
    result = run_pair(built.settings, bot_variant="secure", iterations=2)
    assert result.exit_code == 0
    assert result.backend == "simulator"  # here: terminal-sim, never presented as the real one
    assert len(result.reports) >= 2
    assert all("balance=" in r and "EURUSD bid=" in r for r in result.reports)


def test_slim_bot_pairs_too(built: Any) -> None:
    assert run_pair(built.settings, bot_variant="slim", iterations=1).exit_code == 0


@pytest.fixture
def sim(built: Any, docker_client: Any) -> Iterator[Any]:
    c = docker_client.containers.run(
        f"{built.settings.images.prefix}/terminal-sim:slim", detach=True,
        environment={"MT5_LOGIN": "10000001", "MT5_PASSWORD": "infra-test-pw",
                     "MT5_SERVER": "Sim"},
        labels={"org.mt5forge.test": "infra"},
    )  # fmt: skip
    try:
        wait_for_bridge(c, "terminal-sim")
        c.reload()
        yield c
    finally:
        c.remove(force=True)


def test_bridge_is_not_reachable_from_the_host(sim: Any) -> None:
    ip = sim.attrs["NetworkSettings"]["IPAddress"]
    assert ip, "the simulator has no address on the default bridge network"
    assert sim.attrs["NetworkSettings"]["Ports"] in ({}, None) or all(
        v is None for v in sim.attrs["NetworkSettings"]["Ports"].values()
    ), "the bridge port is published"
    with socket.socket() as s, pytest.raises(OSError):
        s.settimeout(3)
        s.connect((ip, BRIDGE_PORT))


def test_bridge_is_not_reachable_from_another_container(
    sim: Any, built: Any, docker_client: Any
) -> None:
    ip = sim.attrs["NetworkSettings"]["IPAddress"]
    image = f"{built.settings.images.prefix}/bot:slim"
    outside = docker_client.containers.run(
        image, ["python3", "-c", PROBE, ip, str(BRIDGE_PORT)], remove=True
    ).decode()
    assert outside.startswith("REFUSED"), outside
    # Positive control: the same probe from inside the namespace does connect.
    inside = docker_client.containers.run(
        image, ["python3", "-c", PROBE, "127.0.0.1", str(BRIDGE_PORT)], remove=True,
        network_mode=f"container:{sim.id}",
    ).decode()  # fmt: skip
    assert inside.startswith("CONNECTED"), inside


CLOCK_PROBE = (
    "import mt5bridge.client as mt5\n"
    "assert mt5.initialize(login=10000001, password='infra-test-pw', server='Sim'), "
    "mt5.last_error()\n"
    "print(mt5.symbol_info_tick('EURUSD').time)\n"
    "r = mt5.order_send({'action': mt5.TRADE_ACTION_DEAL, 'symbol': 'EURUSD', 'volume': 0.01,\n"
    "    'type': mt5.ORDER_TYPE_BUY, 'type_filling': mt5.ORDER_FILLING_IOC})\n"
    "print(r.retcode, r.comment)\n"
)


def test_pairs_we_run_start_the_market_on_a_weekday(built: Any, docker_client: Any) -> None:
    """verify's pair check and the demo give terminal-sim SIM_START_ENV: the market's clock
    starts there (a Wednesday noon), so the bot's demo order fills whatever day this runs."""
    import datetime as dt

    from mt5forge.pairing import SIM_START, SIM_START_ENV

    start = dt.datetime.fromisoformat(SIM_START)
    assert start.weekday() == 2 and start.hour == 12, SIM_START
    c = docker_client.containers.run(
        f"{built.settings.images.prefix}/terminal-sim:slim", detach=True,
        environment={"MT5_LOGIN": "10000001", "MT5_PASSWORD": "infra-test-pw",
                     "MT5_SERVER": "Sim", **SIM_START_ENV},
        labels={"org.mt5forge.test": "infra"},
    )  # fmt: skip
    try:
        wait_for_bridge(c, "terminal-sim")
        out = docker_client.containers.run(
            f"{built.settings.images.prefix}/bot:slim", ["python3", "-c", CLOCK_PROBE],
            remove=True, network_mode=f"container:{c.id}",
        ).decode().split("\n")  # fmt: skip
    finally:
        c.remove(force=True)
    tick_time = int(out[0])
    # The clock runs on from the start at speed 1: minutes at most have passed since.
    assert -60 <= tick_time - start.timestamp() < 3600, (tick_time, SIM_START)
    assert out[1].startswith("10009 "), out  # TRADE_RETCODE_DONE: the market is open
