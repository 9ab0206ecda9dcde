"""Links drop and brokers restart; receivers and the controller come back by themselves."""

from __future__ import annotations

import subprocess

import pytest

from firmware_sim.netproxy import LinkProxy
from tests.conftest import Api, FleetThread, wait_for

pytestmark = pytest.mark.integration


def availability(api: Api, rid: str) -> str:
    return str(api.get(f"/api/v1/receivers/{rid}").json()["availability"])


def test_agent_reconnects_after_its_link_is_cut(api: Api, fleet: FleetThread) -> None:
    proxy = LinkProxy("127.0.0.1", fleet.testbed.broker.port)
    port = fleet.run(proxy.start())
    [s] = fleet.settings(1)
    [agent] = fleet.start([s.model_copy(update={"mqtt_url": f"mqtt://127.0.0.1:{port}"})])
    wait_for(lambda: availability(api, agent.rid) == "online", 10, "online")
    fleet.loop.call_soon_threadsafe(proxy.cut)
    wait_for(lambda: agent.link.connections >= 2 and agent.link.connected.is_set(), 15, "agent reconnected")
    wait_for(lambda: availability(api, agent.rid) == "online", 10, "online again")
    assert api.post(f"/api/v1/receivers/{agent.rid}/volume", json={"volume": 20}).json()["outcome"] == "applied"
    fleet.run(proxy.close())


def test_everything_recovers_from_a_broker_restart(api: Api, fleet: FleetThread) -> None:
    agents = fleet.start(fleet.settings(10))
    wait_for(lambda: all(availability(api, a.rid) == "online" for a in agents), 15, "10 online")
    tb = fleet.testbed
    tb.broker.stop()
    wait_for(lambda: api.get("/healthz").json()["mqtt"] == "down", 10, "controller notices the broker is gone")
    r = api.post(f"/api/v1/receivers/{agents[0].rid}/volume", json={"volume": 5})
    assert r.status_code == 503 and "broker" in r.json()["detail"]

    # Same port, same accounts (the files are still on disk).
    proc = subprocess.Popen(tb.broker.proc.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tb.broker.proc = proc
    wait_for(lambda: api.get("/healthz").json()["mqtt"] == "connected", 20, "controller reconnected")
    wait_for(lambda: all(a.link.connected.is_set() for a in agents), 30, "agents reconnected")
    wait_for(lambda: all(availability(api, a.rid) == "online" for a in agents), 15, "10 online again")
    assert api.post(f"/api/v1/receivers/{agents[0].rid}/volume", json={"volume": 6}).json()["outcome"] == "applied"
