"""RRULE expansion in Asia/Ho_Chi_Minh (`occurrences`) and the refusals of `check_rrule`.

Programmes are entered in local wall time (UTC+7, no daylight saving) and played at UTC instants, so a 06:00
bulletin is 23:00 UTC the previous day; exception dates and validity are local dates.
"""

from __future__ import annotations

import datetime as dt

import pytest

from schedules import RecurrenceError, check_rrule, occurrences

from .factories import in_local, local, programme, utc

D = dt.date


def dates(times: list[dt.datetime]) -> list[dt.date]:
    return [t.date() for t in in_local(times)]


# ----------------------------------------------------------------------------- daily, weekly, monthly


def test_daily_at_six_and_seventeen_local_is_23_utc_the_day_before_and_10_utc() -> None:
    p = programme(1, "Bản tin sáng và chiều", local(2026, 3, 2, 6), rrule="FREQ=DAILY;BYHOUR=6,17;BYMINUTE=0")
    got = occurrences(p, local(2026, 3, 2), local(2026, 3, 4))
    assert got == [utc(2026, 3, 1, 23), utc(2026, 3, 2, 10), utc(2026, 3, 2, 23), utc(2026, 3, 3, 10)]
    assert all(t.utcoffset() == dt.timedelta(0) for t in got), "occurrences are returned in UTC"
    assert [t.strftime("%d/%m %H:%M") for t in in_local(got)] == ["02/03 06:00", "02/03 17:00",
                                                                   "03/03 06:00", "03/03 17:00"]


def test_daily_rule_stays_at_local_wall_time_for_a_whole_year() -> None:
    p = programme(1, "Bản tin sáng", local(2026, 1, 1, 6), rrule="FREQ=DAILY;BYHOUR=6;BYMINUTE=0")
    got = occurrences(p, local(2026, 1, 1), local(2027, 1, 1))
    assert len(got) == 365
    assert {(t.hour, t.minute) for t in in_local(got)} == {(6, 0)}
    assert {(t.hour, t.minute) for t in got} == {(23, 0)}


def test_weekdays_only_skips_saturday_and_sunday() -> None:
    p = programme(2, "Thông báo của UBND xã", local(2026, 3, 2, 17, 30),
                  rrule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR")
    got = occurrences(p, local(2026, 3, 1), local(2026, 3, 15))  # Sunday 1 March .. Saturday 14 March
    assert dates(got) == [D(2026, 3, d) for d in (2, 3, 4, 5, 6, 9, 10, 11, 12, 13)]
    assert {t.weekday() for t in in_local(got)} == {0, 1, 2, 3, 4}
    assert {(t.hour, t.minute) for t in in_local(got)} == {(17, 30)}


def test_weekday_rule_picks_the_local_weekday_not_the_utc_one() -> None:
    # 06:00 on Monday in Hà Nội is 23:00 UTC on Sunday: it must still count as a Monday.
    p = programme(2, "Bản tin sáng", local(2026, 3, 2, 6), rrule="FREQ=WEEKLY;BYDAY=MO")
    got = occurrences(p, local(2026, 3, 1), local(2026, 3, 17))
    assert got == [utc(2026, 3, 1, 23), utc(2026, 3, 8, 23), utc(2026, 3, 15, 23)]
    assert {t.weekday() for t in in_local(got)} == {0}



def test_start_stored_in_utc_expands_in_local_wall_time() -> None:
    # the database keeps the start in UTC: 23:00 UTC on Sunday is the Monday 06:00 bulletin
    stored = programme(2, "Bản tin sáng", utc(2026, 3, 1, 23), rrule="FREQ=WEEKLY;BYDAY=MO;BYHOUR=6,17;BYMINUTE=0",
                       exdates=frozenset({D(2026, 3, 9)}))
    got = in_local(occurrences(stored, local(2026, 3, 1), local(2026, 3, 17)))
    assert [(t.day, t.hour) for t in got] == [(2, 6), (2, 17), (16, 6), (16, 17)]

def test_first_monday_of_the_month_across_the_year_end() -> None:
    p = programme(3, "Họp dân định kỳ", local(2026, 11, 2, 7), rrule="FREQ=MONTHLY;BYDAY=1MO")
    got = occurrences(p, local(2026, 12, 1), local(2027, 3, 1))
    assert dates(got) == [D(2026, 12, 7), D(2027, 1, 4), D(2027, 2, 1)]
    assert got[0] == utc(2026, 12, 7, 0)
    assert got[2] == utc(2027, 2, 1, 0)


def test_monthly_on_the_31st_skips_short_months() -> None:
    p = programme(4, "Tổng kết tháng", local(2026, 1, 31, 19), rrule="FREQ=MONTHLY;BYMONTHDAY=31")
    got = occurrences(p, local(2026, 1, 1), local(2027, 1, 1))
    assert dates(got) == [D(2026, m, 31) for m in (1, 3, 5, 7, 8, 10, 12)]


def test_monthly_on_the_last_day_follows_february_in_common_and_leap_years() -> None:
    p = programme(4, "Tổng kết tháng", local(2027, 1, 31, 19), rrule="FREQ=MONTHLY;BYMONTHDAY=-1")
    got = occurrences(p, local(2027, 1, 1), local(2028, 5, 1))
    assert dates(got)[:4] == [D(2027, 1, 31), D(2027, 2, 28), D(2027, 3, 31), D(2027, 4, 30)]
    assert D(2028, 2, 29) in dates(got)
    assert D(2028, 2, 28) not in dates(got)
    assert len(got) == 16  # Jan 2027 .. Apr 2028


def test_month_end_at_six_local_is_the_day_before_in_utc() -> None:
    # The 31st at 06:00 local is the 30th at 23:00 UTC; the rule is about the local date.
    p = programme(4, "Bản tin cuối tháng", local(2026, 1, 31, 6), rrule="FREQ=MONTHLY;BYMONTHDAY=31")
    got = occurrences(p, local(2026, 3, 1), local(2026, 6, 1))
    assert got == [utc(2026, 3, 30, 23), utc(2026, 5, 30, 23)]


def test_monthly_on_the_29th_plays_in_february_only_in_a_leap_year() -> None:
    p = programme(4, "Thu thuế", local(2027, 1, 29, 8), rrule="FREQ=MONTHLY;BYMONTHDAY=29")
    got = dates(occurrences(p, local(2027, 1, 1), local(2028, 4, 1)))
    assert D(2027, 2, 28) not in got and D(2027, 3, 1) not in got
    assert D(2028, 2, 29) in got
    assert len(got) == 14  # 15 months, less February 2027


def test_rrule_prefix_is_accepted() -> None:
    a = programme(1, "Bản tin sáng", local(2026, 3, 2, 6), rrule="RRULE:FREQ=DAILY")
    b = programme(1, "Bản tin sáng", local(2026, 3, 2, 6), rrule="FREQ=DAILY")
    window = (local(2026, 3, 2), local(2026, 3, 9))
    assert occurrences(a, *window) == occurrences(b, *window)
    assert len(occurrences(a, *window)) == 7


def test_occurrences_begin_at_the_programme_start_not_before() -> None:
    p = programme(1, "Bản tin sáng", local(2026, 3, 10, 6), rrule="FREQ=DAILY")
    got = occurrences(p, local(2026, 3, 1), local(2026, 3, 13))
    assert dates(got) == [D(2026, 3, 10), D(2026, 3, 11), D(2026, 3, 12)]


# ----------------------------------------------------------------------------- exceptions and validity


def test_exdate_skips_the_local_date_even_when_the_utc_date_is_the_day_before() -> None:
    # 06:00 on 1 December local is 23:00 UTC on 30 November.
    p = programme(5, "Bản tin sáng", local(2026, 11, 28, 6), rrule="FREQ=DAILY;BYHOUR=6;BYMINUTE=0",
                  exdates=frozenset({D(2026, 12, 1)}))
    got = occurrences(p, local(2026, 11, 29), local(2026, 12, 3))
    assert got == [utc(2026, 11, 28, 23), utc(2026, 11, 29, 23), utc(2026, 12, 1, 23)]
    assert utc(2026, 11, 30, 23) not in got
    assert dates(got) == [D(2026, 11, 29), D(2026, 11, 30), D(2026, 12, 2)]


def test_exdate_given_as_the_utc_date_skips_the_local_day_of_that_date_instead() -> None:
    p = programme(5, "Bản tin sáng", local(2026, 11, 28, 6), rrule="FREQ=DAILY;BYHOUR=6;BYMINUTE=0",
                  exdates=frozenset({D(2026, 11, 30)}))
    got = occurrences(p, local(2026, 11, 29), local(2026, 12, 3))
    assert utc(2026, 11, 30, 23) in got  # 1 December local still plays
    assert utc(2026, 11, 29, 23) not in got  # 30 November local is the one skipped
    assert dates(got) == [D(2026, 11, 29), D(2026, 12, 1), D(2026, 12, 2)]


def test_exdate_skips_every_occurrence_of_that_local_day_only() -> None:
    p = programme(5, "Bản tin sáng và chiều", local(2026, 9, 1, 6), rrule="FREQ=DAILY;BYHOUR=6,17;BYMINUTE=0",
                  exdates=frozenset({D(2026, 9, 2)}))  # Quốc khánh eve: no bulletins that day
    got = in_local(occurrences(p, local(2026, 9, 1), local(2026, 9, 4)))
    assert [(t.day, t.hour) for t in got] == [(1, 6), (1, 17), (3, 6), (3, 17)]


def test_validity_period_is_inclusive_local_dates() -> None:
    p = programme(6, "Thông báo tiêm chủng", local(2026, 4, 1, 6), rrule="FREQ=DAILY;BYHOUR=6,17;BYMINUTE=0",
                  valid_from=D(2026, 4, 3), valid_until=D(2026, 4, 5))
    got = occurrences(p, local(2026, 4, 1), local(2026, 4, 10))
    assert [(t.day, t.hour) for t in in_local(got)] == [(3, 6), (3, 17), (4, 6), (4, 17), (5, 6), (5, 17)]
    # the first one is 23:00 UTC on 2 April: still inside a validity that starts on 3 April local
    assert got[0] == utc(2026, 4, 2, 23)
    assert got[-1] == utc(2026, 4, 5, 10)


def test_validity_with_only_an_end_date() -> None:
    p = programme(6, "Thông báo tiêm chủng", local(2026, 4, 1, 23, 30), rrule="FREQ=DAILY",
                  valid_until=D(2026, 4, 3))
    got = occurrences(p, local(2026, 4, 1), local(2026, 4, 10))
    assert dates(got) == [D(2026, 4, 1), D(2026, 4, 2), D(2026, 4, 3)]  # 23:30 on the last day still plays


def test_validity_entirely_before_the_window_gives_nothing() -> None:
    p = programme(6, "Thông báo tiêm chủng", local(2026, 4, 1, 6), rrule="FREQ=DAILY",
                  valid_from=D(2026, 4, 1), valid_until=D(2026, 4, 5))
    assert occurrences(p, local(2026, 4, 6), local(2026, 4, 20)) == []


# ----------------------------------------------------------------------------- COUNT and UNTIL


def test_count_limits_the_number_of_occurrences_from_the_start() -> None:
    p = programme(7, "Phòng chống sốt xuất huyết", local(2026, 5, 4, 6), rrule="FREQ=DAILY;COUNT=3")
    got = occurrences(p, local(2026, 5, 1), local(2026, 6, 1))
    assert dates(got) == [D(2026, 5, 4), D(2026, 5, 5), D(2026, 5, 6)]
    # a window that starts after the first still stops at the third
    assert dates(occurrences(p, local(2026, 5, 5), local(2026, 6, 1))) == [D(2026, 5, 5), D(2026, 5, 6)]


def test_until_in_utc_is_inclusive_and_compared_as_an_instant() -> None:
    # UNTIL 2026-05-06 23:00 UTC is 06:00 local on 7 May: the 06:00 bulletin that day is the last one.
    p = programme(7, "Bản tin sáng", local(2026, 5, 4, 6), rrule="FREQ=DAILY;UNTIL=20260506T230000Z")
    got = occurrences(p, local(2026, 5, 1), local(2026, 6, 1))
    assert dates(got) == [D(2026, 5, 4), D(2026, 5, 5), D(2026, 5, 6), D(2026, 5, 7)]
    p2 = programme(7, "Bản tin sáng", local(2026, 5, 4, 6), rrule="FREQ=DAILY;UNTIL=20260506T225959Z")
    assert dates(occurrences(p2, local(2026, 5, 1), local(2026, 6, 1)))[-1] == D(2026, 5, 6)


# ----------------------------------------------------------------------------- one-offs, paused, window


def test_one_off_programme_inside_the_window_plays_once() -> None:
    p = programme(8, "Thông báo cắt điện", local(2026, 6, 15, 9, 30))
    assert occurrences(p, local(2026, 6, 15), local(2026, 6, 16)) == [utc(2026, 6, 15, 2, 30)]


@pytest.mark.parametrize("window", [(local(2026, 6, 14), local(2026, 6, 15, 9, 30)),
                                    (local(2026, 6, 15, 9, 31), local(2026, 6, 17))])
def test_one_off_programme_outside_the_window_plays_nothing(window: tuple[dt.datetime, dt.datetime]) -> None:
    p = programme(8, "Thông báo cắt điện", local(2026, 6, 15, 9, 30))
    assert occurrences(p, *window) == []


def test_one_off_programme_respects_exdates_and_validity() -> None:
    w = (local(2026, 6, 1), local(2026, 7, 1))
    assert occurrences(programme(8, "Thông báo cắt điện", local(2026, 6, 15, 9, 30),
                                 exdates=frozenset({D(2026, 6, 15)})), *w) == []
    assert occurrences(programme(8, "Thông báo cắt điện", local(2026, 6, 15, 9, 30),
                                 valid_until=D(2026, 6, 14)), *w) == []


def test_paused_programme_has_no_occurrences() -> None:
    p = programme(9, "Bản tin sáng", local(2026, 3, 2, 6), rrule="FREQ=DAILY", paused=True)
    assert occurrences(p, local(2026, 3, 1), local(2026, 4, 1)) == []
    assert occurrences(programme(9, "Thông báo cắt điện", local(2026, 3, 2, 6), paused=True),
                       local(2026, 3, 1), local(2026, 4, 1)) == []


def test_programme_without_any_audio_has_no_occurrences() -> None:
    p = programme(9, "Bản tin sáng", local(2026, 3, 2, 6), rrule="FREQ=DAILY", items=())
    assert occurrences(p, local(2026, 3, 1), local(2026, 4, 1)) == []


def test_window_start_is_inclusive_and_end_exclusive() -> None:
    p = programme(10, "Bản tin sáng", local(2026, 3, 2, 6), rrule="FREQ=DAILY")
    got = occurrences(p, local(2026, 3, 3, 6), local(2026, 3, 5, 6))
    assert got == [utc(2026, 3, 2, 23), utc(2026, 3, 3, 23)]
    # given in UTC, the same window gives the same answer
    assert occurrences(p, utc(2026, 3, 2, 23), utc(2026, 3, 4, 23)) == got


def test_window_a_second_either_side_of_an_occurrence() -> None:
    p = programme(10, "Bản tin sáng", local(2026, 3, 2, 6), rrule="FREQ=DAILY")
    at = local(2026, 3, 3, 6)
    second = dt.timedelta(seconds=1)
    assert occurrences(p, at - second, at) == []
    assert occurrences(p, at, at + second) == [at]
    assert occurrences(p, at + second, at + 2 * second) == []


def test_results_are_sorted() -> None:
    p = programme(10, "Bản tin", local(2026, 3, 2, 5), rrule="FREQ=DAILY;BYHOUR=17,6,11;BYMINUTE=30,0")
    got = occurrences(p, local(2026, 3, 2), local(2026, 3, 5))
    assert got == sorted(got)
    assert len(got) == 18


# ----------------------------------------------------------------------------- check_rrule


START = local(2026, 3, 2, 6)


@pytest.mark.parametrize("text", ["FREQ=DAILY;BYHOUR=6,17;BYMINUTE=0", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
                                  "FREQ=MONTHLY;BYDAY=1MO", "FREQ=MONTHLY;BYMONTHDAY=-1", "RRULE:FREQ=DAILY",
                                  "FREQ=DAILY;COUNT=10", "FREQ=DAILY;UNTIL=20261231T170000Z", "FREQ=HOURLY",
                                  "FREQ=MINUTELY;INTERVAL=30"])
def test_check_rrule_accepts_usable_rules(text: str) -> None:
    check_rrule(text, START)


@pytest.mark.parametrize(("text", "message"), [
    ("every day at six", "not a valid RRULE"),
    ("", "not a valid RRULE"),
    ("FREQ=FORTNIGHTLY", "not a valid RRULE"),
    ("FREQ=DAILY;BYHOUR=25", "not a valid RRULE"),
])
def test_check_rrule_refuses_garbage(text: str, message: str) -> None:
    with pytest.raises(RecurrenceError, match=message):
        check_rrule(text, START)


@pytest.mark.parametrize("text", ["DTSTART:20260302T060000\nRRULE:FREQ=DAILY",
                                  "RRULE:FREQ=DAILY\nEXDATE:20260305T060000",
                                  "FREQ=DAILY;DTSTART=20260302T060000",
                                  "RRULE:FREQ=DAILY\nRDATE:20260305T060000"])
def test_check_rrule_refuses_a_start_or_exception_inside_the_rule(text: str) -> None:
    with pytest.raises(RecurrenceError, match="give only the RRULE; the start and the skipped dates are separate"):
        check_rrule(text, START)


@pytest.mark.parametrize("text", ["FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "FREQ=DAILY;UNTIL=20250101T000000Z",
                                  "FREQ=DAILY;COUNT=0"])
def test_check_rrule_refuses_a_rule_that_never_occurs(text: str) -> None:
    with pytest.raises(RecurrenceError, match="never occurs on or after the start"):
        check_rrule(text, START)


@pytest.mark.parametrize("text", ["FREQ=MINUTELY", "FREQ=MINUTELY;INTERVAL=29", "FREQ=MINUTELY;BYHOUR=6"])
def test_check_rrule_refuses_a_rule_firing_more_often_than_every_half_hour(text: str) -> None:
    with pytest.raises(RecurrenceError, match=r"fires more than 48 times a day .*; at most 48"):
        check_rrule(text, START)


def test_check_rrule_refuses_a_minutely_rule_whose_first_day_happens_to_be_quiet() -> None:
    sunday_late = local(2026, 3, 1, 23, 59)
    with pytest.raises(RecurrenceError, match="times a day"):
        check_rrule("FREQ=MINUTELY;BYDAY=SA,SU", sunday_late)


@pytest.mark.parametrize("text", ["FREQ=DAILY;UNTIL=20261231T235959", "FREQ=DAILY;UNTIL=20261231"])
def test_check_rrule_refuses_an_until_that_is_not_utc(text: str) -> None:
    with pytest.raises(RecurrenceError, match="UNTIL values must be specified in UTC"):
        check_rrule(text, START)


def test_check_rrule_refuses_two_rules() -> None:
    with pytest.raises(RecurrenceError, match="give one RRULE"):
        check_rrule("RRULE:FREQ=DAILY\nRRULE:FREQ=WEEKLY", START)


def test_check_rrule_judges_against_the_start_given() -> None:
    # the same rule is fine from an earlier start and never occurs from a later one
    check_rrule("FREQ=DAILY;UNTIL=20260310T000000Z", local(2026, 3, 2, 6))
    with pytest.raises(RecurrenceError, match="never occurs"):
        check_rrule("FREQ=DAILY;UNTIL=20260310T000000Z", local(2026, 3, 11, 6))


def test_a_refused_rule_is_also_refused_when_expanding() -> None:
    p = programme(11, "Bản tin sáng", START, rrule="FREQ=DAILY;UNTIL=20261231")
    with pytest.raises(RecurrenceError):
        occurrences(p, local(2026, 3, 1), local(2026, 4, 1))

