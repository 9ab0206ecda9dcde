"""Expanding a programme's recurrence: which occurrences fall in a window.

Recurrences are RFC 5545 RRULEs (python-dateutil) expanded in Asia/Ho_Chi_Minh wall time from the
programme's start, so "daily at 06:00" stays 06:00 local whatever UTC says. Exception dates and the
validity period are local dates. `check_rrule` turns a bad rule into a message a person can act on.

Bounded cost: dateutil walks a rule from its start, period by period, and searches without end for an
occurrence that never comes. So `check_rrule` refuses rules that would make that walk long — every second,
every minute more often than `MAX_OCCURRENCES_PER_DAY` allows, a COUNT above `MAX_COUNT`, none within
`FIRST_WITHIN_YEARS` of the start — and `occurrences`
starts the walk of a rule without COUNT near the window asked for (moved by whole periods, which keeps every
occurrence where it was), so a programme started years ago costs what one started yesterday costs.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any

from dateutil.rrule import DAILY, HOURLY, MINUTELY, MONTHLY, SECONDLY, WEEKLY, YEARLY, rrule, rrulestr

from .model import TZ, Programme

MAX_OCCURRENCES_PER_DAY = 48  # a rule firing more often than every 30 minutes is a mistake, not a schedule
CHECK_DAYS = 62
MAX_COUNT = 10_000  # 27 years of a daily programme; an end date is said with UNTIL or the validity period
FIRST_WITHIN_YEARS = 10  # a leap day recurs within 8 years
# The frequencies whose period is a fixed length of wall time (months and years are not, and are cheap).
PERIOD = {SECONDLY: dt.timedelta(seconds=1), MINUTELY: dt.timedelta(minutes=1), HOURLY: dt.timedelta(hours=1),
          DAILY: dt.timedelta(days=1), WEEKLY: dt.timedelta(weeks=1)}


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
    local_start = start.astimezone(TZ)
    rule: Any = _rule(text, local_start)  # dateutil keeps the parts it parsed in private attributes
    freq, interval, count = rule._freq, rule._interval, rule._count
    if freq == SECONDLY:
        raise RecurrenceError("a programme cannot repeat every second: use FREQ=MINUTELY;INTERVAL=30 or longer")
    if freq == MINUTELY and interval * MAX_OCCURRENCES_PER_DAY < 24 * 60:
        every = 24 * 60 // MAX_OCCURRENCES_PER_DAY
        raise RecurrenceError(f"the rule fires more than {MAX_OCCURRENCES_PER_DAY} times a day (every {interval} "
                              f"minute(s)); at most {MAX_OCCURRENCES_PER_DAY}: FREQ=MINUTELY needs INTERVAL={every} "
                              "or more")
    if count is not None and count > MAX_COUNT:
        raise RecurrenceError(f"COUNT is at most {MAX_COUNT}: give an end with UNTIL or the validity period")
    if (count is not None and count < 1) or not _may_occur(rule, text, local_start):
        raise RecurrenceError("the rule never occurs on or after the start")
    # An UNTIL stops dateutil's walk only at a candidate, hence `_may_occur` first; then the search for the
    # first occurrence and the busiest day stop at a date, whatever the rule says.
    stop = local_start.replace(year=min(dt.MAXYEAR, local_start.year + FIRST_WITHIN_YEARS))
    until = rule._until
    bounded = rule.replace(count=None, until=min(until, stop) if until else stop)
    first = bounded.after(local_start, inc=True)
    if first is None:
        raise RecurrenceError("the rule never occurs on or after the start" if until and until < stop else
                              f"the rule does not occur in the {FIRST_WITHIN_YEARS} years after the start")
    # The busiest day in the next two months (a rule can be quiet on its first day, busy on weekends).
    per_day: dict[dt.date, int] = {}
    horizon = first + dt.timedelta(days=CHECK_DAYS)
    for n, t in enumerate(bounded.xafter(first, inc=True)):
        if t >= horizon or (count is not None and n >= count):
            break
        per_day[t.date()] = per_day.get(t.date(), 0) + 1
        if per_day[t.date()] > MAX_OCCURRENCES_PER_DAY:
            raise RecurrenceError(f"the rule fires more than {MAX_OCCURRENCES_PER_DAY} times a day (on {t:%d/%m/%Y}); "
                                  f"at most {MAX_OCCURRENCES_PER_DAY}")


GREGORIAN_CYCLE = 400  # years after which dates fall on the same weekdays again (146,097 days = 20,871 weeks)
DAY_PARTS = ("BYMONTH", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYDAY", "WKST")


def _late(start_local: dt.datetime) -> dt.datetime:
    """`start_local` moved by whole Gregorian cycles to within `GREGORIAN_CYCLE` + 10 years of dateutil's
    last year, where its search for a date that never comes ends after a few hundred steps."""
    cycles = (dt.MAXYEAR - 10 - start_local.year) // GREGORIAN_CYCLE
    return start_local.replace(year=start_local.year + cycles * GREGORIAN_CYCLE)


def _may_occur(rule: Any, text: str, start_local: dt.datetime) -> bool:
    """False for a rule that never occurs, found without dateutil's walk to the year 9999 (seconds to
    minutes for a daily or hourly rule whose days never come, such as 30 February). Dates repeat every
    Gregorian cycle, so a yearly or monthly rule is tried from its start moved late by whole cycles; a more
    frequent one is tried as the yearly rule of its day parts (which days could do), and its INTERVAL
    against the hours, minutes and weekdays it asks for."""
    freq, interval = rule._freq, rule._interval
    late = _late(start_local).replace(tzinfo=None)
    if freq in (YEARLY, MONTHLY):
        return rule.replace(dtstart=late, until=None, count=None).after(late, inc=True) is not None
    parts = dict(p.split("=", 1) for p in _rule_text(text).upper().replace("\n", ";").split(";") if "=" in p)
    days = {k: v for k, v in parts.items() if k in DAY_PARTS}
    if set(days) - {"WKST"}:
        # Weekdays without an ordinal (in a daily rule they have none), and every weekday when none is
        # given, so that the yearly rule takes no day from its start.
        days["BYDAY"] = ",".join(d.lstrip("+-0123456789") for d in days.get("BYDAY", "MO,TU,WE,TH,FR,SA,SU").split(","))
        yearly = rrulestr(";".join(["FREQ=YEARLY", *(f"{k}={v}" for k, v in days.items())]), dtstart=late)
        if yearly.after(late, inc=True) is None:
            return False
    minute0 = start_local.hour * 60 + start_local.minute
    if freq in (HOURLY, MINUTELY):
        step = interval * (60 if freq == HOURLY else 1)
        reachable = {(minute0 + k * step) % 1440 for k in range(1440)}
        hours, minutes = rule._byhour, rule._byminute
        if not any((not hours or m // 60 in hours) and (not minutes or m % 60 in minutes) for m in reachable):
            return False
    if freq == DAILY and rule._byweekday:
        reachable_days = {(start_local.weekday() + k * interval) % 7 for k in range(7)}
        if not reachable_days & set(rule._byweekday):
            return False
    return True


def _near(text: str, start_local: dt.datetime, lo: dt.datetime) -> rrule:
    """The rule `text` from `start_local`, its start moved forward by whole periods (INTERVAL × FREQ) to
    at most two periods before `lo`: the same occurrences from `lo` on, without walking the years between.
    A rule with COUNT counts from its own start, and months and years have no fixed length: not moved."""
    rule: Any = _rule(text, start_local)
    step = PERIOD.get(rule._freq)
    if step is None or rule._count is not None:
        return rule
    step *= rule._interval
    periods = (lo - start_local) // step - 2  # real time; wall time differs by the zone's past changes
    if periods <= 0:
        return rule
    # Aware arithmetic keeps the wall time (the hour, minute and weekday the rule takes from its start).
    return _rule(text, start_local + periods * step)


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
        times = [t for t in _near(p.rrule, first_local, lo).between(lo, hi, inc=True) if t < hi]
    return [t.astimezone(dt.UTC) for t in times if t.date() not in p.exdates]
