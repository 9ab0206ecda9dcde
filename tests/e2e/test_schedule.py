"""Programmes end to end: the controller compiles each receiver's plan and tells it; the real agent pulls
it, keeps it, fetches the audio ahead and plays at the plan's times by its own clock — with its link cut
too; an edit just before the start reaches online receivers; reports agree with the proof of play."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
from typing import Any

import pytest

from firmware_sim.netproxy import LinkProxy
from firmware_sim.sink import RecordingSink, decode_pcm
from receivers.agent import Agent
from schedules import TZ
from tests.conftest import FleetThread, LiveController, wait_for
from tests.e2e.test_playback import plays

pytestmark = pytest.mark.integration


def announce(live: LiveController, text: str) -> dict[str, Any]:
    r = live.http.post("/api/v1/announcements", json={"text": text, "engine": "offline"})
    assert r.status_code == 201, r.text
    return dict(r.json())


def pcm_sha(live: LiveController, sha: str) -> str:
    path = live.testbed.settings.media_dir / sha[:2] / sha[2:4] / f"{sha}.mp3"
    return hashlib.sha256(asyncio.run(decode_pcm(path))).hexdigest()


def programme(live: LiveController, title: str, items: list[dict[str, Any]], receivers: list[str],
              start: dt.datetime) -> dict[str, Any]:
    r = live.http.post("/api/v1/programmes", json={"title": title, "items": items, "start": start.isoformat(),
                                                   "targets": {"receivers": receivers}})
    assert r.status_code == 201, r.text
    return dict(r.json())


def soon(seconds: float) -> dt.datetime:
    return (dt.datetime.now(TZ) + dt.timedelta(seconds=seconds)).replace(microsecond=0)


def played(agent: Agent) -> list[Any]:
    assert isinstance(agent.sink, RecordingSink)
    return list(agent.sink.played)


def ready(agent: Agent, count: int = 1) -> bool:
    """The agent holds its plan's items, their audio already on its disk."""
    return sum(1 for i in agent.player.items.values() if i.ready and i.cmd.start_at) >= count


def overrides(live: LiveController, **more: Any) -> dict[str, Any]:
    return {"controller_url": live.url, "amp_warmup_s": 0.2, "amp_idle_off_s": 2.0, **more}


def test_a_receiver_cut_off_before_the_start_plays_on_time_and_reports_later(fleet: FleetThread,
                                                                             live: LiveController) -> None:
    broker = LinkProxy("127.0.0.1", fleet.testbed.broker.port)
    web = LinkProxy("127.0.0.1", int(live.url.rsplit(":", 1)[1]))
    mqtt_port, http_port = fleet.run(broker.start()), fleet.run(web.start())
    [s] = fleet.settings(1, **overrides(live, controller_url=f"http://127.0.0.1:{http_port}", keepalive_s=4))
    [agent] = fleet.start([s.model_copy(update={"mqtt_url": f"mqtt://127.0.0.1:{mqtt_port}"})])
    wait_for(lambda: live.http.get(f"/api/v1/receivers/{agent.rid}").json()["availability"] == "online", 10, "online")
    bulletin = announce(live, "Bản tin sáng: lịch tiêm chủng tại trạm y tế xã.")
    start = soon(12)
    programme(live, "Bản tin sáng", [{"announcement_id": bulletin["id"]}], [agent.rid], start)
    wait_for(lambda: ready(agent), 10, "plan and audio on the receiver")
    for proxy in (broker, web):
        fleet.loop.call_soon_threadsafe(proxy.blackhole)
    wait_for(lambda: live.http.get(f"/api/v1/receivers/{agent.rid}").json()["availability"] == "offline", 10,
             "the controller sees the receiver gone")
    wait_for(lambda: played(agent) and played(agent)[0].stopped, 30, "played with the link down")
    [heard] = played(agent)
    assert heard.completed and heard.pcm_sha256 == pcm_sha(live, bulletin["sha256"])
    assert abs(heard.started - start.timestamp()) < 0.25, heard.started - start.timestamp()
    assert plays(live, agent.rid) == []  # no proof yet: the link is down
    for proxy in (broker, web):
        fleet.loop.call_soon_threadsafe(proxy.restore)
    wait_for(lambda: [e["event"] for e in plays(live, agent.rid)] == ["started", "finished"], 30, "proof arrives")
    started = plays(live, agent.rid)[0]
    assert abs((dt.datetime.fromisoformat(started["at"]) - start).total_seconds()) < 0.25
    for proxy in (broker, web):
        fleet.run(proxy.close())


def test_an_edit_just_before_the_start_reaches_the_online_receivers(fleet: FleetThread,
                                                                    live: LiveController) -> None:
    agents = fleet.start(fleet.settings(5, **overrides(live)))
    old = announce(live, "Thông báo cũ về lịch họp.")
    new = announce(live, "Thông báo mới: cuộc họp chuyển sang chiều thứ bảy.")
    start = soon(15)
    p = programme(live, "Thông báo họp", [{"announcement_id": old["id"]}], [a.rid for a in agents], start)
    wait_for(lambda: all(ready(a) for a in agents), 10, "every receiver ready with the old item")
    wait_for(lambda: dt.datetime.now(TZ) > start - dt.timedelta(seconds=3), 15, "a moment before the start")
    r = live.http.patch(f"/api/v1/programmes/{p['id']}", json={"items": [{"announcement_id": new["id"]}]})
    assert r.status_code == 200, r.text
    wait_for(lambda: all(played(a) and played(a)[-1].stopped for a in agents), 30, "played")
    expected = pcm_sha(live, new["sha256"])
    for a in agents:
        [heard] = played(a)
        assert heard.pcm_sha256 == expected, f"{a.rid} played the old item"
        assert abs(heard.started - start.timestamp()) < 0.25


def test_the_report_matches_the_proof_of_play_of_fifty_receivers(fleet: FleetThread, live: LiveController) -> None:
    settings = fleet.settings(50, **overrides(live))
    agents = fleet.start(settings)
    rids = [s.receiver_id for s in settings]
    off = rids[-1]
    fleet.stop_one(off)  # this one is switched off all day
    morning = announce(live, "Bản tin buổi sáng.")
    notice = announce(live, "Thông báo thu thuế.")
    t0 = soon(12)
    p1 = programme(live, "Bản tin sáng", [{"announcement_id": morning["id"]}], rids, t0)
    p2 = programme(live, "Thông báo", [{"announcement_id": notice["id"]}, {"announcement_id": morning["id"]}],
                   rids[:25], t0 + dt.timedelta(seconds=10))
    on = [a for a in agents if a.rid != off]
    wait_for(lambda: all(len([p for p in played(a) if p.stopped]) == (3 if a.rid in rids[:25] else 1) for a in on),
             60, "the day's programmes played")
    finished = 49 + 2 * 25
    wait_for(lambda: live.http.get("/api/v1/plays", params={"event": "finished", "limit": 1000,
                                                            "from": t0.isoformat()}).json()["count"] == finished,
             15, "every proof of play in")
    window = {"from": (t0 - dt.timedelta(minutes=5)).isoformat(), "to": (t0 + dt.timedelta(minutes=5)).isoformat()}
    report = live.http.get("/api/v1/reports/broadcast", params=window).json()
    rows: dict[int, dict[str, float]] = {}  # the report has one row per commune and programme: add them up
    for row in report["programmes"]:
        total = rows.setdefault(row["programme_id"], {"planned_receiver_minutes": 0.0, "played_receiver_minutes": 0.0,
                                                      "occurrences": 0})
        for key in total:
            total[key] = max(total[key], row[key]) if key == "occurrences" else total[key] + row[key]
    d1, d2 = morning["duration_s"] / 60, notice["duration_s"] / 60
    assert rows[p1["id"]]["planned_receiver_minutes"] == pytest.approx(50 * d1, abs=0.005)
    assert rows[p1["id"]]["played_receiver_minutes"] == pytest.approx(49 * d1, abs=0.005)
    assert rows[p2["id"]]["planned_receiver_minutes"] == pytest.approx(25 * (d1 + d2), abs=0.005)
    assert rows[p2["id"]]["played_receiver_minutes"] == pytest.approx(25 * (d1 + d2), abs=0.005)  # all 25 on
    assert rows[p1["id"]]["occurrences"] == 1
    # The same minutes, counted from the proof of play itself.
    proof = live.http.get("/api/v1/plays", params={"event": "finished", "limit": 1000, "from": t0.isoformat()}).json()
    lengths = {morning["sha256"]: d1, notice["sha256"]: d2}
    assert sum(lengths[p["media_sha256"]] for p in proof["data"]) == pytest.approx(
        sum(r["played_receiver_minutes"] for r in report["programmes"]), abs=0.01)  # rows are rounded
    missed = {(m["receiver_id"], m["programme_id"], m["outcome"]) for m in report["missed"]}
    assert missed == {(off, p1["id"], "no report")}
    assert sum(c["receivers_missing_items"] for c in report["communes"]) == 1
    table = live.http.get("/api/v1/reports/broadcast", params={**window, "format": "csv"})
    assert table.headers["content-type"].startswith("text/csv") and table.text.startswith("\ufeff")
    parsed = list(csv.DictReader(io.StringIO(table.text.lstrip("\ufeff"))))
    assert {int(r["programme_id"]) for r in parsed} == {p1["id"], p2["id"]}
