"""Enrolment end to end: an admin makes a code over HTTP; `truyenthanh-agent enroll` on the "Pi" trades it
for a config; the controller rewrites the real broker's files and reloads it (Mosquitto: SIGHUP to its pid;
amqtt: re-reads by itself); a real agent then connects with the enrolled credentials and shows up online,
and the receiver's old password no longer gets in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import httpx
import pytest
from sqlmodel import Session

from controller.app import create_app
from controller.services.accounts import issue_token
from receivers.agent import AgentSettings
from receivers.agent.cli import main as agent_cli
from tests.conftest import FleetThread, wait_for
from tests.live_server import live_server

pytestmark = pytest.mark.integration


def connects(port: int, username: str, password: str) -> bool:
    async def attempt() -> bool:
        try:
            async with aiomqtt.Client("127.0.0.1", port, identifier=f"probe-{username}", username=username,
                                      password=password, timeout=5):
                return True
        except aiomqtt.MqttError:
            return False

    return asyncio.run(attempt())


def test_enrolled_receiver_connects_and_its_old_password_stops_working(
        fleet: FleetThread, broker_kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tb = fleet.testbed
    old = tb.fleet["receivers"][5]
    rid = old["receiver_id"]
    assert connects(tb.broker.port, rid, old["password"])  # as provisioned before enrolment
    reload = f"kill -HUP {tb.broker.proc.pid}" if broker_kind == "mosquitto" else None
    settings = tb.settings.model_copy(update={"broker_dir": tb.broker.directory, "broker_reload": reload})
    with Session(tb.engine) as s:
        admin = {"Authorization": "Bearer " + issue_token(s, "district-admin", ["admin"])[1]}

    with live_server(create_app(settings)) as url:
        r = httpx.post(f"{url}/api/v1/receivers/{rid}/enrolment", headers=admin)
        assert r.status_code == 201, r.text
        config = tmp_path / "pi" / "etc" / "agent.toml"
        code = agent_cli(["enroll", "--controller", url, "--code", r.json()["code"],
                          "--config", str(config), "--state-dir", str(tmp_path / "pi" / "state")])
        out = capsys.readouterr()
        assert code == 0, out.err
        assert "warning" not in out.err  # files rewritten and the broker reloaded: nothing left to do

        enrolled = AgentSettings.from_file(config)
        assert enrolled.receiver_id == rid and enrolled.password != old["password"]
        # The real agent code, on simulated hardware, with exactly the enrolled credentials.
        on_sim = AgentSettings(**{**enrolled.model_dump(), "hardware": "sim", "backoff_min_s": 0.2,
                                  "backoff_max_s": 1.0, "telemetry_interval_s": 1.0})
        [agent] = fleet.start([on_sim], timeout=30)
        assert agent.link.connected.is_set()

        def online() -> bool:
            r = httpx.get(f"{url}/api/v1/receivers/{rid}", headers=admin)
            return bool(r.json()["availability"] == "online")

        wait_for(online, 15, f"{rid} online at the controller")
        wait_for(lambda: not connects(tb.broker.port, rid, old["password"]), 10, "the old password to be refused")
        assert connects(tb.broker.port, "controller", tb.controller_password)  # the controller keeps its account
