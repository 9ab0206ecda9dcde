"""The scheduling domain's values: what a programme is, once its targets are resolved to receivers.

- `TZ`: Asia/Ho_Chi_Minh, the zone programmes are entered and expanded in (times are stored in UTC).
- `ContentItem`: one piece of audio a programme plays (a bulletin or an announcement), by content hash.
- `Programme`: title, ordered items, the receivers it targets, start and recurrence, exceptions, validity,
  priority class and an optional order against programmes it overlaps.
- `Slot`: one item of one occurrence, placed at the absolute time it will play.

Everything here is a frozen value; nothing reads a clock, a file or a database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
Priority = Literal["emergency", "priority", "normal"]
RANK: dict[str, int] = {"emergency": 3, "priority": 2, "normal": 1}
# How a programme stands against a same-class programme it overlaps: it plays before it, after it, or
# (None) the overlap is a clash that must be refused.
Order = Literal["before", "after"]


@dataclass(frozen=True)
class ContentItem:
    key: str  # "bulletin:12", "announcement:7": what staff picked
    sha256: str
    duration_s: float
    size: int
    title: str = ""


@dataclass(frozen=True)
class Programme:
    id: int
    title: str
    items: tuple[ContentItem, ...]
    receivers: frozenset[str]
    start: dt.datetime  # aware; the first occurrence (and, with an rrule, its DTSTART in TZ)
    rrule: str | None = None  # RFC 5545 RRULE, e.g. "FREQ=DAILY;BYHOUR=6,17;BYMINUTE=0"
    exdates: frozenset[dt.date] = frozenset()  # local dates skipped
    valid_from: dt.date | None = None  # local dates, inclusive
    valid_until: dt.date | None = None
    priority: Priority = "normal"
    order: Order | None = None
    paused: bool = False

    @property
    def duration(self) -> dt.timedelta:
        return dt.timedelta(seconds=sum(i.duration_s for i in self.items))

    @property
    def rank(self) -> int:
        return RANK[self.priority]


@dataclass(frozen=True)
class Slot:
    """One item of one occurrence at the time it will play (`start`), which is the occurrence's own time
    plus the items before it, moved later if a higher class or an earlier programme holds that time."""

    programme_id: int
    title: str
    priority: Priority
    occurrence: dt.datetime  # the occurrence's scheduled start (UTC)
    index: int  # the item's place in the programme
    item: ContentItem
    start: dt.datetime  # UTC
    shifted: dt.timedelta = field(default=dt.timedelta(0))

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=self.item.duration_s)

    @property
    def item_id(self) -> str:
        """Names this item of this occurrence as placed: changes when its time or audio changes."""
        at = self.start.astimezone(dt.UTC)
        return f"p{self.programme_id}-{at:%Y%m%dT%H%M%S}-{self.index}-{self.item.sha256[:12]}"
