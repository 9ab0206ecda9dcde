"""A receiver that comes back after missing commands is brought up to date by the controller.

- A cancel it missed (its broker session discarded while it was away) is sent again when it is back, and a
  replay of the cancelled emergency's original play command is then refused.
- Commands are numbered per stream; one back behind the numbers (away longer than the broker kept its queue)
  is recorded as a sequence gap and resynchronised: its new plan and the emergency under way reach it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from sqlmodel import Session, col, select

from controller.config import LivenessSettings
from controller.db.models import AuditEntry, CommandRecord, Emergency
from devrig.testbed import Testbed
from receivers.agent import AgentSettings
from receivers.protocol import Ack, Target, Topics
from tests.conftest import TEST_SETTINGS, FleetThread, LiveController, _testbed, wait_for
from tests.e2e.test_emergency import TEXT, agent_overrides, em_plays, emergency
from tests.e2e.test_schedule import announce, programme, soon

pytestmark = pytest.mark.integration


@pytest.fixture
def testbed(data_dir: Path) -> Iterator[Testbed]:
    """Mosquitto, with sequence gaps judged 1 s after a receiver's "online" (default 5 s)."""
    tb = _testbed(data_dir, "mosquitto", **TEST_SETTINGS, liveness=LivenessSettings(resync_grace_s=1.0))
    yield tb
    tb.close()


async def discard_session(s: AgentSettings) -> None:
    """What a broker does to a session it kept too long (or lost in a restart without persistence): connect
    with the receiver's own client id and a clean session, which drops every message queued for it."""
    host, port, _ = s.broker
    async with aiomqtt.Client(host, port, identifier=f"rx-{s.receiver_id}", username=s.username,
                              password=s.password, clean_session=True):
        pass


class Acks:
    """Every acknowledgement the live controller's bridge hears (its ack watchers run on the app's loop)."""

    def __init__(self, live: LiveController) -> None:
        self.seen: list[tuple[str, Ack]] = []
        self.lock = threading.Lock()
        live.app.state.bridge.ack_watchers.append(self.on_ack)

    def on_ack(self, rid: str, ack: Ack) -> None:
        with self.lock:
            self.seen.append((rid, ack))

    def of(self, rid: str, command_id: str) -> list[Ack]:
        with self.lock:
            return [a for r, a in self.seen if r == rid and str(a.command_id) == command_id]


def stop_outcomes(live: LiveController, rid: str) -> list[str | None]:
    with Session(live.testbed.engine) as s:
        return list(s.exec(select(CommandRecord.outcome).where(
            CommandRecord.kind == "stop", CommandRecord.target == str(Target.receiver(rid)),
            col(CommandRecord.outcome).is_not(None))))


def test_a_missed_cancel_is_sent_again_and_the_replayed_play_is_refused(
        fleet: FleetThread, live: LiveController) -> None:
    settings = [s for s in fleet.settings(None, **agent_overrides(live)) if s.commune == "tra-son"][:2]
    agents = fleet.start(settings)
    away = settings[0]
    rid = away.receiver_id
    acks = Acks(live)
    wait_for(lambda: all(live.http.get(f"/api/v1/receivers/{a.rid}").json()["availability"] == "online"
                         for a in agents), 15, "both online")
    fleet.stop_one(rid)
    wait_for(lambda: live.http.get(f"/api/v1/receivers/{rid}").json()["availability"] != "online", 10, "gone")

    eid = live.http.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-son"]},
                                                      "repeat": 1}).json()["id"]
    cancelled = live.http.post(f"/api/v1/emergencies/{eid}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    # The play and the stop were queued for it by the broker; the session is then lost.
    fleet.run(discard_session(away))

    [back] = fleet.start([away])
    wait_for(lambda: stop_outcomes(live, rid), 20, "the cancel sent again to the receiver and acknowledged")
    assert em_plays(back, eid) == []

    # Anyone holding the signed play command (a compromised broker, a recording) replays it now.
    with Session(live.testbed.engine) as s:
        row = s.get(Emergency, eid)
        assert row is not None
        [(target, payload)] = row.payloads.items()
    play_id = json.loads(json.loads(payload)["body"])["command_id"]
    topic = Target.parse(target).topic(Topics(away.base), "play")
    message: Any = aiomqtt.Message(topic, payload.encode(), 1, False, 1, None)
    fleet.run(back.on_message(message))
    [refused] = wait_for(lambda: acks.of(rid, play_id), 10, "the receiver's answer to the replayed play")
    assert refused.status == "rejected" and "stopped" in (refused.reason or "")
    assert em_plays(back, eid) == []
    assert f"em-{eid}" not in back.player.items
    assert emergency(live, eid)["state"] == "cancelled"


def audited(live: LiveController, action: str, rid: str) -> list[AuditEntry]:
    with Session(live.testbed.engine) as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action, AuditEntry.target == rid)))


def test_a_receiver_back_after_its_queue_was_lost_is_told_of_the_gap_and_resynchronised(
        fleet: FleetThread, live: LiveController) -> None:
    settings = [s for s in fleet.settings(None, **agent_overrides(live)) if s.commune == "tra-son"][:2]
    agents = fleet.start(settings)
    away = settings[0]
    rid = away.receiver_id
    wait_for(lambda: all(live.http.get(f"/api/v1/receivers/{a.rid}").json()["availability"] == "online"
                         for a in agents), 15, "both online")
    item = announce(live, "Thông báo lịch tiêm phòng cho gia súc.")
    fleet.stop_one(rid)
    wait_for(lambda: live.http.get(f"/api/v1/receivers/{rid}").json()["availability"] != "online", 10, "gone")

    # While it is away: its plan changes (a sync-schedule to it) and an emergency goes to its commune.
    programme(live, "Tiêm phòng", [{"announcement_id": item["id"]}], [rid], soon(600))
    runner = live.app.state.runner
    wait_for(lambda: rid in runner.plans and runner.plans[rid].slots, 15, "its new plan compiled")
    eid = live.http.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-son"]},
                                                      "repeat": 1}).json()["id"]
    fleet.run(discard_session(away))  # the broker forgot what it held for it

    [back] = fleet.start([away])
    [gap] = wait_for(lambda: audited(live, "receiver.sequence-gap", rid), 30, "the gap recorded")
    # The sync-schedule it missed; the emergency (its commune's stream) is sent again by the tracker at once,
    # and acknowledged within the grace period, so it is no longer missing when the gap is judged.
    assert f"1 on receiver:{rid} (up to no. 1)" in (gap.detail or "")
    wait_for(lambda: back.plan_keeper.version == runner.plans[rid].version, 20, "the new plan on the receiver")
    wait_for(lambda: {x["id"]: x["status"] for x in emergency(live, eid)["receivers"]}[rid] == "done", 60,
             "the emergency played on the receiver that came back")
    assert len(em_plays(back, eid)) == 1
    with Session(live.testbed.engine) as s:
        [resync] = s.exec(select(CommandRecord).where(CommandRecord.issued_by == "resync",
                                                      CommandRecord.target == str(Target.receiver(rid)))).all()
    assert resync.kind == "sync-schedule"
