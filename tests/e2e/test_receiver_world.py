"""The rest of a receiver's world: a full disk, a wrong clock, and the maintenance commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_sim.clock import OffsetClock
from firmware_sim.disk import DiskSimUnavailable, LimitedDisk
from tests.conftest import REQUIRE_MOSQUITTO, FleetThread, LiveController, wait_for
from tests.e2e.test_playback import events, plays, sink, upload
from tests.samples import make

pytestmark = pytest.mark.integration


def test_disk_full_fails_plainly_and_recovers(fleet: FleetThread, live: LiveController, tmp_path: Path) -> None:
    bulletin = upload(live, make(tmp_path / "b.wav", seconds=20), "Bản tin")
    size = len(live.http.get(bulletin["media_url"]).content)
    [s] = fleet.settings(1, controller_url=live.url, amp_warmup_s=0.1, amp_idle_off_s=1.0)
    try:
        disk = LimitedDisk(s.state_dir.parent / "sd-card", 4 * 1024 * 1024)
        disk.__enter__()
    except DiskSimUnavailable as e:
        if REQUIRE_MOSQUITTO:  # CI runs as root: the simulated SD card must work there
            raise
        pytest.skip(str(e))
    try:
        [agent] = fleet.start([s.model_copy(update={"state_dir": disk.path / "state"})])
        wait_for(lambda: live.http.get(f"/api/v1/receivers/{agent.rid}").json()["availability"] == "online", 10, "on")
        disk.fill(leave_bytes=size // 3 // 4096 * 4096)  # room for the outbox, not for the audio
        r = live.http.post(f"/api/v1/receivers/{agent.rid}/play", json={"bulletin_id": bulletin["id"]})
        assert r.json()["outcome"] == "received"
        wait_for(lambda: [e for e, _ in events(live, agent.rid)] == ["failed"], 30, "a failure event")
        failed = plays(live, agent.rid)[0]
        assert "No space left" in failed["reason"] and sink(agent).played == []
        disk.free()  # the operator clears the card
        live.http.post(f"/api/v1/receivers/{agent.rid}/play", json={"bulletin_id": bulletin["id"]})
        wait_for(lambda: [e for e, _ in events(live, agent.rid)][-1:] == ["finished"], 40, "plays once there is room")
        assert sink(agent).played[-1].completed
    finally:
        fleet.run(fleet.fleet.stop())
        disk.__exit__(None, None, None)


def test_clock_offset_is_flagged_and_commands_refused_with_reason(fleet: FleetThread, live: LiveController) -> None:
    [s] = fleet.settings(1, controller_url=live.url, telemetry_interval_s=0.5)
    clock = OffsetClock(0.0)
    fleet.run(_add(fleet, s, clock))
    rid = s.receiver_id
    wait_for(lambda: live.http.get(f"/api/v1/receivers/{rid}").json()["availability"] == "online", 10, "online")
    wait_for(lambda: live.http.get(f"/api/v1/receivers/{rid}").json()["clock_offset_s"] is not None, 5, "offset")
    assert not live.http.get(f"/api/v1/receivers/{rid}").json()["clock_drift"]
    clock.offset_s = 300  # the receiver's clock runs five minutes fast
    wait_for(lambda: live.http.get(f"/api/v1/receivers/{rid}").json()["clock_drift"], 5, "drift flagged")
    assert abs(live.http.get(f"/api/v1/receivers/{rid}").json()["clock_offset_s"] - 300) < 2
    r = live.http.post(f"/api/v1/receivers/{rid}/volume", json={"volume": 10}).json()
    assert r["outcome"] == "rejected" and r["reason"].startswith("expired at")  # it thinks the command is old


async def _add(fleet: FleetThread, settings, clock) -> None:
    agent = fleet.fleet.add(settings, clock=clock)
    await agent.link.connected.wait()


def test_self_test_and_restart(fleet: FleetThread, live: LiveController) -> None:
    [s] = fleet.settings(1, controller_url=live.url)
    [agent] = fleet.start([s])
    rid = agent.rid
    wait_for(lambda: live.http.get(f"/api/v1/receivers/{rid}").json()["availability"] == "online", 10, "online")
    r = live.http.post(f"/api/v1/receivers/{rid}/self-test").json()
    assert r["outcome"] == "applied", r
    [tone] = sink(agent).played
    assert tone.item_id == "self-test" and tone.completed and tone.amplifier_on and 0.9 < tone.to_s < 1.1
    assert not agent.hardware.amplifier_on()  # left as it was found

    r = live.http.post(f"/api/v1/receivers/{rid}/restart").json()
    assert r["outcome"] == "applied"
    wait_for(lambda: fleet.fleet.restarts.get(rid) == 1 and fleet.fleet.agents[rid] is not agent
             and fleet.fleet.agents[rid].link.connected.is_set(), 15, "agent restarted")
    # The old agent's 'stopped' was acknowledged before the new one connected: 'online' is the last word.
    wait_for(lambda: live.http.get(f"/api/v1/receivers/{rid}").json()["availability"] == "online", 10,
             "online after the restart")
