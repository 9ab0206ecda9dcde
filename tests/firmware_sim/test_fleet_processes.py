"""`truyenthanh-dev fleet --processes 2` against a real Mosquitto: the receivers split over two child
processes all come online, and all announce `stopped` when the parent is told to stop, or when the parent
is killed outright (each child sees its stdin closed)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import psutil
import pytest

from devrig.testbed import Testbed
from firmware_sim.processes import parse_shard, share
from receivers.protocol import Availability, Topics

RECEIVERS = 5
TIMEOUT_S = 60  # a bound on a hang, not a timing claim


class Watch:
    """The latest availability of every receiver, as the controller's account sees it."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self.changed = asyncio.Event()

    async def until(self, status: str, count: int, fleet: asyncio.subprocess.Process | None = None) -> None:
        async def reached() -> None:
            while sum(s == status for s in self.status.values()) < count:
                if fleet is not None and fleet.returncode is not None:
                    raise AssertionError(f"the fleet exited ({fleet.returncode}) with {self.status}")
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 1)
        try:
            await asyncio.wait_for(reached(), TIMEOUT_S)
        except TimeoutError:
            raise AssertionError(f"not {count} receivers {status} after {TIMEOUT_S} s: {self.status}") from None


@contextlib.asynccontextmanager
async def watching(tb: Testbed) -> AsyncIterator[Watch]:
    topics = Topics(tb.settings.mqtt_base)
    user, password = tb.tools
    watch = Watch()
    async with aiomqtt.Client("127.0.0.1", tb.broker.port, identifier="fleet-watch", username=user,
                              password=password, clean_session=True) as client:
        await client.subscribe(f"{tb.settings.mqtt_base}/receivers/+/availability", qos=1)

        async def read() -> None:
            async for message in client.messages:
                info = topics.parse(message.topic.value)
                if info is not None and info.ident is not None and isinstance(message.payload, bytes):
                    if message.payload:  # an empty retained message only clears the topic
                        watch.status[info.ident] = Availability.model_validate_json(message.payload).status
                        watch.changed.set()

        reader = asyncio.create_task(read())
        try:
            yield watch
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def start_fleet(tb: Testbed, state_dir: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "devrig.cli", "fleet", "--file", str(tb.settings.data_dir / "fleet.json"),
            "--receivers", str(RECEIVERS), "--processes", "2", "--state-dir", str(state_dir),
            "--telemetry-interval", "3600", "--keepalive", "30", stdout=out, stderr=out, start_new_session=True)


def shards_of(fleet: asyncio.subprocess.Process) -> list[tuple[int, int]]:
    children = psutil.Process(fleet.pid).children()
    return sorted(parse_shard(c.cmdline()[c.cmdline().index("--shard") + 1]) for c in children)


def expected_ids(tb: Testbed) -> set[str]:
    return {r["receiver_id"] for r in tb.fleet["receivers"][:RECEIVERS]}


def test_share_splits_evenly() -> None:
    assert [share(5, i, 2) for i in range(2)] == [slice(0, 2), slice(2, 5)]
    assert sum(len(range(1000)[share(1000, i, 3)]) for i in range(3)) == 1000
    with pytest.raises(ValueError):
        parse_shard("2/2")


def test_a_fleet_in_two_processes_comes_online_and_stops_cleanly(testbed: Testbed, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with watching(testbed) as watch:
            fleet = await start_fleet(testbed, tmp_path / "fleet", tmp_path / "fleet.log")
            try:
                await watch.until("online", RECEIVERS, fleet)
                assert set(watch.status) == expected_ids(testbed)
                assert shards_of(fleet) == [(0, 2), (1, 2)]
                children = psutil.Process(fleet.pid).children()
                fleet.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(fleet.wait(), TIMEOUT_S) == 0
                await watch.until("stopped", RECEIVERS)
                assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
            finally:
                if fleet.returncode is None:
                    os.killpg(fleet.pid, signal.SIGKILL)
                    await fleet.wait()

    asyncio.run(scenario())


def test_children_of_a_killed_parent_stop_their_receivers(testbed: Testbed, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with watching(testbed) as watch:
            fleet = await start_fleet(testbed, tmp_path / "fleet", tmp_path / "fleet.log")
            children: list[psutil.Process] = []
            try:
                await watch.until("online", RECEIVERS, fleet)
                children = psutil.Process(fleet.pid).children()
                assert len(children) == 2
                fleet.kill()  # SIGKILL: no chance to forward anything
                await fleet.wait()
                await watch.until("stopped", RECEIVERS)
                _, alive = await asyncio.to_thread(psutil.wait_procs, children, TIMEOUT_S)
                assert alive == []
            finally:
                for c in children:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        c.kill()

    asyncio.run(scenario())
