"""The agent refuses unsigned, wrongly signed, expired, replayed and misaddressed commands — and says why."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

import aiomqtt
import pytest

from receivers.protocol import Ack, SetVolume, Signer, Target, Topics, generate_private_key_pem
from tests.conftest import FleetThread

pytestmark = pytest.mark.integration


class Controller:
    """A bare MQTT client with the controller's credentials: publishes raw payloads, collects acks."""

    def __init__(self, fleet: FleetThread) -> None:
        self.fleet = fleet
        self.topics = Topics(fleet.testbed.settings.mqtt_base)
        self.signer = Signer(fleet.testbed.settings.key_file.read_bytes())

    def send(self, rid: str, payloads: list[tuple[str, bytes]], expect: int) -> list[Ack]:
        """Publish each (topic, payload) and return the first `expect` acks from `rid`."""

        async def go() -> list[Ack]:
            mqtt = self.fleet.testbed.settings.mqtt
            async with aiomqtt.Client(mqtt.host, mqtt.port, username=mqtt.username, password=mqtt.password,
                                      identifier="test-controller") as c:
                await c.subscribe(self.topics.receiver(rid, "ack"), qos=1)
                for topic, payload in payloads:
                    await c.publish(topic, payload, qos=1)
                acks: list[Ack] = []
                async with asyncio.timeout(10):
                    async for m in c.messages:
                        acks.append(Ack.model_validate_json(m.payload))  # type: ignore[arg-type]
                        if len(acks) == expect:
                            return acks
                return acks

        return self.fleet.run(go())


def test_each_bad_command_is_rejected_with_its_reason(fleet: FleetThread, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="receivers.agent.agent")
    [agent] = fleet.start(fleet.settings(1))
    rid, ctl = agent.rid, Controller(fleet)
    topic = ctl.topics.receiver_cmd(rid, "set-volume")
    now = dt.datetime.now(dt.UTC)

    good = SetVolume.new(Target.receiver(rid), 60, volume=11)
    unsigned = json.dumps({"v": 1, "body": good.to_bytes().decode()}).encode()
    forged = Signer(generate_private_key_pem()).sign(SetVolume.new(Target.receiver(rid), 60, volume=12))
    expired = ctl.signer.sign(SetVolume.new(Target.receiver(rid), 60, now=now - dt.timedelta(minutes=5), volume=13))
    elsewhere = ctl.signer.sign(SetVolume.new(Target.receiver("tra-ka-thon-1-1"), 60, volume=14))
    commune = ctl.signer.sign(SetVolume.new(Target.commune(agent.settings.commune), 60, volume=15))
    signed = ctl.signer.sign(good)

    acks = ctl.send(rid, [(topic, unsigned), (topic, forged), (topic, expired), (topic, elsewhere),
                          (topic, signed), (topic, signed), (ctl.topics.commune_cmd(agent.settings.commune,
                                                                                    "set-volume"), commune)], 7)
    expected = [
        ("rejected", "unsigned: no signature"),
        ("rejected", "bad signature"),
        ("rejected", "expired at " + expired_at(expired)),
        ("rejected", "addressed to 'receiver:tra-ka-thon-1-1'"),
        ("applied", ""),
        ("rejected", "replayed: command already received"),
        ("applied", ""),
    ]
    assert [(a.status, a.reason or "") for a in acks] == expected
    assert acks[0].command_id is None and acks[1].command_id is None  # unverified ids are not echoed
    assert acks[4].command_id == good.command_id
    assert agent.hardware.volume_changes == [11, 15]  # only the two good commands moved the volume
    logged = [r.getMessage() for r in caplog.records if "rejected command" in r.getMessage()]
    assert len(logged) == 5 and any("bad signature" in m for m in logged)

    # Replay memory is on the receiver's disk: after a restart the same command is still refused.
    fleet.stop_one(rid)
    [agent] = fleet.start(fleet.settings(1))
    [ack] = ctl.send(rid, [(topic, signed)], 1)
    assert (ack.status, ack.reason) == ("rejected", "replayed: command already received")
    assert agent.hardware.volume_changes == [15]  # restored from its disk at start; the replay changed nothing


def expired_at(payload: bytes) -> str:
    body = json.loads(json.loads(payload)["body"])
    return dt.datetime.fromisoformat(body["expires_at"]).isoformat()


def test_garbage_on_command_topics_never_crashes_the_agent(fleet: FleetThread) -> None:
    [agent] = fleet.start(fleet.settings(1))
    rid, ctl = agent.rid, Controller(fleet)
    topic = ctl.topics.receiver_cmd(rid, "set-volume")
    garbage = [b"", b"\xff\xfe\x00", b"null", b"[1,2]", b'{"v":1}', b'{"v":1,"body":5,"sig":"x"}',
               b'{"v":2,"body":"{}","sig":"AAAA"}', b'{"v":1,"body":"{}","sig":"not base64!"}', b"{" * 10_000]
    good = ctl.signer.sign(SetVolume.new(Target.receiver(rid), 60, volume=42))
    acks = ctl.send(rid, [(topic, g) for g in garbage] + [(ctl.topics.receiver_cmd(rid, "ping"), good), (topic, good)],
                    len(garbage) + 2)
    assert all(a.status == "rejected" for a in acks[:-1])
    assert "on the 'ping' topic" in (acks[-2].reason or "")
    assert acks[-1].status == "applied" and agent.hardware.volume() == 42
