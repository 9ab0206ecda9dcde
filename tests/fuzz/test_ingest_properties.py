"""Hypothesis against the controller's side of the receivers' reports: the real MQTT bridge's `on_message`
(topic parsing, decoding, folding into the batch) and the batched write to the database, without a broker.

Whatever one receiver account publishes — arbitrary topics, arbitrary bytes, its valid reports mutated,
numbers beyond 64 bits, dates at the ends of the calendar — `on_message` does not raise, the next flush
writes, and a valid report of another receiver in the same batch is stored: one receiver cannot make the
controller lose the others' proof of play. (Before the decoders refused NaN, one play event with
`position_s: NaN` failed the batch at every retry.) Derandomized: the same examples on every run.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlmodel import Session, select

from controller.bridge import Bridge
from controller.db.models import PlayRecord, Receiver
from receivers.protocol import PlayEvent, Signer, generate_private_key_pem
from receivers.protocol.topics import RECEIVER_LEAVES
from tests.conftest import seeded_copy
from tests.fuzz.test_protocol_properties import (
    FUZZ,
    NOW,
    any_text,
    json_values,
    mutated_bytes,
    mutated_json,
    receiver_samples,
)


class _Message:
    def __init__(self, topic: str, payload: bytes, retain: bool) -> None:
        self.topic = type("Topic", (), {"value": topic})()
        self.payload = payload
        self.retain = retain


class Ingest:
    def __init__(self, bridge: Bridge, loop: asyncio.AbstractEventLoop, rids: list[str]) -> None:
        self.bridge, self.loop, self.rids = bridge, loop, rids

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.loop.run_until_complete(self.bridge.on_message(_Message(topic, payload, retain)))  # type: ignore[arg-type]

    def flush(self) -> None:
        self.loop.run_until_complete(self.bridge.flush())


@pytest.fixture(scope="module")
def ingest(tmp_path_factory: pytest.TempPathFactory, seeded_template: Path) -> Iterator[Ingest]:
    with seeded_copy(seeded_template, tmp_path_factory.mktemp("fuzz-ingest")) as world:
        settings = world.settings.model_copy(update={"mqtt_url": "mqtt://127.0.0.1:1883"})
        bridge = Bridge(settings, world.engine, Signer(generate_private_key_pem()))
        loop = asyncio.new_event_loop()
        # What `start` does, less the broker and the flush loop (flushed by hand here).
        bridge._known = bridge._load_known()
        bridge.streams.load()
        with Session(world.engine) as s:
            rids = sorted(s.exec(select(Receiver.id)).all())[:2]
        try:
            yield Ingest(bridge, loop, rids)
        finally:
            loop.run_until_complete(bridge.streams.stop())
            async def cancel_rest() -> None:
                rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in rest:
                    task.cancel()
                await asyncio.gather(*rest, return_exceptions=True)

            loop.run_until_complete(cancel_rest())
            loop.close()


def _bad_payloads() -> st.SearchStrategy[tuple[str, bytes]]:
    samples = st.sampled_from(receiver_samples())
    return st.one_of(
        st.tuples(st.sampled_from(RECEIVER_LEAVES), st.binary(max_size=300)),
        st.tuples(st.sampled_from(RECEIVER_LEAVES), json_values.map(lambda v: json.dumps(v).encode())),
        samples.flatmap(lambda s: st.tuples(st.just(s[0]), mutated_json(s[1]) | mutated_bytes(s[1]))),
        # a valid report on another leaf's topic
        st.tuples(st.sampled_from(RECEIVER_LEAVES), samples.map(lambda s: s[1])),
    )


def _event(extra: dict[str, Any]) -> bytes:
    base = json.loads(dict(receiver_samples())["event"])
    return json.dumps({**base, **extra}).encode()


@FUZZ
@example(leaf_payload=("event", _event({"seq": 2**70})), topic_kind="own", retain=False)
@example(leaf_payload=("event", _event({"repeat_index": -2**64})), topic_kind="own", retain=False)
@example(leaf_payload=("event", _event({"volume": 2**63})), topic_kind="own", retain=False)
@example(leaf_payload=("event", _event({"at": "0001-01-01T00:00:00+14:00"})), topic_kind="own", retain=False)
@example(leaf_payload=("event", _event({"at": "9999-12-31T23:59:59-14:00"})), topic_kind="own", retain=False)
@example(leaf_payload=("availability", json.dumps({"kind": "availability", "status": "online", "keepalive_s": 2**64,
                                                   "at": "9999-12-31T23:59:59-14:00"}).encode()),
         topic_kind="own", retain=True)
@given(leaf_payload=_bad_payloads(), topic_kind=st.sampled_from(["own", "own", "other", "arbitrary"]),
       retain=st.booleans())
def test_one_receiver_cannot_make_the_controller_lose_the_others_reports(
        ingest: Ingest, leaf_payload: tuple[str, bytes], topic_kind: str, retain: bool) -> None:
    leaf, payload = leaf_payload
    bad, good = ingest.rids
    topics = ingest.bridge.topics
    topic = {"own": topics.receiver(bad, leaf),  # type: ignore[arg-type]
             "other": f"truyenthanh/receivers/{uuid.uuid4().hex[:8]}/{leaf}",
             "arbitrary": "truyenthanh/" + "/".join([leaf, bad, leaf])}[topic_kind]
    ingest.publish(topic, payload, retain)
    event = PlayEvent(event_id=uuid.uuid4(), seq=1, event="finished", at=NOW, item_id="fuzz-good")
    ingest.publish(topics.receiver(good, "event"), event.to_bytes())
    ingest.flush()
    with Session(ingest.bridge.engine) as s:
        stored = s.exec(select(PlayRecord).where(PlayRecord.event_id == str(event.event_id))).first()
    assert stored is not None and stored.receiver_id == good, "another receiver's proof of play was lost"


def test_any_text_topic_is_ignored_or_read(ingest: Ingest) -> None:
    """Foreign topics are counted as rejected, not raised."""
    before = ingest.bridge.rejected
    ingest.publish("truyenthanh/receivers/" + "x" * 100 + "/event", b"{}")
    ingest.publish("elsewhere/receivers/a/event", b"{}")
    assert ingest.bridge.rejected == before + 2
    assert any_text is not None
