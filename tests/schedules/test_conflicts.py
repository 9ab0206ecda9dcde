"""`find_clash`: two programmes of the same class playing at the same time on a shared receiver are refused,
with a message (`Clash.describe`) that names the other programme, the receivers and both local times."""

from __future__ import annotations

import datetime as dt

import pytest

from schedules import Clash, find_clash

from .factories import in_local, item, local, programme, utc

AN_BINH = [f"xa-an-binh/loa-{n:02d}" for n in range(1, 13)]
WINDOW = (local(2026, 11, 30), local(2026, 12, 31))


def test_overlap_on_a_shared_receiver_is_a_clash_naming_the_other_programme() -> None:
    other = programme(7, "Bản tin sáng", local(2026, 12, 1, 6), minutes=10, receivers=AN_BINH[:4])
    new = programme(12, "Thông báo tiêm chủng", local(2026, 12, 1, 6, 5), minutes=3, receivers=AN_BINH[2:6])
    clash = find_clash(new, [other], *WINDOW)
    assert isinstance(clash, Clash)
    assert clash.other is other
    assert clash.receivers == frozenset(AN_BINH[2:4])
    assert clash.at == local(2026, 12, 1, 6, 5)
    assert clash.other_at == utc(2026, 11, 30, 23)

    text = clash.describe()
    assert '#7 "Bản tin sáng"' in text
    assert "2 receiver(s) (xa-an-binh/loa-03, xa-an-binh/loa-04)" in text
    # local times, dd/mm/yyyy: 06:00 on 1 December local although it is 30 November in UTC
    assert "it plays 01/12/2026 06:00" in text and "06:10" in text
    assert "this one 01/12/2026 06:05" in text and "06:08" in text
    assert "30/11/2026" not in text and "23:00" not in text
    # receivers that only one of the two targets are not blamed
    for rid in (AN_BINH[0], AN_BINH[1], AN_BINH[4], AN_BINH[5]):
        assert rid not in text
    assert "order" in text  # tells the operator how to resolve it


def test_describe_lists_the_first_five_receivers_and_counts_the_rest() -> None:
    other = programme(7, "Bản tin sáng", local(2026, 12, 1, 6), minutes=10, receivers=AN_BINH)
    new = programme(12, "Thông báo tiêm chủng", local(2026, 12, 1, 6), minutes=3, receivers=reversed(AN_BINH[:8]))
    clash = find_clash(new, [other], *WINDOW)
    assert clash is not None
    text = clash.describe()
    assert "8 receiver(s) (" + ", ".join(AN_BINH[:5]) + " and 3 more)" in text
    for rid in AN_BINH[5:]:
        assert rid not in text


def test_multi_item_programme_clashes_over_its_whole_length() -> None:
    other = programme(7, "Bản tin sáng", local(2026, 12, 1, 6, 6), minutes=5, receivers=AN_BINH[:1])
    new = programme(12, "Thông báo tiêm chủng", local(2026, 12, 1, 6), receivers=AN_BINH[:1],
                    items=[item("announcement:3", 180), item("announcement:4", 240)])  # 06:00–06:07
    clash = find_clash(new, [other], *WINDOW)
    assert clash is not None
    assert "this one 01/12/2026 06:00:00–06:07:00" in clash.describe()


def test_clash_with_an_evening_occurrence_of_a_twice_daily_programme() -> None:
    other = programme(7, "Bản tin sáng và chiều", local(2026, 11, 30, 6), minutes=15, receivers=AN_BINH[:2],
                      rrule="FREQ=DAILY;BYHOUR=6,17;BYMINUTE=0")
    new = programme(12, "Thông báo cắt điện", local(2026, 12, 3, 17, 10), minutes=2, receivers=AN_BINH[1:3])
    clash = find_clash(new, [other], *WINDOW)
    assert clash is not None
    assert clash.other_at == local(2026, 12, 3, 17)
    assert "it plays 03/12/2026 17:00" in clash.describe()


# ----------------------------------------------------------------------------- not clashes


def test_no_clash_without_a_shared_receiver() -> None:
    other = programme(7, "Bản tin sáng", local(2026, 12, 1, 6), minutes=10, receivers=AN_BINH[:4])
    new = programme(12, "Thông báo tiêm chủng", local(2026, 12, 1, 6), minutes=10, receivers=AN_BINH[4:])
    assert find_clash(new, [other], *WINDOW) is None


def test_no_clash_between_different_classes() -> None:
    other = programme(7, "Bản tin sáng", local(2026, 12, 1, 6), minutes=10, receivers=AN_BINH)
    new = programme(12, "Thông báo bão số 9", local(2026, 12, 1, 6), minutes=10, receivers=AN_BINH,
                    priority="priority")
    assert find_clash(new, [other], *WINDOW) is None
    assert find_clash(other, [new], *WINDOW) is None


def test_two_emergencies_at_the_same_time_do_clash() -> None:
    other = programme(7, "Cảnh báo lũ quét", local(2026, 12, 1, 6), minutes=10, receivers=AN_BINH,
                      priority="emergency")
    new = programme(12, "Cảnh báo sạt lở đất", local(2026, 12, 1, 6, 9), minutes=10, receivers=AN_BINH[:1],
                    priority="emergency")
    clash = find_clash(new, [other], *WINDOW)
    assert clash is not None and clash.other is other
    assert "(emergency)" in clash.describe()


@pytest.mark.parametrize(("new_start", "minutes"), [(local(2026, 12, 1, 6, 10), 5),  # starts as the other ends
                                                     (local(2026, 12, 1, 5, 55), 5)])  # ends as the other starts
def test_touching_intervals_do_not_clash(new_start: dt.datetime, minutes: int) -> None:
    other = programme(7, "Bản tin sáng", local(2026, 12, 1, 6), minutes=10, receivers=AN_BINH)
    new = programme(12, "Thông báo tiêm chủng", new_start, minutes=minutes, receivers=AN_BINH)
    assert find_clash(new, [other], *WINDOW) is None


def test_one_second_of_overlap_is_a_clash() -> None:
    other = programme(7, "Bản tin sáng", local(2026, 12, 1, 6), minutes=10, receivers=AN_BINH)
    new = programme(12, "Thông báo tiêm chủng", local(2026, 12, 1, 6, 9, 59), minutes=5, receivers=AN_BINH)
    assert find_clash(new, [other], *WINDOW) is not None


def test_paused_other_does_not_clash() -> None:
    other = programme(7, "Bản tin sáng", local(2026, 11, 30, 6), minutes=10, rrule="FREQ=DAILY",
                      receivers=AN_BINH, paused=True)
    new = programme(12, "Thông báo tiêm chủng", local(2026, 12, 1, 6), minutes=10, receivers=AN_BINH)
    assert find_clash(new, [other], *WINDOW) is None


def test_paused_new_programme_does_not_clash() -> None:
    other = programme(7, "Bản tin sáng", local(2026, 11, 30, 6), minutes=10, rrule="FREQ=DAILY", receivers=AN_BINH)
    new = programme(12, "Thông báo tiêm chủng", local(2026, 12, 1, 6), minutes=10, receivers=AN_BINH, paused=True)
    assert find_clash(new, [other], *WINDOW) is None


@pytest.mark.parametrize("order", ["before", "after"])
def test_new_programme_stating_an_order_does_not_clash(order: str) -> None:
    other = programme(7, "Bản tin sáng", local(2026, 12, 1, 6), minutes=10, receivers=AN_BINH)
    new = programme(12, "Thông báo tiêm chủng", local(2026, 12, 1, 6), minutes=10, receivers=AN_BINH, order=order)
    assert find_clash(new, [other], *WINDOW) is None


def test_editing_a_programme_does_not_clash_with_its_old_self() -> None:
    old = programme(7, "Bản tin sáng", local(2026, 11, 30, 6), minutes=10, rrule="FREQ=DAILY", receivers=AN_BINH)
    edited = programme(7, "Bản tin sáng (mới)", local(2026, 11, 30, 6, 5), minutes=10, rrule="FREQ=DAILY",
                       receivers=AN_BINH)
    assert find_clash(edited, [old], *WINDOW) is None
    # ...but still clashes with a different programme at that time
    music = programme(8, "Dân ca ví dặm", local(2026, 12, 2, 6, 12), minutes=10, receivers=AN_BINH[-1:])
    clash = find_clash(edited, [old, music], *WINDOW)
    assert clash is not None and clash.other is music


def test_overlap_after_the_window_is_not_reported() -> None:
    other = programme(7, "Bản tin sáng", local(2027, 1, 5, 6), minutes=10, receivers=AN_BINH)
    new = programme(12, "Thông báo tiêm chủng", local(2026, 11, 30, 6), minutes=10, rrule="FREQ=DAILY",
                    receivers=AN_BINH)
    assert find_clash(new, [other], *WINDOW) is None
    assert find_clash(new, [other], local(2027, 1, 1), local(2027, 2, 1)) is not None


def test_other_started_just_before_the_window_still_clashes() -> None:
    other = programme(7, "Bản tin sáng", local(2026, 11, 30, 23, 58), minutes=5, receivers=AN_BINH)
    new = programme(12, "Thông báo tiêm chủng", local(2026, 12, 1, 0, 0), minutes=5, receivers=AN_BINH)
    clash = find_clash(new, [other], local(2026, 12, 1), local(2026, 12, 2))
    assert clash is not None
    assert clash.other_at == local(2026, 11, 30, 23, 58)


# ----------------------------------------------------------------------------- which clash is reported


def test_daily_programme_clashes_with_a_weekly_one_on_the_first_monday() -> None:
    weekly = programme(7, "Họp dân đầu tuần", local(2026, 11, 30, 6, 10), minutes=20, rrule="FREQ=WEEKLY;BYDAY=MO",
                       receivers=AN_BINH[:3])
    daily = programme(12, "Bản tin sáng", local(2026, 12, 2, 6), minutes=15, rrule="FREQ=DAILY",  # from Wednesday
                      receivers=AN_BINH[2:])
    clash = find_clash(daily, [weekly], *WINDOW)
    assert clash is not None
    assert in_local([clash.at]) == [local(2026, 12, 7, 6)]
    assert clash.at == utc(2026, 12, 6, 23)  # Sunday in UTC, Monday at home
    assert clash.other_at == local(2026, 12, 7, 6, 10)
    assert "it plays 07/12/2026 06:10" in clash.describe()
    assert "this one 07/12/2026 06:00" in clash.describe()


def test_the_earliest_clash_among_several_is_reported_whatever_the_order() -> None:
    daily = programme(12, "Bản tin sáng", local(2026, 11, 30, 6), minutes=15, rrule="FREQ=DAILY",
                      receivers=AN_BINH)
    friday = programme(20, "Thông báo thu thuế", local(2026, 12, 4, 6, 5), minutes=5, receivers=AN_BINH[:1])
    wednesday = programme(21, "Thông báo tiêm chủng", local(2026, 12, 2, 6, 10), minutes=5, receivers=AN_BINH[5:6])
    next_monday = programme(22, "Họp dân đầu tuần", local(2026, 12, 7, 6), minutes=5, receivers=AN_BINH)
    unrelated = programme(23, "Dân ca", local(2026, 12, 1, 9), minutes=5, receivers=AN_BINH)
    for existing in ([friday, wednesday, next_monday, unrelated], [next_monday, unrelated, wednesday, friday]):
        clash = find_clash(daily, existing, *WINDOW)
        assert clash is not None
        assert clash.other is wednesday
        assert clash.at == local(2026, 12, 2, 6)
        assert clash.receivers == frozenset(AN_BINH[5:6])


def test_no_clash_when_the_new_programme_never_plays_in_the_window() -> None:
    other = programme(7, "Bản tin sáng", local(2026, 11, 30, 6), minutes=10, rrule="FREQ=DAILY", receivers=AN_BINH)
    new = programme(12, "Thông báo tiêm chủng", local(2026, 12, 1, 6), minutes=10, receivers=AN_BINH,
                    exdates=frozenset({dt.date(2026, 12, 1)}))
    assert find_clash(new, [other], *WINDOW) is None
