"""Downloads over a bad link with the agent alive (no power cut): the media link reset mid-way, and slow
then black-holed. Each time the download resumes where the card's copy ends (HTTP Range), the audio is
verified, and the loudspeaker plays exactly the source.

A `LinkProxy` sits between the agent and the controller's HTTP port (media only: MQTT goes direct)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from firmware_sim.netproxy import LinkProxy
from tests.conftest import FleetThread, LiveController, wait_for
from tests.e2e.test_playback import events, sink, source_pcm, start_agent, upload
from tests.samples import make

pytestmark = pytest.mark.integration


def media_proxy(fleet: FleetThread, live: LiveController) -> tuple[LinkProxy, int]:
    proxy = LinkProxy("127.0.0.1", int(live.url.rsplit(":", 1)[1]))
    return proxy, fleet.run(proxy.start())


def test_link_reset_mid_download_resumes_and_verifies(fleet: FleetThread, live: LiveController,
                                                      tmp_path: Path) -> None:
    bulletin = upload(live, make(tmp_path / "b.wav", seconds=6), "Bản tin")
    size = len(live.http.get(bulletin["media_url"]).content)
    proxy, port = media_proxy(fleet, live)
    agent = start_agent(fleet, live, controller_url=f"http://127.0.0.1:{port}")
    wait_for(lambda: agent.plan_keeper.plan is not None, 10, "the agent's own plan pulled first")
    proxy.cut_after(size // 3)  # the media download's connection is reset a third of the way in
    live.http.post(f"/api/v1/receivers/{agent.rid}/play", json={"bulletin_id": bulletin["id"]})
    wait_for(lambda: [e for e, _ in events(live, agent.rid)] == ["started", "finished"], 30, "played")
    [played] = sink(agent).played
    assert played.completed
    assert played.pcm_sha256 == hashlib.sha256(source_pcm(fleet, live, bulletin["sha256"])).hexdigest()
    # Resumed, not fetched again: every byte of the file crossed the link once.
    assert agent.fetcher.bytes_fetched == size
    fleet.run(proxy.close())


@pytest.mark.long
def test_slow_then_blackholed_link_mid_download_resumes_and_verifies(fleet: FleetThread, live: LiveController,
                                                                     tmp_path: Path) -> None:
    bulletin = upload(live, make(tmp_path / "b.wav", seconds=12), "Bản tin dài")
    size = len(live.http.get(bulletin["media_url"]).content)
    proxy, port = media_proxy(fleet, live)
    agent = start_agent(fleet, live, controller_url=f"http://127.0.0.1:{port}")
    wait_for(lambda: agent.plan_keeper.plan is not None, 10, "the agent's own plan pulled first")
    agent.fetcher.timeout_s = 2.0  # 30 s on a receiver: a silent link is given up on sooner here
    fleet.loop.call_soon_threadsafe(proxy.slow, size / 4)  # a 4-second download over a poor link
    live.http.post(f"/api/v1/receivers/{agent.rid}/play", json={"bulletin_id": bulletin["id"]})
    part = agent.settings.state_dir / "cache" / f"{bulletin['sha256']}.part"
    wait_for(lambda: part.exists() and part.stat().st_size > size // 4, 15, "download under way")
    connections = proxy.connections
    fleet.loop.call_soon_threadsafe(proxy.blackhole)  # silence: no FIN, no RST
    got = part.stat().st_size
    # The agent gives up on the silent connection and tries again (held in the black hole too).
    wait_for(lambda: proxy.connections > connections, 20, "a new attempt after the read timeout")
    fleet.loop.call_soon_threadsafe(proxy.slow, None)
    fleet.loop.call_soon_threadsafe(proxy.restore)
    wait_for(lambda: [e for e, _ in events(live, agent.rid)] == ["started", "finished"], 40, "played")
    [played] = sink(agent).played
    assert played.completed
    assert played.pcm_sha256 == hashlib.sha256(source_pcm(fleet, live, bulletin["sha256"])).hexdigest()
    assert 0 < got < size and agent.fetcher.bytes_fetched == size  # resumed with Range, no byte twice
    fleet.run(proxy.close())
