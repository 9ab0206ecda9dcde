"""`truyenthanh-agent run` as systemd runs it, in its own process against a real broker: it comes online,
obeys `restart-agent` by saying `stopped` and exiting with status 0 (so `Restart=always` starts it again),
and on SIGTERM also says `stopped` and exits 0."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest

from devrig.testbed import Testbed
from receivers.protocol import Availability, RestartAgent, Signer, Target, Topics

pytestmark = pytest.mark.integration


def start_agent(tb: Testbed, tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    r = tb.fleet["receivers"][0]
    values = {"receiver_id": r["receiver_id"], "commune": r["commune"], "username": r["username"],
              "password": r["password"], "mqtt_url": tb.fleet["mqtt_url"], "base": tb.fleet["base"],
              "controller_public_key": tb.fleet["controller_public_key"], "state_dir": str(tmp_path / "state"),
              "mixer_control": "no-such-control", "backoff_min_s": 0.2, "backoff_max_s": 1.0}
    config = tmp_path / "agent.toml"
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    with (tmp_path / "agent.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "receivers.agent.cli", "run", "--config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT, text=True)
    return proc, r["receiver_id"]


async def availability(tb: Testbed, rid: str, wanted: str, then: bytes | None = None) -> None:
    """Wait for the retained availability `wanted`; once it is seen, publish `then` (a signed command)."""
    mqtt, topics = tb.settings.mqtt, Topics(tb.fleet["base"])
    async with aiomqtt.Client(mqtt.host, mqtt.port, username=mqtt.username, password=mqtt.password,
                              identifier="test-controller") as c:
        await c.subscribe(topics.receiver(rid, "availability"), qos=1)
        async with asyncio.timeout(20):
            async for m in c.messages:
                if Availability.model_validate_json(m.payload).status == wanted:  # type: ignore[arg-type]
                    break
        if then is not None:
            await c.publish(topics.receiver_cmd(rid, "restart-agent"), then, qos=1)


def test_restart_agent_ends_the_process_cleanly(testbed: Testbed, tmp_path: Path) -> None:
    proc, rid = start_agent(testbed, tmp_path)
    try:
        command = RestartAgent.new(Target.receiver(rid), 60)
        asyncio.run(availability(testbed, rid, "online", then=Signer(testbed.settings.key_file.read_bytes())
                                 .sign(command)))
        assert proc.wait(timeout=20) == 0, (tmp_path / "agent.log").read_text()
        asyncio.run(availability(testbed, rid, "stopped"))  # said before leaving: no last will
    finally:
        proc.kill()
        proc.wait()


def test_sigterm_stops_it_cleanly(testbed: Testbed, tmp_path: Path) -> None:
    proc, rid = start_agent(testbed, tmp_path)
    try:
        asyncio.run(availability(testbed, rid, "online"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, (tmp_path / "agent.log").read_text()
        asyncio.run(availability(testbed, rid, "stopped"))
    finally:
        proc.kill()
        proc.wait()
