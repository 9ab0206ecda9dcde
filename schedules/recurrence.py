"""Expanding a programme's recurrence: which occurrences fall in a window.

Recurrences are RFC 5545 RRULEs (python-dateutil) expanded in Asia/Ho_Chi_Minh wall time from the
programme's start, so "daily at 06:00" stays 06:00 local whatever UTC says. Exception dates and the
validity period are local dates. `check_rrule` turns a bad rule into a message a person can act on.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from dateutil.rrule import rrule, rrulestr

from .model import TZ, Programme

MAX_OCCURRENCES_PER_DAY = 48  # a rule firing more often than every 30 minutes is a mistake, not a schedule
CHECK_DAYS = 62


class RecurrenceError(ValueError):
    """The RRULE cannot be used; the text says why."""


def _rule_text(text: str) -> str:
    text = text.strip()
    return text[len("RRULE:"):] if text.upper().startswith("RRULE:") else text


@lru_cache(maxsize=4096)
def _rule(text: str, start_local: dt.datetime) -> rrule:
    body = _rule_text(text)
    parts = body.replace("\n", ";").split(";")
    if any(part.strip().upper().startswith(("DTSTART", "EXDATE", "RDATE")) for part in parts):
        raise RecurrenceError("give only the RRULE; the start and the skipped dates are separate fields")
    try:
        rule = rrulestr(body, dtstart=start_local)
    except (ValueError, TypeError) as e:
        raise RecurrenceError(f"not a valid RRULE: {e}") from None
    if not isinstance(rule, rrule):
        raise RecurrenceError("give one RRULE")
    return rule


def check_rrule(text: str, start: dt.datetime) -> None:
    """Raise RecurrenceError if `text` is not a usable RRULE for a programme starting at `start`."""
    rule = _rule(text, start.astimezone(TZ))
    first = rule.after(start.astimezone(TZ), inc=True)
    if first is None:
        raise RecurrenceError("the rule never occurs on or after the start")
    # The busiest day in the next two months (a rule can be quiet on its first day, busy on weekends).
    per_day: dict[dt.date, int] = {}
    horizon = first + dt.timedelta(days=CHECK_DAYS)
    for t in rule.xafter(first, inc=True):
        if t >= horizon:
            break
        per_day[t.date()] = per_day.get(t.date(), 0) + 1
        if per_day[t.date()] > MAX_OCCURRENCES_PER_DAY:
            raise RecurrenceError(f"the rule fires more than {MAX_OCCURRENCES_PER_DAY} times a day (on {t:%d/%m/%Y}); "
                                  f"at most {MAX_OCCURRENCES_PER_DAY}")


def occurrences(p: Programme, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Scheduled starts of `p` in [start, end), in UTC, sorted; paused programmes have none."""
    if p.paused or not p.items:
        return []
    first_local = p.start.astimezone(TZ)
    lo, hi = start.astimezone(TZ), end.astimezone(TZ)
    if p.valid_from is not None:
        lo = max(lo, dt.datetime.combine(p.valid_from, dt.time(), TZ))
    if p.valid_until is not None:
        hi = min(hi, dt.datetime.combine(p.valid_until + dt.timedelta(days=1), dt.time(), TZ))
    if lo >= hi:
        return []
    if p.rrule is None:
        times = [first_local] if lo <= first_local < hi else []
    else:
        times = [t for t in _rule(p.rrule, first_local).between(lo, hi, inc=True) if t < hi]
    return [t.astimezone(dt.UTC) for t in times if t.date() not in p.exdates]
