"""A fleet of simulated receivers: N real `Agent`s with `SimHardware`, in one process and one event loop.

The fleet file (JSON, written by `truyenthanh provision`, mode 0600) holds the broker URL, topic base, the
controller's public key and each receiver's id, commune and MQTT credentials.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from receivers.agent import Agent, AgentSettings
from receivers.protocol import utcnow

from .hardware import SimHardware
from .sink import RecordingSink

log = logging.getLogger(__name__)


def load_fleet_file(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("receivers"), list):
        raise ValueError(f"{path}: not a fleet file (no 'receivers' list)")
    return data


def on_ram_disk(path: Path) -> bool:
    """Whether `path` is on a tmpfs (where a synced write never waits for a device)."""
    best, fstype = "", ""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return False
    target = str(path.absolute())
    for line in mounts:
        fields = line.split()
        if len(fields) >= 3 and (target == fields[1] or target.startswith(fields[1].rstrip("/") + "/")) \
                and len(fields[1]) >= len(best):
            best, fstype = fields[1], fields[2]
    return fstype == "tmpfs"


def agent_settings(fleet: dict[str, Any], state_root: Path, limit: int | None = None,
                   **overrides: Any) -> list[AgentSettings]:
    """Settings for the first `limit` receivers of a fleet file (all when None)."""
    rows = fleet["receivers"][:limit] if limit is not None else fleet["receivers"]
    # State on a RAM disk (the benches' /dev/shm): disk calls on the event loop, cheaper than a thread.
    overrides.setdefault("disk_in_thread", not on_ram_disk(state_root))
    return [
        AgentSettings(
            receiver_id=r["receiver_id"], commune=r["commune"], username=r["username"], password=r["password"],
            mqtt_url=fleet["mqtt_url"], base=fleet["base"], controller_public_key=fleet["controller_public_key"],
            state_dir=state_root / r["receiver_id"], hardware="sim",
            **{"controller_url": fleet.get("controller_url"), **overrides},
        )
        for r in rows
    ]


@dataclass
class Fleet:
    agents: dict[str, Agent] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    def add(self, settings: AgentSettings, *, hardware: SimHardware | None = None,
            clock: Callable[[], dt.datetime] | None = None) -> Agent:
        hardware = hardware or SimHardware(seed=settings.receiver_id)
        rid = settings.receiver_id

        def restart() -> None:
            asyncio.get_running_loop().call_soon(self._restart, rid)

        agent = Agent(settings, hardware, sink=RecordingSink(hardware), clock=clock or utcnow, on_restart=restart)
        self.agents[rid] = agent
        self.tasks[rid] = asyncio.create_task(agent.run(), name=rid)
        return agent

    def _restart(self, rid: str) -> None:
        """`restart-agent` in the simulator: the same receiver (hardware, disk) comes back as a new agent."""
        old = self.agents.get(rid)
        if old is None:
            return
        self.restarts[rid] = self.restarts.get(rid, 0) + 1
        done = self.tasks[rid]

        async def again() -> None:
            await asyncio.gather(done, return_exceptions=True)
            self.add(old.settings, hardware=old.hardware, clock=old.clock)  # type: ignore[arg-type]
        asyncio.get_running_loop().create_task(again())

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(
            asyncio.gather(*(a.link.connected.wait() for a in self.agents.values())), timeout)

    async def stop_one(self, rid: str) -> None:
        await self.agents[rid].stop()
        await asyncio.gather(self.tasks.pop(rid), return_exceptions=True)
        del self.agents[rid]

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop every agent; one whose run has not ended `grace_s` after it was told (its link stuck in a
        broken connection, seen once after a broker restart) is cancelled, so the fleet always stops."""
        await asyncio.gather(*(a.stop() for a in self.agents.values()), return_exceptions=True)
        if self.tasks:
            _, stuck = await asyncio.wait(self.tasks.values(), timeout=grace_s)
            for task in stuck:
                log.warning("fleet: %s did not stop within %g s: cancelled", task.get_name(), grace_s)
                task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.agents.clear()
        self.tasks.clear()


async def run_fleet(settings: list[AgentSettings], stop: asyncio.Event) -> None:
    fleet = Fleet()
    for s in settings:
        fleet.add(s)
    log.info("fleet: %d simulated receivers started", len(settings))
    try:
        await stop.wait()
    finally:
        await fleet.stop()
        log.info("fleet: stopped")
