"""Placing programmes in time and compiling each receiver's plan.

- `place(programmes, start, end)`: every occurrence's items as `Slot`s at the times they will play. Higher
  classes keep their times; a lower class that would overlap one moves to just after it ("a priority item
  placed into a normal programme's time is played first and the programme moves after it"). Within a class,
  earlier occurrences keep their time and a later overlapping one (possible only with a stated order) moves
  after; at equal times `order="before"` goes first and `order="after"` last.
- `compile_plans(programmes, receivers, start, end)`: one `ReceiverPlan` per receiver — its slots and a
  version (SHA-256 of the slots' content), so equal versions mean nothing to send. Receivers that are
  targeted by the same set of programmes share one placement: 10,000 receivers usually make a few hundred.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .model import RANK, Programme, Slot
from .recurrence import occurrences

ORDER_KEY = {"before": 0, None: 1, "after": 2}


@dataclass(frozen=True)
class ReceiverPlan:
    slots: tuple[Slot, ...]
    version: str


def place(programmes: Sequence[Programme], start: dt.datetime, end: dt.datetime) -> list[Slot]:
    """Slots of every occurrence of `programmes` that start in [start, end), sorted by start."""
    blocks = []
    # An occurrence scheduled before the window can be pushed into it, and push others: look back by the
    # length of everything that could stand in front of it.
    lookback = sum((p.duration for p in programmes), dt.timedelta(0))
    for p in programmes:
        length = p.duration
        for occ in occurrences(p, start - lookback, end):
            blocks.append((-p.rank, occ, ORDER_KEY[p.order], p.id, p, length))
    blocks.sort(key=lambda b: b[:4])
    taken: list[tuple[dt.datetime, dt.datetime]] = []  # placed blocks, sorted by start
    slots: list[Slot] = []
    for _, occ, _, _, p, length in blocks:
        at = _first_free(taken, occ, length)
        _insert(taken, (at, at + length))
        offset = dt.timedelta(0)
        for index, item in enumerate(p.items):
            slot_start = at + offset
            if start <= slot_start < end:
                slots.append(Slot(p.id, p.title, p.priority, occ, index, item, slot_start, at - occ))
            offset += dt.timedelta(seconds=item.duration_s)
    slots.sort(key=lambda s: (s.start, -RANK[s.priority], s.programme_id, s.index))
    return slots


def _first_free(taken: list[tuple[dt.datetime, dt.datetime]], at: dt.datetime, length: dt.timedelta) -> dt.datetime:
    """The earliest time from `at` at which `length` fits between the taken blocks."""
    for s, e in taken:
        if e <= at:
            continue
        if at + length <= s:
            break
        at = max(at, e)
    return at


def _insert(taken: list[tuple[dt.datetime, dt.datetime]], block: tuple[dt.datetime, dt.datetime]) -> None:
    lo, hi = 0, len(taken)
    while lo < hi:
        mid = (lo + hi) // 2
        if taken[mid][0] < block[0]:
            lo = mid + 1
        else:
            hi = mid
    taken.insert(lo, block)


def version_of(slots: Iterable[Slot]) -> str:
    h = hashlib.sha256()
    for s in slots:
        h.update(f"{s.item_id}|{s.priority}|{s.start.isoformat()}|{s.item.sha256}|{s.item.duration_s}|"
                 f"{s.item.size}|{s.title}\n".encode())
    return h.hexdigest()


def compile_plans(programmes: Iterable[Programme], receivers: Iterable[str], start: dt.datetime,
                  end: dt.datetime) -> dict[str, ReceiverPlan]:
    """The plan of each of `receivers` for [start, end). A receiver no programme targets gets an empty plan
    (it must still hear that its last programme is gone)."""
    by_receiver: dict[str, list[int]] = defaultdict(list)
    index: dict[int, Programme] = {}
    for p in programmes:
        if p.paused:
            continue
        index[p.id] = p
        for rid in p.receivers:
            by_receiver[rid].append(p.id)
    shared: dict[tuple[int, ...], ReceiverPlan] = {}
    plans: dict[str, ReceiverPlan] = {}
    for rid in receivers:
        key = tuple(sorted(by_receiver.get(rid, ())))
        plan = shared.get(key)
        if plan is None:
            slots = tuple(place([index[i] for i in key], start, end))
            plan = shared[key] = ReceiverPlan(slots, version_of(slots))
        plans[rid] = plan
    return plans
