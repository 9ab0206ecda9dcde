"""`sync-schedule` over a real Mosquitto: the agent pulls its plan when it connects and when told, answers
the command with `applied` (or `rejected` and why), says nothing about plan items on the ack topic, and
sends their proof of play like any other. The plan comes from the stand-in controller of `test_plan.py`,
signed with the testbed's controller key."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from receivers.protocol import Ack, PlayEvent, Signer, SyncSchedule, Target, Topics
from tests.conftest import FleetThread, wait_for
from tests.receivers.agent.test_plan import PlanServer, entry, make_plan
from tests.samples import make

pytestmark = pytest.mark.integration


class Listener:
    """The controller's side of the broker for one receiver: sends signed commands, collects its acks and
    proof-of-play events."""

    def __init__(self, fleet: FleetThread, rid: str) -> None:
        self.fleet, self.rid = fleet, rid
        self.topics = Topics(fleet.testbed.settings.mqtt_base)
        self.signer = Signer(fleet.testbed.settings.key_file.read_bytes())
        self.acks: list[Ack] = []
        self.events: list[PlayEvent] = []
        self.client: aiomqtt.Client | None = None
        self.reader: asyncio.Task[None] | None = None
        fleet.run(self._start(), 10)

    async def _start(self) -> None:
        mqtt = self.fleet.testbed.settings.mqtt
        self.client = aiomqtt.Client(mqtt.host, mqtt.port, username=mqtt.username, password=mqtt.password,
                                     identifier="test-plan-controller")
        await self.client.__aenter__()
        await self.client.subscribe(self.topics.receiver(self.rid, "ack"), qos=1)
        await self.client.subscribe(self.topics.receiver(self.rid, "event"), qos=1)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.client is not None
        async for m in self.client.messages:
            payload = bytes(m.payload)  # type: ignore[arg-type]
            if m.topic.value.endswith("/ack"):
                self.acks.append(Ack.model_validate_json(payload))
            else:
                self.events.append(PlayEvent.model_validate_json(payload))

    def sync(self, version: str | None) -> SyncSchedule:
        command = SyncSchedule.new(Target.receiver(self.rid), 60, version=version)

        async def send() -> None:
            assert self.client is not None
            await self.client.publish(self.topics.receiver_cmd(self.rid, "sync-schedule"),
                                      self.signer.sign(command), qos=1)

        self.fleet.run(send())
        return command

    def answer(self, command: SyncSchedule) -> Ack:
        return wait_for(lambda: next((a for a in self.acks if a.command_id == command.command_id), None), 15,
                        f"the ack of {command.command_id}")

    def close(self) -> None:
        async def stop() -> None:
            if self.reader is not None:
                self.reader.cancel()
                await asyncio.gather(self.reader, return_exceptions=True)
            if self.client is not None:
                await self.client.__aexit__(None, None, None)

        self.fleet.run(stop())


@pytest.fixture
def rid(fleet: FleetThread) -> str:
    return str(fleet.testbed.fleet["receivers"][0]["receiver_id"])


@pytest.fixture
def server(fleet: FleetThread, rid: str) -> Iterator[PlanServer]:
    row = fleet.testbed.fleet["receivers"][0]
    s = PlanServer({row["username"]: row["password"]})
    yield s
    s.close()


def test_sync_schedule_pulls_applies_and_acks(fleet: FleetThread, server: PlanServer, rid: str,
                                              tmp_path: Path) -> None:
    key = fleet.testbed.settings.key_file.read_bytes()
    signer = Signer(key)
    a = server.add_media(make(tmp_path / "a.mp3", seconds=1.5))
    b = server.add_media(make(tmp_path / "b.mp3", seconds=1.5, gain_db=-24))
    first = make_plan([entry("prog-1-a", a, 6.0)], rid=rid)
    server.serve(first, signer.sign(first))
    ctl = Listener(fleet, rid)
    try:
        [s] = fleet.settings(1, controller_url=server.url, amp_warmup_s=0.2, amp_idle_off_s=1.0)
        [agent] = fleet.start([s])
        # Connected: it asks for its plan by itself.
        wait_for(lambda: agent.plan_keeper.version == first.version, 10, "the plan pulled after connecting")
        wait_for(lambda: [e.event for e in ctl.events] == ["started", "finished"], 20, "proof of play over MQTT")
        started = ctl.events[0]
        assert started.item_id == "prog-1-a" and abs((started.at - first.entries[0].start_at).total_seconds()) < 0.25

        # A changed plan, announced: pulled, acknowledged as applied, played.
        second = make_plan([entry("prog-1-b", b, 3.0)], rid=rid,
                           generated_at=first.generated_at + dt.timedelta(seconds=1))
        server.serve(second, signer.sign(second))
        ack = ctl.answer(ctl.sync(second.version))
        assert (ack.status, ack.reason, ack.command) == ("applied", None, "sync-schedule")
        assert agent.plan_keeper.version == second.version
        wait_for(lambda: [e.event for e in ctl.events].count("finished") == 2, 20, "the new entry played")

        # The plan it already has: applied without asking the controller.
        asked = len(server.plan_requests)
        assert ctl.answer(ctl.sync(second.version)).status == "applied"
        assert len(server.plan_requests) == asked

        # The controller cannot give it: rejected, with why; the plan held stays.
        server.status = 404
        ack = ctl.answer(ctl.sync("f" * 64))
        assert ack.status == "rejected" and ack.reason == "HTTP 404: the controller has no plan for this receiver"
        assert agent.plan_keeper.version == second.version

        # Plan items have no acks: nobody waits for them.
        assert all(a.command == "sync-schedule" for a in ctl.acks)
    finally:
        ctl.close()
