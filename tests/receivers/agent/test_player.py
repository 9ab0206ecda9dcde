"""The player on its own (no link, no agent): the fetch queue's order, a scheduled start on the dot with the
amplifier warmed up ahead, the proof of a start taken when the sound begins, quiet items and withdrawal, and a
volume change that waits for the end of an emergency."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from firmware_sim.hardware import SimHardware
from firmware_sim.sink import RecordingSink
from receivers.agent.agent import handle_set_volume
from receivers.agent.cache import MediaCache
from receivers.agent.fetch import Fetcher
from receivers.agent.player import FetchQueue, Player, stored_form
from receivers.agent.store import ItemStore
from receivers.protocol import Play, PlayEvent, SetVolume, Target
from tests.samples import make


def test_a_free_fetch_slot_goes_to_the_nearest_start() -> None:
    async def scenario() -> list[str]:
        queue, order = FetchQueue(1), []
        release = asyncio.Event()

        async def holder() -> None:
            async with queue.slot(0):
                await release.wait()

        async def fetch(name: str, key: float) -> None:
            async with queue.slot(key):
                order.append(name)
                await asyncio.sleep(0)

        first = asyncio.create_task(holder())
        await asyncio.sleep(0)
        waiting = [asyncio.create_task(fetch(n, k)) for n, k in (("later", 30), ("soon", 10), ("gone", 5),
                                                                  ("middle", 20))]
        await asyncio.sleep(0)
        waiting[2].cancel()  # an item withdrawn while it waited gives up its place
        release.set()
        await asyncio.gather(first, *waiting, return_exceptions=True)
        assert not queue.full
        return order

    assert asyncio.run(scenario()) == ["soon", "middle", "later"]


class Bench:
    """A player with a recording sink on simulated hardware; acks and events are kept with their times."""

    def __init__(self, root: Path, **kw: Any) -> None:
        self.hardware = SimHardware(seed=1)
        self.sink = RecordingSink(self.hardware)
        self.acks: list[tuple[str, str, float]] = []
        self.events: list[PlayEvent] = []
        self.amp_on_at: float | None = None
        cache = MediaCache(root / "cache", 10**8)

        async def ack(cmd: Play, status: str, reason: str | None) -> None:
            self.acks.append((cmd.item_id, status, dt.datetime.now(dt.UTC).timestamp()))

        async def changed() -> None:
            if self.hardware.amplifier_on() and self.amp_on_at is None:
                self.amp_on_at = dt.datetime.now(dt.UTC).timestamp()

        self.player = Player(sink=self.sink, hardware=self.hardware, fetcher=Fetcher(cache, None), cache=cache,
                             store=ItemStore(root / "items.sqlite"), record=self.events.append, ack=ack,
                             on_change=changed, clock=lambda: dt.datetime.now(dt.UTC), **kw)

    async def run(self, scenario: Callable[[], Awaitable[None]]) -> None:
        task = asyncio.create_task(self.player.run())
        try:
            await asyncio.wait_for(scenario(), 30)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await self.player.close()
            self.player.store.close()


def inline_play(path: Path, item_id: str, start_in_s: float | None) -> Play:
    data = path.read_bytes()
    now = dt.datetime.now(dt.UTC)
    return Play.new(Target.receiver("r1"), 600, item_id=item_id, inline_audio=base64.b64encode(data).decode(),
                    inline_sha256=hashlib.sha256(data).hexdigest(),
                    start_at=now + dt.timedelta(seconds=start_in_s) if start_in_s is not None else None)


async def until(check: Callable[[], Any], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_scheduled_start_is_on_time_after_a_warm_up_ahead(tmp_path: Path) -> None:
    audio = make(tmp_path / "a.mp3", seconds=1.0)
    bench = Bench(tmp_path, warmup_s=1.0, idle_off_s=5.0)
    cmd = inline_play(audio, "item-1", 2.0)
    assert cmd.start_at is not None
    start = cmd.start_at.timestamp()

    async def scenario() -> None:
        assert await bench.player.submit(cmd) is None
        await until(lambda: bench.acks and bench.acks[-1][1] == "done", 10)

    asyncio.run(bench.run(scenario))
    [played] = bench.sink.played
    assert played.completed and played.amplifier_on
    assert abs(played.started - start) < 0.25  # the 1 s warm-up did not delay it (precision: bench/schedule.py)
    assert bench.amp_on_at is not None and start - bench.amp_on_at >= 1.0  # warmed up ahead of the start
    started = bench.events[0]
    assert started.event == "started" and abs(started.at.timestamp() - played.started) < 0.1  # the same moment
    assert [s for _, s, _ in bench.acks] == ["received", "fetched", "playing", "done"]
    assert bench.acks[2][2] >= played.started  # `playing` once the sound began, not before


def test_quiet_items_acknowledge_nothing_and_withdraw_leaves_no_trace(tmp_path: Path) -> None:
    audio = make(tmp_path / "a.mp3", seconds=1.0)
    bench = Bench(tmp_path, warmup_s=0.1, idle_off_s=1.0)

    async def scenario() -> None:
        player = bench.player
        assert await player.submit(inline_play(audio, "now", None), quiet=True) is None
        assert await player.submit(inline_play(audio, "later", 60), quiet=True) is None
        assert await player.submit(inline_play(audio, "later", 60), quiet=True) is not None  # already queued
        await until(lambda: player.current is not None and player.current.announced, 5)
        assert not player.withdrawable("now") and not await player.withdraw("now")  # it is playing
        assert await player.withdraw("later") and "later" not in player.items
        assert not await player.withdraw("unknown")
        await until(lambda: not player.items, 5)
        assert await asyncio.to_thread(player.store.all) == []

    asyncio.run(bench.run(scenario))
    assert bench.acks == []
    assert [(e.event, e.item_id) for e in bench.events] == [("started", "now"), ("finished", "now")]
    assert [p.item_id for p in bench.sink.played] == ["now"]


def test_an_item_store_from_before_plans_gains_the_quiet_column(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "items.sqlite")
    db.execute("CREATE TABLE items (item_id TEXT PRIMARY KEY, command BLOB NOT NULL, position_s REAL NOT NULL "
               "DEFAULT 0, repeat_index INTEGER NOT NULL DEFAULT 0, playing INTEGER NOT NULL DEFAULT 0)")
    db.execute("INSERT INTO items (item_id, command) VALUES ('old', x'7b7d')")
    db.commit()
    db.close()
    store = ItemStore(tmp_path / "items.sqlite")
    store.put("new", b"{}", quiet=True)
    assert sorted(store.all()) == [("new", b"{}", 0.0, 0, False, True), ("old", b"{}", 0.0, 0, False, False)]
    store.close()


def test_a_volume_change_during_an_emergency_waits_for_its_end(tmp_path: Path) -> None:
    # LEAK (security review, receivers item 1): `handle_set_volume` ran the mixer at once and the player set
    # an item's volume only once before its repeats, so a signed `set-volume 0` silenced the rest of an
    # emergency. Before this change the hardware went to 0 in the middle of the emergency's repeats.
    audio = make(tmp_path / "a.mp3", seconds=0.3)
    bench = Bench(tmp_path, warmup_s=0.05, idle_off_s=5.0)
    data = audio.read_bytes()
    emergency = Play.new(Target.receiver("r1"), 600, item_id="em-1", priority="emergency", volume=90, repeat=3,
                         inline_audio=base64.b64encode(data).decode(), inline_sha256=hashlib.sha256(data).hexdigest())
    saved: dict[str, Any] = {}

    class StateFile:
        def load(self) -> dict[str, Any]:
            return dict(saved)

        def save(self, state: dict[str, Any]) -> None:
            saved.update(state)

    async def published() -> None:
        return None

    agent: Any = SimpleNamespace(hardware=bench.hardware, player=bench.player, state_file=StateFile(),
                            publish_state=published)

    async def scenario() -> None:
        player = bench.player
        assert await player.submit(emergency) is None
        await until(lambda: player.current is not None and player.current.announced, 5)
        assert await handle_set_volume(agent, SetVolume.new(Target.receiver("r1"), 60, volume=0)) is None
        assert bench.hardware.volume() == 90  # the emergency plays on at its own volume
        await until(lambda: bench.acks and bench.acks[-1][1] == "done", 10)
        assert bench.hardware.volume() == 0  # applied once it ended
        # With no emergency playing, a volume change is applied at once (as before).
        assert await handle_set_volume(agent, SetVolume.new(Target.receiver("r1"), 60, volume=40)) is None
        assert bench.hardware.volume() == 40

    asyncio.run(bench.run(scenario))
    assert [p.completed for p in bench.sink.played] == [True, True, True]
    assert bench.hardware.volume_changes == [90, 0, 40] and saved == {"volume": 40}


def fan_out(play: Play) -> Play:
    return play.model_copy(update={"target": Target.everyone()})


def test_protocol_2_answers_a_fan_out_by_its_proof_of_play_unless_events_wait(tmp_path: Path) -> None:
    """Report protocol 2: an emergency-like play to everyone, due now, is answered by its events alone —
    `started` says `playing`, the end `done` — with no ack; while older events wait in the outbox (`backlog`)
    the same play is acknowledged step by step as in protocol 1, so its answer never waits behind them."""
    audio = make(tmp_path / "a.mp3", seconds=0.5)
    bench = Bench(tmp_path, warmup_s=0.0, idle_off_s=1.0)
    waiting = [False]
    bench.player.compact = True
    bench.player.backlog = lambda: waiting[0]

    async def scenario() -> None:
        assert await bench.player.submit(fan_out(inline_play(audio, "quiet-steps", None))) is None
        await until(lambda: [e.event for e in bench.events] == ["started", "finished"], 10)
        waiting[0] = True
        assert await bench.player.submit(fan_out(inline_play(audio, "behind", None))) is None
        await until(lambda: [s for i, s, _ in bench.acks if i == "behind"][-1:] == ["done"], 10)

    asyncio.run(bench.run(scenario))
    first = [e for e in bench.events if e.item_id == "quiet-steps"]
    assert [(e.event, e.outcome) for e in first] == [("started", "playing"), ("finished", "done")]
    assert not [a for a in bench.acks if a[0] == "quiet-steps"]
    assert [s for i, s, _ in bench.acks if i == "behind"] == ["received", "fetched", "playing", "done"]
    assert all(e.outcome is None for e in bench.events if e.item_id == "behind")


def test_an_inline_item_whose_audio_was_lost_in_a_power_cut_is_answered_failed(tmp_path: Path) -> None:
    """The item store keeps inline commands without their audio (it is in the cache); if the cache lost it
    (a power cut before the card had it), the restarted player answers the command `failed` instead of
    forgetting it in silence: the controller then sends the emergency again."""
    audio = make(tmp_path / "a.mp3", seconds=0.5)
    cmd = inline_play(audio, "em-lost", 60)
    store = ItemStore(tmp_path / "items.sqlite")
    store.put(cmd.item_id, stored_form(cmd))
    store.close()
    assert b"inline_audio\":null" in stored_form(cmd) and len(stored_form(cmd)) < 1000
    bench = Bench(tmp_path, warmup_s=0.0, idle_off_s=1.0)
    bench.player.compact = True

    async def scenario() -> None:
        await until(lambda: bench.events, 5)

    asyncio.run(bench.run(scenario))
    [event] = bench.events
    assert event.event == "failed" and event.outcome == "failed" and event.item_id == "em-lost"
    assert event.reason is not None and "audio not available" in event.reason
    assert bench.sink.played == [] and "em-lost" not in bench.player.items
