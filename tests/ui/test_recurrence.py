"""Recurrence in plain Vietnamese (controller.ui.recurrence): the form's choices built into RRULEs that the
scheduler expands as meant, read back from them, and any rule described as staff would say it. No browser."""

from __future__ import annotations

import datetime as dt

import pytest

import schedules
from controller.ui.recurrence import Recurrence, build, describe, parse
from schedules import TZ

MONDAY = dt.date(2026, 12, 14)


def at(hour: int, minute: int = 0, day: dt.date = MONDAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), TZ)


@pytest.mark.parametrize(("rec", "rule"), [
    (Recurrence("once"), None),
    (Recurrence("daily"), "FREQ=DAILY"),
    (Recurrence("weekly", weekdays=(4, 0, 2)), "FREQ=WEEKLY;BYDAY=MO,WE,FR"),
    (Recurrence("weekly", weekdays=(6,)), "FREQ=WEEKLY;BYDAY=SU"),
    (Recurrence("weekly"), "FREQ=WEEKLY"),
    (Recurrence("monthly_day", day=15), "FREQ=MONTHLY;BYMONTHDAY=15"),
    (Recurrence("monthly_day", day=-1), "FREQ=MONTHLY;BYMONTHDAY=-1"),
    (Recurrence("monthly_nth", nth=1, weekday=0), "FREQ=MONTHLY;BYDAY=1MO"),
    (Recurrence("monthly_nth", nth=2, weekday=0), "FREQ=MONTHLY;BYDAY=2MO"),
    (Recurrence("monthly_nth", nth=-1, weekday=4), "FREQ=MONTHLY;BYDAY=-1FR"),
])
def test_choices_build_a_rule_and_are_read_back_from_it(rec: Recurrence, rule: str | None) -> None:
    assert build(rec) == rule
    back = parse(rule)
    assert back is not None and build(back) == rule
    if rec.kind != "weekly":
        assert back == rec
    else:
        assert set(back.weekdays) == set(rec.weekdays)


@pytest.mark.parametrize("bad", [Recurrence("monthly_day", day=0), Recurrence("monthly_day", day=32),
                                 Recurrence("monthly_nth", nth=5), Recurrence("monthly_nth", nth=0)])
def test_impossible_choices_are_refused(bad: Recurrence) -> None:
    with pytest.raises(ValueError):
        build(bad)


@pytest.mark.parametrize(("rule", "start", "text"), [
    (None, at(6), "Một lần lúc 06:00 Thứ Hai 14/12/2026"),
    ("FREQ=DAILY", at(6), "Hằng ngày lúc 06:00"),
    ("RRULE:FREQ=DAILY", at(6), "Hằng ngày lúc 06:00"),
    ("freq=daily", at(6), "Hằng ngày lúc 06:00"),
    ("FREQ=DAILY;BYHOUR=6,17;BYMINUTE=0", at(6), "Hằng ngày lúc 06:00 và 17:00"),
    ("FREQ=DAILY;BYHOUR=6,11,17;BYMINUTE=30", at(6), "Hằng ngày lúc 06:30, 11:30 và 17:30"),
    ("FREQ=DAILY;INTERVAL=2", at(5, 45), "2 ngày một lần lúc 05:45"),
    ("FREQ=DAILY;BYDAY=SA,SU", at(7), "Thứ Bảy, Chủ Nhật hằng tuần lúc 07:00"),
    ("FREQ=WEEKLY;BYDAY=MO,WE,FR", at(17, 30), "Thứ Hai, Thứ Tư, Thứ Sáu hằng tuần lúc 17:30"),
    ("FREQ=WEEKLY;BYDAY=FR,MO,WE", at(17, 30), "Thứ Hai, Thứ Tư, Thứ Sáu hằng tuần lúc 17:30"),
    ("FREQ=WEEKLY", at(7), "Thứ Hai hằng tuần lúc 07:00"),
    ("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", at(6), "Từ Thứ Hai đến Thứ Sáu hằng tuần lúc 06:00"),
    ("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU", at(6), "Hằng ngày lúc 06:00"),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", at(8), "Thứ Ba, 2 tuần một lần lúc 08:00"),
    ("FREQ=MONTHLY;BYDAY=1MO", at(7), "Thứ Hai đầu tiên của tháng lúc 07:00"),
    ("FREQ=MONTHLY;BYDAY=+1MO", at(7), "Thứ Hai đầu tiên của tháng lúc 07:00"),
    ("FREQ=MONTHLY;BYDAY=2MO", at(7), "Thứ Hai thứ hai của tháng lúc 07:00"),
    ("FREQ=MONTHLY;BYDAY=3TH", at(7), "Thứ Năm thứ ba của tháng lúc 07:00"),
    ("FREQ=MONTHLY;BYDAY=-1FR", at(16), "Thứ Sáu cuối cùng của tháng lúc 16:00"),
    ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=1", at(7), "Thứ Hai đầu tiên của tháng lúc 07:00"),
    ("FREQ=MONTHLY;BYDAY=1MO,3MO", at(7), "Thứ Hai đầu tiên và Thứ Hai thứ ba của tháng lúc 07:00"),
    ("FREQ=MONTHLY;BYMONTHDAY=15", at(7), "Ngày 15 hằng tháng lúc 07:00"),
    ("FREQ=MONTHLY;BYMONTHDAY=1,15", at(7), "Ngày 1 và 15 hằng tháng lúc 07:00"),
    ("FREQ=MONTHLY", at(7), "Ngày 14 hằng tháng lúc 07:00"),
    ("FREQ=MONTHLY;BYMONTHDAY=-1", at(20), "Ngày cuối cùng của tháng lúc 20:00"),
    ("FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=1", at(7), "Ngày 1, 3 tháng một lần lúc 07:00"),
    ("FREQ=YEARLY;BYMONTH=9;BYMONTHDAY=2", at(7), "Hằng năm ngày 02/09 lúc 07:00"),
    ("FREQ=YEARLY", at(7), "Hằng năm ngày 14/12 lúc 07:00"),
    ("FREQ=HOURLY;INTERVAL=3", at(6), "3 giờ một lần, bắt đầu từ 06:00 ngày 14/12/2026"),
    ("FREQ=MINUTELY;INTERVAL=30", at(6), "30 phút một lần, bắt đầu từ 06:00 ngày 14/12/2026"),
    ("FREQ=DAILY;COUNT=5", at(6), "Hằng ngày lúc 06:00, 5 lần"),
    ("FREQ=DAILY;UNTIL=20261231", at(6), "Hằng ngày lúc 06:00, đến hết ngày 31/12/2026"),
    ("FREQ=DAILY;UNTIL=20261231T165959Z", at(6), "Hằng ngày lúc 06:00, đến hết ngày 31/12/2026"),
])
def test_a_rule_is_described_in_vietnamese(rule: str | None, start: dt.datetime, text: str) -> None:
    assert describe(rule, start) == text


def test_a_naive_start_is_local_and_an_aware_one_is_shown_in_vietnam() -> None:
    assert describe("FREQ=DAILY", dt.datetime(2026, 12, 14, 6, 0)) == "Hằng ngày lúc 06:00"
    utc = dt.datetime(2026, 12, 13, 23, 0, tzinfo=dt.UTC)  # 06:00 on the 14th in Vietnam
    assert describe(None, utc) == "Một lần lúc 06:00 Thứ Hai 14/12/2026"


@pytest.mark.parametrize("rule", ["FREQ=SECONDLY", "not a rule", "FREQ=DAILY;BYSETPOS=2;X-NAME=1",
                                  "FREQ=YEARLY;BYWEEKNO=20", "FREQ=WEEKLY;BYDAY=1MO"])
def test_a_rule_beyond_words_is_shown_as_it_is(rule: str) -> None:
    text = describe(rule, at(6))
    assert text.startswith("Theo quy tắc lặp riêng") and rule in text and "06:00" in text
    assert parse(rule) is None


@pytest.mark.parametrize("rule", ["FREQ=DAILY;INTERVAL=2", "FREQ=DAILY;BYHOUR=6,17", "FREQ=MONTHLY;BYMONTHDAY=1,15",
                                  "FREQ=DAILY;COUNT=3", "FREQ=MONTHLY;BYDAY=1MO,3MO"])
def test_a_rule_the_form_cannot_show_is_kept_not_read_back(rule: str) -> None:
    assert parse(rule) is None


@pytest.mark.parametrize(("rec", "start", "text"), [
    (Recurrence("once"), at(6), "Một lần lúc 06:00 Thứ Hai 14/12/2026"),
    (Recurrence("daily"), at(6), "Hằng ngày lúc 06:00"),
    (Recurrence("weekly", weekdays=(0, 2, 4)), at(17, 30), "Thứ Hai, Thứ Tư, Thứ Sáu hằng tuần lúc 17:30"),
    (Recurrence("weekly"), at(7), "Thứ Hai hằng tuần lúc 07:00"),
    (Recurrence("monthly_day", day=15), at(7), "Ngày 15 hằng tháng lúc 07:00"),
    (Recurrence("monthly_day", day=-1), at(7), "Ngày cuối cùng của tháng lúc 07:00"),
    (Recurrence("monthly_nth", nth=1, weekday=0), at(7), "Thứ Hai đầu tiên của tháng lúc 07:00"),
    (Recurrence("monthly_nth", nth=4, weekday=6), at(7), "Chủ Nhật thứ tư của tháng lúc 07:00"),
    (Recurrence("monthly_nth", nth=-1, weekday=2), at(7), "Thứ Tư cuối cùng của tháng lúc 07:00"),
])
def test_round_trip_build_then_describe(rec: Recurrence, start: dt.datetime, text: str) -> None:
    assert describe(build(rec), start) == text


def _days(rule: str | None, start: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    p = schedules.Programme(id=1, title="x", items=(schedules.ContentItem("bulletin:1", "0" * 64, 60, 1),),
                            receivers=frozenset({"r"}), start=start, rrule=rule)
    return [t.astimezone(TZ) for t in schedules.occurrences(p, start, until)]


def test_built_rules_play_when_their_words_say() -> None:
    """What the description says is what the scheduler expands (in Asia/Ho_Chi_Minh)."""
    jan = at(7, 0, dt.date(2027, 1, 1))
    until = at(0, 0, dt.date(2027, 4, 1))
    first_mondays = _days(build(Recurrence("monthly_nth", nth=1, weekday=0)), jan, until)
    assert [f"{t:%d/%m %H:%M}" for t in first_mondays] == ["04/01 07:00", "01/02 07:00", "01/03 07:00"]
    last_fridays = _days(build(Recurrence("monthly_nth", nth=-1, weekday=4)), jan, until)
    assert [f"{t:%d/%m}" for t in last_fridays] == ["29/01", "26/02", "26/03"]
    month_ends = _days(build(Recurrence("monthly_day", day=-1)), jan, until)
    assert [f"{t:%d/%m}" for t in month_ends] == ["31/01", "28/02", "31/03"]
    week = _days(build(Recurrence("weekly", weekdays=(0, 2, 4))), at(17, 30, dt.date(2027, 1, 4)),
                 at(0, 0, dt.date(2027, 1, 11)))
    assert [f"{t:%a %H:%M}" for t in week] == ["Mon 17:30", "Wed 17:30", "Fri 17:30"]
    daily = _days(build(Recurrence("daily")), at(6), at(6, 0, dt.date(2026, 12, 17)))
    assert [f"{t:%d/%m %H:%M}" for t in daily] == ["14/12 06:00", "15/12 06:00", "16/12 06:00"]
    assert _days(build(Recurrence("once")), at(6), at(6, 0, dt.date(2027, 1, 1))) == [at(6)]
