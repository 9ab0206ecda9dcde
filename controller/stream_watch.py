"""What the controller checks in each receiver's "online": has it missed commands, and is it one process?

- Command numbers. Every command is numbered in its stream — its target: `receiver:{id}`, `commune:{code}`
  or `all` — in the signed body (`Command.seq`); `StreamWatch.number` gives the next one. The counters live
  in memory and start, after a restart, from the commands recorded in the database (`CommandRecord`, one row
  per command sent; `rotate-key`, signed before it is handed over, is not numbered and not counted).
- Sequence gaps. An agent reports in its "online" the highest number it has received per stream
  (`Availability.last_seq`, 0 for none). A stream is judged when the agent has received something on it, or
  when this controller saw the receiver online before (its counters then are the baseline: what was sent
  before a receiver first connected was never queued for it, and is not a gap). Behind, the receiver may only
  be waiting for what the broker still queues for it, so the verdict waits `liveness.resync_grace_s`,
  counting meanwhile the acks of numbered commands (every command is acknowledged). Still behind: the gap
  is logged and audited
  (`receiver.sequence-gap`) and the gap listeners resynchronise the receiver (`BridgeBase.resync`: its plan;
  the emergency tracker re-sends what it has not acknowledged on every "online" anyway).
- Clones. An agent names its process (`Availability.instance`, random at each start). Online availabilities
  of one receiver that go back to an instance id after another within `liveness.clone_window_s` are two
  processes with the same credentials taking the connection from each other: audited once per window as
  `receiver.cloned`, which fleet health shows as an alarm.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from controller.config import Settings
from controller.db.models import CommandRecord
from controller.scheduling import Inventory
from controller.services import audit as audit_log
from receivers.protocol import Ack, Availability, Command, Target

log = logging.getLogger(__name__)
C = TypeVar("C", bound=Command)
UNNUMBERED_KINDS = ("rotate-key",)
REMEMBERED_COMMANDS = 50_000  # command id → its number, to count acks during a grace period
GAP = "receiver.sequence-gap"
CLONED = "receiver.cloned"
GapListener = Callable[[str, dict[str, int]], Awaitable[None]]


class StreamWatch:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings, self.engine = settings, engine
        self.counters: collections.Counter[str] = collections.Counter()
        self.commune_of: dict[str, str] = {}
        self._numbers: collections.OrderedDict[str, tuple[str, int]] = collections.OrderedDict()
        self._heard: dict[str, dict[str, int]] = {}  # receiver → judged stream → highest number it has
        self._baseline: dict[str, dict[str, int]] = {}  # receiver → stream → counter at its last "online"
        self._checks: dict[str, asyncio.Task[None]] = {}
        self._instances: dict[str, collections.deque[tuple[float, str]]] = {}
        self._flagged: dict[str, float] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.gap_listeners: list[GapListener] = []
        self.gaps = 0
        self.clones = 0

    def load(self) -> None:
        with Session(self.engine) as s:
            self.commune_of = dict(Inventory.load(s).receivers)
            rows = s.exec(select(CommandRecord.target, func.count())
                          .where(col(CommandRecord.kind).not_in(UNNUMBERED_KINDS))
                          .group_by(col(CommandRecord.target))).all()
        self.counters = collections.Counter({target: int(n) for target, n in rows})

    async def stop(self) -> None:
        tasks = [*self._checks.values(), *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._checks.clear()

    # ---------------------------------------------------------------------------------- numbering

    def number(self, command: C) -> C:
        """`command` with the next number of its stream (unchanged if it has one)."""
        if command.seq is not None:
            return command
        stream = str(command.target)
        self.counters[stream] += 1
        n = self.counters[stream]
        self._numbers[str(command.command_id)] = (stream, n)
        if len(self._numbers) > REMEMBERED_COMMANDS:
            self._numbers.popitem(last=False)
        return command.model_copy(update={"seq": n})

    def streams(self, rid: str) -> list[str]:
        commune = self.commune_of.get(rid)
        return [str(Target.receiver(rid)), *([str(Target.commune(commune))] if commune else []),
                str(Target.everyone())]

    def behind(self, rid: str) -> dict[str, int]:
        """Stream → how many commands receiver `rid` lacks, by what it has reported and acknowledged."""
        heard = self._heard.get(rid, {})
        return {s: self.counters[s] - n for s, n in heard.items() if self.counters[s] > n}

    # ---------------------------------------------------------------------------------- reports

    def on_ack(self, rid: str, ack: Ack) -> None:
        numbered = self._numbers.get(str(ack.command_id))
        heard = self._heard.get(rid)
        if numbered is not None and heard is not None and numbered[0] in heard:
            stream, n = numbered
            heard[stream] = max(heard[stream], n)

    def on_online(self, rid: str, msg: Availability, *, retain: bool) -> None:
        """Called on the event loop for each "online" of a known receiver."""
        if msg.instance and not retain:
            self._check_clone(rid, msg.instance)
        if msg.last_seq is None or retain:
            return  # an agent that does not number, or an old "online" replayed on subscribing
        before = self._baseline.get(rid, {})
        self._baseline[rid] = {s: self.counters[s] for s in self.streams(rid)}
        self._heard[rid] = {s: max(msg.last_seq.get(s, 0), before.get(s, 0)) for s in self.streams(rid)
                            if msg.last_seq.get(s, 0) > 0 or s in before}
        if not self.behind(rid) or rid in self._checks:
            return
        task = asyncio.get_running_loop().create_task(self._verdict(rid))
        self._checks[rid] = task
        task.add_done_callback(lambda _: self._checks.pop(rid, None))

    async def _verdict(self, rid: str) -> None:
        await asyncio.sleep(self.settings.liveness.resync_grace_s)
        missing = self.behind(rid)
        if not missing:
            return
        self.gaps += 1
        detail = "missed " + ", ".join(f"{n} on {s} (up to no. {self.counters[s]})" for s, n in sorted(missing.items()))
        log.warning("receiver %s came back behind: %s; resynchronising", rid, detail)
        await asyncio.to_thread(audit_log.record, self.engine, "controller", GAP, "detected", target=rid,
                                detail=detail + "; plan and emergencies sent again")
        for listener in self.gap_listeners:
            try:
                await listener(rid, missing)
            except Exception:
                log.exception("resynchronising %s failed", rid)

    def instances(self, rid: str) -> list[str]:
        """The agent processes seen online for receiver `rid` within the clone window, oldest first."""
        return [i for _, i in self._instances.get(rid, ())]

    def _check_clone(self, rid: str, instance: str) -> None:
        now, window = time.monotonic(), self.settings.liveness.clone_window_s
        seen = self._instances.setdefault(rid, collections.deque(maxlen=16))
        while seen and now - seen[0][0] > window:
            seen.popleft()
        earlier = [i for _, i in seen]
        seen.append((now, instance))
        if not earlier or earlier[-1] == instance or instance not in earlier:
            return  # the same process reconnecting, or a new one (a restart)
        if now - self._flagged.get(rid, -window - 1) <= window:
            return  # already said within this window
        self._flagged[rid] = now
        self.clones += 1
        others = sorted(set(earlier) - {instance})
        detail = (f"two agent processes answer for this receiver ({instance} and {', '.join(others)}), taking the "
                  f"connection from each other within {window:g} s: a copied SD card or stolen credentials")
        log.error("receiver %s: %s", rid, detail)
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(
            audit_log.record, self.engine, "controller", CLONED, "detected", target=rid, detail=detail))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
