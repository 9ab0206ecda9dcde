"""Malformed JSON and unknown message kinds on every subscribed topic are logged and ignored; the bridge
and the agent keep working."""

from __future__ import annotations

import asyncio
import logging

import aiomqtt
import pytest

from receivers.protocol import Topics
from receivers.protocol.topics import RECEIVER_LEAVES
from tests.conftest import Api, FleetThread, wait_for

pytestmark = pytest.mark.integration

GARBAGE = [b"", b"not json", b"\xff\xfe", b"[]", b"null", b'{"kind":"firmware-update","url":"http://evil"}',
           b'{"kind":"state","at":"yesterday","volume":500,"amplifier":"maybe"}', b'{"kind":"telemetry"}',
           b'{"kind":"ack","command_id":"not-a-uuid","command":"x","status":"applied","at":"2026-01-01T00:00:00Z"}']


def test_bridge_and_agent_shrug_off_garbage(api: Api, fleet: FleetThread, broker_kind: str,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    [agent] = fleet.start(fleet.settings(1))
    rid = agent.rid
    wait_for(lambda: api.get(f"/api/v1/receivers/{rid}").json()["availability"] == "online", 10, "online")
    bridge = api.client.app.state.bridge  # type: ignore[attr-defined]
    before = bridge.rejected
    topics = Topics(fleet.testbed.settings.mqtt_base)
    # Another receiver's account (a second connection of the agent's own would take its place: the client
    # id is the user name), and the tools account with the controller's rights, for the same reason.
    creds = fleet.testbed.fleet["receivers"][1]
    tools_user, tools_password = fleet.testbed.tools

    async def spray() -> None:
        # As the receiver (the ACL lets it publish only on its own leaves) at the controller's ingest…
        async with aiomqtt.Client("127.0.0.1", fleet.testbed.broker.port, identifier="sprayer",
                                  username=creds["username"], password=creds["password"]) as c:
            for leaf in RECEIVER_LEAVES:
                for g in GARBAGE:
                    await c.publish(topics.receiver(creds["receiver_id"], leaf), g, qos=1)
            # a valid message of the wrong kind for its topic
            await c.publish(topics.receiver(creds["receiver_id"], "telemetry"),
                            b'{"kind":"availability","status":"online"}', qos=1)
        # …and as the controller at the agent's subscriptions (non-command and command topics).
        async with aiomqtt.Client("127.0.0.1", fleet.testbed.broker.port, identifier="sprayer2",
                                  username=tools_user, password=tools_password) as c:
            for g in GARBAGE:
                await c.publish(topics.controller_availability(), g, qos=1)
                await c.publish(topics.all_cmd("ping"), g, qos=1)
                await c.publish(topics.commune_cmd(agent.settings.commune, "no-such-command"), g, qos=1)

    fleet.run(spray())
    expected = len(RECEIVER_LEAVES) * len(GARBAGE) + 1
    wait_for(lambda: bridge.rejected - before >= expected, 10, "every bad report counted")
    assert any("bridge: ignored message" in r.getMessage() for r in caplog.records)
    wait_for(lambda: sum("rejected command" in r.getMessage() for r in caplog.records) >= 2 * len(GARBAGE), 10,
             "the agent to log every bad command")

    # Both sides still work: a round trip succeeds and status is intact.
    r = api.post(f"/api/v1/receivers/{rid}/volume", json={"volume": 64})
    assert r.json()["outcome"] == "applied"
    row = api.get(f"/api/v1/receivers/{rid}").json()
    assert row["availability"] == "online" and row["volume"] == 64
    asyncio.run_coroutine_threadsafe(asyncio.sleep(0), fleet.loop).result(5)
