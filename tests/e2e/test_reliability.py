"""Faults the whole system survives (issue 12), each on real Mosquitto, real agents and loopback links, and
each counted on both sides: what the controller sent or stored against what the receivers got or did.

- The broker killed hard (SIGKILL) with persistence on: commands queued for offline receivers are
  delivered once it is back.
- A connection cut between a command's PUBLISH and its PUBACK: the broker sends it again (DUP), the item
  plays once and is counted once.
- An agent killed (not its link cut): the broker's last will alone marks it offline, within 1.5 × its
  keepalive, with the controller's own silence rule turned off.
- An agent killed during a link outage with events in its outbox, then started again: every event arrives,
  none twice.
"""

from __future__ import annotations

import functools
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from controller.app import create_app
from controller.db.models import CommandRecord
from devrig.ports import wait_port
from devrig.testbed import Testbed
from firmware_sim.netproxy import LinkProxy
from receivers.agent.statedb import FILE_NAME as STATE_DB
from receivers.protocol import SetVolume, Target
from tests.conftest import TEST_SETTINGS, Api, FleetThread, LiveController, _testbed, admin_token, wait_for
from tests.e2e.test_playback import events, sink, start_agent, upload
from tests.samples import make

pytestmark = pytest.mark.integration


@pytest.fixture
def persistent_testbed(data_dir: Path) -> Iterator[Testbed]:
    """Mosquitto as provisioned for production: sessions, queues and retained messages kept on disk."""
    tb = _testbed(data_dir, "mosquitto", persistence=True, **TEST_SETTINGS)
    yield tb
    tb.close()


def kill_and_restart_broker(tb: Testbed) -> None:
    """SIGKILL (no chance to save anything), then the same program on the same port and files."""
    old = tb.broker.proc
    old.send_signal(signal.SIGKILL)
    old.wait()
    with (tb.broker.directory / "broker.log").open("ab") as log:
        tb.broker.proc = subprocess.Popen(old.args, stdout=log, stderr=log)
    wait_port(tb.broker.port, 20, tb.broker.proc)


def records(tb: Testbed, ids: list[str]) -> dict[str, CommandRecord]:
    with Session(tb.engine) as s:
        return {r.command_id: r for r in s.exec(select(CommandRecord).where(col(CommandRecord.command_id).in_(ids)))}


def test_broker_killed_hard_delivers_commands_queued_for_offline_receivers(
        persistent_testbed: Testbed, data_dir: Path) -> None:
    tb = persistent_testbed
    fleet = FleetThread(tb, data_dir / "fleet")
    try:
        with TestClient(create_app(tb.settings)) as client:
            api = Api(client, admin_token(tb.engine))
            wait_for(lambda: api.get("/healthz").json()["mqtt"] == "connected", 20, "controller connected")
            settings = fleet.settings(4)
            for agent in fleet.start(settings):  # each receiver's session (and subscriptions) now exists
                fleet.stop_one(agent.rid)
            rids = [s.receiver_id for s in settings]
            wait_for(lambda: all(api.get(f"/api/v1/receivers/{r}").json()["availability"] == "stopped"
                                 for r in rids), 10, "every receiver stopped")

            # Three volume changes for each offline receiver: the broker queues them in their sessions.
            volumes = {rid: [11 + i, 22 + i, 33 + i] for i, rid in enumerate(rids)}
            sent: list[str] = []
            bridge = client.app.state.bridge  # type: ignore[attr-defined]
            for rid, vs in volumes.items():
                for v in vs:
                    command = SetVolume.new(Target.receiver(rid), 600, volume=v)
                    client.portal.call(functools.partial(bridge.send, command, "test"))  # type: ignore[union-attr]
                    sent.append(str(command.command_id))
            acked_by_broker = time.time()  # send() returns on the broker's PUBACK
            wait_for(lambda: len(records(tb, sent)) == len(sent), 10, "the controller recorded every command")
            # Positive signal that the queue is on disk: a save of Mosquitto's database after the last PUBACK
            # (autosave_interval, controller/broker/files.py). Killed any earlier, the last second is lost.
            db = tb.broker.directory / "mosquitto.db"
            wait_for(lambda: db.exists() and db.stat().st_mtime > acked_by_broker, 10, "the broker saved its queue")

            kill_and_restart_broker(tb)
            wait_for(lambda: api.get("/healthz").json()["mqtt"] == "connected", 30, "controller reconnected")
            agents = fleet.start(settings)  # the same receivers, state and sessions: the queue comes down
            by_rid = {a.rid: a for a in agents}
            wait_for(lambda: all(by_rid[r].hardware.volume_changes == volumes[r] for r in rids), 30,  # type: ignore[attr-defined]
                     "every queued volume applied")
            wait_for(lambda: all(r.outcome for r in records(tb, sent).values()), 15, "every ack stored")
            # Counted on both sides: each receiver applied its three, once each and in order; the controller
            # holds an 'applied' answer for every command it sent.
            assert {r: by_rid[r].hardware.volume_changes for r in rids} == volumes  # type: ignore[attr-defined]
            assert [records(tb, sent)[c].outcome for c in sent] == ["applied"] * len(sent)
    finally:
        fleet.close()


def test_cut_between_publish_and_puback_plays_once_and_counts_once(
        fleet: FleetThread, live: LiveController, tmp_path: Path) -> None:
    bulletin = upload(live, make(tmp_path / "b.wav", seconds=3), "Bản tin")
    proxy = LinkProxy("127.0.0.1", fleet.testbed.broker.port, mqtt=True)
    port = fleet.run(proxy.start())
    agent = start_agent(fleet, live, mqtt_url=f"mqtt://127.0.0.1:{port}")
    connections = agent.link.connections
    fleet.loop.call_soon_threadsafe(proxy.lose_puback, "/cmd/play")
    r = live.http.post(f"/api/v1/receivers/{agent.rid}/play", json={"bulletin_id": bulletin["id"]})
    assert r.status_code == 202, r.text
    command_id = r.json()["command_id"]
    wait_for(lambda: [e for e, _ in events(live, agent.rid)] == ["started", "finished"], 40, "played")
    wait_for(lambda: records(fleet.testbed, [command_id]).get(command_id, CommandRecord.model_construct()).outcome
             == "done", 15, "the controller has the play's outcome")
    # On the wire: the play went down twice, the second time flagged DUP after the agent's PUBACK was lost
    # and the link cut.
    plays_down = [dup for topic, dup in proxy.published if topic.endswith("/cmd/play")]
    assert proxy.pubacks_lost == 1 and plays_down == [False, True]
    assert agent.link.connections > connections
    # Played once, counted once: one recording on the loudspeaker, one start and one finish stored.
    [played] = sink(agent).played
    assert played.completed
    assert [e for e, _ in events(live, agent.rid)] == ["started", "finished"]
    fleet.run(proxy.close())


def test_killed_agent_is_offline_by_its_will_alone(testbed: Testbed, fleet: FleetThread) -> None:
    """The controller's own silence rule is off: only the broker's last will can say the receiver is gone."""
    from controller.config import LivenessSettings
    from devrig.ports import free_port
    from tests.e2e.test_faults import AgentProcess

    keepalive = 4
    testbed.settings = testbed.settings.model_copy(update={"liveness": LivenessSettings(silence_rule=False)})
    live = LiveController(testbed, free_port())
    agent = AgentProcess(fleet, live, live.url, keepalive_s=keepalive)
    rid = agent.settings.receiver_id
    try:
        agent.start()
        agent.power_cut()  # SIGKILL: no 'stopped', no DISCONNECT; the broker publishes the will
        killed = time.monotonic()
        wait_for(lambda: live.http.get(f"/api/v1/receivers/{rid}").json()["availability"] == "offline",
                 3 * keepalive, "offline after the kill")
        elapsed = time.monotonic() - killed
        print(f"offline seen {elapsed:.2f} s after the agent was killed (keepalive {keepalive} s)")
        assert elapsed <= 1.5 * keepalive + 1.0  # + a status flush and a poll of the API on a busy machine
    finally:
        agent.stop()
        live.close()


def test_agent_killed_in_an_outage_delivers_every_event_once(fleet: FleetThread, live: LiveController,
                                                             tmp_path: Path) -> None:
    """Three plays end while the link is black-holed: their events wait in the outbox. The agent is killed
    there (a power cut), comes back on the same disk, and delivers: the controller stores exactly the events
    the agent appended — every sequence number it handed out, once."""
    import sqlite3

    from tests.e2e.test_faults import AgentProcess
    from tests.e2e.test_playback import plays

    bulletin = upload(live, make(tmp_path / "b.wav", seconds=1.5), "Bản tin ngắn")
    proxy = LinkProxy("127.0.0.1", fleet.testbed.broker.port)
    port = fleet.run(proxy.start())
    agent = AgentProcess(fleet, live, live.url, mqtt_url=f"mqtt://127.0.0.1:{port}", keepalive_s=30)
    rid = agent.settings.receiver_id
    try:
        agent.start()
        for _ in range(3):
            r = live.http.post(f"/api/v1/receivers/{rid}/play", json={"bulletin_id": bulletin["id"]})
            assert r.status_code == 202, r.text
        wait_for(lambda: [p["event"] for p in plays(live, rid)][:1] == ["started"], 20, "the first play started")
        fleet.loop.call_soon_threadsafe(proxy.blackhole)
        # The player does not wait on acks or state the silent link cannot carry (it did: 10 s each).
        wait_for(lambda: sum(p["completed"] for p in agent.played()) == 3, 20, "all three played in the outage")
        stored_before = len(plays(live, rid))
        agent.power_cut()
        fleet.loop.call_soon_threadsafe(proxy.restore)
        agent.start()  # same disk, same outbox
        outbox = sqlite3.connect(agent.settings.state_dir / STATE_DB)  # the outbox: a table of this one
        try:
            def appended() -> int:
                row = outbox.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
                return int(row[0]) if row else 0

            wait_for(lambda: len(plays(live, rid)) >= appended() >= 6, 30, "every event delivered")
            stored = plays(live, rid)
            assert sorted(p["seq"] for p in stored) == list(range(1, appended() + 1))  # each number once
            assert len({p["event_id"] for p in stored}) == len(stored)
            assert stored_before < len(stored)  # some really waited in the outbox through the kill
            kinds = [p["event"] for p in sorted(stored, key=lambda p: p["seq"])]
            assert kinds[:6] == ["started", "finished"] * 3
        finally:
            outbox.close()
    finally:
        agent.stop()
        fleet.run(proxy.close())
