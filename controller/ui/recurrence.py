"""Recurrence in plain Vietnamese: the few choices staff make on the programme form, built into an RFC 5545
RRULE, read back from one, and any RRULE described as a sentence ("Hằng ngày lúc 06:00", "Thứ Hai đầu
tiên của tháng lúc 07:00"). Pure functions: values in, text out (the words are in locale/vi/schedule.toml).

- `Recurrence`: what the form holds — once, daily, weekly on some weekdays, monthly on day N, monthly on
  the N-th (or last) weekday.
- `build(rec)`: its RRULE (None for once). The time of day is the programme's start (the rule's DTSTART),
  so the rule names no hour.
- `parse(rule)`: the `Recurrence` a rule was built from, or None when the form cannot show it (the form
  then keeps the rule as it is and only describes it).
- `describe(rule, start)`: any rule with its start as a sentence; parts it cannot put in words are shown
  as the rule itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from .i18n import t

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")  # RFC 5545 weekday codes, Monday = 0 as in Python
Kind = Literal["once", "daily", "weekly", "monthly_day", "monthly_nth"]
KINDS: tuple[Kind, ...] = ("once", "daily", "weekly", "monthly_day", "monthly_nth")
NTHS = (1, 2, 3, 4, -1)  # the first … fourth, and the last weekday of the month
KNOWN_PARTS = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYHOUR", "BYMINUTE", "BYMONTH", "BYSETPOS", "COUNT",
               "UNTIL", "WKST", "BYSECOND"}


@dataclass(frozen=True)
class Recurrence:
    kind: Kind = "once"
    weekdays: tuple[int, ...] = ()  # weekly: 0 = Monday … 6 = Sunday
    day: int = 1  # monthly_day: 1 … 31, or -1 for the last day of the month
    nth: int = 1  # monthly_nth: one of NTHS
    weekday: int = 0  # monthly_nth: which weekday


def build(rec: Recurrence) -> str | None:
    """The RRULE of `rec` (None: it plays once). A weekly rule without weekdays plays on the start's."""
    if rec.kind == "once":
        return None
    if rec.kind == "daily":
        return "FREQ=DAILY"
    if rec.kind == "weekly":
        days = sorted(set(rec.weekdays))
        return "FREQ=WEEKLY" + (";BYDAY=" + ",".join(DAYS[d] for d in days) if days else "")
    if rec.kind == "monthly_day":
        if not (rec.day == -1 or 1 <= rec.day <= 31):
            raise ValueError(f"no day {rec.day} in a month")
        return f"FREQ=MONTHLY;BYMONTHDAY={rec.day}"
    if rec.nth not in NTHS:
        raise ValueError(f"no {rec.nth}th weekday in a month")
    return f"FREQ=MONTHLY;BYDAY={rec.nth}{DAYS[rec.weekday]}"


def parts_of(rule: str) -> dict[str, str]:
    """`"RRULE:FREQ=DAILY;INTERVAL=2"` → {"FREQ": "DAILY", "INTERVAL": "2"} (keys upper case)."""
    text = rule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[len("RRULE:"):]
    out: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"not KEY=VALUE: {part!r}")
        out[key.strip().upper()] = value.strip().upper()
    return out


def _byday(value: str) -> list[tuple[int | None, int]]:
    """"1MO,-1FR,WE" → [(1, 0), (-1, 4), (None, 2)]."""
    out: list[tuple[int | None, int]] = []
    for token in value.split(","):
        token = token.strip()
        day = token[-2:]
        if day not in DAYS:
            raise ValueError(f"no weekday {token!r}")
        nth = token[:-2]
        out.append((int(nth) if nth not in ("", "+") else None, DAYS.index(day)))
    return out


def parse(rule: str | None) -> Recurrence | None:
    """The form's choices for `rule`, or None when the rule says more than they can (then it is kept as is)."""
    if rule is None or not rule.strip():
        return Recurrence("once")
    try:
        parts = parts_of(rule)
        freq, rest = parts.pop("FREQ", ""), parts
        if rest.get("INTERVAL", "1") == "1":
            rest.pop("INTERVAL", None)
        if freq == "DAILY" and not rest:
            return Recurrence("daily")
        if freq == "WEEKLY" and set(rest) <= {"BYDAY"}:
            days = _byday(rest["BYDAY"]) if "BYDAY" in rest else []
            if any(n is not None for n, _ in days):
                return None
            return Recurrence("weekly", weekdays=tuple(sorted({d for _, d in days})))
        if freq == "MONTHLY" and set(rest) == {"BYMONTHDAY"} and "," not in rest["BYMONTHDAY"]:
            day = int(rest["BYMONTHDAY"])
            return Recurrence("monthly_day", day=day) if day == -1 or 1 <= day <= 31 else None
        if freq == "MONTHLY" and set(rest) == {"BYDAY"}:
            days = _byday(rest["BYDAY"])
            if len(days) == 1 and days[0][0] in NTHS:
                nth, day = days[0]
                return Recurrence("monthly_nth", nth=nth or 1, weekday=day)
    except ValueError:
        return None
    return None


# ------------------------------------------------------------------------------------------ describing


def _local(start: dt.datetime) -> dt.datetime:
    return start.astimezone(TZ) if start.tzinfo else start.replace(tzinfo=TZ)


def _and(words: list[str]) -> str:
    """["a"] → "a"; ["a", "b", "c"] → "a, b và c"."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " " + t("schedule.rec.and") + " " + words[-1]


def _weekday(d: int) -> str:
    return t(f"common.weekday.{d}")


def _days(days: list[int]) -> str:
    days = sorted(set(days))
    if days == [0, 1, 2, 3, 4]:
        return t("schedule.rec.workdays")
    return ", ".join(_weekday(d) for d in days)


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v.strip()]


def _times(parts: dict[str, str], start: dt.datetime) -> str:
    hours = _ints(parts["BYHOUR"]) if "BYHOUR" in parts else [start.hour]
    minutes = _ints(parts["BYMINUTE"]) if "BYMINUTE" in parts else [start.minute]
    return _and([f"{h:02d}:{m:02d}" for h in sorted(set(hours)) for m in sorted(set(minutes))])


def _until(value: str) -> dt.date:
    when = dt.datetime.strptime(value[:8], "%Y%m%d")
    if value.endswith("Z") and "T" in value:  # a UTC instant: the local date it falls on
        when = dt.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC).astimezone(TZ)
    return when.date()


def _nth(nth: int, day: int) -> str:
    return t("schedule.rec.nth_weekday", weekday=_weekday(day), nth=t(f"schedule.rec.nth.{nth}"))


def _every(parts: dict[str, str], unit: str) -> tuple[int, str]:
    """(the interval, "hằng tuần" or "2 tuần một lần") for a unit of day/week/month/year."""
    n = int(parts.get("INTERVAL", "1"))
    if n < 1:
        raise ValueError("INTERVAL must be at least 1")
    return n, t(f"schedule.rec.every.{unit}") if n == 1 else t(f"schedule.rec.every_n.{unit}", n=n)


def _sentence(parts: dict[str, str], start: dt.datetime) -> str | None:
    """The rule without its end (COUNT, UNTIL) in words, or None when it says more than we put in words."""
    freq = parts.get("FREQ")
    keys = set(parts) - {"FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST"}
    if "BYSECOND" in parts and _ints(parts["BYSECOND"]) != [0]:
        return None
    keys.discard("BYSECOND")
    at = t("schedule.rec.at", times=_times(parts, start))
    if freq in ("HOURLY", "MINUTELY"):
        if keys:
            return None
        n = int(parts.get("INTERVAL", "1"))
        unit = "hour" if freq == "HOURLY" else "minute"
        every = t(f"schedule.rec.every.{unit}") if n == 1 else t(f"schedule.rec.every_n.{unit}", n=n)
        return t("schedule.rec.from", every=every, time=f"{start:%H:%M}", date=f"{start:%d/%m/%Y}")
    keys -= {"BYHOUR", "BYMINUTE"}
    if freq == "DAILY":
        n, every = _every(parts, "day")
        if not keys:
            return f"{every} {at}"
        if keys == {"BYDAY"} and n == 1:
            days = _byday(parts["BYDAY"])
            if all(k is None for k, _ in days):
                return t("schedule.rec.weekly", days=_days([d for _, d in days]), every=t("schedule.rec.every.week"),
                         at=at)
        return None
    if freq == "WEEKLY":
        if keys - {"BYDAY"}:
            return None
        days = _byday(parts["BYDAY"]) if "BYDAY" in parts else [(None, start.weekday())]
        if any(k is not None for k, _ in days):
            return None
        n, every = _every(parts, "week")
        if n == 1 and len({d for _, d in days}) == 7:
            return f"{t('schedule.rec.every.day')} {at}"
        sep = " " if n == 1 else ", "
        return f"{_days([d for _, d in days])}{sep}{every} {at}"
    if freq == "MONTHLY":
        n, every = _every(parts, "month")
        tail = "" if n == 1 else f", {every}"
        if keys == {"BYDAY"} or keys == {"BYDAY", "BYSETPOS"}:
            days = _byday(parts["BYDAY"])
            if "BYSETPOS" in parts:
                pos = _ints(parts["BYSETPOS"])
                if len(pos) != 1 or any(k is not None for k, _ in days) or len(days) != 1:
                    return None
                days = [(pos[0], days[0][1])]
            if any(k is None or not (-5 <= k <= 5) or k == 0 for k, _ in days):
                return None
            text = _and([_nth(k or 1, d) for k, d in days])
            return t("schedule.rec.of_month", what=text) + f"{tail} {at}"
        if keys <= {"BYMONTHDAY"}:
            mdays = _ints(parts["BYMONTHDAY"]) if "BYMONTHDAY" in parts else [start.day]
            if mdays == [-1]:
                return t("schedule.rec.last_day") + f"{tail} {at}"
            if any(not 1 <= d <= 31 for d in mdays):
                return None
            sep = " " if n == 1 else ", "
            return f"{t('schedule.rec.monthly_day', days=_and([str(d) for d in mdays]))}{sep}{every} {at}"
        return None
    if freq == "YEARLY":
        if keys - {"BYMONTH", "BYMONTHDAY"}:
            return None
        months = _ints(parts["BYMONTH"]) if "BYMONTH" in parts else [start.month]
        mdays = _ints(parts["BYMONTHDAY"]) if "BYMONTHDAY" in parts else [start.day]
        if len(months) != 1 or len(mdays) != 1 or not 1 <= mdays[0] <= 31:
            return None
        n, every = _every(parts, "year")
        return t("schedule.rec.yearly", every=every, date=f"{mdays[0]:02d}/{months[0]:02d}",
                 at=at)
    return None


def describe(rule: str | None, start: dt.datetime) -> str:
    """`rule` starting at `start` (local time when naive) in Vietnamese; None: once, at `start`."""
    local = _local(start)
    if rule is None or not rule.strip():
        return t("schedule.rec.once", time=f"{local:%H:%M}", weekday=_weekday(local.weekday()),
                 date=f"{local:%d/%m/%Y}")
    try:
        parts = parts_of(rule)
        if set(parts) - KNOWN_PARTS:
            raise ValueError("a part we do not describe")
        text = _sentence(parts, local)
        if text is None:
            raise ValueError("more than we put in words")
        if "COUNT" in parts:
            text += t("schedule.rec.count", n=int(parts["COUNT"]))
        if "UNTIL" in parts:
            text += t("schedule.rec.until", date=f"{_until(parts['UNTIL']):%d/%m/%Y}")
        return text[:1].upper() + text[1:]
    except ValueError:
        return t("schedule.rec.custom", rule=rule.strip(), time=f"{local:%H:%M}")
