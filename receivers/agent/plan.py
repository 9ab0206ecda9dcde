"""The receiver's own plan: what it plays, when, also while its link is down.

The controller compiles each receiver's plan for the next hours (`receivers.protocol.Plan`), signs it like
a command, and serves it at `GET {controller_url}/api/v1/receivers/{rid}/plan` (HTTP Basic auth with the
receiver's own credentials, `ETag: "<version>"`, 304 for an `If-None-Match` that matches). The agent pulls
it when told (`sync-schedule`), after every (re)connection of its MQTT link, and every `plan_poll_s` in case
a notification was lost.

- `PlanKeeper`: pulls, checks (signature, receiver id, no rollback to an older plan), stores the signed
  envelope atomically on disk, and applies it; on start, applies the stored plan (re-verified) so a receiver
  that boots with no link still plays.
- Applying: each entry becomes a `Play` built locally (`plan_command`) and submitted to the player `quiet`
  (no acks: nobody waits for them; proof of play as for any item), nearest start first. Entries handled once
  are remembered on disk (`ReplayMemory`, key `plan:{item_id}`) and never submitted again; entries gone
  from a newer plan that have not started are withdrawn without a trace.
- `PullFailed`: why a pull came to nothing, and whether asking again soon may help.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import random
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from receivers.protocol import Plan, PlanEntry, Play, Rejected, Target, Verifier
from receivers.transport import backoff_delay

from .player import Player
from .store import ReplayMemory

log = logging.getLogger(__name__)

# command_id of a plan entry's play = uuid5(PLAN_NAMESPACE, item_id): the same on every pull and restart.
PLAN_NAMESPACE = uuid.UUID("5b8f8a52-3c1e-4f0a-9d57-6e2b1c7a9f30")
EXPIRY_MARGIN_S = 60.0  # a plan play expires this long after its last possible (late) end
HANDLED_KEEP = dt.timedelta(days=7)  # how long an entry is remembered as handled (and then ignored)
RETRY_MIN_S = 5.0  # after a failure worth retrying: backoff from here up to plan_poll_s
CONNECT_SPREAD_S = 2.0  # a fleet reconnecting together does not pull in the same instant
PULL_TIMEOUT_S = 20.0
KEEPALIVE_S = 2.0


class PullFailed(Exception):
    """The plan was not taken; `reason` goes into the log and the ack of `sync-schedule`."""

    def __init__(self, reason: str, *, retry: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry  # the controller was unreachable or failed: worth asking again before the next poll


def handled_key(item_id: str) -> str:
    return f"plan:{item_id}"


def plan_command_id(item_id: str) -> uuid.UUID:
    return uuid.uuid5(PLAN_NAMESPACE, item_id)


def plan_command(plan: Plan, entry: PlanEntry, missed_tolerance_s: float) -> Play:
    """The play an entry stands for, as if the controller had sent it when it compiled the plan."""
    last = entry.duration_s + missed_tolerance_s + EXPIRY_MARGIN_S
    return Play(command_id=plan_command_id(entry.item_id), issued_at=plan.generated_at,
                expires_at=entry.start_at + dt.timedelta(seconds=last), target=Target.receiver(plan.receiver_id),
                item_id=entry.item_id, priority=entry.priority, media=entry.media, start_at=entry.start_at,
                title=entry.title)


class PlanKeeper:
    def __init__(self, *, receiver_id: str, controller_url: str | None, username: str, password: str,
                 verifier: Verifier, player: Player, memory: ReplayMemory, path: Path,
                 clock: Callable[[], dt.datetime], rng: random.Random | None = None, poll_s: float = 300.0,
                 missed_tolerance_s: float = 120.0, timeout_s: float = PULL_TIMEOUT_S) -> None:
        self.rid = receiver_id
        self.controller_url = controller_url
        self.auth = (username, password)
        self.verifier, self.player, self.memory, self.path, self.clock = verifier, player, memory, path, clock
        self.rng = rng or random.Random()
        self.poll_s, self.missed_tolerance_s, self.timeout_s = poll_s, missed_tolerance_s, timeout_s
        self.plan: Plan | None = None  # the plan held (stored and applied)
        self.pulls = 0  # requests made, for tests and telemetry
        self._failures = 0  # pulls in a row that failed in a way worth retrying
        self._lock = asyncio.Lock()  # one pull or apply at a time
        self._pulled = asyncio.Event()  # a pull happened elsewhere: the poll timer starts again
        self.loaded = asyncio.Event()  # the stored plan (if any) is applied
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def version(self) -> str | None:
        return self.plan.version if self.plan else None

    @property
    def url(self) -> str:
        if not self.controller_url:
            raise PullFailed("no controller_url configured: cannot ask for the plan")
        return f"{self.controller_url.rstrip('/')}/api/v1/receivers/{self.rid}/plan"

    # ------------------------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Apply the stored plan (once the player has its items back from before a restart), then poll."""
        await self.player.restored.wait()
        async with self._lock:
            try:
                await self.load()
            except Exception:  # a plan must never take the agent down
                log.exception("%s: stored plan not applied", self.rid)
            finally:
                self.loaded.set()
        if not self.controller_url:
            log.warning("%s: no controller_url configured: the plan is never asked for", self.rid)
            return
        while True:
            if self._failures:
                delay = backoff_delay(self._failures - 1, RETRY_MIN_S, self.poll_s, self.rng)
            else:
                delay = self.poll_s * self.rng.uniform(0.8, 1.2)  # jitter: a fleet's polls spread out
            self._pulled.clear()
            try:
                async with asyncio.timeout(delay):  # (wait_for could swallow the agent's cancellation)
                    await self._pulled.wait()
                continue  # pulled for another reason: count again from now
            except TimeoutError:
                pass
            await self.pull()

    def pull_soon(self, spread_s: float = CONNECT_SPREAD_S) -> None:
        """Pull in the background after a random moment (after a reconnect: never hold up the link)."""
        if not self.controller_url:
            return  # said once, at start

        async def later() -> None:
            await asyncio.sleep(self.rng.uniform(0, spread_s))
            await self.pull()

        task = asyncio.create_task(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------------------------------ the store

    async def load(self) -> None:
        """Apply the plan stored on disk, re-verified; a missing, damaged or foreign one is ignored."""
        try:
            envelope = await asyncio.to_thread(self.path.read_bytes)
        except FileNotFoundError:
            return
        except OSError as e:
            log.error("%s: stored plan unreadable, ignored: %s", self.rid, e)
            return
        try:
            plan = self.verifier.open_plan(envelope)
            self._check(plan)
        except Rejected as r:
            log.error("%s: stored plan ignored: %s", self.rid, r.reason)
            return
        except PullFailed as e:
            log.error("%s: stored plan ignored: %s", self.rid, e.reason)
            return
        log.info("%s: stored plan %s loaded (generated %s)", self.rid, plan.version[:12], plan.generated_at.isoformat())
        await self.apply(plan)

    def _store(self, envelope: bytes) -> None:
        """Atomically: the old plan or the new one is on disk after a power cut, never half of one."""
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            f.write(envelope)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)  # the rename itself
        finally:
            os.close(fd)

    # ------------------------------------------------------------------------------------ pulling

    async def pull(self) -> str | None:
        """Ask the controller for the plan and take it if it is new and good. None when the receiver holds
        the controller's plan afterwards; otherwise the reason, which is also logged. Never raises."""
        try:
            async with self._lock:
                await self._pull()
        except PullFailed as e:
            self._failures = self._failures + 1 if e.retry else 0
            log.warning("%s: plan not taken: %s", self.rid, e.reason)
            return e.reason
        except Exception as e:  # a plan must never take the agent down
            log.exception("%s: plan pull failed", self.rid)
            self._failures += 1
            return f"plan pull failed on the receiver: {type(e).__name__}: {e}"
        finally:
            self._pulled.set()
        self._failures = 0
        return None

    async def _pull(self) -> None:
        url = self.url
        headers = {"If-None-Match": f'"{self.plan.version}"'} if self.plan else {}
        if self._client is None:
            # Idle connections are dropped before the server's keep-alive timeout (uvicorn: 5 s) would close
            # them under a request, which fails with a ReadError.
            self._client = httpx.AsyncClient(timeout=self.timeout_s, verify=url.startswith("https://"),
                                             trust_env=False, limits=httpx.Limits(keepalive_expiry=KEEPALIVE_S))
        self.pulls += 1
        try:
            r = await self._client.get(url, headers=headers, auth=self.auth)
        except httpx.HTTPError as e:
            raise PullFailed(f"controller unreachable: {type(e).__name__}: {e}", retry=True) from None
        if r.status_code == 304 and self.plan is not None:
            log.debug("%s: plan %s is current", self.rid, self.plan.version[:12])
            return
        if r.status_code in (401, 403):
            raise PullFailed(f"HTTP {r.status_code}: the controller refused this receiver's credentials")
        if r.status_code == 404:
            raise PullFailed("HTTP 404: the controller has no plan for this receiver")
        if r.status_code != 200:
            raise PullFailed(f"HTTP {r.status_code} from the controller", retry=r.status_code >= 500
                             or r.status_code in (408, 429))
        try:
            try:
                mark = self.memory.high_water()
            except sqlite3.Error:  # an unreadable memory must not stop the plan: the clock alone judges
                mark = None
            plan = self.verifier.open_plan(r.content, self.clock(), mark)
        except Rejected as e:
            raise PullFailed(f"plan refused: {e.reason}") from None
        self._check(plan)
        if self.plan is not None and plan.version == self.plan.version:
            return  # the same plan (a server that ignores If-None-Match)
        await asyncio.to_thread(self._store, r.content)
        await self.apply(plan)

    def _check(self, plan: Plan) -> None:
        if plan.receiver_id != self.rid:
            raise PullFailed(f"plan refused: it is for receiver {plan.receiver_id!r}")
        held = self.plan
        if held is not None and plan.generated_at < held.generated_at:
            raise PullFailed(f"plan refused: generated at {plan.generated_at.isoformat()}, before the plan held "
                             f"({held.generated_at.isoformat()}): a rollback")

    # ------------------------------------------------------------------------------------ applying

    async def apply(self, plan: Plan) -> None:
        """Make the player hold exactly the plan's entries that are not handled yet."""
        now = self.clock()
        wanted = {e.item_id for e in plan.entries}
        withdrawn = 0
        for item in list(self.player.items.values()):
            item_id = item.cmd.item_id
            if item_id in wanted or item.cmd.command_id != plan_command_id(item_id):
                continue  # still planned, or not a plan item at all (a command from the controller)
            if self.player.withdrawable(item_id):
                self._forget(item_id)  # first: should it come back in a later plan, it plays then
                withdrawn += await self.player.withdraw(item_id)
        added = 0
        for entry in sorted(plan.entries, key=lambda e: e.start_at):
            if entry.start_at + HANDLED_KEEP <= now or self._handled(entry.item_id):
                continue
            reason = await self.player.submit(plan_command(plan, entry, self.missed_tolerance_s), quiet=True)
            if reason is not None and entry.item_id not in self.player.items:
                log.warning("%s: plan entry %s not queued: %s", self.rid, entry.item_id, reason)
                continue
            # Only now: a power cut before this line leaves the item queued (items.sqlite), never lost.
            self._mark(entry.item_id, entry.start_at + HANDLED_KEEP, now)
            added += reason is None
        self.plan = plan
        log.info("%s: plan %s applied (generated %s): %d entries, %d queued, %d withdrawn", self.rid,
                 plan.version[:12], plan.generated_at.isoformat(), len(plan.entries), added, withdrawn)

    def _handled(self, item_id: str) -> bool:
        try:
            return self.memory.seen(handled_key(item_id))
        except sqlite3.Error as e:  # an unreadable memory must not silence the plan
            log.error("%s: plan memory unavailable (%s); queueing %s", self.rid, e, item_id)
            return False

    def _mark(self, item_id: str, keep_until: dt.datetime, now: dt.datetime) -> None:
        try:
            self.memory.first_time(handled_key(item_id), keep_until, now)
        except sqlite3.Error as e:
            log.error("%s: plan memory cannot write (%s): %s may play again after a restart", self.rid, e, item_id)

    def _forget(self, item_id: str) -> None:
        try:
            self.memory.forget(handled_key(item_id))
        except sqlite3.Error as e:
            log.error("%s: plan memory cannot write (%s)", self.rid, e)
