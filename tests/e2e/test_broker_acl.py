"""The broker's accounts and ACLs, as provisioned by the controller, hold on both brokers: topics, retained
messages, client ids and message sizes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import signal
import uuid
from typing import Any

import aiomqtt
import pytest
from sqlmodel import Session

from controller.broker.files import MAX_PACKET, controller_account, receiver_account
from controller.broker.passwords import hash_password
from controller.provision import broker_accounts, write_broker_files
from devrig.testbed import Testbed
from receivers.protocol import PlayEvent, Topics
from tests.conftest import Api, wait_for

pytestmark = pytest.mark.integration


def client(tb: Testbed, ident: str, username: str | None, password: str | None, *,
           persistent: bool = False) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", tb.broker.port, identifier=ident, username=username, password=password,
                          timeout=5, clean_session=not persistent)


async def until(c: aiomqtt.Client, wanted: bytes, seconds: float = 10) -> list[tuple[str, bytes]]:
    """Everything `c` receives up to and including the payload `wanted` (the sign that the broker has handled
    what was sent before it); fails if `wanted` does not come."""
    got: list[tuple[str, bytes]] = []
    async with asyncio.timeout(seconds):
        async for m in c.messages:
            got.append((m.topic.value, bytes(m.payload)))  # type: ignore[arg-type]
            if got[-1][1] == wanted:
                return got
    raise AssertionError("unreachable")


async def refused(tb: Testbed, username: str | None, password: str | None) -> bool:
    try:
        async with client(tb, "intruder", username, password):
            return False
    except aiomqtt.MqttError:
        return True


def test_receivers_stay_in_their_lane(testbed: Testbed, broker_kind: str) -> None:
    tb, topics = testbed, Topics(testbed.settings.mqtt_base)
    rx: list[dict[str, Any]] = tb.fleet["receivers"]
    a, b = rx[0], rx[-1]  # different communes
    assert a["commune"] != b["commune"]
    mqtt = tb.settings.mqtt

    async def scenario() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
        async with client(tb, "ctl", mqtt.username, mqtt.password) as ctl, \
                client(tb, "rx-a", a["username"], a["password"]) as ca:
            await ctl.subscribe(f"{topics.base}/receivers/+/+", qos=1)
            # A tries to read B's commands and B's commune's commands, and its own.
            await ca.subscribe(topics.receiver_cmd(b["receiver_id"], "ping"), qos=1)
            await ca.subscribe(topics.commune_cmd(b["commune"], "ping"), qos=1)
            await ca.subscribe(f"{topics.base}/#", qos=1)
            await ca.subscribe(topics.receiver_cmd(a["receiver_id"], "ping"), qos=1)
            # A tries to publish as B, and as itself.
            for leaf in ("availability", "state", "ack"):
                with contextlib.suppress(aiomqtt.MqttError):
                    await ca.publish(topics.receiver(b["receiver_id"], leaf), b"forged", qos=1)
            await ca.publish(topics.receiver(a["receiver_id"], "state"), b"mine", qos=1)
            # The controller commands B, B's commune, then A.
            await ctl.publish(topics.receiver_cmd(b["receiver_id"], "ping"), b"for-b", qos=1)
            await ctl.publish(topics.commune_cmd(b["commune"], "ping"), b"for-b-commune", qos=1)
            await ctl.publish(topics.receiver_cmd(a["receiver_id"], "ping"), b"for-a", qos=1)
            # Each side's last message is the sign that what came before it has been handled.
            return await until(ca, b"for-a"), await until(ctl, b"mine")

    a_got, ctl_got = asyncio.run(scenario())
    assert [p for _, p in a_got] == [b"for-a"]  # nothing of B's reached A
    assert [p for _, p in ctl_got] == [b"mine"]  # nothing A forged for B was accepted


def test_anonymous_and_wrong_password_are_refused(testbed: Testbed, broker_kind: str) -> None:
    a = testbed.fleet["receivers"][0]

    async def scenario() -> list[bool]:
        return [await refused(testbed, None, None), await refused(testbed, a["username"], "wrong"),
                await refused(testbed, "nobody", "x"), await refused(testbed, a["username"], a["password"])]

    assert asyncio.run(scenario()) == [True, True, True, False]



def test_retained_messages_obey_the_read_acl(testbed: Testbed, broker_kind: str) -> None:
    """A receiver subscribing to everything gets no other receiver's retained availability or state: neither
    on connecting (amqtt sent the retained messages of every client's subscriptions) nor on subscribing."""
    tb, topics = testbed, Topics(testbed.settings.mqtt_base)
    a, b = tb.fleet["receivers"][0], tb.fleet["receivers"][-1]
    mqtt = tb.settings.mqtt
    ctl_id = mqtt.username or "controller"

    async def scenario() -> list[tuple[str, bytes]]:
        async with client(tb, ctl_id, mqtt.username, mqtt.password) as ctl, \
                client(tb, b["username"], b["username"], b["password"]) as cb:
            await ctl.subscribe(f"{topics.base}/receivers/+/+", qos=1)
            await cb.publish(topics.receiver(b["receiver_id"], "availability"), b"b-online", qos=1, retain=True)
            await cb.publish(topics.receiver(b["receiver_id"], "state"), b"b-state", qos=1, retain=True)
            await until(ctl, b"b-state")  # both stored by the broker
            await ctl.publish(topics.controller_availability(), b"ctl-online", qos=1, retain=True)
            async with client(tb, a["username"], a["username"], a["password"]) as ca:
                for f in ("#", "$SYS/#", f"{topics.base}/#", f"{topics.base}/receivers/+/state",
                          topics.receiver(b["receiver_id"], "availability")):
                    await ca.subscribe(f, qos=1)
                await ca.subscribe(f"{topics.base}/receivers/{a['receiver_id']}/cmd/+", qos=1)  # allowed
                await ca.subscribe(topics.controller_availability(), qos=1)  # allowed: its retained message
                got = await until(ca, b"ctl-online")
                # And live: B's next state, then a command for A, which A may read.
                await cb.publish(topics.receiver(b["receiver_id"], "state"), b"b-state-2", qos=1, retain=True)
                await until(ctl, b"b-state-2")
                await ctl.publish(topics.receiver_cmd(a["receiver_id"], "ping"), b"for-a", qos=1)
                return got + await until(ca, b"for-a")

    got = asyncio.run(scenario())
    # (Mosquitto grants `#` and filters what it delivers: the controller's availability may come once per
    # matching subscription.)
    assert {p for _, p in got} == {b"ctl-online", b"for-a"}, got


def test_a_client_id_cannot_take_another_account_over(testbed: Testbed, broker_kind: str) -> None:
    """Receiver A's password with the controller's client id, or receiver B's, neither disconnects them nor
    gets B's subscriptions or the commands queued for B while it is away: both brokers make the client id the
    user name."""
    tb, topics = testbed, Topics(testbed.settings.mqtt_base)
    a, b = tb.fleet["receivers"][0], tb.fleet["receivers"][1]
    mqtt = tb.settings.mqtt
    ctl_id = mqtt.username or "controller"

    async def scenario() -> tuple[list[bytes], list[bytes], list[bytes]]:
        stolen: list[bytes] = []
        async with client(tb, ctl_id, mqtt.username, mqtt.password, persistent=True) as ctl, \
                client(tb, b["username"], b["username"], b["password"], persistent=True) as cb:
            await cb.subscribe(f"{topics.base}/receivers/{b['receiver_id']}/cmd/+", qos=1)
            await ctl.subscribe(topics.receiver(b["receiver_id"], "ack"), qos=1)
            for n, ident in enumerate([ctl_id, "tt-controller", b["username"], f"rx-{b['receiver_id']}"]):
                for persistent in (True, False):
                    async with client(tb, ident, a["username"], a["password"], persistent=persistent) as intruder:
                        await intruder.subscribe(topics.receiver_cmd(a["receiver_id"], "ping"), qos=1)
                        mark = f"{n}{persistent:d}".encode()
                        await ctl.publish(topics.receiver_cmd(b["receiver_id"], "ping"), b"for-b-" + mark, qos=1)
                        await ctl.publish(topics.receiver_cmd(a["receiver_id"], "ping"), b"for-a-" + mark, qos=1)
                        stolen += [p for _, p in await until(intruder, b"for-a-" + mark)]
            # The victims are still connected: B hears the controller, the controller hears B.
            b_got = [p for _, p in await until(cb, b"for-b-30")]
            await cb.publish(topics.receiver(b["receiver_id"], "ack"), b"b-still-here", qos=1)
            ctl_got = [p for _, p in await until(ctl, b"b-still-here")]
        # B away, a command waits in its session; the intruder asks for that session by B's client id.
        async with client(tb, ctl_id, mqtt.username, mqtt.password, persistent=True) as ctl:
            await ctl.publish(topics.receiver_cmd(b["receiver_id"], "ping"), b"queued-for-b", qos=1)
            async with client(tb, b["username"], a["username"], a["password"], persistent=True) as intruder:
                await intruder.subscribe(topics.receiver_cmd(a["receiver_id"], "ping"), qos=1)
                await ctl.publish(topics.receiver_cmd(a["receiver_id"], "ping"), b"for-a-last", qos=1)
                stolen += [p for _, p in await until(intruder, b"for-a-last")]
            async with client(tb, b["username"], b["username"], b["password"], persistent=True) as cb:
                b_got += [p for _, p in await until(cb, b"queued-for-b")]  # still there, for B
        return stolen, b_got, ctl_got

    stolen, b_got, ctl_got = asyncio.run(scenario())
    assert all(p.startswith(b"for-a-") for p in stolen), stolen  # nothing meant for B reached the intruder
    assert b_got == [f"for-b-{n}{p}".encode() for n in range(4) for p in (1, 0)] + [b"queued-for-b"]  # B lost nothing
    assert ctl_got == [b"b-still-here"]


def test_an_oversized_message_is_dropped(api: Api, testbed: Testbed, broker_kind: str) -> None:
    """A receiver's 2 MB event never reaches the controller's database; its next, normal event does."""
    tb, topics = testbed, Topics(testbed.settings.mqtt_base)
    a = tb.fleet["receivers"][0]
    rid = a["receiver_id"]

    def event(item_id: str, padding: int = 0) -> bytes:
        e = PlayEvent(event_id=uuid.uuid4(), seq=1, event="finished", item_id=item_id, at=dt.datetime.now(dt.UTC))
        body = json.loads(e.to_bytes())
        if padding:
            body["padding"] = "x" * padding  # an unknown field: ignored, so the event itself would be stored
        return json.dumps(body).encode()

    big = event("bulletin-1-huge", 2_000_000)
    assert len(big) > MAX_PACKET

    async def send() -> bool:
        disconnected = False
        try:
            async with client(tb, a["username"], a["username"], a["password"]) as c:
                await c.publish(topics.receiver(rid, "event"), big, qos=0)
                async with asyncio.timeout(30):  # the broker ends the connection
                    async for _ in c.messages:
                        pass
        except aiomqtt.MqttError:
            disconnected = True
        async with client(tb, a["username"], a["username"], a["password"]) as c:
            await c.publish(topics.receiver(rid, "event"), event("bulletin-1-small"), qos=1)
        return disconnected

    assert asyncio.run(send())

    def items() -> list[str]:
        return [p["item_id"] for p in api.get(f"/api/v1/receivers/{rid}/plays", params={"limit": 100}).json()["data"]]

    wait_for(lambda: "bulletin-1-small" in items(), 15, "the normal event stored")
    assert items() == ["bulletin-1-small"]


def test_an_account_added_later_works_without_a_restart(testbed: Testbed, broker_kind: str) -> None:
    """Enrolment rewrites the broker's files (and reloads Mosquitto): a new receiver may then log in, read its
    commands and report. The embedded broker re-reads its topic rules as it re-reads its passwords."""
    tb, topics = testbed, Topics(testbed.settings.mqtt_base)
    a, mqtt = tb.fleet["receivers"][0], tb.settings.mqtt
    rid, password = "tra-my-moi-1", "new-receiver-password"
    with Session(tb.engine) as s:
        accounts = broker_accounts(s, topics, "controller", tb.controller_password)
    accounts.append(controller_account(topics, tb.tools[0], hash_password(tb.tools[1])))
    accounts.append(receiver_account(topics, rid, a["commune"], hash_password(password)))
    write_broker_files(broker_kind, tb.broker.directory, accounts, tb.broker.port)
    if broker_kind == "mosquitto":
        tb.broker.proc.send_signal(signal.SIGHUP)

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        async with client(tb, "controller", mqtt.username, mqtt.password) as ctl:
            await ctl.subscribe(topics.receiver(rid, "state"), qos=1)
            async with asyncio.timeout(20):
                while await refused(tb, rid, password):  # Mosquitto reloads in its own time
                    await asyncio.sleep(0.1)
            async with client(tb, rid, rid, password) as new:
                await new.subscribe(f"{topics.base}/receivers/{rid}/cmd/+", qos=1)
                await ctl.publish(topics.receiver_cmd(rid, "ping"), b"welcome", qos=1)
                got = [p for _, p in await until(new, b"welcome")]
                await new.publish(topics.receiver(rid, "state"), b"new-state", qos=1)
                return got, [p for _, p in await until(ctl, b"new-state")]

    assert asyncio.run(scenario()) == ([b"welcome"], [b"new-state"])
