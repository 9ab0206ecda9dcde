"""Volume: API call → signed command → agent applies → ack → API answer and stored state."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from controller.db.models import AuditEntry, CommandRecord
from tests.conftest import Api, FleetThread, wait_for

pytestmark = pytest.mark.integration


def test_volume_round_trip(api: Api, fleet: FleetThread, broker_kind: str) -> None:
    [agent] = fleet.start(fleet.settings(1))
    rid = agent.rid
    wait_for(lambda: api.get(f"/api/v1/receivers/{rid}").json()["availability"] == "online", 10, "online")

    r = api.post(f"/api/v1/receivers/{rid}/volume", json={"volume": 35})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outcome"] == "applied" and body["reason"] is None
    assert body["receiver"]["volume"] == 35
    assert agent.hardware.volume() == 35  # the simulated amplifier really changed
    assert api.get(f"/api/v1/receivers/{rid}").json()["volume"] == 35
    with Session(fleet.testbed.engine) as s:
        rec = s.get(CommandRecord, body["command_id"])
        assert rec is not None and rec.outcome == "applied" and rec.target == f"receiver:{rid}"
        audit = s.exec(select(AuditEntry).where(AuditEntry.action == "receiver.volume")).all()
        assert [(a.target, a.outcome) for a in audit] == [(rid, "applied")]

    # The volume survives a restart of the agent (it is kept on the receiver's disk).
    fleet.stop_one(rid)
    [again] = fleet.start(fleet.settings(1))
    assert again.hardware.volume() == 35


def test_volume_to_offline_receiver_is_no_answer(api: Api, fleet: FleetThread) -> None:
    rid = fleet.testbed.fleet["receivers"][3]["receiver_id"]  # never started
    r = api.post(f"/api/v1/receivers/{rid}/volume", json={"volume": 50})
    assert r.status_code == 200
    assert r.json()["outcome"] == "no_answer"
    assert "unknown" in r.json()["reason"]


def test_volume_out_of_range_is_422_with_message(api: Api) -> None:
    rid = api.get("/api/v1/receivers", params={"limit": 1}).json()["data"][0]["id"]
    for bad in (101, -1, "loud"):
        r = api.post(f"/api/v1/receivers/{rid}/volume", json={"volume": bad})
        assert r.status_code == 422
        assert "volume" in r.text
    assert api.post("/api/v1/receivers/no-such-receiver/volume", json={"volume": 5}).status_code == 404
