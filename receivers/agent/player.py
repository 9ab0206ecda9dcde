"""The player: what plays now, what waits, and what a higher class interrupts.

Every accepted `play` becomes an `Item`. Its audio is fetched (or decoded from the command) while it
waits; when its start time comes and nothing of a higher or equal class is playing, it plays. A higher
class pre-empts a lower one at once: the interrupted item is logged as `cut` at its position, and plays
on from there afterwards if its command asked to `resume`. Equal or lower classes wait their turn.

The amplifier is switched on (with a warm-up delay) before the first sound and off after an idle time.
Every step is acknowledged to the controller and every start, end, cut or failure goes to the outbox as
proof of play. Items are kept on disk (`ItemStore`) until finished, so a power cut loses none.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from receivers.protocol import PRIORITY_RANK, Play, PlayEvent, Stop

from .cache import MediaCache
from .fetch import Fetcher, FetchFailed
from .hardware import Hardware
from .sink import AudioSink, SinkError
from .store import ItemStore

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 1.0
MISSED_TOLERANCE_S = 120.0  # a scheduled start may be late by this much (the receiver was off), no more

Ack = Callable[[Play, str, str | None], Awaitable[None]]  # (command, status, reason)


@dataclass
class Item:
    cmd: Play
    arrival: int
    path: Path | None = None
    ready: bool = False
    position_s: float = 0.0  # where to start (or resume) in the current repeat
    repeat_index: int = 0
    started_monotonic: float = 0.0
    announced: bool = False  # a `started` event was recorded (so an interruption is a `cut`)
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    prepare: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def rank(self) -> int:
        return PRIORITY_RANK[self.cmd.priority]

    @property
    def sha256(self) -> str | None:
        return self.cmd.media.sha256 if self.cmd.media else self.cmd.inline_sha256


class Player:
    def __init__(self, *, sink: AudioSink, hardware: Hardware, fetcher: Fetcher, cache: MediaCache,
                 store: ItemStore, record: Callable[[PlayEvent], None], ack: Ack,
                 on_change: Callable[[], Awaitable[None]], clock: Callable[[], dt.datetime],
                 warmup_s: float = 1.0, idle_off_s: float = 10.0) -> None:
        self.sink, self.hardware, self.fetcher, self.cache, self.store = sink, hardware, fetcher, cache, store
        self.record, self.ack, self.on_change, self.clock = record, ack, on_change, clock
        self.warmup_s, self.idle_off_s = warmup_s, idle_off_s
        self.items: dict[str, Item] = {}
        self.current: Item | None = None
        self.base_volume = hardware.volume()  # what the receiver returns to after an item's own volume
        self._amp_on_since = 0.0
        self._arrivals = 0
        self._wake = asyncio.Event()
        self._idle_task: asyncio.Task[None] | None = None
        self._fetches: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------------------------ intake

    async def submit(self, cmd: Play) -> str | None:
        """Accept a play command; returns a refusal reason, or None (then `received` was acknowledged)."""
        known = self.items.get(cmd.item_id)
        if known is not None:
            return f"item {cmd.item_id!r} is already queued or playing"
        await asyncio.to_thread(self.store.put, cmd.item_id, cmd.to_bytes())
        self._admit(cmd)
        await self.ack(cmd, "received", None)
        return None

    def _admit(self, cmd: Play, position_s: float = 0.0, repeat_index: int = 0) -> Item:
        self._arrivals += 1
        item = Item(cmd, self._arrivals, position_s=position_s, repeat_index=repeat_index)
        self.items[cmd.item_id] = item
        self._protect()
        item.prepare = asyncio.create_task(self._prepare(item))
        self._fetches.add(item.prepare)
        item.prepare.add_done_callback(self._fetches.discard)
        return item

    async def restore(self) -> None:
        """After a restart: carry on with what was accepted before it, and account for what was cut."""
        for item_id, body, position, repeat_index, playing in await asyncio.to_thread(self.store.all):
            try:
                cmd = Play.model_validate_json(body)
            except ValueError:
                await asyncio.to_thread(self.store.remove, item_id)
                continue
            if playing:
                self._event(cmd, "cut", position, repeat_index, reason="power cut or restart while playing")
                if not cmd.resume:
                    await asyncio.to_thread(self.store.remove, item_id)
                    continue
                await asyncio.to_thread(self.store.progress, item_id, position, repeat_index, False)
            self._admit(cmd, position, repeat_index)
        self._wake.set()
        self._schedule_idle_off()  # a relay left on by a crash goes off if nothing plays

    async def _prepare(self, item: Item) -> None:
        cmd = item.cmd
        try:
            if cmd.inline_audio is not None:
                assert cmd.inline_sha256 is not None
                async with self.fetcher.lock(cmd.inline_sha256):
                    item.path = await asyncio.to_thread(self._inline, cmd)
            else:
                assert cmd.media is not None
                item.path = await self.fetcher.fetch(cmd.media)
        except (FetchFailed, ValueError, OSError) as e:
            if self.items.get(cmd.item_id) is item:
                await self._drop(item, "failed", f"audio not available: {e}", event="failed")
            return
        if self.items.get(cmd.item_id) is not item:
            return  # stopped while fetching
        item.ready = True
        await self.ack(cmd, "fetched", None)
        self._wake.set()

    def _inline(self, cmd: Play) -> Path:
        assert cmd.inline_audio is not None and cmd.inline_sha256 is not None
        cached = self.cache.get(cmd.inline_sha256)
        if cached:
            return cached
        data = base64.b64decode(cmd.inline_audio, validate=True)
        if hashlib.sha256(data).hexdigest() != cmd.inline_sha256:
            raise ValueError("inline audio does not match its SHA-256")
        part = self.cache.part(cmd.inline_sha256)
        try:
            part.write_bytes(data)
        except OSError:
            part.unlink(missing_ok=True)
            raise
        return self.cache.admit(cmd.inline_sha256, part)

    # ---------------------------------------------------------------------------------- control

    async def stop(self, cmd: Stop) -> str | None:
        """Stop one item, a class, or everything. Returns a reason when nothing matched."""
        matched = [i for i in list(self.items.values())
                   if (cmd.item_id is None or i.cmd.item_id == cmd.item_id)
                   and (cmd.priority is None or i.cmd.priority == cmd.priority)]
        if not matched:
            return "nothing to stop"
        for item in matched:
            if item is self.current:
                await self._interrupt(item, "stopped by the controller", keep=False)
            else:
                await self._drop(item, "failed", "stopped before it played", event="cut")
        self._wake.set()
        return None

    async def run(self) -> None:
        await self.restore()
        while True:
            try:
                await self._decide()
            except Exception:  # the player must outlive any one item's trouble
                log.exception("player: scheduling step failed; carrying on")
            timeout = self._next_start_in()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            self._wake.clear()

    def _next_start_in(self) -> float | None:
        now = self.clock()
        waits = [(i.cmd.start_at - now).total_seconds() for i in self.items.values()
                 if i.ready and i is not self.current and i.cmd.start_at and i.cmd.start_at > now]
        return max(0.0, min(waits)) if waits else None

    async def _decide(self) -> None:
        now = self.clock()
        for item in list(self.items.values()):
            # An item waiting its turn keeps its place however long that takes; only a scheduled start
            # missed by more than the tolerance (the receiver was off) is given up — never a morning
            # bulletin at midnight.
            start = item.cmd.start_at
            if item is not self.current and not item.announced and start is not None \
                    and (now - start).total_seconds() > MISSED_TOLERANCE_S:
                await self._drop(item, "failed", f"start at {start.isoformat()} missed", event="missed")
        due = [i for i in self.items.values() if i.ready and i is not self.current
               and (i.cmd.start_at is None or i.cmd.start_at <= now)]
        if not due:
            return
        best = max(due, key=lambda i: (i.rank, -(i.cmd.start_at or now).timestamp(), -i.arrival))
        if self.current is None:
            self._start(best)
        elif best.rank > self.current.rank:
            await self._interrupt(self.current, f"pre-empted by {best.cmd.priority} item {best.cmd.item_id}",
                                  keep=self.current.cmd.resume)
            self._start(best)

    def _start(self, item: Item) -> None:
        self.current = item
        item.task = asyncio.create_task(self._play(item))

    async def _interrupt(self, item: Item, reason: str, *, keep: bool) -> None:
        if self.current is not item:
            return  # already interrupted by another path
        self.current = None
        task = item.task
        position = item.position_s + (time.monotonic() - item.started_monotonic if item.started_monotonic else 0)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        item.task, item.started_monotonic = None, 0.0
        self._schedule_idle_off()
        if not item.announced and "stopped" not in reason:
            return  # pre-empted during the amplifier's warm-up: it never sounded, so it simply waits
        item.announced = False
        self._event(item.cmd, "cut", position, item.repeat_index, reason=reason)
        if keep:
            item.position_s = position
            await asyncio.to_thread(self.store.progress, item.cmd.item_id, position, item.repeat_index, False)
            log.info("item %s cut at %.1f s; will resume", item.cmd.item_id, position)
        else:
            await self._forget(item)
            await self.ack(item.cmd, "failed", f"cut at {position:.1f} s: {reason}")
        await self.on_change()

    async def _drop(self, item: Item, status: str, reason: str, *, event: str) -> None:
        self._event(item.cmd, event, item.position_s, item.repeat_index, reason=reason)
        await self._forget(item)
        await self.ack(item.cmd, status, reason)

    async def _forget(self, item: Item) -> None:
        if self.items.get(item.cmd.item_id) is item:
            del self.items[item.cmd.item_id]
        if item.prepare is not None and not item.prepare.done() and item.prepare is not asyncio.current_task():
            item.prepare.cancel()  # nobody needs that download any more: spare the paid link
        self._protect()
        await asyncio.to_thread(self.store.remove, item.cmd.item_id)

    def _protect(self) -> None:
        """Nothing an upcoming item needs may be evicted from the cache."""
        self.cache.protected = {sha for i in self.items.values() if (sha := i.sha256)}

    # ------------------------------------------------------------------------------------- play

    async def _play(self, item: Item) -> None:
        cmd = item.cmd
        assert item.path is not None
        try:
            await self._amplifier_on()
            volume = cmd.volume if cmd.volume is not None else self.base_volume
            self.hardware.set_volume(volume)
            await self.ack(cmd, "playing", None)
            item.announced = True
            self._event(cmd, "started", item.position_s, item.repeat_index, volume=volume)
            await asyncio.to_thread(self.store.progress, cmd.item_id, item.position_s, item.repeat_index, True)
            await self.on_change()
            ticker = asyncio.create_task(self._save_progress(item))
            try:
                while item.repeat_index < cmd.repeat:
                    def sounding() -> None:
                        item.started_monotonic = time.monotonic()

                    await self.sink.play(item.path, item_id=cmd.item_id, volume=volume, offset_s=item.position_s,
                                         on_start=sounding)
                    item.repeat_index += 1
                    item.position_s, item.started_monotonic = 0.0, 0.0
                    if item.repeat_index < cmd.repeat and cmd.gap_s:
                        await asyncio.sleep(cmd.gap_s)
            finally:
                ticker.cancel()
                self.hardware.set_volume(self.base_volume)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the sink, the mixer, a full disk: fail this item, keep the player going
            log.exception("item %s failed", cmd.item_id)
            self.current, item.task = None, None
            reason = str(e) if isinstance(e, SinkError) else f"{type(e).__name__}: {e}"
            try:
                await self._drop(item, "failed", reason, event="failed")
            except Exception:
                log.exception("could not record the failure of %s", cmd.item_id)
        else:
            self.current, item.task = None, None
            self._event(cmd, "finished", 0.0, cmd.repeat, volume=volume)
            await self._forget(item)
            await self.ack(cmd, "done", None)
        await self.on_change()
        self._wake.set()
        self._schedule_idle_off()

    async def _save_progress(self, item: Item) -> None:
        """Where the playing item is, on disk every second: after a power cut it is logged as cut there,
        and resumed from there if its command asked."""
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            if item.started_monotonic:
                position = item.position_s + time.monotonic() - item.started_monotonic
                await asyncio.to_thread(self.store.progress, item.cmd.item_id, position, item.repeat_index, True)

    async def _amplifier_on(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
            self._idle_task = None
        if not self.hardware.amplifier_on():
            self.hardware.set_amplifier(True)
            self._amp_on_since = time.monotonic()
            await self.on_change()
        # The amplifier needs a moment before it sounds right — also for an item that pre-empted another
        # during that moment.
        await asyncio.sleep(max(0.0, self._amp_on_since + self.warmup_s - time.monotonic()))

    def _schedule_idle_off(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()

        async def off_when_idle() -> None:
            await asyncio.sleep(self.idle_off_s)
            if self.current is None and self.hardware.amplifier_on():
                self.hardware.set_amplifier(False)
                await self.on_change()

        self._idle_task = asyncio.create_task(off_when_idle())

    def _event(self, cmd: Play, kind: str, position: float, repeat_index: int, *, reason: str | None = None,
               volume: int | None = None) -> None:
        self.record(PlayEvent(event_id=uuid.uuid4(), seq=0, event=kind, at=self.clock(),  # type: ignore[arg-type]
                              item_id=cmd.item_id, command_id=cmd.command_id, priority=cmd.priority,
                              media_sha256=cmd.media.sha256 if cmd.media else cmd.inline_sha256,
                              position_s=round(position, 3), repeat_index=repeat_index, volume=volume, reason=reason))

    async def close(self) -> None:
        tasks = [t for t in (*self._fetches, self._idle_task, *(i.task for i in self.items.values())) if t]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
