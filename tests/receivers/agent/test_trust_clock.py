"""Replay through a wrong clock (issue 12): a receiver has no RTC and trusts unauthenticated NTP, so its clock
can be set back. It keeps the latest `issued_at` it has verified (the controller's clock) on its disk, and a
recorded command issued before that mark (less the tolerance) is refused whatever its own clock says — after a
restart too, and after its replay memory forgot the command's id."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
from pathlib import Path

import aiomqtt
import pytest

from firmware_sim.clock import OffsetClock
from receivers.agent import Agent, AgentSettings
from receivers.protocol import Ack, Ping, Play, Rejected, Signer, Target, Topics, Verifier, generate_private_key_pem
from tests.conftest import FleetThread
from tests.samples import make

pytestmark = pytest.mark.integration


class Station:
    """A bare MQTT client with the controller's account: publishes signed payloads, collects one receiver's acks."""

    def __init__(self, fleet: FleetThread) -> None:
        self.fleet = fleet
        self.topics = Topics(fleet.testbed.settings.mqtt_base)
        self.signer = Signer(fleet.testbed.settings.key_file.read_bytes())

    def send(self, rid: str, kind: str, payload: bytes, until: str | tuple[str, ...]) -> list[Ack]:
        """Publish `payload` on `rid`'s `kind` topic; return its acks up to the first whose status is in `until`."""
        final = (until,) if isinstance(until, str) else until

        async def go() -> list[Ack]:
            mqtt = self.fleet.testbed.settings.mqtt
            async with aiomqtt.Client(mqtt.host, mqtt.port, username=mqtt.username, password=mqtt.password,
                                      identifier="test-station") as c:
                await c.subscribe(self.topics.receiver(rid, "ack"), qos=1)
                await c.publish(self.topics.receiver_cmd(rid, kind), payload, qos=1)
                acks: list[Ack] = []
                async with asyncio.timeout(30):
                    async for m in c.messages:
                        acks.append(Ack.model_validate_json(m.payload))
                        if acks[-1].status in final:
                            return acks
                return acks

        return self.fleet.run(go())


def start(fleet: FleetThread, settings: AgentSettings, clock: OffsetClock) -> Agent:
    async def go() -> Agent:
        agent = fleet.fleet.add(settings, clock=clock)
        await asyncio.wait_for(agent.link.connected.wait(), 30)
        return agent

    return fleet.run(go())


def test_a_recorded_emergency_replayed_after_the_clock_was_set_back_is_refused(fleet: FleetThread,
                                                                                 tmp_path: Path) -> None:
    # Before: expiry and the replay memory both went by the receiver's clock, and the memory forgot an id an
    # hour after its expiry by that clock. A clock set forward (the memory forgets), then back (the command
    # looks fresh again) made a recorded emergency play a second time.
    [settings] = fleet.settings(1, issued_tolerance_s=2.0)
    rid, station = settings.receiver_id, Station(fleet)
    agent = start(fleet, settings, OffsetClock())
    data = make(tmp_path / "siren.mp3", seconds=0.3).read_bytes()
    t0 = dt.datetime.now(dt.UTC)
    emergency = Play.new(Target.receiver(rid), 4, now=t0, item_id="em-1", priority="emergency",
                         inline_audio=base64.b64encode(data).decode(), inline_sha256=hashlib.sha256(data).hexdigest())
    recorded = station.signer.sign(emergency)  # what an eavesdropper on the link keeps
    acks = station.send(rid, "play", recorded, ("done", "failed"))
    assert acks[-1].status == "done", acks
    assert [p.item_id for p in agent.sink.played] == ["em-1"]  # type: ignore[attr-defined]

    # A later command (issued 10 s after the emergency by the controller's clock) raises the mark.
    later = Ping.new(Target.receiver(rid), 60, now=t0 + dt.timedelta(seconds=10))
    later_bytes = station.signer.sign(later)
    assert station.send(rid, "ping", later_bytes, ("applied", "rejected"))[-1].status == "applied"
    async def mark() -> dt.datetime | None:
        return agent.replay.high_water()
    assert fleet.run(mark()) == later.issued_at

    # The clock jumps a day ahead and the memory prunes: the emergency's id is forgotten (it expired and the
    # mark has passed it), the later command's is kept (inside the tolerance, the memory is what refuses it).
    async def prune() -> tuple[int, bool, bool]:
        n = agent.replay.prune(t0 + dt.timedelta(days=1))
        return n, agent.replay.seen(str(emergency.command_id)), agent.replay.seen(str(later.command_id))
    assert fleet.run(prune()) == (1, False, True)

    # Power cut; the receiver comes back with its clock set back to a second after the emergency was issued,
    # when it looks unexpired again.
    fleet.stop_one(rid)
    back = OffsetClock((t0 + dt.timedelta(seconds=1) - dt.datetime.now(dt.UTC)).total_seconds())
    agent = start(fleet, settings, back)
    [ack] = station.send(rid, "play", recorded, ("rejected", "done", "failed", "received"))
    assert ack.status == "rejected" and ack.command_id == emergency.command_id
    assert (ack.reason or "").startswith(f"issued before {(later.issued_at - dt.timedelta(seconds=2)).isoformat()}")
    [ack] = station.send(rid, "ping", later_bytes, ("applied", "rejected"))
    assert (ack.status, ack.reason) == ("rejected", "replayed: command already received")
    assert agent.sink.played == []  # type: ignore[attr-defined]  # nothing played again

    # A command issued now is still accepted: the mark refuses the past, not the present.
    fresh = Ping.new(Target.receiver(rid), 60, now=later.issued_at)
    assert station.send(rid, "ping", station.signer.sign(fresh), ("applied", "rejected"))[-1].status == "applied"


def test_the_mark_refuses_what_expired_by_the_controllers_clock() -> None:
    # Inside the tolerance, a command whose expiry the mark has passed is refused too: the controller's clock
    # had gone beyond it, so it can only be a replay, however early the receiver's clock says it is.
    signer = Signer(generate_private_key_pem())
    verifier = Verifier(signer.public_key, tolerance=dt.timedelta(minutes=5))
    t0 = dt.datetime.now(dt.UTC)
    short = signer.sign(Ping.new(Target.receiver("r1"), 30, now=t0))
    mark = t0 + dt.timedelta(seconds=60)
    with pytest.raises(Rejected, match="which the controller's clock had passed"):
        verifier.open(short, t0 + dt.timedelta(seconds=1), mark)
    long_lived = signer.sign(Ping.new(Target.receiver("r1"), 3600, now=t0))
    assert verifier.open(long_lived, t0 + dt.timedelta(seconds=1), mark).issued_at == t0
    with pytest.raises(Rejected, match="^issued before"):
        verifier.open(long_lived, t0, t0 + dt.timedelta(minutes=6))
