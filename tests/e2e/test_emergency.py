"""Emergencies end to end: the real controller (HTTP + MQTT), a real Mosquitto, real agents, simulated
loudspeakers that record exactly what they played."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devrig.testbed import Testbed
from firmware_sim.sink import RecordingSink, decode_pcm
from receivers.agent import Agent, AgentSettings
from receivers.agent import agent as agent_module
from tests.conftest import FleetThread, LiveController, _testbed, wait_for
from tests.e2e.test_playback import plays, upload
from tests.samples import make

pytestmark = pytest.mark.integration
TEXT = "Cảnh báo lũ quét. Bà con khẩn trương di chuyển đến nơi an toàn."
THREE_COMMUNES = """
[district]
code = "bac-tra-my"
name = "Huyện Bắc Trà My"

[[communes]]
code = "tra-kot"
name = "Xã Trà Kót"
villages = [{ code = "thon-1", name = "Thôn 1", clusters = 34 }, { code = "thon-2", name = "Thôn 2", clusters = 34 }]

[[communes]]
code = "tra-nu"
name = "Xã Trà Nú"
villages = [{ code = "thon-1", name = "Thôn 1", clusters = 34 }, { code = "thon-2", name = "Thôn 2", clusters = 33 }]

[[communes]]
code = "tra-son"
name = "Xã Trà Sơn"
villages = [{ code = "thon-1", name = "Thôn 1", clusters = 33 }, { code = "thon-2", name = "Thôn 2", clusters = 32 }]
"""


def agent_overrides(live: LiveController) -> dict[str, Any]:
    return {"controller_url": live.url, "amp_warmup_s": 0.2, "amp_idle_off_s": 5.0}


def emergency(live: LiveController, eid: str) -> dict[str, Any]:
    return dict(live.http.get(f"/api/v1/emergencies/{eid}").json())


def em_plays(agent: Agent, eid: str) -> list[Any]:
    sink = agent.sink
    assert isinstance(sink, RecordingSink)
    return [p for p in sink.played if p.item_id == f"em-{eid}"]


def media_pcm_sha(live: LiveController, url: str) -> str:
    sha = url.rsplit("/", 1)[1].removesuffix(".mp3")
    path = live.testbed.settings.media_dir / sha[:2] / sha[2:4] / f"{sha}.mp3"
    return hashlib.sha256(asyncio.run(decode_pcm(path))).hexdigest()


def reached(live: LiveController, eid: str, statuses: tuple[str, ...]) -> bool:
    totals = emergency(live, eid)["totals"]
    return sum(totals[s] for s in statuses) == totals["targeted"]


class TestTwoHundredReceivers:
    @pytest.fixture
    def testbed(self, data_dir: Path) -> Iterator[Testbed]:
        seed = data_dir / "three-communes.toml"
        seed.write_text(THREE_COMMUNES, encoding="utf-8")
        tb = _testbed(data_dir, "mosquitto", seed_file=seed, status_flush_s=0.1)
        yield tb
        tb.close()

    def test_one_commune_hears_it_all_of_it_and_nobody_else(self, fleet: FleetThread, live: LiveController,
                                                           tmp_path: Path) -> None:
        agents = {a.rid: a for a in fleet.start(fleet.settings(None, **agent_overrides(live)), timeout=120)}
        assert len(agents) == 200
        wait_for(lambda: live.http.get("/api/v1/receivers", params={"status": "online", "limit": 1}).json()["count"]
                 == 200, 30, "all 200 online")
        # A normal programme is playing on three receivers of Trà Kót and one of Trà Nú.
        music = upload(live, make(tmp_path / "music.wav", seconds=20), "Dân ca")
        busy = ["tra-kot-thon-1-1", "tra-kot-thon-1-2", "tra-kot-thon-2-1", "tra-nu-thon-1-1"]
        for rid in busy:
            r = live.http.post(f"/api/v1/receivers/{rid}/play", json={"bulletin_id": music["id"]})
            assert r.status_code == 202, r.text
        wait_for(lambda: all([e["event"] for e in plays(live, rid)] == ["started"] for rid in busy), 15,
                 "the normal programme playing")

        r = live.http.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-kot"]},
                                                        "repeat": 1})
        assert r.status_code == 202, r.text
        eid, targeted = r.json()["id"], r.json()["receivers"]
        assert sorted(targeted) == sorted(rid for rid in agents if rid.startswith("tra-kot-")) and len(targeted) == 68
        wait_for(lambda: reached(live, eid, ("playing", "done")), 30, "every targeted receiver playing")
        wait_for(lambda: reached(live, eid, ("done",)), 60, "every targeted receiver done")
        got = emergency(live, eid)
        assert got["totals"]["done"] == 68 and {x["status"] for x in got["receivers"]} == {"done"}

        expected = media_pcm_sha(live, got["media_url"])
        for rid, agent in agents.items():
            heard = em_plays(agent, eid)
            if rid in targeted:
                assert len(heard) == 1 and heard[0].completed and heard[0].pcm_sha256 == expected, rid
                assert heard[0].volume == 100 and heard[0].amplifier_on
            else:
                assert heard == [], f"{rid} is outside Trà Kót and played the emergency"
        for rid in busy[:3]:
            cut = [e for e in plays(live, rid) if e["event"] == "cut"]
            assert cut and "pre-empted by emergency" in cut[0]["reason"], rid
        assert [e["event"] for e in plays(live, busy[3])][:1] == ["started"]
        assert not any(e["event"] == "cut" for e in plays(live, busy[3]))


def commune_settings(fleet: FleetThread, live: LiveController, code: str) -> list[AgentSettings]:
    return [s for s in fleet.settings(None, **agent_overrides(live)) if s.commune == code]


def test_progress_streams_and_cancel_stops_everywhere(fleet: FleetThread, live: LiveController,
                                                      tmp_path: Path) -> None:
    agents = fleet.start(commune_settings(fleet, live, "tra-bui"))
    wait_for(lambda: live.http.get("/api/v1/receivers", params={"commune": "tra-bui", "status": "online"}
                                   ).json()["count"] == len(agents), 15, "tra-bui online")
    long_warning = upload(live, make(tmp_path / "warning.wav", seconds=30), "Cảnh báo sạt lở")
    eid = live.http.post("/api/v1/emergencies", json={"bulletin_id": long_warning["id"],
                                                      "targets": {"communes": ["tra-bui"]}}).json()["id"]
    events: list[tuple[str, Any]] = []

    def listen() -> None:
        with httpx.Client(base_url=live.url, headers=live.http.headers, timeout=60) as c, \
                c.stream("GET", f"/api/v1/emergencies/{eid}/events") as stream:
            kind = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    events.append((kind or "", json.loads(line[6:])))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    wait_for(lambda: reached(live, eid, ("playing",)), 20, "all playing")
    r = live.http.post(f"/api/v1/emergencies/{eid}/cancel")
    assert r.status_code == 200
    wait_for(lambda: all(em_plays(a, eid) for a in agents), 5, "every loudspeaker stopped")
    assert all(not p.completed and p.to_s < 15 for a in agents for p in em_plays(a, eid))
    listener.join(20)
    assert not listener.is_alive(), "the event stream did not end after the cancel"
    kinds = [k for k, _ in events]
    assert kinds[0] == "snapshot" and kinds[-1] == "end"
    seen = {(c["receiver"], c["status"]) for k, d in events if k == "progress" for c in d["changes"]}
    assert {rid for rid, s in seen if s == "playing"} == {a.rid for a in agents}
    assert {rid for rid, s in seen if s == "cancelled"} == {a.rid for a in agents}
    assert emergency(live, eid)["state"] == "cancelled"


def test_offline_receiver_plays_on_reconnect_but_never_after_expiry(fleet: FleetThread, live: LiveController) -> None:
    settings = commune_settings(fleet, live, "tra-son")
    agents = fleet.start(settings)
    away = settings[0]
    wait_for(lambda: live.http.get("/api/v1/receivers", params={"commune": "tra-son", "status": "online"}
                                   ).json()["count"] == len(agents), 15, "tra-son online")
    fleet.stop_one(away.receiver_id)
    wait_for(lambda: live.http.get(f"/api/v1/receivers/{away.receiver_id}").json()["availability"] != "online", 10,
             "the receiver gone")
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)).isoformat()
    expired = live.http.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-son"]},
                                                          "repeat": 1, "expires_at": soon}).json()["id"]
    wait_for(lambda: emergency(live, expired)["totals"]["done"] == len(agents) - 1, 30, "the others done")
    assert {x["id"]: x["status"] for x in emergency(live, expired)["receivers"]}[away.receiver_id] == "offline"
    wait_for(lambda: dt.datetime.now(dt.UTC) > dt.datetime.fromisoformat(soon) + dt.timedelta(seconds=1), 10,
             "the emergency expired")
    [back] = fleet.start([away])
    wait_for(lambda: {x["id"]: x for x in emergency(live, expired)["receivers"]}[away.receiver_id]["status"]
             == "failed", 10, "the expired emergency refused by the receiver that came back")
    assert "expired" in {x["id"]: x for x in emergency(live, expired)["receivers"]}[away.receiver_id]["reason"]
    assert em_plays(back, expired) == []

    fleet.stop_one(away.receiver_id)
    wait_for(lambda: live.http.get(f"/api/v1/receivers/{away.receiver_id}").json()["availability"] != "online", 10,
             "the receiver gone again")
    later = live.http.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-son"]},
                                                        "repeat": 1}).json()
    [again] = fleet.start([away])
    wait_for(lambda: {x["id"]: x["status"] for x in emergency(live, later["id"])["receivers"]}[away.receiver_id]
             == "done", 30, "the late receiver played it")
    [heard] = em_plays(again, later["id"])
    assert heard.completed and heard.pcm_sha256 == media_pcm_sha(live, later["media_url"])


def test_an_emergency_played_and_cancelled_costs_each_receiver_two_reports(fleet: FleetThread,
                                                                           live: LiveController) -> None:
    """Report protocol 2 (issue 14): on the normal path each receiver sends the controller two messages for an
    emergency that plays and is cancelled — `started` (it plays) and `cut` (it stopped, answering the stop)
    — where protocol 1 sent about nine (acks of each step, the stop's ack, states). Counted on the broker by
    a second client with the controller's rights, from the trigger until every end is logged and the state
    has settled; the amplifier switching off later is not part of it (`amp_idle_off_s` is long here)."""
    import aiomqtt

    from receivers.protocol import Topics

    settings = [s.model_copy(update={"amp_idle_off_s": 600.0}) for s in commune_settings(fleet, live, "tra-bui")]
    agents = fleet.start(settings)
    rids = {a.rid for a in agents}
    wait_for(lambda: live.http.get("/api/v1/receivers", params={"commune": "tra-bui", "status": "online"}
                                   ).json()["count"] == len(agents), 15, "tra-bui online")
    tb = live.testbed
    topics = Topics(tb.settings.mqtt_base)
    user, password = tb.tools
    heard: list[tuple[str, str]] = []
    ready, stop = threading.Event(), threading.Event()

    async def listen() -> None:
        assert tb.settings.mqtt.host is not None
        async with aiomqtt.Client(tb.settings.mqtt.host, tb.settings.mqtt.port, identifier=user, username=user,
                                  password=password) as client:
            await client.subscribe(f"{tb.settings.mqtt_base}/receivers/+/+", qos=1)
            ready.set()
            async with asyncio.timeout(120):
                async for message in client.messages:
                    info = topics.parse(message.topic.value)
                    # Telemetry is the heartbeat, sent on its own clock whatever plays.
                    if info is not None and info.ident in rids and not message.retain and info.leaf != "telemetry":
                        heard.append((info.ident, info.leaf))
                    if stop.is_set():
                        return

    listener = threading.Thread(target=lambda: asyncio.run(listen()), daemon=True)
    listener.start()
    assert ready.wait(10)
    time.sleep(1.0)  # the connect burst (availability, state) is over: count only what the emergency causes
    heard.clear()
    eid = live.http.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-bui"]},
                                                      "repeat": 3}).json()["id"]
    wait_for(lambda: reached(live, eid, ("playing",)), 20, "all playing")
    assert live.http.post(f"/api/v1/emergencies/{eid}/cancel").status_code == 200
    wait_for(lambda: all(len([e for e in plays(live, rid) if e["item_id"] == f"em-{eid}"]) == 2 for rid in rids),
             15, "every receiver's start and end logged")
    time.sleep(agent_module.STATE_SETTLE_S + 1.0)  # a state report would come by then
    stop.set()
    live.http.get("/healthz")
    listener.join(5)
    per = {rid: [leaf for r, leaf in heard if r == rid] for rid in rids}
    assert all(sorted(leaves) == ["event", "event"] for leaves in per.values()), per
    statuses = {x["status"] for x in emergency(live, eid)["receivers"]}
    assert statuses == {"cancelled"}
