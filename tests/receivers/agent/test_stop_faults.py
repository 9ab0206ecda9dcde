"""A failing SD card (issue 12 review): the replay memory raising `sqlite3.OperationalError` must neither keep a
cancelled emergency playing nor refuse an emergency; and the controller counts a stop as heard only when the
receiver applied it (or held nothing to stop), not when the stop failed on the receiver."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from controller.emergencies import Live, Tracker
from receivers.agent.store import ReplayMemory
from receivers.protocol import Ack, Play, Signer, Stop, Target, Topics
from tests.conftest import FleetThread
from tests.samples import make


class FailingMemory(ReplayMemory):
    """A replay memory on a card that has gone bad: every read and write raises, as SQLite does on I/O errors."""

    def __init__(self) -> None:  # no file: nothing to open on a dead card
        pass

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    first_time = seen = high_water = raise_high_water = forget = prune = _fail

    def close(self) -> None:
        pass


def emergency(rid: str, data: bytes, item_id: str) -> Play:
    return Play.new(Target.receiver(rid), 60, now=dt.datetime.now(dt.UTC), item_id=item_id, priority="emergency",
                    inline_audio=base64.b64encode(data).decode(), inline_sha256=hashlib.sha256(data).hexdigest())


def exchange(fleet: FleetThread, rid: str, steps: list[tuple[str, bytes, str, tuple[str, ...]]]) -> list[Ack]:
    """Publish each step's signed payload on `rid`'s topic of its kind once the acks so far include one of the
    step's `until` statuses for the command id it names; return every ack received."""

    async def go() -> list[Ack]:
        mqtt, topics = fleet.testbed.settings.mqtt, Topics(fleet.testbed.settings.mqtt_base)
        async with aiomqtt.Client(mqtt.host, mqtt.port, username=mqtt.username, password=mqtt.password,
                                  identifier="test-station") as c:
            await c.subscribe(topics.receiver(rid, "ack"), qos=1)
            acks: list[Ack] = []
            async with asyncio.timeout(60):
                for kind, payload, command_id, until in steps:
                    await c.publish(topics.receiver_cmd(rid, kind), payload, qos=1)
                    async for m in c.messages:
                        acks.append(Ack.model_validate_json(m.payload))
                        if str(acks[-1].command_id) == command_id and acks[-1].status in until:
                            break
            return acks

    return fleet.run(go())


@pytest.mark.integration
def test_a_stop_silences_the_emergency_when_the_card_fails(fleet: FleetThread, tmp_path: Path) -> None:
    # Before: handle_stop wrote its memory first; the card's error made the stop fail and the siren played on.
    [settings] = fleet.settings(1)
    rid = settings.receiver_id
    [agent] = fleet.start([settings])
    signer = Signer(fleet.testbed.settings.key_file.read_bytes())
    data = make(tmp_path / "siren.mp3", seconds=12).read_bytes()
    play = emergency(rid, data, "em-long")
    stop = Stop.new(Target.receiver(rid), 60, item_id="em-long")
    agent.replay = FailingMemory()  # the card fails while the siren plays
    acks = exchange(fleet, rid, [
        ("play", signer.sign(play), str(play.command_id), ("playing",)),
        ("stop", signer.sign(stop), str(play.command_id), ("failed", "done")),
    ])
    stop_acks = [a for a in acks if str(a.command_id) == str(stop.command_id)]
    assert [(a.status, a.reason) for a in stop_acks] == [("applied", None)], acks
    assert acks[-1].status == "failed" and "stopped by the controller" in (acks[-1].reason or ""), acks


@pytest.mark.integration
def test_an_emergency_plays_when_the_card_fails(fleet: FleetThread, tmp_path: Path) -> None:
    # Before: handle_play read the stop memory unguarded; the card's error refused the emergency.
    [settings] = fleet.settings(1)
    rid = settings.receiver_id
    [agent] = fleet.start([settings])
    signer = Signer(fleet.testbed.settings.key_file.read_bytes())
    play = emergency(rid, make(tmp_path / "siren.mp3", seconds=0.3).read_bytes(), "em-short")
    agent.replay = FailingMemory()
    acks = exchange(fleet, rid, [("play", signer.sign(play), str(play.command_id), ("done", "failed", "rejected"))])
    assert acks[-1].status == "done", acks
    assert [p.item_id for p in agent.sink.played] == ["em-short"]  # type: ignore[attr-defined]


def live(rids: list[str]) -> Live:
    return Live("em-1", ["play-1"], dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5), {}, {}, {},
                {r: ("pending", None) for r in rids}, cancelled=True)


def test_a_stop_that_failed_on_the_receiver_is_not_counted_as_heard() -> None:
    # Before: any "rejected" answer but a replay counted as heard, so a stop that failed on a bad card was never
    # sent again on reconnect while the emergency could still be replayed.
    tracker = Tracker(engine=None, bridge=None)  # type: ignore[arg-type]  # acks touch neither
    tracker.add(current := live(["rx-ok", "rx-idle", "rx-bad", "rx-sig"]))
    stop_id = uuid.uuid4()
    tracker.note_stop("em-1", str(stop_id))

    def ack(status: str, reason: str | None = None) -> Ack:
        return Ack(command_id=stop_id, command="stop", status=status, reason=reason,  # type: ignore[arg-type]
                   at=dt.datetime.now(dt.UTC))

    tracker.on_ack("rx-ok", ack("applied"))
    tracker.on_ack("rx-idle", ack("rejected", "nothing to stop"))
    tracker.on_ack("rx-bad", ack("rejected", "stop failed on the receiver: OperationalError: disk I/O error"))
    tracker.on_ack("rx-sig", ack("rejected", "bad signature"))
    assert current.stop_acked == {"rx-ok", "rx-idle"}
