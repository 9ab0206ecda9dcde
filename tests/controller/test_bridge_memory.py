"""The in-memory bridge: the `CommandPort` of the broker-free tests. Commands are signed as for the wire and
recorded; requests are answered by a rule; receiver reports go through the MQTT bridge's own ingest."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiomqtt
import pytest
from sqlmodel import Session, col, select

from controller.bridge import Bridge
from controller.bridge_memory import InMemoryBridge
from controller.db.models import CommandRecord, PlayRecord, Receiver, ReceiverStatus, ReceiverStatusEvent
from controller.ports import CommandNotSent, CommandPort
from receivers.protocol import (
    Ack,
    Availability,
    Ping,
    Play,
    PlayEvent,
    SelfTest,
    SetVolume,
    Stop,
    Target,
    Telemetry,
    Verifier,
    parse_command,
    utcnow,
)
from tests.conftest import Api, Seeded
from tests.doubles import run_bridge

T = TypeVar("T")


def run(seeded: Seeded, body: Callable[[InMemoryBridge], Awaitable[T]], **options: object) -> T:
    """`body(bridge)` on a started in-memory bridge, in an event loop of its own."""
    return run_bridge(seeded.settings, seeded.engine, body, **options)


def receivers(seeded: Seeded, n: int = 2) -> list[str]:
    with Session(seeded.engine) as s:
        return list(s.exec(select(Receiver.id).order_by(col(Receiver.id)).limit(n)))


def record(seeded: Seeded, command_id: object) -> CommandRecord:
    with Session(seeded.engine) as s:
        row = s.get(CommandRecord, str(command_id))
        assert row is not None, f"command {command_id} not recorded"
        return row


def test_both_bridges_are_command_ports() -> None:
    ports: list[type[CommandPort]] = [Bridge, InMemoryBridge]  # mypy checks the structure; this, that it runs
    assert all(callable(p) for p in ports)


def test_every_command_is_signed_recorded_and_verifies_with_the_controllers_key(seeded: Seeded) -> None:
    rid, _ = receivers(seeded)
    volume = SetVolume.new(Target.receiver(rid), 60, volume=40)
    stop = Stop.new(Target.commune("tra-nu"), 60, priority="normal")

    async def body(bridge: InMemoryBridge) -> None:
        await bridge.send(volume, "tester")
        await bridge.send(stop, "tester")
        await bridge.flush()
        assert [(s.kind, str(s.target)) for s in bridge.sent] == [("set-volume", f"receiver:{rid}"),
                                                                  ("stop", "commune:tra-nu")]
        assert bridge.commands("stop") == [stop.model_copy(update={"seq": 1})]  # numbered in its stream

    run(seeded, body)
    verifier = Verifier(seeded.public_key)
    row = record(seeded, volume.command_id)
    assert (row.kind, row.target, row.issued_by, row.outcome) == ("set-volume", f"receiver:{rid}", "tester", None)
    assert record(seeded, stop.command_id).target == "commune:tra-nu"

    async def signed(bridge: InMemoryBridge) -> None:
        await bridge.send(volume, "tester")
        # What an agent would accept: numbered 2 in its stream, after the one the database recorded above.
        assert verifier.open(bridge.sent[0].payload, utcnow()) == volume.model_copy(update={"seq": 2})

    run(seeded, signed)


def test_a_request_is_answered_applied_by_default_through_the_ingest(seeded: Seeded) -> None:
    rid, _ = receivers(seeded)
    command = SetVolume.new(Target.receiver(rid), 60, volume=55)
    heard: list[tuple[str, Ack]] = []

    async def body(bridge: InMemoryBridge) -> Ack | None:
        bridge.ack_watchers.append(lambda r, a: heard.append((r, a)))
        ack = await bridge.request(command, "tester", 5.0)
        await bridge.flush()
        return ack

    ack = run(seeded, body)
    assert ack is not None and ack.status == "applied" and ack.command_id == command.command_id
    assert heard == [(rid, ack)]  # the long-lived listeners (the emergency tracker) hear it too
    row = record(seeded, command.command_id)
    assert row.outcome == "applied" and row.answered_at is not None
    with Session(seeded.engine) as s:
        status = s.get(ReceiverStatus, rid)
        assert status is not None and status.last_seen is not None  # an answer is a sign of life


def test_answers_by_receiver_and_by_kind(seeded: Seeded) -> None:
    quiet, other = receivers(seeded)

    async def body(bridge: InMemoryBridge) -> list[str | None]:
        asked = [SetVolume.new(Target.receiver(quiet), 60, volume=10),
                 SelfTest.new(Target.receiver(other), 60),
                 Ping.new(Target.receiver(other), 60)]
        acks = [await bridge.request(c, "tester", 5.0) for c in asked]
        return [a.status if a else None for a in acks]

    got = run(seeded, body, answers={quiet: None, "self-test": "rejected"})
    assert got == [None, "rejected", "applied"]
    custom = run(seeded, body, answer=lambda c: "failed" if isinstance(c, Play) else None)
    assert custom == [None, None, None]


def test_no_answer_returns_at_once_and_a_late_answer_still_counts(seeded: Seeded) -> None:
    rid, _ = receivers(seeded)
    command = SelfTest.new(Target.receiver(rid), 60)

    async def body(bridge: InMemoryBridge) -> float:
        started = time.monotonic()
        assert await bridge.request(command, "tester", 30.0) is None
        took = time.monotonic() - started
        await bridge.flush()
        assert record(seeded, command.command_id).outcome == "no_answer"
        late = Ack(command_id=command.command_id, command="self-test", status="applied", at=utcnow())
        await bridge.deliver(rid, late)
        return took

    assert run(seeded, body, answer=None) < 1.0  # the 30 s timeout is not waited out
    assert record(seeded, command.command_id).outcome == "applied"


def test_reports_reach_the_status_rows_and_the_listeners(seeded: Seeded) -> None:
    rid, other = receivers(seeded)
    heard: list[tuple[str, str]] = []

    async def body(bridge: InMemoryBridge) -> None:
        bridge.availability_watchers.append(lambda r, s: heard.append((r, s)))
        await bridge.bring_online(rid, other, keepalive_s=30)
        await bridge.deliver(other, Availability(status="stopped", at=utcnow()))
        with pytest.raises(ValueError, match="unknown receiver"):
            await bridge.deliver("no-such-receiver", Availability(status="online", at=utcnow()))

    run(seeded, body)
    assert heard == [(rid, "online"), (other, "online"), (other, "stopped")]
    with Session(seeded.engine) as s:
        rows = {r.receiver_id: r for r in s.exec(select(ReceiverStatus))}
    assert rows[rid].availability == "online" and rows[rid].keepalive_s == 30
    assert rows[other].availability == "stopped"


def test_a_bridge_that_is_down_sends_nothing(seeded: Seeded) -> None:
    rid, _ = receivers(seeded)

    async def body(bridge: InMemoryBridge) -> None:
        bridge.is_connected = False
        with pytest.raises(CommandNotSent) as e:
            await bridge.request(SetVolume.new(Target.receiver(rid), 60, volume=1), "tester", 5.0)
        assert isinstance(e.value, aiomqtt.MqttError)  # callers that still catch the MQTT error see it too
        with pytest.raises(CommandNotSent):
            await bridge.republish(Target.receiver(rid), "play", b"{}")
        assert bridge.sent == []

    run(seeded, body)


def test_the_app_runs_on_it_without_a_broker(api: Api) -> None:
    rid = api.get("/api/v1/receivers", params={"limit": 1}).json()["data"][0]["id"]
    assert api.client.get("/healthz").json()["mqtt"] == "connected"
    offline = api.post(f"/api/v1/receivers/{rid}/volume", json={"volume": 30}).json()
    assert offline["outcome"] == "no_answer" and api.bridge.commands("set-volume") == []  # offline: not sent
    api.online(rid)
    r = api.post(f"/api/v1/receivers/{rid}/volume", json={"volume": 30})
    assert r.status_code == 200 and r.json()["outcome"] == "applied", r.text
    [sent] = api.bridge.commands("set-volume")
    assert isinstance(sent, SetVolume) and sent.volume == 30 and sent.target == Target.receiver(rid)
    api.bridge.answers["set-volume"] = "rejected"
    assert api.post(f"/api/v1/receivers/{rid}/volume", json={"volume": 31}).json()["outcome"] == "rejected"
    api.bridge.is_connected = False
    assert api.client.get("/healthz").json()["mqtt"] == "down"
    assert api.post(f"/api/v1/receivers/{rid}/volume", json={"volume": 32}).status_code == 503


def test_an_emergency_is_sent_again_to_a_receiver_back_online(api: Api) -> None:
    body = api.post("/api/v1/emergencies", json={"text": "Cảnh báo lũ quét.", "targets": {"communes": ["tra-nu"]}})
    assert body.status_code == 202, body.text
    rid = body.json()["receivers"][0]
    [play] = api.bridge.commands("play")
    assert play.target == Target.commune("tra-nu")
    api.online(rid)  # the tracker hears it and re-sends the signed play to that receiver alone

    def resent() -> list[str]:
        return [str(s.target) for s in api.bridge.sent if s.resent]

    deadline = time.monotonic() + 5
    while not resent() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert resent() == [f"receiver:{rid}"]
    again = next(s for s in api.bridge.sent if s.resent)
    first = next(s for s in api.bridge.sent if s.kind == "play" and not s.resent)
    # The same command (a queued original is then a replay), issued anew and signed again.
    resent_cmd, first_cmd = (parse_command(json.loads(s.payload)["body"].encode()) for s in (again, first))
    assert isinstance(resent_cmd, Play) and isinstance(first_cmd, Play)
    assert resent_cmd.command_id == first_cmd.command_id and resent_cmd.item_id == first_cmd.item_id
    assert resent_cmd.expires_at == first_cmd.expires_at and resent_cmd.issued_at >= first_cmd.issued_at


def test_each_change_of_availability_is_written_to_the_status_history_once(seeded: Seeded) -> None:
    rid, other = receivers(seeded)

    async def body(bridge: InMemoryBridge) -> None:
        await bridge.bring_online(rid, other, keepalive_s=30)
        await bridge.deliver(rid, Availability(status="online", at=utcnow()))  # no change: no event
        await bridge.deliver(rid, Telemetry(at=utcnow(), uptime_s=5))
        await bridge.deliver(other, Availability(status="stopped", at=utcnow()))
        await bridge.deliver(other, Availability(status="online", at=utcnow()))

    run(seeded, body)
    assert history(seeded, rid) == ["online"]
    assert history(seeded, other) == ["online", "stopped", "online"]


def test_a_cut_link_leaves_an_offline_event_in_the_status_history(seeded: Seeded) -> None:
    rid, other = receivers(seeded)

    async def body(bridge: InMemoryBridge) -> None:
        await bridge.bring_online(rid, keepalive_s=1)  # then silence: its link is cut without a last will
        await bridge.bring_online(other, keepalive_s=30)
        deadline = time.monotonic() + 10
        while history(seeded, rid) != ["online", "offline"] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await bridge.deliver(rid, Telemetry(at=utcnow(), uptime_s=9))  # heard again: back online

    run(seeded, body)
    assert history(seeded, rid) == ["online", "offline", "online"]
    assert history(seeded, other) == ["online"]


def history(seeded: Seeded, rid: str) -> list[str]:
    with Session(seeded.engine) as s:
        return list(s.exec(select(ReceiverStatusEvent.availability).where(ReceiverStatusEvent.receiver_id == rid)
                           .order_by(col(ReceiverStatusEvent.at), col(ReceiverStatusEvent.id))))


def test_a_report_the_database_refuses_holds_back_nobody_elses(seeded: Seeded) -> None:
    """Decoding refuses every value known to break the batched write (NaN, huge counts, impossible times);
    should another slip through, the batch is written receiver by receiver and only the bad part is dropped."""
    bad, good = receivers(seeded)
    event = PlayEvent(event_id=uuid.uuid4(), seq=1, event="finished", at=utcnow(), item_id="proof-of-good")

    async def body(bridge: InMemoryBridge) -> int:
        await bridge.deliver(bad, PlayEvent(event_id=uuid.uuid4(), seq=1, event="finished", at=utcnow(),
                                            item_id="poison"), flush=False)
        bridge._pending.plays[-1]["seq"] = 2**70  # beyond SQLite's integers: the driver refuses the row
        await bridge.deliver(good, event, Telemetry(at=utcnow(), uptime_s=5))  # flushes the batch with both
        await bridge.deliver(good, Telemetry(at=utcnow(), uptime_s=6))  # and later batches flow
        return bridge.rejected

    rejected = run(seeded, body)
    assert rejected == 1
    with Session(seeded.engine) as s:
        items = [(p.receiver_id, p.item_id) for p in s.exec(select(PlayRecord))]
        status = s.get(ReceiverStatus, good)
    assert items == [(good, "proof-of-good")]
    assert status is not None and status.last_seen is not None
