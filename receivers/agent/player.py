"""The player: what plays now, what waits, and what a higher class interrupts.

Every accepted `play` becomes an `Item`: a command from the controller, or an entry of the receiver's own
plan (`plan.PlanKeeper`, submitted `quiet`: nobody waits for its acks). Its audio is fetched (or decoded
from the command) while it waits — at most `FETCH_SLOTS` downloads at once, the item that starts first
first (`FetchQueue`) — and handed to the sink's `prepare`; when its start time comes and nothing of a
higher or equal class is playing, it plays. A higher class pre-empts a lower one at once: the interrupted
item is logged as `cut` at its position, and plays on from there afterwards if its command asked to
`resume`. Equal or lower classes wait their turn. A scheduled start missed by more than the missed
tolerance (the receiver was off) is logged `missed`, never played late.

The amplifier is switched on (with a warm-up delay) before the first sound — for a scheduled item, the
warm-up ahead of its start, so that it starts on time — and off after an idle time. Every step of a
commanded item is acknowledged to the controller, and every start, end, cut or failure goes to the
outbox as proof of play, `started` at the moment the sound begins. Items are kept on disk (`ItemStore`)
until finished, so a power cut loses none; `withdraw` drops one that has not started, without a trace.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import heapq
import itertools
import json
import logging
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from receivers.protocol import PRIORITY_RANK, Play, PlayEvent, Stop
from receivers.transport import backoff_delay

from .cache import MediaCache
from .fetch import Fetcher, FetchFailed, NotRetryable
from .hardware import Hardware
from .sink import AudioSink, SinkError
from .store import ItemStore

log = logging.getLogger(__name__)
# Where the playing item is, on disk this often: after a power cut it resumes (or is logged cut) at most this
# much earlier than it was. Each save is a synced write, on a Pi's SD card and in every simulated receiver.
PROGRESS_EVERY_S = 2.0
MISSED_TOLERANCE_S = 120.0  # default: a scheduled start may be late by this much (the receiver was off), no more
FETCH_SLOTS = 2  # downloads at once: the link's bandwidth goes to the item that starts first
# An idle player takes up a scheduled item this long before its start and has everything done (amplifier,
# volume) when the moment comes, so only the sound's start is left for it: a simulated fleet of hundreds of
# receivers in one event loop then starts together, not one after the other. The amplifier's warm-up is
# over before the lead-in begins.
LEAD_IN_S = 0.5
# The proof of a start is written this long after the sound began (its time is taken at once): out of the
# way of the other receivers of a simulated fleet starting in the same moment. Anything that must follow
# it (a cut, the end) has it written at once.
ANNOUNCE_AFTER_S = 0.05  # 0.2 before issue 14: the time to "all playing" waited for it
REFETCH_BACKOFF = (5.0, 300.0)  # a plan item's audio is asked for again until its start is missed
# Protocol 2 (`compact`): a play is answered by its proof of play — `started` says `playing`, the end says
# `done` or `failed`. One sent to a commune or everyone and due now is acknowledged `received` (or `fetched`)
# only if its sound has not begun this long after it came: a slow download, an amplifier warming up, an item
# of a higher class playing. (One sent to this receiver alone is acknowledged `received` at once: the
# controller's API waits for it.)
RECEIVED_AFTER_S = 2.0

Ack = Callable[[Play, str, str | None], Awaitable[None]]  # (command, status, reason)
Disk = Callable[..., Awaitable[Any]]  # runs a blocking disk call: `asyncio.to_thread`, or `inline`


async def inline(fn: Callable[..., Any], /, *args: Any) -> Any:
    """A disk call on the event loop (state on a RAM disk: a worker thread would cost more than the call)."""
    return fn(*args)


def disk_call(in_thread: bool) -> Disk:
    return asyncio.to_thread if in_thread else inline


class AudioLost(ValueError):
    def __init__(self, message: str, cmd: Play) -> None:
        super().__init__(message)
        self.cmd = cmd


def _inline_sha(body: bytes) -> str | None:
    try:
        sha = json.loads(body).get("inline_sha256")
    except (ValueError, AttributeError):
        return None
    return sha if isinstance(sha, str) else None


def stored_form(cmd: Play) -> bytes:
    """What the item store keeps of a command: all of it but its inline audio, which is in the cache, under its
    SHA-256, by the time it can play (an emergency's 20–60 KiB need not be written, and deleted, twice)."""
    if cmd.inline_audio is None:
        return cmd.to_bytes()
    return cmd.model_copy(update={"inline_audio": None}).to_bytes()


class FetchQueue:
    """At most `slots` holders at once; a slot that frees goes to the waiter with the smallest key (the
    earliest start), not the first to ask."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._busy = 0
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def full(self) -> bool:
        return self._busy >= self.slots

    @contextlib.asynccontextmanager
    async def slot(self, key: float) -> AsyncIterator[None]:
        if self._busy < self.slots:
            self._busy += 1
        else:
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (key, next(self._order), granted))
            try:
                await granted  # the slot is handed over already counted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._release()  # handed a slot in the same moment as cancelled: pass it on
                raise  # a cancelled waiter stays in the heap, done, and is skipped
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():
                granted.set_result(None)
                return
        self._busy -= 1


@dataclass
class Item:
    cmd: Play
    arrival: int
    quiet: bool = False  # a plan item: no acks (nobody waits for them), proof of play as for any item
    path: Path | None = None
    ready: bool = False
    position_s: float = 0.0  # where to start (or resume) in the current repeat
    repeat_index: int = 0
    started_monotonic: float = 0.0
    announced: bool = False  # a `started` event was recorded (so an interruption is a `cut`)
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    prepare: asyncio.Task[None] | None = field(default=None, repr=False)
    announcing: asyncio.Task[None] | None = field(default=None, repr=False)  # `started`, `playing` ack, state
    announce_now: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    stepped: bool = False  # its `received` was acknowledged: its `fetched` is too

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
                 warmup_s: float = 1.0, idle_off_s: float = 10.0, missed_tolerance_s: float = MISSED_TOLERANCE_S,
                 fetch_slots: int = FETCH_SLOTS, disk: Disk | None = None) -> None:
        self.sink, self.hardware, self.fetcher, self.cache, self.store = sink, hardware, fetcher, cache, store
        self.record, self.ack, self.on_change, self.clock = record, ack, on_change, clock
        self.warmup_s, self.idle_off_s, self.missed_tolerance_s = warmup_s, idle_off_s, missed_tolerance_s
        self.fetch_queue = FetchQueue(fetch_slots)
        self.disk: Disk = disk or asyncio.to_thread  # how the store and the cache are called (`disk_call`)
        self.restored = asyncio.Event()  # set once the items from before a restart are back in place
        self.items: dict[str, Item] = {}
        self.current: Item | None = None
        self.base_volume = hardware.volume()  # what the receiver returns to after an item's own volume
        self._amp_on_since = 0.0
        self._arrivals = 0
        self._wake = asyncio.Event()
        self._idle_task: asyncio.Task[None] | None = None
        self._fetches: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._rng = random.Random()
        # Protocol 2, set by the agent once the controller says it speaks it: see `RECEIVED_AFTER_S`.
        self.compact = False
        # Whether proof of play waits to be sent (the agent's outbox): an event recorded now would answer
        # only after it, so the answer goes as an ack as well (protocol 1's way) — a receiver back after days
        # offline must not leave the controller waiting on a stop or an emergency behind its backlog.
        self.backlog: Callable[[], bool] = lambda: False

    # ------------------------------------------------------------------------------------ intake

    async def submit(self, cmd: Play, quiet: bool = False) -> str | None:
        """Accept a play command; returns a refusal reason, or None (then `received` was acknowledged,
        unless `quiet`: a plan item, whose steps nobody waits to hear)."""
        refusal = f"item {cmd.item_id!r} is already queued or playing"
        if cmd.item_id in self.items:
            return refusal
        await self.disk(self.store.put, cmd.item_id, stored_form(cmd), quiet)
        if cmd.item_id in self.items:  # the same item submitted twice at once
            return refusal
        item = self._admit(cmd, quiet=quiet)
        if (self.reports(item) and cmd.target.scope != "receiver"
                and (cmd.start_at is None or cmd.start_at <= self.clock())):
            # A fan-out (a commune, everyone) due now: nobody waits for this receiver's `received`.
            self._spawn(self._ack_if_waiting(item))
        else:
            item.stepped = True
            await self._ack(item, "received", None)
        return None

    def reports(self, item: Item) -> bool:
        """Whether the item's proof-of-play events answer its command (protocol 2) in place of acks: not while
        older events wait to be sent."""
        return self.compact and not item.quiet and not self.backlog()

    async def _ack_if_waiting(self, item: Item) -> None:
        await asyncio.sleep(RECEIVED_AFTER_S)
        if self.items.get(item.cmd.item_id) is item and not item.announced:
            item.stepped = True
            await self._ack(item, "fetched" if item.ready else "received", None)

    def _admit(self, cmd: Play, position_s: float = 0.0, repeat_index: int = 0, quiet: bool = False) -> Item:
        self._arrivals += 1
        item = Item(cmd, self._arrivals, quiet=quiet, position_s=position_s, repeat_index=repeat_index)
        self.items[cmd.item_id] = item
        self._protect()
        if not self._missed(item, self.clock()):  # no download for what will be logged missed at once
            item.prepare = asyncio.create_task(self._prepare(item))
            self._fetches.add(item.prepare)
            item.prepare.add_done_callback(self._fetches.discard)
        self._wake.set()
        return item

    def withdrawable(self, item_id: str) -> bool:
        """Queued and not begun: not playing, not cut part-way, no repeat played."""
        item = self.items.get(item_id)
        return (item is not None and item is not self.current and not item.announced
                and item.position_s == 0 and item.repeat_index == 0)

    async def withdraw(self, item_id: str) -> bool:
        """Drop an item that has not started, silently: no ack and no proof-of-play event (it was never
        due). False if there is no such item or it has begun playing."""
        if not self.withdrawable(item_id):
            return False
        await self._forget(self.items[item_id])
        log.info("item %s withdrawn before it played", item_id)
        self._wake.set()
        return True

    async def restore(self) -> None:
        """After a restart: carry on with what was accepted before it, and account for what was cut."""
        try:
            await self._restore()
        finally:
            self.restored.set()  # whatever happened: the plan must not wait for ever

    async def _restore(self) -> None:
        stored = await self.disk(self.store.all)
        # Every stored item's inline audio is protected from eviction before the first of them is admitted.
        self.cache.protected = {sha for _, body, *_ in stored if (sha := _inline_sha(body))}
        for item_id, body, position, repeat_index, playing, quiet in stored:
            try:
                cmd = await self.disk(self._from_store, body)
            except AudioLost as e:  # a power cut before the cache had it: the command's answer is "failed"
                log.warning("item %s not restored: %s", item_id, e)
                self._event(e.cmd, "cut" if playing else "failed", position, repeat_index,
                            reason=f"audio not available: {e}", outcome=None if quiet else "failed")
                await self.disk(self.store.remove, item_id)
                continue
            except ValueError as e:
                log.warning("item %s not restored: %s", item_id, e)
                await self.disk(self.store.remove, item_id)
                continue
            if playing:
                # Its command's outcome, when it will not resume: protocol 2's answer (a controller that speaks
                # only protocol 1 ignores the field).
                final = None if cmd.resume or quiet else "failed"
                self._event(cmd, "cut", position, repeat_index, reason="power cut or restart while playing",
                            outcome=final)
                if not cmd.resume:
                    await self.disk(self.store.remove, item_id)
                    continue
                await self.disk(self.store.progress, item_id, position, repeat_index, False)
            self._admit(cmd, position, repeat_index, quiet=quiet)
        self._wake.set()
        self._schedule_idle_off()  # a relay left on by a crash goes off if nothing plays

    def _from_store(self, body: bytes) -> Play:
        """A stored command (`stored_form`) as it came, its inline audio read back from the cache;
        `AudioLost` (with the command) when the cache no longer has it."""
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("inline_audio") is None and doc.get("media") is None \
                and isinstance(doc.get("inline_sha256"), str):
            path = self.cache.get(doc["inline_sha256"])  # verified against its hash
            if path is None:
                # Any valid audio will do to name the command in its events; it is never played.
                cmd = Play.model_validate({**doc, "inline_audio": ""})
                raise AudioLost("its inline audio was lost (a power cut before it was on the card)", cmd)
            doc["inline_audio"] = base64.b64encode(path.read_bytes()).decode()
        return Play.model_validate(doc)

    async def _prepare(self, item: Item) -> None:
        cmd = item.cmd
        try:
            if cmd.inline_audio is not None:
                assert cmd.inline_sha256 is not None
                async with self.fetcher.lock(cmd.inline_sha256):
                    item.path = await self.disk(self._inline, cmd)
            else:
                item.path = await self._fetch(item)
        except (FetchFailed, ValueError, OSError) as e:
            if self.items.get(cmd.item_id) is item:
                await self._drop(item, "failed", f"audio not available: {e}", event="failed")
            return
        if self.items.get(cmd.item_id) is not item:
            return  # stopped while fetching
        item.ready = True
        if item.stepped or not self.reports(item):
            await self._ack(item, "fetched", None)
        self._wake.set()
        try:
            # The sink's slow work, ahead of a scheduled start so that it is on time. (An item due now may
            # begin meanwhile: the sink then finishes this work first, as it would have without it.)
            await self.sink.prepare(item.path)
        except Exception as e:  # the sink reports a real fault when it plays; the item is not lost here
            log.warning("item %s: the audio output could not prepare %s: %s", cmd.item_id, item.path.name, e)

    async def _fetch(self, item: Item) -> Path:
        """The item's verified audio file. A download waits for a slot of the fetch queue (nearest start
        first) unless the item is an emergency; a plan item's download is tried again, with backoff, until
        its start is missed (a failed attempt while the link is down must not lose the morning bulletin)."""
        media = item.cmd.media
        assert media is not None
        if item.cmd.priority == "emergency":
            return await self.fetcher.fetch(media)
        if self.fetch_queue.full:  # audio already here must not wait for other downloads
            cached = await self.disk(self.cache.get, media.sha256)
            if cached is not None:
                return cached
        for attempt in itertools.count():
            try:
                async with self.fetch_queue.slot((item.cmd.start_at or self.clock()).timestamp()):
                    return await self.fetcher.fetch(media)
            except NotRetryable:
                raise
            except FetchFailed as e:
                if not item.quiet:
                    raise
                delay = backoff_delay(attempt, *REFETCH_BACKOFF, self._rng)
                log.warning("item %s: audio not fetched yet (%s); trying again in %.0f s", item.cmd.item_id, e,
                            delay)
                await asyncio.sleep(delay)  # the player drops the item (and this task) once it is missed
        raise AssertionError("unreachable")

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
            with part.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # the item store keeps the command without it (`stored_form`)
        except OSError:
            part.unlink(missing_ok=True)
            raise
        return self.cache.admit(cmd.inline_sha256, part)

    # ---------------------------------------------------------------------------------- control

    def set_volume(self, volume: int) -> bool:
        """The receiver's own volume (a `set-volume`): applied at once (True), or — while an emergency-class
        item plays — only kept, to be applied when it ends (False), so that no volume change, however signed,
        silences an emergency part-way. (`_play` returns the mixer to `base_volume` after every item.)"""
        self.base_volume = volume
        if self.current is not None and self.current.cmd.priority == "emergency":
            log.info("volume %d kept for after the emergency item %s", volume, self.current.cmd.item_id)
            return False
        self.hardware.set_volume(volume)
        return True

    async def stop(self, cmd: Stop, answers: uuid.UUID | None = None) -> str | None:
        """Stop one item, a class, or everything. Returns a reason when nothing matched. With `answers` (the
        stop's id, protocol 2), the first event it causes answers the stop in place of an ack."""
        matched = [i for i in list(self.items.values())
                   if (cmd.item_id is None or i.cmd.item_id == cmd.item_id)
                   and (cmd.priority is None or i.cmd.priority == cmd.priority)]
        if not matched:
            return "nothing to stop"
        for item in matched:
            if item is self.current:
                await self._interrupt(item, "stopped by the controller", keep=False, answers=answers)
            else:
                await self._drop(item, "failed", "stopped before it played", event="cut", answers=answers)
            answers = None
        self._wake.set()
        return None

    async def run(self) -> None:
        await self.restore()
        while True:
            try:
                await self._decide()
            except Exception:  # the player must outlive any one item's trouble
                log.exception("player: scheduling step failed; carrying on")
            try:
                # Not wait_for: on 3.11 it swallows a cancellation that meets a wake-up, and the player
                # would outlive its agent.
                async with asyncio.timeout(self._next_wake_in()):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    def _next_wake_in(self) -> float | None:
        """Seconds until the next moment the player must act: a start, the lead-in and the amplifier's warm-up
        ahead of a start, or the moment a start counts as missed."""
        now = self.clock()
        moments = []
        warm = self.current is not None or self.hardware.amplifier_on()
        for i in self.items.values():
            start = i.cmd.start_at
            if i is self.current or start is None:
                continue
            if i.ready:
                moments.append(start)
                if self.current is None:
                    moments.append(start - dt.timedelta(seconds=LEAD_IN_S))
                if not warm:
                    moments.append(start - dt.timedelta(seconds=self.warmup_s + LEAD_IN_S))
            if not i.announced:
                moments.append(start + dt.timedelta(seconds=self.missed_tolerance_s + 0.001))
        waits = [(m - now).total_seconds() for m in moments if m > now]
        return min(waits) if waits else None

    def _missed(self, item: Item, now: dt.datetime) -> bool:
        """A scheduled start missed by more than the tolerance (the receiver was off, or the audio did not
        come in time) is given up — never a morning bulletin at midnight."""
        start = item.cmd.start_at
        return start is not None and (now - start).total_seconds() > self.missed_tolerance_s

    async def _decide(self) -> None:
        now = self.clock()
        for item in list(self.items.values()):
            if item is not self.current and not item.announced and self._missed(item, now):
                start = item.cmd.start_at
                assert start is not None
                await self._drop(item, "failed", f"start at {start.isoformat()} missed", event="missed")
        due = [i for i in self.items.values() if i.ready and i is not self.current
               and (i.cmd.start_at is None or i.cmd.start_at <= now)]
        if due:
            best = max(due, key=lambda i: (i.rank, -(i.cmd.start_at or now).timestamp(), -i.arrival))
            if self.current is None:
                self._start(best)
            elif best.rank > self.current.rank:
                await self._interrupt(self.current, f"pre-empted by {best.cmd.priority} item {best.cmd.item_id}",
                                      keep=self.current.cmd.resume)
                self._start(best)
        elif self.current is None:
            soon = [i for i in self.items.values() if i.ready and i.cmd.start_at is not None
                    and (i.cmd.start_at - now).total_seconds() <= LEAD_IN_S]
            if soon:  # taken up ahead, it waits for its start in `_play` (a pre-emption still comes on time)
                self._start(min(soon, key=lambda i: (i.cmd.start_at, -i.rank, i.arrival)))
        if self.current is None and not self.hardware.amplifier_on() and self._imminent(now):
            # Warm the amplifier up ahead of a scheduled start, so the warm-up does not delay it.
            self.hardware.set_amplifier(True)
            self._amp_on_since = time.monotonic()
            self._schedule_idle_off()  # off again if the item goes away before it plays
            self._spawn(self.on_change())

    def _imminent(self, now: dt.datetime) -> bool:
        """A ready item starts within the amplifier's warm-up."""
        lead = self.warmup_s + LEAD_IN_S
        return any(i.ready and i is not self.current and i.cmd.start_at is not None
                   and (i.cmd.start_at - now).total_seconds() <= lead for i in self.items.values())

    def _start(self, item: Item) -> None:
        self.current = item
        item.task = asyncio.create_task(self._play(item))
        # Kept until it ends, not only while its item is held: `close` must also wait for a play task that
        # has just dropped its finished item and is still writing its end (else it writes after the stores
        # are closed, and the item comes back at the next start as cut, after its `finished`).
        self._background.add(item.task)
        item.task.add_done_callback(self._background.discard)

    async def _interrupt(self, item: Item, reason: str, *, keep: bool, answers: uuid.UUID | None = None) -> None:
        if self.current is not item:
            return  # already interrupted by another path
        self.current = None
        task = item.task
        position = item.position_s + (time.monotonic() - item.started_monotonic if item.started_monotonic else 0)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._announced(item)
        item.task, item.started_monotonic = None, 0.0
        self._schedule_idle_off()
        if not item.announced and "stopped" not in reason:
            return  # pre-empted during the warm-up or the lead-in: it never sounded, so it simply waits
        item.announced = False
        reports = self.reports(item)  # once: the event itself makes a backlog
        self._event(item.cmd, "cut", position, item.repeat_index, reason=reason, answers=answers,
                    outcome=None if keep or not reports else "failed")
        if keep:
            item.position_s = position
            await self.disk(self.store.progress, item.cmd.item_id, position, item.repeat_index, False)
            log.info("item %s cut at %.1f s; will resume", item.cmd.item_id, position)
        else:
            await self._forget(item)
            if not reports:
                await self._ack(item, "failed", f"cut at {position:.1f} s: {reason}")
        await self.on_change()

    async def _drop(self, item: Item, status: str, reason: str, *, event: str,
                    answers: uuid.UUID | None = None) -> None:
        reports = self.reports(item)
        self._event(item.cmd, event, item.position_s, item.repeat_index, reason=reason, answers=answers,
                    outcome=status if reports else None)
        await self._forget(item)
        if not reports:
            await self._ack(item, status, reason)

    async def _ack(self, item: Item, status: str, reason: str | None) -> None:
        if not item.quiet:
            await self.ack(item.cmd, status, reason)

    async def _forget(self, item: Item) -> None:
        if self.items.get(item.cmd.item_id) is item:
            del self.items[item.cmd.item_id]
        if item.prepare is not None and not item.prepare.done() and item.prepare is not asyncio.current_task():
            item.prepare.cancel()  # nobody needs that download any more: spare the paid link
        self._protect()
        await self.disk(self.store.remove, item.cmd.item_id)

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
            ticker = asyncio.create_task(self._save_progress(item))
            try:
                if cmd.start_at is not None:  # taken up during its lead-in: start on the dot
                    await self._until(cmd.start_at)
                while item.repeat_index < cmd.repeat:
                    def sounding() -> None:
                        item.started_monotonic = time.monotonic()
                        if not item.announced:  # the first sound of this (re)start is its proof
                            item.announced = True
                            item.announcing = asyncio.create_task(self._announce(item, self.clock(), volume))

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
                await self._announced(item)
                await self._drop(item, "failed", reason, event="failed")
            except Exception:
                log.exception("could not record the failure of %s", cmd.item_id)
        else:
            self.current, item.task = None, None
            await self._announced(item)
            reports = self.reports(item)
            self._event(cmd, "finished", 0.0, cmd.repeat, volume=volume, outcome="done" if reports else None)
            await self._forget(item)
            if not reports:
                await self._ack(item, "done", None)
        await self.on_change()
        self._wake.set()
        self._schedule_idle_off()

    async def _until(self, at: dt.datetime) -> None:
        """Sleep until the receiver's clock shows `at`, to the millisecond. The wall clock and the loop's
        clock are read next to each other (again, if a garbage collection came between them), so that
        receivers that start together wake together."""
        loop = asyncio.get_running_loop()
        for _ in range(3):
            before = loop.time()
            now = self.clock()
            after = loop.time()
            if after - before < 0.0005:
                break
        when = (before + after) / 2 + (at - now).total_seconds()
        if when <= loop.time():
            return
        woken = loop.create_future()
        timer = loop.call_at(when, woken.set_result, None)
        try:
            await woken
        finally:
            timer.cancel()

    async def _announce(self, item: Item, at: dt.datetime, volume: int) -> None:
        """After the first sound (`at`), not before it, which it would delay — nor in the same moment, which
        would delay the receivers of a simulated fleet that start in it: record `started`, mark the item
        playing on disk, ack `playing`, publish the state."""
        try:
            async with asyncio.timeout(ANNOUNCE_AFTER_S):
                await item.announce_now.wait()
        except TimeoutError:
            pass
        reports = self.reports(item)
        self._event(item.cmd, "started", item.position_s, item.repeat_index, volume=volume, at=at,
                    outcome="playing" if reports else None)
        try:
            await self.disk(self.store.progress, item.cmd.item_id, item.position_s, item.repeat_index, True)
            if not reports:
                await self._ack(item, "playing", None)
            await self.on_change()
        except Exception:
            log.exception("item %s: could not announce its start", item.cmd.item_id)

    async def _announced(self, item: Item) -> None:
        """Let the announcement of the item's start finish before anything later is written or sent."""
        if item.announcing is not None:
            item.announce_now.set()
            await asyncio.gather(item.announcing, return_exceptions=True)
            item.announcing, item.announce_now = None, asyncio.Event()

    async def _save_progress(self, item: Item) -> None:
        """Where the playing item is, on disk every second: after a power cut it is logged as cut there,
        and resumed from there if its command asked."""
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            if item.started_monotonic:
                position = item.position_s + time.monotonic() - item.started_monotonic
                await self.disk(self.store.progress, item.cmd.item_id, position, item.repeat_index, True)

    async def _amplifier_on(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
            self._idle_task = None
        if not self.hardware.amplifier_on():
            self.hardware.set_amplifier(True)
            self._amp_on_since = time.monotonic()
            self._spawn(self.on_change())
        # The amplifier needs a moment before it sounds right — also for an item that pre-empted another
        # during that moment. Warmed up ahead (a scheduled start), there is nothing left to wait.
        wait = self._amp_on_since + self.warmup_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    def _schedule_idle_off(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()

        async def off_when_idle() -> None:
            while True:
                await asyncio.sleep(self.idle_off_s)
                if self.current is not None or not self.hardware.amplifier_on():
                    return
                if not self._imminent(self.clock()):  # not just warmed up for an item about to start
                    self.hardware.set_amplifier(False)
                    self._wake.set()  # the next scheduled item now needs a warm-up ahead of its start
                    await self.on_change()
                    return

        self._idle_task = asyncio.create_task(off_when_idle())

    def _spawn(self, work: Awaitable[Any]) -> None:
        """Run `work` on the side (a state publish must never hold up a start); kept until done."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _event(self, cmd: Play, kind: str, position: float, repeat_index: int, *, reason: str | None = None,
               volume: int | None = None, at: dt.datetime | None = None, outcome: str | None = None,
               answers: uuid.UUID | None = None) -> None:
        self.record(PlayEvent(event_id=uuid.uuid4(), seq=0, event=kind, at=at or self.clock(),  # type: ignore[arg-type]
                              item_id=cmd.item_id, command_id=cmd.command_id, priority=cmd.priority,
                              media_sha256=cmd.media.sha256 if cmd.media else cmd.inline_sha256,
                              position_s=round(position, 3), repeat_index=repeat_index, volume=volume, reason=reason,
                              outcome=outcome, answers=answers))  # type: ignore[arg-type]

    async def close(self) -> None:
        tasks = [t for t in (*self._fetches, *self._background, self._idle_task,
                             *(t for i in self.items.values() for t in (i.task, i.announcing))) if t]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
