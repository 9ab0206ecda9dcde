"""Proof-of-play events that reach the controller out of order (a receiver's outbox drained after a newer
event, a new SD card restarting its numbering) are stored and listed in the order they happened."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import aiomqtt
import pytest

from devrig.testbed import Testbed
from receivers.protocol import PlayEvent, Topics
from tests.conftest import Api, wait_for

pytestmark = pytest.mark.integration


async def publish(testbed: Testbed, rid: str, events: list[PlayEvent]) -> None:
    """As receiver `rid` itself (its own broker account), in the order given."""
    [account] = [r for r in testbed.fleet["receivers"] if r["receiver_id"] == rid]
    topic = Topics(testbed.settings.mqtt_base).receiver(rid, "event")
    async with aiomqtt.Client("127.0.0.1", testbed.broker.port, identifier=f"rx-{rid}",
                              username=account["username"], password=account["password"]) as client:
        for e in events:
            await client.publish(topic, e.to_bytes(), qos=1)


def test_events_published_out_of_order_are_listed_in_the_order_they_happened(
        api_mqtt: Api, testbed: Testbed) -> None:
    rid = testbed.fleet["receivers"][0]["receiver_id"]
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)

    def event(seq: int, kind: str, minutes: float, item: str) -> PlayEvent:
        return PlayEvent(event_id=uuid.uuid4(), seq=seq, event=kind, at=t0 + dt.timedelta(minutes=minutes),  # type: ignore[arg-type]
                         item_id=item)

    happened = [event(7, "started", 0, "p-a"), event(8, "finished", 5, "p-a"),
                # The receiver's SD card was replaced: its numbering starts again, its clock goes on.
                event(1, "started", 10, "p-b"), event(2, "cut", 12, "p-b")]
    arrival = [happened[3], happened[1], happened[2], happened[0]]
    asyncio.run(publish(testbed, rid, arrival))

    def listed(path: str) -> list[tuple[str, str]]:
        rows = api_mqtt.get(path, params={"receiver": rid, "limit": 100}).json()["data"]
        return [(r["item_id"], r["event"]) for r in rows]

    expected = [(e.item_id, e.event) for e in happened]
    wait_for(lambda: len(listed("/api/v1/plays")) == 4, 10, "the four events stored")
    assert listed("/api/v1/plays") == expected
    assert listed(f"/api/v1/receivers/{rid}/plays") == expected
