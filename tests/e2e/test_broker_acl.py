"""The broker's accounts and ACLs, as provisioned by the controller, hold on both brokers."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiomqtt
import pytest

from devrig.testbed import Testbed
from receivers.protocol import Topics

pytestmark = pytest.mark.integration


def client(tb: Testbed, ident: str, username: str | None, password: str | None) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", tb.broker.port, identifier=ident, username=username, password=password,
                          timeout=5)


async def collect(c: aiomqtt.Client, seconds: float) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for m in c.messages:
                got.append((m.topic.value, bytes(m.payload)))  # type: ignore[arg-type]
    return got


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
            await asyncio.sleep(0.3)
            # A tries to publish as B, and as itself.
            for leaf in ("availability", "state", "ack"):
                with contextlib.suppress(aiomqtt.MqttError):
                    await ca.publish(topics.receiver(b["receiver_id"], leaf), b"forged", qos=1)
            await ca.publish(topics.receiver(a["receiver_id"], "state"), b"mine", qos=1)
            # The controller commands B, B's commune, then A.
            await ctl.publish(topics.receiver_cmd(b["receiver_id"], "ping"), b"for-b", qos=1)
            await ctl.publish(topics.commune_cmd(b["commune"], "ping"), b"for-b-commune", qos=1)
            await ctl.publish(topics.receiver_cmd(a["receiver_id"], "ping"), b"for-a", qos=1)
            return await collect(ca, 1.5), await collect(ctl, 0.5)

    a_got, ctl_got = asyncio.run(scenario())
    assert [p for _, p in a_got] == [b"for-a"]  # nothing of B's reached A
    assert [p for _, p in ctl_got] == [b"mine"]  # nothing A forged for B was accepted


def test_anonymous_and_wrong_password_are_refused(testbed: Testbed, broker_kind: str) -> None:
    a = testbed.fleet["receivers"][0]

    async def scenario() -> list[bool]:
        return [await refused(testbed, None, None), await refused(testbed, a["username"], "wrong"),
                await refused(testbed, "nobody", "x"), await refused(testbed, a["username"], a["password"])]

    assert asyncio.run(scenario()) == [True, True, True, False]
