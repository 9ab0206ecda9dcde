"""Clashes: two programmes of the same priority class that would play at the same time on a shared
receiver. A clash is refused at scheduling time with a message naming the other programme, the receivers
and the times — unless the new programme states an order against the ones it overlaps (`order`), in which
case placement (`schedules.plan.place`) plays one after the other."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from .model import TZ, Programme
from .recurrence import occurrences

SHOWN_RECEIVERS = 5


@dataclass(frozen=True)
class Clash:
    other: Programme
    receivers: frozenset[str]
    at: dt.datetime  # the new programme's occurrence (UTC)
    other_at: dt.datetime  # the other's overlapping occurrence (UTC)
    duration: dt.timedelta
    other_duration: dt.timedelta

    def describe(self) -> str:
        names = sorted(self.receivers)
        shown = ", ".join(names[:SHOWN_RECEIVERS]) + (f" and {len(names) - SHOWN_RECEIVERS} more"
                                                       if len(names) > SHOWN_RECEIVERS else "")
        return (f'Clashes with programme #{self.other.id} "{self.other.title}" ({self.other.priority}) on '
                f"{len(names)} receiver(s) ({shown}): it plays {_span(self.other_at, self.other_duration)}, "
                f"this one {_span(self.at, self.duration)} (Asia/Ho_Chi_Minh). Choose another time, or state "
                f'an order ("order": "before" or "after") to play one after the other.')


def _span(start: dt.datetime, length: dt.timedelta) -> str:
    a, b = start.astimezone(TZ), (start + length).astimezone(TZ)
    return f"{a:%d/%m/%Y %H:%M:%S}–{b:%H:%M:%S}"


def find_clash(new: Programme, existing: Iterable[Programme], start: dt.datetime, end: dt.datetime) -> Clash | None:
    """The first clash of `new` with any of `existing` in [start, end), or None. A programme that states an
    order does not clash; paused programmes and `new` itself (an edit) are not counted."""
    if new.order is not None or new.paused:
        return None
    mine: list[dt.datetime] | None = None
    found: Clash | None = None
    for other in existing:
        if other.id == new.id or other.paused or other.priority != new.priority:
            continue
        shared = new.receivers & other.receivers
        if not shared:
            continue
        if mine is None:
            mine = occurrences(new, start - new.duration, end)
            if not mine:
                return None
        theirs = occurrences(other, start - other.duration, end)
        hit = _first_overlap(mine, new.duration, theirs, other.duration)
        if hit is not None and (found is None or hit[0] < found.at):
            found = Clash(other, shared, hit[0], hit[1], new.duration, other.duration)
    return found


def _first_overlap(a: list[dt.datetime], a_len: dt.timedelta, b: list[dt.datetime],
                   b_len: dt.timedelta) -> tuple[dt.datetime, dt.datetime] | None:
    """Two sorted lists of equal-length intervals: the first pair that overlaps (sweep, O(len a + len b))."""
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i] < b[j] + b_len and b[j] < a[i] + a_len:
            return a[i], b[j]
        if a[i] + a_len <= b[j] + b_len:
            i += 1
        else:
            j += 1
    return None
