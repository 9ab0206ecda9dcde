"""Dates, times and durations as Vietnamese staff read them: dd/mm/yyyy, 24-hour clock, Asia/Ho_Chi_Minh."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from .i18n import t

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def local(value: dt.datetime) -> dt.datetime:
    """`value` in Vietnam's time (a naive value is UTC, as the database stores it)."""
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(TZ)


def date_vi(value: dt.date | dt.datetime) -> str:
    d = local(value) if isinstance(value, dt.datetime) else value
    return d.strftime("%d/%m/%Y")


def time_vi(value: dt.datetime, *, seconds: bool = False) -> str:
    return local(value).strftime("%H:%M:%S" if seconds else "%H:%M")


def datetime_vi(value: dt.datetime | None, *, seconds: bool = False) -> str:
    if value is None:
        return "—"
    return f"{time_vi(value, seconds=seconds)} {date_vi(value)}"


def weekday_vi(value: dt.date) -> str:
    return t(f"common.weekday.{value.weekday()}")


def duration_vi(seconds: float) -> str:
    """`75` → `1:15`, `3725` → `1:02:05`."""
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def voice_vi(engine: str | None) -> str:
    """The Vietnamese name of what read a text: "Giọng Google (trực tuyến)", "Bản ghi sẵn", …"""
    try:
        return t(f"voices.engine.{engine}")
    except KeyError:
        return engine or "—"
