"""Receivers come online, report telemetry, and are seen offline when their link dies silently."""

from __future__ import annotations

import asyncio
import time

import pytest

from firmware_sim.netproxy import LinkProxy
from tests.conftest import Api, FleetThread, wait_for

pytestmark = pytest.mark.integration


def online(api: Api) -> list[dict]:
    return api.get("/api/v1/receivers", params={"status": "online", "limit": 1000}).json()["data"]


def test_fifty_receivers_online_with_telemetry(api: Api, fleet: FleetThread, broker_kind: str) -> None:
    agents = fleet.start(fleet.settings(50))
    ids = {a.rid for a in agents}

    def all_reporting() -> bool:
        rows = {r["id"]: r for r in online(api) if r["id"] in ids}
        return len(rows) == 50 and all(r["telemetry"] and r["telemetry"]["uptime_s"] >= 0 for r in rows.values())

    wait_for(all_reporting, 20, "50 receivers online with telemetry")
    row = api.get(f"/api/v1/receivers/{agents[0].rid}").json()
    assert row["availability"] == "online"
    assert row["volume"] == 70 and row["state"]["activity"] == "idle"
    assert -120 <= row["telemetry"]["signal_dbm"] <= -50
    # Per-commune counts add up to what is online.
    communes = api.get("/api/v1/communes").json()["data"]
    assert len(communes) == 13
    assert sum(c["receivers_online"] for c in communes) == 50
    assert sum(c["receivers_online"] + c["receivers_offline"] for c in communes) == sum(
        c["receivers_total"] for c in communes)


def test_silent_link_loss_shows_offline_within_one_and_a_half_keepalives(
        api: Api, fleet: FleetThread, broker_kind: str) -> None:
    """A link gone silent: the controller's own silence rule and the broker's keepalive sweep (then its will)
    race to say so, and either meets this bound. That the will alone does is
    tests/e2e/test_reliability.py::test_killed_agent_is_offline_by_its_will_alone (silence rule off)."""
    keepalive = 4
    proxy = LinkProxy("127.0.0.1", fleet.testbed.broker.port)
    port = fleet.run(proxy.start())
    [victim_settings] = fleet.settings(1, keepalive_s=keepalive)
    victim_settings = victim_settings.model_copy(update={"mqtt_url": f"mqtt://127.0.0.1:{port}"})
    fleet.start([victim_settings, *fleet.settings(5)[1:]])
    rid = victim_settings.receiver_id
    wait_for(lambda: api.get(f"/api/v1/receivers/{rid}").json()["availability"] == "online", 10, "victim online")
    wait_for(lambda: api.get(f"/api/v1/receivers/{rid}").json()["telemetry"], 10, "victim telemetry")

    fleet.loop.call_soon_threadsafe(proxy.blackhole)
    cut = time.monotonic()
    wait_for(lambda: api.get(f"/api/v1/receivers/{rid}").json()["availability"] == "offline",
             3 * keepalive, "victim offline", interval=0.02)
    elapsed = time.monotonic() - cut
    print(f"{broker_kind}: offline seen {elapsed:.2f} s after the link went silent (keepalive {keepalive} s)")
    assert elapsed <= 1.5 * keepalive + 1.0  # + a status flush and a poll of the API on a busy machine
    # The others are unaffected.
    assert len(online(api)) == 4
    fleet.run(proxy.close())
    asyncio.run_coroutine_threadsafe(asyncio.sleep(0), fleet.loop).result(5)


def test_clean_stop_reports_stopped(api: Api, fleet: FleetThread, broker_kind: str) -> None:
    [agent] = fleet.start(fleet.settings(1))
    wait_for(lambda: api.get(f"/api/v1/receivers/{agent.rid}").json()["availability"] == "online", 10, "online")
    fleet.stop_one(agent.rid)
    wait_for(lambda: api.get(f"/api/v1/receivers/{agent.rid}").json()["availability"] == "stopped", 10, "stopped")
