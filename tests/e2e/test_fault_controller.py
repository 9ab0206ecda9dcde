"""The controller killed hard (SIGKILL of its process) in the middle of telling receivers that their plans
changed, then started again: no programme is lost, none plays twice.

The controller runs as its own process (`tests.ui.serve`, the UI off) on a fixed port, its MQTT session
through a `LinkProxy`. The proxy is black-holed before the change, so the runner's `sync-schedule` hangs
waiting for the broker's PUBACK: the new plan versions are already stored, the receivers not yet told. The
process is killed there and the held bytes are dropped with the connection (`cut`), as a power cut would.
The agents poll their plan only hourly in this test, so only the restarted controller can bring them the
change in time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, select

from controller.db.models import ReceiverPlanState
from devrig.ports import free_port, stop_child
from devrig.testbed import Testbed
from firmware_sim.netproxy import LinkProxy
from tests.conftest import FleetThread, admin_token, wait_for
from tests.e2e.test_schedule import played, soon
from tests.samples import make

pytestmark = [pytest.mark.integration, pytest.mark.long]
REPO = Path(__file__).resolve().parents[2]


class ControllerProcess:
    """The controller in a process of its own, so it can be killed like a power cut; same port each start."""

    def __init__(self, tb: Testbed, root: Path, mqtt_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = root
        mqtt_url = f"mqtt://controller:{tb.controller_password}@127.0.0.1:{mqtt_port}"
        settings = {**json.loads(tb.settings.model_dump_json()), "port": self.port, "mqtt_url": mqtt_url,
                    "controller_url": self.url}
        (root / "controller.json").write_text(json.dumps(settings))
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {admin_token(tb.engine)}"},
                                 timeout=30)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        with (self.root / "controller.log").open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.ui.serve", str(self.root / "controller.json")],
                                         stdout=out, stderr=out, env=env, cwd=REPO)
        wait_for(self._connected, 60, "the controller process up and on the broker", interval=0.2)

    def _connected(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log()
        try:
            return bool(self.http.get("/healthz").json()["mqtt"] == "connected")
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def log(self) -> str:
        path = self.root / "controller.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def close(self) -> None:
        if self.proc is not None:
            stop_child(self.proc, 15)
        self.http.close()


@pytest.fixture
def controller_behind_proxy(testbed: Testbed, fleet: FleetThread, data_dir: Path
                            ) -> Iterator[tuple[ControllerProcess, LinkProxy]]:
    proxy = LinkProxy("127.0.0.1", testbed.broker.port)
    port = fleet.run(proxy.start())
    ctl = ControllerProcess(testbed, data_dir, port)
    try:
        ctl.start()
        yield ctl, proxy
    finally:
        ctl.close()
        fleet.run(proxy.close())


def versions(tb: Testbed, rids: list[str]) -> dict[str, str]:
    with Session(tb.engine) as s:
        rows = s.exec(select(ReceiverPlanState).where(col(ReceiverPlanState.receiver_id).in_(rids)))
        return {r.receiver_id: r.version for r in rows}


def test_controller_killed_mid_dispatch_loses_no_programme_and_plays_none_twice(
        testbed: Testbed, fleet: FleetThread, controller_behind_proxy: tuple[ControllerProcess, LinkProxy],
        tmp_path: Path) -> None:
    ctl, proxy = controller_behind_proxy
    agents = fleet.start(fleet.settings(3, controller_url=ctl.url, plan_poll_s=3600, amp_warmup_s=0.2,
                                        amp_idle_off_s=1.0))
    rids = [a.rid for a in agents]
    wait_for(lambda: all(a.plan_keeper.version for a in agents), 20, "every agent holds its first plan")
    with make(tmp_path / "b.wav", seconds=2).open("rb") as f:
        r = ctl.http.post("/api/v1/bulletins", data={"title": "Bản tin", "trim_silence": "false"},
                          files={"file": ("b.wav", f)})
    assert r.status_code == 201, r.text
    bulletin: dict[str, Any] = r.json()
    before = versions(testbed, rids)

    fleet.loop.call_soon_threadsafe(proxy.blackhole)  # the controller's publishes now wait for a PUBACK
    start = soon(30)
    r = ctl.http.post("/api/v1/programmes", json={"title": "Bản tin trưa", "items": [{"bulletin_id": bulletin["id"]}],
                                                   "start": start.isoformat(), "targets": {"receivers": rids}})
    assert r.status_code == 201, r.text
    item_prefix = f"p{r.json()['id']}-"  # the programme's occurrences are named p{id}-{start}-…
    wait_for(lambda: all(v != before.get(rid) for rid, v in versions(testbed, rids).items())
             and len(versions(testbed, rids)) == 3, 10, "the new plan versions stored")
    ctl.kill()  # mid-dispatch: the sync-schedule is held in the black hole
    fleet.loop.call_soon_threadsafe(proxy.cut)  # what the dead controller had in flight is gone
    fleet.loop.call_soon_threadsafe(proxy.restore)
    assert all(a.plan_keeper.version == before[a.rid] for a in agents)  # nobody was told
    ctl.start()

    # No programme lost: each receiver hears of its new plan from the restarted controller and plays it.
    wait_for(lambda: all(a.plan_keeper.version == versions(testbed, rids)[a.rid] for a in agents), 20,
             "every agent holds the new plan")
    wait_for(lambda: all(played(a) and played(a)[-1].stopped for a in agents), 60, "played on every receiver")
    # None twice: the plan is applied (nothing of it left queued) and each receiver played the item once.
    wait_for(lambda: all(not a.player.items for a in agents), 15, "nothing left queued")
    for a in agents:
        assert [(p.item_id.startswith(item_prefix), p.completed) for p in played(a)] == [(True, True)], played(a)
    def stored_plays() -> list[dict[str, Any]]:
        return list(ctl.http.get("/api/v1/plays", params={"limit": 100}).json()["data"])

    wait_for(lambda: len(stored_plays()) >= 6, 15, "the proof of play stored")
    stored = stored_plays()
    assert sorted((p["receiver_id"], p["event"]) for p in stored) == sorted(
        (rid, e) for rid in rids for e in ("started", "finished"))
