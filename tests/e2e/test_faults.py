"""Faults the receivers live with: corrupted downloads, power cuts mid-download, mid-play and mid-write.
A power cut is a SIGKILL of an agent running in its own process, started again on the same disk."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from devrig.ports import stop_child
from firmware_sim.netproxy import LinkProxy
from receivers.agent.outbox import Outbox
from receivers.agent.statedb import FILE_NAME as STATE_DB
from receivers.protocol import PlayEvent
from tests.conftest import FleetThread, LiveController, wait_for
from tests.e2e.test_playback import events, plays, sink, source_pcm, start_agent, upload
from tests.samples import make

pytestmark = pytest.mark.integration


def sha_of_pcm(pcm: bytes) -> str:
    import hashlib

    return hashlib.sha256(pcm).hexdigest()


def test_corrupted_download_never_plays_and_is_fetched_again(fleet: FleetThread, live: LiveController,
                                                              tmp_path: Path) -> None:
    bulletin = upload(live, make(tmp_path / "b.wav", seconds=12), "Bản tin")
    size = len(live.http.get(bulletin["media_url"]).content)
    proxy = LinkProxy("127.0.0.1", int(live.url.rsplit(":", 1)[1]))
    port = fleet.run(proxy.start())
    agent = start_agent(fleet, live, controller_url=f"http://127.0.0.1:{port}")
    wait_for(lambda: agent.plan_keeper.plan is not None, 10, "the agent's own plan pulled first")
    proxy.corrupt(after_bytes=5000, count=3)  # the next HTTP response loses three bytes of its body
    live.http.post(f"/api/v1/receivers/{agent.rid}/play", json={"bulletin_id": bulletin["id"]})
    wait_for(lambda: [e for e, _ in events(live, agent.rid)] == ["started", "finished"], 30, "played")
    [played] = sink(agent).played  # played once, and the right audio
    assert played.completed and played.pcm_sha256 == sha_of_pcm(source_pcm(fleet, live, bulletin["sha256"]))
    assert agent.fetcher.bytes_fetched == 2 * size  # the damaged copy, then a good one
    fleet.run(proxy.close())


class AgentProcess:
    """A simulated receiver in its own process, as on a Pi: it can be killed like a power cut."""

    def __init__(self, fleet: FleetThread, live: LiveController, controller_url: str, *, mqtt_url: str | None = None,
                 **overrides: Any) -> None:
        [s] = fleet.settings(1, controller_url=controller_url, amp_warmup_s=0.1, amp_idle_off_s=1.0, **overrides)
        if mqtt_url is not None:  # e.g. through a LinkProxy
            s = s.model_copy(update={"mqtt_url": mqtt_url})
        self.settings = s
        self.config = s.state_dir.parent / f"{s.receiver_id}.toml"
        self.config.parent.mkdir(parents=True, exist_ok=True)
        values = s.model_dump(mode="json", exclude_none=True)
        self.config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
        self.live = live
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.settings.state_dir.parent / "agent.log").open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "devrig.cli", "sim-agent", "--config", str(self.config)],
                                     stdout=log, stderr=log)
        log.close()
        wait_for(lambda: self.live.http.get(f"/api/v1/receivers/{self.settings.receiver_id}").json()["availability"]
                 == "online", 20, "agent process online")

    def power_cut(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc:
            stop_child(self.proc)

    def played(self) -> list[dict[str, Any]]:
        path = self.settings.state_dir / "played.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.long  # about 35 s here
def test_power_cut_mid_download_resumes_and_plays(fleet: FleetThread, live: LiveController, tmp_path: Path) -> None:
    bulletin = upload(live, make(tmp_path / "b.wav", seconds=20), "Bản tin dài")
    size = len(live.http.get(bulletin["media_url"]).content)
    proxy = LinkProxy("127.0.0.1", int(live.url.rsplit(":", 1)[1]))
    port = fleet.run(proxy.start())
    proxy.slow(size / 4)  # a 4-second download over a poor link
    agent = AgentProcess(fleet, live, f"http://127.0.0.1:{port}")
    try:
        agent.start()
        live.http.post(f"/api/v1/receivers/{agent.settings.receiver_id}/play", json={"bulletin_id": bulletin["id"]})
        part = agent.settings.state_dir / "cache" / f"{bulletin['sha256']}.part"
        wait_for(lambda: part.exists() and part.stat().st_size > size // 4, 10, "download under way")
        agent.power_cut()
        got = part.stat().st_size
        assert 0 < got < size
        # Let the proxy notice the dead connection before counting: what was in flight when the power
        # went is lost either way, and must not be mistaken for the resumed download.
        wait_for(lambda: proxy.open_connections == 0, 10, "the dead download torn down")
        crossed_before = proxy.bytes_down
        proxy.slow(None)
        agent.start()  # same disk
        wait_for(lambda: [e for e, _ in events(live, agent.settings.receiver_id)] == ["started", "finished"], 40,
                 "played after the power cut")
        [played] = agent.played()
        assert played["completed"] and played["pcm_sha256"] == sha_of_pcm(source_pcm(fleet, live, bulletin["sha256"]))
        # Resumed with Range where the card's copy ended, not fetched again from zero.
        assert proxy.bytes_down - crossed_before <= size - got + 2000
    finally:
        agent.stop()
        fleet.run(proxy.close())


def test_power_cut_mid_play_is_logged_as_cut_and_resumed(fleet: FleetThread, live: LiveController,
                                                          tmp_path: Path) -> None:
    bulletin = upload(live, make(tmp_path / "b.wav", seconds=6), "Chương trình")
    agent = AgentProcess(fleet, live, live.url)
    rid = agent.settings.receiver_id
    try:
        agent.start()
        live.http.post(f"/api/v1/receivers/{rid}/play", json={"bulletin_id": bulletin["id"], "resume": True})
        wait_for(lambda: [e for e, _ in events(live, rid)] == ["started"], 15, "playing")
        time.sleep(2.6)
        agent.power_cut()
        agent.start()
        wait_for(lambda: [e for e, _ in events(live, rid)][-1:] == ["finished"], 20, "finished after restart")
        kinds = [e for e, _ in events(live, rid)]
        assert kinds == ["started", "cut", "started", "finished"]
        cut = plays(live, rid)[1]
        assert "power cut" in cut["reason"] and 1.0 <= cut["position_s"] <= 3.0  # saved every 2 s
        resumed = plays(live, rid)[2]
        assert resumed["position_s"] == cut["position_s"]
    finally:
        agent.stop()


WRITER = textwrap.dedent("""
    import sys, uuid, datetime as dt
    from pathlib import Path
    from receivers.agent.outbox import Outbox
    from receivers.protocol import PlayEvent
    box = Outbox(Path(sys.argv[1]))
    while True:
        e = box.append(PlayEvent(event_id=uuid.uuid4(), seq=0, event="started", item_id="x",
                                 at=dt.datetime.now(dt.UTC)))
        print(e.seq, e.event_id, flush=True)
""")


def test_power_cut_mid_write_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Events appended while the power is cut again and again, and drained between cuts as the agent does
    after each PUBACK: every event the writer saw stored comes out of the outbox whole, under the number it
    was given, exactly once, and no number is ever given twice (the drain deletes rows, so a reused row id
    would hand a new event the number of one already delivered)."""
    db = tmp_path / "outbox.sqlite"
    confirmed: dict[int, str] = {}  # seq -> event_id, as the writer saw append() return
    delivered: dict[int, str] = {}  # what the drain took out between power cuts
    for run in range(3):  # three power cuts while events are being written
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        this_run: list[int] = []
        deadline = None
        while deadline is None or time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.endswith("\n"):  # a line cut short by the kill was never confirmed
                number, event_id = line.split()
                this_run.append(int(number))
                confirmed[int(number)] = event_id
            deadline = deadline or time.monotonic() + 0.3 + random.random() * 0.3  # from the first write on
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for line in proc.stdout.read().splitlines(keepends=True):  # printed before the kill, not yet read
            if line.endswith("\n"):
                number, event_id = line.split()
                this_run.append(int(number))
                confirmed[int(number)] = event_id
        proc.stdout.close()
        assert this_run == sorted(this_run) and len(this_run) > 10
        assert min(this_run) > max(delivered, default=0)  # numbers are never reused, even after deletions
        box = Outbox(db)
        rows = box.pending(limit=1_000_000)  # what the agent's drain reads, torn rows included
        for seq, payload in rows:
            event = PlayEvent.model_validate_json(payload)  # an empty or half-written payload fails here
            assert event.seq == seq and seq not in delivered
            delivered[seq] = str(event.event_id)
            if run < 2:
                box.remove(seq)  # delivered: the agent deletes it after the PUBACK
        box.close()
    con = sqlite3.connect(db.with_name(STATE_DB))  # the outbox is a table of the agent's one database
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    # Every confirmed event came out once, with the id it was written with; an event cut mid-write either
    # came out whole (committed, but the kill beat the print) or not at all.
    assert {seq: delivered[seq] for seq in confirmed} == confirmed
    assert len(set(delivered.values())) == len(delivered)
    assert len(delivered) - len(confirmed) <= 3  # at most one unconfirmed but committed event per cut
