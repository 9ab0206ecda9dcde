"""Test data for the scheduling domain: content items, programmes and local times.

- `local(y, m, d, hh, mm)`: an aware datetime in Asia/Ho_Chi_Minh; `utc(...)`: the same in UTC.
- `item(key, seconds)`: a `ContentItem` whose sha256 is derived from its key (and an optional audio tag).
- `programme(id, title, start, ...)`: a `Programme` with sensible defaults (one 5-minute bulletin, one receiver).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any

import schedules
from schedules import ContentItem, Programme


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, ss, tzinfo=schedules.TZ)


def utc(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, ss, tzinfo=dt.UTC)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def item(key: str, seconds: float = 300.0, audio: str = "v1", title: str = "") -> ContentItem:
    """One piece of audio; changing `audio` gives it different bytes (another sha256)."""
    return ContentItem(key=key, sha256=sha(f"{key}/{audio}"), duration_s=seconds, size=int(seconds * 16_000),
                       title=title or key)


def programme(pid: int, title: str, start: dt.datetime, *, items: Iterable[ContentItem] | None = None,
              minutes: float = 5, receivers: Iterable[str] = ("xa-an-binh/loa-01",), **kw: Any) -> Programme:
    its = tuple(items) if items is not None else (item(f"bulletin:{pid}", minutes * 60),)
    return Programme(id=pid, title=title, items=its, receivers=frozenset(receivers), start=start, **kw)


def in_local(times: Iterable[dt.datetime]) -> list[dt.datetime]:
    """UTC occurrences as local wall times, for assertions that read like the schedule an operator entered."""
    return [t.astimezone(schedules.TZ) for t in times]
