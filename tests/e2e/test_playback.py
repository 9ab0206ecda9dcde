"""The agent plays: real controller (HTTP media + MQTT), real Mosquitto, real agent code, and a simulated
loudspeaker that records exactly what it played."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.netproxy import LinkProxy
from firmware_sim.sink import RATE, RecordingSink, decode_pcm
from receivers.agent import Agent
from tests.conftest import FleetThread, LiveController, wait_for
from tests.samples import make

pytestmark = pytest.mark.integration


def upload(live: LiveController, path: Path, title: str) -> dict[str, Any]:
    with path.open("rb") as f:
        r = live.http.post("/api/v1/bulletins", data={"title": title, "trim_silence": "false"},
                           files={"file": (path.name, f)})
    assert r.status_code == 201, r.text
    return dict(r.json())


def start_agent(fleet: FleetThread, live: LiveController, **overrides: Any) -> Agent:
    url = overrides.pop("mqtt_url", None)
    overrides = {"controller_url": live.url, "amp_warmup_s": 0.2, "amp_idle_off_s": 1.0, **overrides}
    [s] = fleet.settings(1, **overrides)
    [agent] = fleet.start([s.model_copy(update={"mqtt_url": url})] if url else [s])
    wait_for(lambda: live.http.get(f"/api/v1/receivers/{agent.rid}").json()["availability"] == "online", 10,
             "agent online")
    return agent


def sink(agent: Agent) -> RecordingSink:
    assert isinstance(agent.sink, RecordingSink)
    return agent.sink


def plays(live: LiveController, rid: str) -> list[dict[str, Any]]:
    return list(live.http.get(f"/api/v1/receivers/{rid}/plays", params={"limit": 100}).json()["data"])


def events(live: LiveController, rid: str) -> list[tuple[str, str]]:
    return [(p["event"], p["item_id"].split("-")[0] + "-" + p["item_id"].split("-")[1]) for p in plays(live, rid)]


def source_pcm(fleet: FleetThread, live: LiveController, sha: str) -> bytes:
    path = fleet.testbed.settings.media_dir / sha[:2] / sha[2:4] / f"{sha}.mp3"
    return asyncio.run(decode_pcm(path))


def test_played_audio_is_bit_identical_and_proven(fleet: FleetThread, live: LiveController, tmp_path: Path) -> None:
    bulletin = upload(live, make(tmp_path / "b.wav", seconds=3), "Bản tin")
    agent = start_agent(fleet, live)
    r = live.http.post(f"/api/v1/receivers/{agent.rid}/play", json={"bulletin_id": bulletin["id"], "volume": 80})
    assert r.status_code == 202 and r.json()["outcome"] == "received", r.text
    wait_for(lambda: [e for e, _ in events(live, agent.rid)] == ["started", "finished"], 15, "started and finished")
    [played] = sink(agent).played
    pcm = source_pcm(fleet, live, bulletin["sha256"])
    assert played.completed and played.pcm_sha256 == hashlib.sha256(pcm).hexdigest()
    assert played.volume == 80 and played.amplifier_on
    assert agent.hardware.volume() == 70  # the item's volume was for the item only
    started, finished = plays(live, agent.rid)
    assert started["media_sha256"] == bulletin["sha256"] and started["volume"] == 80
    took = (dt.datetime.fromisoformat(finished["at"]) - dt.datetime.fromisoformat(started["at"])).total_seconds()
    assert abs(took - len(pcm) / 2 / RATE) < 0.5
    # The amplifier goes off once the receiver has been idle for amp_idle_off_s.
    wait_for(lambda: not agent.hardware.amplifier_on(), 5, "amplifier off when idle")
    assert fleet.testbed.settings.media_dir.exists()
    # Each step was acknowledged, in order.
    assert agent.fetcher.bytes_fetched == bulletin_size(live, bulletin)


def bulletin_size(live: LiveController, bulletin: dict[str, Any]) -> int:
    return len(live.http.get(bulletin["media_url"]).content)


def test_emergency_preempts_normal_which_resumes(fleet: FleetThread, live: LiveController, tmp_path: Path) -> None:
    normal = upload(live, make(tmp_path / "n.wav", seconds=6), "Chương trình")
    urgent = upload(live, make(tmp_path / "e.wav", seconds=2, source="tone"), "Khẩn cấp")
    agent = start_agent(fleet, live)
    rid = agent.rid
    assert live.http.post(f"/api/v1/receivers/{rid}/play",
                          json={"bulletin_id": normal["id"], "resume": True}).json()["outcome"] == "received"
    wait_for(lambda: agent.player.current is not None and agent.player.current.started_monotonic, 10, "normal playing")
    time.sleep(2.0)
    assert live.http.post(f"/api/v1/receivers/{rid}/play",
                          json={"bulletin_id": urgent["id"], "priority": "emergency"}).json()["outcome"] == "received"
    wait_for(lambda: len([e for e, _ in events(live, rid) if e == "finished"]) == 2, 20, "both finished")

    # A one-off play at emergency priority is named `em-…`, so stopping it needs the emergency right.
    assert events(live, rid) == [("started", f"bulletin-{normal['id']}"), ("cut", f"bulletin-{normal['id']}"),
                                 ("started", "em-bulletin"), ("finished", "em-bulletin"),
                                 ("started", f"bulletin-{normal['id']}"), ("finished", f"bulletin-{normal['id']}")]
    cut = plays(live, rid)[1]
    assert 1.5 < cut["position_s"] < 3.5 and "pre-empted by emergency" in cut["reason"]
    first, emergency, rest = sink(agent).played
    assert not first.completed and emergency.completed and rest.completed
    assert abs(first.to_s - cut["position_s"]) < 0.3 and abs(rest.from_s - cut["position_s"]) < 0.01
    # What the loudspeaker played, pieced together, is the whole programme and the whole emergency.
    pcm = source_pcm(fleet, live, normal["sha256"])
    assert first.pcm_sha256 == hashlib.sha256(pcm[: round(first.to_s * RATE) * 2]).hexdigest()
    assert rest.pcm_sha256 == hashlib.sha256(pcm[round(rest.from_s * RATE) * 2:]).hexdigest()
    assert emergency.pcm_sha256 == hashlib.sha256(source_pcm(fleet, live, urgent["sha256"])).hexdigest()


def test_equal_class_waits_its_turn_and_stop_cuts(fleet: FleetThread, live: LiveController, tmp_path: Path) -> None:
    a = upload(live, make(tmp_path / "a.wav", seconds=2), "A")
    b = upload(live, make(tmp_path / "b.wav", seconds=2, gain_db=-22), "B")
    c = upload(live, make(tmp_path / "c.wav", seconds=8, gain_db=-24), "C")
    agent = start_agent(fleet, live)
    rid = agent.rid
    for item in (a, b):
        live.http.post(f"/api/v1/receivers/{rid}/play", json={"bulletin_id": item["id"]})
    wait_for(lambda: [e for e, _ in events(live, rid)].count("finished") == 2, 15, "both played")
    assert [p.item_id.split("-")[1] for p in sink(agent).played] == [str(a["id"]), str(b["id"])]
    assert all(p.completed for p in sink(agent).played)

    live.http.post(f"/api/v1/receivers/{rid}/play", json={"bulletin_id": c["id"]})
    wait_for(lambda: agent.player.current is not None and agent.player.current.started_monotonic, 10, "c playing")
    time.sleep(1)
    stopped = live.http.post(f"/api/v1/receivers/{rid}/stop", json={}).json()
    assert stopped["outcome"] == "applied"
    wait_for(lambda: events(live, rid)[-1][0] == "cut", 10, "cut recorded")
    assert "stopped by the controller" in plays(live, rid)[-1]["reason"]
    assert not sink(agent).played[-1].completed


def test_link_down_for_the_whole_item_events_arrive_later(fleet: FleetThread, live: LiveController,
                                                           tmp_path: Path) -> None:
    bulletin = upload(live, make(tmp_path / "b.wav", seconds=2), "Bản tin sáng")
    proxy = LinkProxy("127.0.0.1", fleet.testbed.broker.port)
    port = fleet.run(proxy.start())
    agent = start_agent(fleet, live, mqtt_url=f"mqtt://127.0.0.1:{port}", keepalive_s=30)
    rid = agent.rid
    start = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    r = live.http.post(f"/api/v1/receivers/{rid}/play", json={"bulletin_id": bulletin["id"],
                                                               "start_at": start.isoformat()})
    assert r.json()["outcome"] == "received"
    wait_for(lambda: agent.player.items and all(i.ready for i in agent.player.items.values()), 10, "audio fetched")
    fleet.loop.call_soon_threadsafe(proxy.cut)
    fleet.loop.call_soon_threadsafe(proxy.blackhole)  # and nothing gets through until restored
    wait_for(lambda: len(sink(agent).played) == 1 and sink(agent).played[0].completed, 15, "played while cut off")
    assert plays(live, rid) == []  # the controller has heard nothing yet
    assert len(agent.outbox) == 2
    fleet.loop.call_soon_threadsafe(proxy.restore)
    wait_for(lambda: [e for e, _ in events(live, rid)] == ["started", "finished"], 30, "events after reconnect")
    started = plays(live, rid)[0]
    assert abs((dt.datetime.fromisoformat(started["at"]) - start).total_seconds()) < 1.2  # played on time
    assert len(agent.outbox) == 0
    fleet.run(proxy.close())


def test_a_resent_event_counts_once(fleet: FleetThread, live: LiveController) -> None:
    import uuid

    import aiomqtt

    from receivers.protocol import PlayEvent, Topics

    creds = fleet.testbed.fleet["receivers"][0]
    event = PlayEvent(event_id=uuid.uuid4(), seq=7, event="finished", item_id="bulletin-9-x",
                      at=dt.datetime.now(dt.UTC), position_s=0.0).to_bytes()

    marker = PlayEvent(event_id=uuid.uuid4(), seq=8, event="started", item_id="bulletin-9-y",
                       at=dt.datetime.now(dt.UTC), position_s=0.0).to_bytes()

    async def send_twice() -> None:
        async with aiomqtt.Client("127.0.0.1", fleet.testbed.broker.port, identifier="resender",
                                  username=creds["username"], password=creds["password"]) as c:
            for payload in (event, event, marker):  # twice as after a lost PUBACK, then a marker
                await c.publish(Topics().receiver(creds["receiver_id"], "event"), payload, qos=1)

    fleet.run(send_twice())
    # The marker went after both copies on the same session: once it is stored, both copies were handled.
    wait_for(lambda: any(p["item_id"] == "bulletin-9-y" for p in plays(live, creds["receiver_id"])), 10,
             "the marker stored")
    assert sorted(p["item_id"] for p in plays(live, creds["receiver_id"])) == ["bulletin-9-x", "bulletin-9-y"]


def test_short_audio_travels_inline_and_needs_no_download(fleet: FleetThread, live: LiveController,
                                                          tmp_path: Path) -> None:
    bulletin = upload(live, make(tmp_path / "short.wav", seconds=3), "Ngắn")
    agent = start_agent(fleet, live)
    r = live.http.post(f"/api/v1/receivers/{agent.rid}/play", json={"bulletin_id": bulletin["id"], "inline": True})
    assert r.json()["outcome"] == "received", r.text
    wait_for(lambda: [e for e, _ in events(live, agent.rid)] == ["started", "finished"], 15, "played")
    assert agent.fetcher.bytes_fetched == 0
    [played] = sink(agent).played
    assert played.pcm_sha256 == hashlib.sha256(source_pcm(fleet, live, bulletin["sha256"])).hexdigest()
    long = upload(live, make(tmp_path / "long.wav", seconds=60), "Dài")
    r = live.http.post(f"/api/v1/receivers/{agent.rid}/play", json={"bulletin_id": long["id"], "inline": True})
    assert r.status_code == 422 and "at most 256 KB" in r.json()["detail"]
