"""Unbounded reports (issue 12): every text a receiver sends is bounded. An agent cuts its own texts to the
bound (an ffmpeg error can be long), and the controller refuses, with a logged rejection, a report whose texts
are longer — so one receiver account cannot push megabytes into the controller's database."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Literal

import aiomqtt
import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from controller.db.models import CommandRecord, PlayRecord
from receivers.protocol import Ack, Ping, PlayEvent, ProtocolError, Target, Topics, parse_receiver_message
from receivers.protocol.messages import MAX_REASON
from tests.conftest import Api, FleetThread, wait_for

HUGE = "=" * 1_000_000  # 1 MB, more than the broker takes
LARGE = "x" * 200_000  # under the broker's message size limit: reaches the controller


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_an_agent_cuts_its_own_texts_and_the_controller_refuses_longer_ones() -> None:
    ack = Ack(command_id=uuid.uuid4(), command="play", status="failed", reason=HUGE, at=now())
    assert len(ack.reason or "") == MAX_REASON and (ack.reason or "").endswith("…")
    event = PlayEvent(event_id=uuid.uuid4(), seq=1, event="failed", at=now(), item_id="a" * 5000, reason=HUGE)
    assert len(event.reason or "") == MAX_REASON and len(event.item_id) == 100
    parse_receiver_message(ack.to_bytes(), "ack")  # what an agent sends is always taken
    wire = Ack(command_id=None, command="play", status="failed", reason="short", at=now()).to_bytes()
    with pytest.raises(ProtocolError, match="reason: Value error, longer than 500 characters"):
        parse_receiver_message(wire.replace(b'"short"', f'"{LARGE}"'.encode()), "ack")


@pytest.mark.integration
def test_a_huge_reason_never_reaches_the_database(api_mqtt: Api, fleet: FleetThread,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    # Before: `reason` had no bound; a receiver's account stored whatever it sent in play_record and
    # command_record (200 kB here; 1 MB where the broker has no message size limit).
    caplog.set_level(logging.WARNING, logger="controller.bridge")
    api = api_mqtt
    testbed = fleet.testbed
    receiver = testbed.fleet["receivers"][0]
    rid = receiver["receiver_id"]
    topics = Topics(testbed.settings.mqtt_base)
    bridge = api.client.app.state.bridge  # type: ignore[attr-defined]
    ping = Ping.new(Target.receiver(rid), 60)
    api.client.portal.call(bridge.send, ping, "test")  # type: ignore[union-attr]  # recorded: its ack is stored

    def ack(reason: str) -> bytes:
        return Ack(command_id=ping.command_id, command="ping", status="rejected", reason="r", at=now()).to_bytes() \
            .replace(b'"reason":"r"', f'"reason":"{reason}"'.encode())

    def event(reason: str, item: str) -> bytes:
        return PlayEvent(event_id=uuid.uuid4(), seq=1, event="failed", at=now(), item_id=item,
                         reason="r").to_bytes().replace(b'"reason":"r"', f'"reason":"{reason}"'.encode())

    async def publish(*messages: tuple[Literal["ack", "event"], bytes], timeout: float = 10) -> None:
        async with aiomqtt.Client("127.0.0.1", testbed.broker.port, username=receiver["username"],
                                  password=receiver["password"], identifier=receiver["username"],
                                  timeout=timeout) as c:
            for leaf, payload in messages:
                await c.publish(topics.receiver(rid, leaf), payload, qos=1)

    rejected = bridge.rejected
    for huge in (HUGE, LARGE):  # the broker may refuse the first, or drop the connection: a fresh one each
        try:
            # Where the broker drops the connection, the publish waits for an answer that never comes: 2 s.
            fleet.run(publish(("ack", ack(huge)), ("event", event(huge, "huge")), timeout=2 if huge is HUGE else 10))
        except aiomqtt.MqttError:
            pass
    # A report of ordinary size after them, on a connection of its own: the controller's positive signal.
    fleet.run(publish(("ack", ack("no such item")), ("event", event("no such item", "small"))))

    def stored() -> tuple[str | None, list[str]]:
        with Session(testbed.engine) as s:
            record = s.get(CommandRecord, str(ping.command_id))
            items = list(s.exec(select(PlayRecord.item_id).where(PlayRecord.receiver_id == rid)))
        return (record.reason if record else None), items

    wait_for(lambda: stored()[0] == "no such item" and "small" in stored()[1], 20, "the ordinary ack and event")
    assert stored()[1] == ["small"]  # the event with the huge reason was refused whole
    with Session(testbed.engine) as s:
        longest = s.exec(select(func.max(func.length(col(PlayRecord.reason))))).one()
    assert longest is not None and longest <= MAX_REASON
    assert bridge.rejected - rejected >= 2  # the 200 kB ack and event, at least: refused at ingest
    logged = [r.getMessage() for r in caplog.records if "ignored message" in r.getMessage()]
    assert any("longer than 500 characters" in m for m in logged)
    assert all(len(m) < 1000 for m in logged)  # and the log line is not the megabyte either
