"""`place`: when each item will actually play (higher classes keep their time, stated orders decide equal
times, lower classes move after); `compile_plans`: each receiver's plan and its version."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from typing import Any

import pytest

from schedules import TZ, Programme, ReceiverPlan, Slot, compile_plans, place

from .factories import item, local, programme

MIN = dt.timedelta(minutes=1)
DAY = (local(2026, 3, 2), local(2026, 3, 3))
LOA = ("xa-an-binh/loa-01",)


def timeline(slots: list[Slot]) -> list[tuple[str, str]]:
    """What an operator reads off a plan: local start time and programme title."""
    return [(f"{s.start.astimezone(TZ):%H:%M:%S}", s.title) for s in slots]


def morning_news() -> Programme:
    """A normal programme of three 2-minute items at 06:00."""
    return programme(1, "Bản tin sáng", local(2026, 3, 2, 6), items=[item("bulletin:11", 120),
                                                                    item("bulletin:12", 120),
                                                                    item("announcement:3", 120)])


# ----------------------------------------------------------------------------- place


def test_priority_programme_keeps_its_time_and_the_normal_one_moves_after_it() -> None:
    news = morning_news()  # 06:00–06:06
    storm = programme(2, "Thông báo bão số 9", local(2026, 3, 2, 6, 2), minutes=5, priority="priority")
    slots = place([news, storm], *DAY)
    assert timeline(slots) == [("06:02:00", "Thông báo bão số 9"), ("06:07:00", "Bản tin sáng"),
                               ("06:09:00", "Bản tin sáng"), ("06:11:00", "Bản tin sáng")]
    storm_slot, *news_slots = slots
    assert storm_slot.shifted == dt.timedelta(0) and storm_slot.start == local(2026, 3, 2, 6, 2)
    assert [s.index for s in news_slots] == [0, 1, 2]
    assert {s.shifted for s in news_slots} == {7 * MIN}
    assert {s.occurrence for s in news_slots} == {local(2026, 3, 2, 6)}  # still knows when it was meant to play
    for a, b in itertools.pairwise(news_slots):
        assert a.end == b.start


def test_priority_programme_does_not_care_about_input_order() -> None:
    news = morning_news()
    storm = programme(2, "Thông báo bão số 9", local(2026, 3, 2, 6), minutes=5, priority="priority")
    assert place([news, storm], *DAY) == place([storm, news], *DAY)
    assert timeline(place([news, storm], *DAY))[:2] == [("06:00:00", "Thông báo bão số 9"),
                                                         ("06:05:00", "Bản tin sáng")]


def test_items_of_an_occurrence_play_back_to_back() -> None:
    p = programme(3, "Bản tin chiều", local(2026, 3, 2, 17), rrule="FREQ=DAILY",
                  items=[item("bulletin:20", 90), item("bulletin:21", 45.5), item("announcement:8", 120)])
    slots = place([p], local(2026, 3, 2), local(2026, 3, 4))
    assert [s.start for s in slots] == [local(2026, 3, 2, 17), local(2026, 3, 2, 17, 1, 30),
                                        local(2026, 3, 2, 17, 2, 15) + dt.timedelta(seconds=0.5),
                                        local(2026, 3, 3, 17), local(2026, 3, 3, 17, 1, 30),
                                        local(2026, 3, 3, 17, 2, 15) + dt.timedelta(seconds=0.5)]
    assert [s.item.key for s in slots[:3]] == ["bulletin:20", "bulletin:21", "announcement:8"]
    assert all(s.shifted == dt.timedelta(0) for s in slots)


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3))))
def test_equal_times_same_class_follow_the_stated_order_and_all_play(perm: tuple[int, ...]) -> None:
    plain = programme(10, "Bản tin sáng", local(2026, 3, 2, 6), minutes=5)
    first = programme(11, "Thông báo tiêm chủng", local(2026, 3, 2, 6), minutes=3, order="before")
    last = programme(12, "Thông báo thu thuế", local(2026, 3, 2, 6), minutes=2, order="after")
    given = [(plain, first, last)[i] for i in perm]
    assert timeline(place(given, *DAY)) == [("06:00:00", "Thông báo tiêm chủng"), ("06:03:00", "Bản tin sáng"),
                                            ("06:08:00", "Thông báo thu thuế")]


def test_later_same_class_programme_with_an_order_moves_after_the_earlier_one() -> None:
    news = programme(10, "Bản tin sáng", local(2026, 3, 2, 6), minutes=10)
    late = programme(11, "Thông báo tiêm chủng", local(2026, 3, 2, 6, 4), minutes=3, order="after")
    slots = place([late, news], *DAY)
    assert timeline(slots) == [("06:00:00", "Bản tin sáng"), ("06:10:00", "Thông báo tiêm chủng")]
    assert slots[1].shifted == 6 * MIN


def test_shifts_cascade_through_the_classes() -> None:
    flood = programme(1, "Cảnh báo lũ quét", local(2026, 3, 2, 6), minutes=10, priority="emergency")
    storm = programme(2, "Thông báo bão số 9", local(2026, 3, 2, 6, 5), minutes=5, priority="priority")
    news = programme(3, "Bản tin sáng", local(2026, 3, 2, 6, 12), minutes=5)
    vaccine = programme(4, "Thông báo tiêm chủng", local(2026, 3, 2, 6, 16), minutes=4, order="after")
    music = programme(5, "Dân ca ví dặm", local(2026, 3, 2, 6, 30), minutes=10)
    slots = place([music, vaccine, news, storm, flood], *DAY)
    assert timeline(slots) == [("06:00:00", "Cảnh báo lũ quét"), ("06:10:00", "Thông báo bão số 9"),
                               ("06:15:00", "Bản tin sáng"), ("06:20:00", "Thông báo tiêm chủng"),
                               ("06:30:00", "Dân ca ví dặm")]
    assert [s.shifted for s in slots] == [dt.timedelta(0), 5 * MIN, 3 * MIN, 4 * MIN, dt.timedelta(0)]
    for a, b in itertools.pairwise(slots):
        assert a.end <= b.start, "nothing plays over anything else"


def test_lower_class_fits_in_a_gap_only_if_it_fits_whole() -> None:
    early = programme(1, "Thông báo bão số 9", local(2026, 3, 2, 6), minutes=5, priority="priority")
    later = programme(2, "Thông báo cắt điện", local(2026, 3, 2, 6, 20), minutes=5, priority="priority")
    short = programme(3, "Bản tin sáng", local(2026, 3, 2, 6, 3), minutes=10)
    assert timeline(place([early, later, short], *DAY))[1] == ("06:05:00", "Bản tin sáng")
    long = programme(3, "Bản tin sáng", local(2026, 3, 2, 6, 3), minutes=20)  # the 15-minute gap is too short
    assert timeline(place([early, later, long], *DAY)) == [("06:00:00", "Thông báo bão số 9"),
                                                           ("06:20:00", "Thông báo cắt điện"),
                                                           ("06:25:00", "Bản tin sáng")]


def test_slots_outside_the_window_are_left_out() -> None:
    p = programme(1, "Bản tin sáng", local(2026, 3, 1, 6), rrule="FREQ=DAILY;BYHOUR=6,17;BYMINUTE=0")
    slots = place([p], local(2026, 3, 2, 6), local(2026, 3, 3, 6))  # start inclusive, end exclusive
    assert [s.start for s in slots] == [local(2026, 3, 2, 6), local(2026, 3, 2, 17)]
    assert place([p], local(2026, 3, 2, 6, 0, 1), local(2026, 3, 2, 17)) == []


def test_occurrence_started_before_the_window_still_pushes_a_later_one() -> None:
    running = programme(1, "Bản tin sáng", local(2026, 3, 2, 5, 58), items=[item("bulletin:1", 120),
                                                                              item("bulletin:2", 180)])
    vaccine = programme(2, "Thông báo tiêm chủng", local(2026, 3, 2, 6, 1), minutes=3, order="after")
    music = programme(3, "Dân ca ví dặm", local(2026, 3, 2, 6, 5), minutes=5)
    # 05:58–06:03 is the bulletin; the window opens at 06:00, as its second item begins
    slots = place([running, vaccine, music], local(2026, 3, 2, 6), local(2026, 3, 2, 7))
    assert timeline(slots) == [("06:00:00", "Bản tin sáng"),  # its second item; the first began before 06:00
                               ("06:03:00", "Thông báo tiêm chủng"),
                               ("06:06:00", "Dân ca ví dặm")]
    assert [s.index for s in slots if s.programme_id == 1] == [1]


def test_window_edges_for_a_pushed_occurrence() -> None:
    # pushed past the end of the window: not in this plan (the next window will carry it)
    storm = programme(1, "Thông báo bão số 9", local(2026, 3, 2, 6, 55), minutes=10, priority="priority")
    news = programme(2, "Bản tin sáng", local(2026, 3, 2, 6, 58), minutes=5)
    assert timeline(place([storm, news], local(2026, 3, 2, 6), local(2026, 3, 2, 7))) == [
        ("06:55:00", "Thông báo bão số 9")]
    assert timeline(place([storm, news], local(2026, 3, 2, 6), local(2026, 3, 2, 8)))[1] == ("07:05:00",
                                                                                          "Bản tin sáng")


def test_a_plan_compiled_later_agrees_with_one_compiled_earlier_about_what_is_still_to_play() -> None:
    storm = programme(1, "Thông báo bão số 9", local(2026, 3, 2, 5, 52), minutes=5, priority="priority")
    news = programme(2, "Bản tin sáng", local(2026, 3, 2, 5, 54), minutes=5)  # pushed to 05:57–06:02
    music = programme(3, "Dân ca ví dặm", local(2026, 3, 2, 6), minutes=5)  # must wait until 06:02
    at_five = place([storm, news, music], local(2026, 3, 2, 5), local(2026, 3, 2, 8))
    assert timeline(at_five) == [("05:52:00", "Thông báo bão số 9"), ("05:57:00", "Bản tin sáng"),
                                 ("06:02:00", "Dân ca ví dặm")]
    at_six = place([storm, news, music], local(2026, 3, 2, 6), local(2026, 3, 2, 8))
    assert timeline(at_six) == [("06:02:00", "Dân ca ví dặm")]


def test_paused_programmes_are_not_placed_and_push_nothing() -> None:
    storm = programme(1, "Thông báo bão số 9", local(2026, 3, 2, 6), minutes=5, priority="priority", paused=True)
    news = programme(2, "Bản tin sáng", local(2026, 3, 2, 6), minutes=5)
    assert timeline(place([storm, news], *DAY)) == [("06:00:00", "Bản tin sáng")]


def test_slots_are_sorted_by_start() -> None:
    programmes = [programme(i, f"Bản tin {i}", local(2026, 3, 2, 6 + i % 5, 7 * i % 60), minutes=3,
                            rrule="FREQ=HOURLY;INTERVAL=3") for i in range(1, 9)]
    slots = place(programmes, *DAY)
    assert [s.start for s in slots] == sorted(s.start for s in slots)
    for a, b in itertools.pairwise(slots):
        assert a.end <= b.start


# ----------------------------------------------------------------------------- compile_plans


def versions(plans: dict[str, ReceiverPlan]) -> dict[str, str]:
    return {rid: p.version for rid, p in plans.items()}


def test_receivers_targeted_by_different_programmes_get_different_plans() -> None:
    district = programme(1, "Bản tin huyện", local(2026, 3, 2, 6), minutes=10, rrule="FREQ=DAILY",
                         receivers=["an-binh/loa-01", "an-binh/loa-02", "tan-phu/loa-01"])
    commune = programme(2, "Thông báo tiêm chủng xã An Bình", local(2026, 3, 2, 6, 5), minutes=3,
                        priority="priority", receivers=["an-binh/loa-01", "an-binh/loa-02"])
    plans = compile_plans([district, commune], ["an-binh/loa-01", "an-binh/loa-02", "tan-phu/loa-01"], *DAY)
    assert plans["an-binh/loa-01"].version == plans["an-binh/loa-02"].version
    assert plans["an-binh/loa-01"].version != plans["tan-phu/loa-01"].version
    # in An Bình the vaccination notice interrupts the district bulletin's time; in Tân Phú it plays on time
    assert timeline(list(plans["an-binh/loa-01"].slots)) == [("06:05:00", "Thông báo tiêm chủng xã An Bình"),
                                                             ("06:08:00", "Bản tin huyện")]
    assert timeline(list(plans["tan-phu/loa-01"].slots)) == [("06:00:00", "Bản tin huyện")]


def test_a_receiver_no_programme_targets_gets_an_empty_plan_with_a_stable_version() -> None:
    news = programme(1, "Bản tin sáng", local(2026, 3, 2, 6), rrule="FREQ=DAILY", receivers=["an-binh/loa-01"])
    paused = programme(2, "Thông báo tiêm chủng", local(2026, 3, 2, 7), receivers=["an-binh/loa-03"], paused=True)
    receivers = ["an-binh/loa-01", "an-binh/loa-02", "an-binh/loa-03"]
    plans = compile_plans([news, paused], receivers, *DAY)
    assert plans["an-binh/loa-02"].slots == ()
    assert plans["an-binh/loa-03"].slots == ()  # paused: it must hear that its programme is gone
    assert plans["an-binh/loa-02"].version == plans["an-binh/loa-03"].version
    assert plans["an-binh/loa-02"].version != plans["an-binh/loa-01"].version
    again = compile_plans([], ["an-binh/loa-02"], local(2027, 1, 1), local(2027, 1, 3))
    assert again["an-binh/loa-02"].version == plans["an-binh/loa-02"].version


def test_every_receiver_asked_for_gets_a_plan_and_no_other() -> None:
    news = programme(1, "Bản tin sáng", local(2026, 3, 2, 6), receivers=["an-binh/loa-01", "removed/loa-09"])
    plans = compile_plans([news], iter(["an-binh/loa-01", "an-binh/loa-02"]), *DAY)
    assert set(plans) == {"an-binh/loa-01", "an-binh/loa-02"}


BASE_RECEIVERS = ["an-binh/loa-01", "tan-phu/loa-01"]


def base_programmes() -> list[Programme]:
    return [programme(1, "Bản tin sáng", local(2026, 3, 2, 6), rrule="FREQ=DAILY;BYHOUR=6,17;BYMINUTE=0",
                      items=[item("bulletin:11", 300), item("announcement:4", 95.5)], receivers=["an-binh/loa-01"]),
            programme(2, "Thông báo thu thuế", local(2026, 3, 2, 9), minutes=2, receivers=["tan-phu/loa-01"])]


def test_compiling_twice_gives_the_same_versions_whatever_the_input_order() -> None:
    a = compile_plans(base_programmes(), BASE_RECEIVERS, *DAY)
    b = compile_plans(list(reversed(base_programmes())), list(reversed(BASE_RECEIVERS)), *DAY)
    assert versions(a) == versions(b)
    assert a == b


def change_first(**kw: Any) -> list[Programme]:
    first, second = base_programmes()
    return [dataclasses.replace(first, **kw), second]


@pytest.mark.parametrize("changed", [
    pytest.param(change_first(start=local(2026, 3, 2, 6, 1), rrule="FREQ=DAILY;BYHOUR=6,17;BYMINUTE=1"),
                 id="time"),
    pytest.param(change_first(items=(item("bulletin:11", 300, audio="v2"), item("announcement:4", 95.5))),
                 id="audio"),
    pytest.param(change_first(title="Bản tin sáng (cập nhật)"), id="title"),
    pytest.param(change_first(priority="priority"), id="class"),
    pytest.param(change_first(exdates=frozenset({dt.date(2026, 3, 2)})), id="skipped-today"),
])
def test_version_changes_when_what_the_receiver_plays_changes(changed: list[Programme]) -> None:
    before = versions(compile_plans(base_programmes(), BASE_RECEIVERS, *DAY))
    after = versions(compile_plans(changed, BASE_RECEIVERS, *DAY))
    assert after["an-binh/loa-01"] != before["an-binh/loa-01"]
    assert after["tan-phu/loa-01"] == before["tan-phu/loa-01"], "Tân Phú's plan did not change: nothing to send"


@pytest.mark.parametrize("changed", [
    pytest.param(change_first(valid_until=dt.date(2026, 12, 31)), id="validity-beyond-window"),
    pytest.param(change_first(exdates=frozenset({dt.date(2026, 3, 20)})), id="skip-after-window"),
    pytest.param(base_programmes() + [programme(3, "Thông báo tiêm chủng", local(2026, 3, 5, 6),
                                                receivers=["an-binh/loa-01"])], id="new-after-window"),
    pytest.param(base_programmes() + [programme(3, "Thông báo tiêm chủng", local(2026, 3, 2, 6),
                                                receivers=["an-binh/loa-01"], paused=True)], id="new-paused"),
])
def test_version_stays_when_nothing_in_the_window_changes(changed: list[Programme]) -> None:
    before = versions(compile_plans(base_programmes(), BASE_RECEIVERS, *DAY))
    assert versions(compile_plans(changed, BASE_RECEIVERS, *DAY)) == before


def item_ids(programmes: list[Programme]) -> list[str]:
    return [s.item_id for s in compile_plans(programmes, ["an-binh/loa-01"], *DAY)["an-binh/loa-01"].slots]


def test_item_id_names_each_item_of_each_occurrence() -> None:
    ids = item_ids(base_programmes())
    assert len(ids) == 4  # two items at 06:00 and two at 17:00
    assert len(set(ids)) == 4
    assert item_ids(base_programmes()) == ids


def test_item_id_changes_when_the_slot_time_changes() -> None:
    ids = item_ids(base_programmes())
    moved = item_ids(change_first(start=local(2026, 3, 2, 6, 1), rrule="FREQ=DAILY;BYHOUR=6,17;BYMINUTE=1"))
    assert not set(ids) & set(moved)


def test_item_id_changes_when_the_audio_changes_and_only_for_that_item() -> None:
    ids = item_ids(base_programmes())
    new_audio = item_ids(change_first(items=(item("bulletin:11", 300, audio="v2"), item("announcement:4", 95.5))))
    assert new_audio[0] != ids[0] and new_audio[2] != ids[2]
    assert new_audio[1] == ids[1] and new_audio[3] == ids[3]


def test_item_id_stays_when_only_the_title_changes() -> None:
    assert item_ids(change_first(title="Bản tin sáng (cập nhật)")) == item_ids(base_programmes())


def test_item_id_changes_for_items_pushed_by_a_new_priority_programme() -> None:
    ids = item_ids(base_programmes())
    storm = programme(9, "Thông báo bão số 9", local(2026, 3, 2, 16, 58), minutes=5, priority="priority",
                      receivers=["an-binh/loa-01"])
    slots = compile_plans(base_programmes() + [storm], ["an-binh/loa-01"], *DAY)["an-binh/loa-01"].slots
    news = [s.item_id for s in slots if s.programme_id == 1]
    assert news[:2] == ids[:2]  # the morning is untouched
    assert not set(news[2:]) & set(ids[2:])  # the evening moved to 17:03


def test_ten_thousand_receivers_in_a_hundred_communes() -> None:
    communes = [f"xa-{c:02d}" for c in range(100)]
    receivers = [f"{c}/loa-{n:03d}" for c in communes for n in range(100)]
    spare = [f"kho/loa-{n:03d}" for n in range(5)]  # in stock, not yet installed anywhere
    window = (local(2026, 3, 2), local(2026, 3, 4))  # Monday and Tuesday

    def of(cs: list[str]) -> list[str]:
        return [r for r in receivers if r.split("/")[0] in cs]

    district = programme(1, "Bản tin huyện", local(2026, 3, 1, 6), minutes=10,
                         rrule="FREQ=DAILY;BYHOUR=6,17;BYMINUTE=0", receivers=receivers)
    own = [programme(100 + c, f"Bản tin xã số {c}", local(2026, 3, 1, 6, 30), minutes=5, rrule="FREQ=DAILY",
                     receivers=of([communes[c]])) for c in range(100)]
    vaccine = [programme(300 + k, "Thông báo tiêm chủng", local(2026, 3, 2, 8), minutes=5,
                         rrule="FREQ=WEEKLY;BYDAY=MO", receivers=of(communes[10 * k:10 * k + 10])) for k in range(10)]
    storm = programme(400, "Thông báo bão số 9", local(2026, 3, 3, 6), minutes=15, priority="priority",
                      receivers=of(communes[:20]))
    programmes = [district, *own, *vaccine, storm]
    targets = {r: {p.id for p in programmes if r in p.receivers} for r in receivers}

    plans = compile_plans(programmes, receivers + spare, *window)

    assert len(plans) == 10_005
    for rid in spare:
        assert plans[rid].slots == ()
    for rid in receivers:
        assert {s.programme_id for s in plans[rid].slots} == targets[rid]
    by_commune = {c: {plans[r].version for r in of([c])} for c in communes}
    assert all(len(v) == 1 for v in by_commune.values()), "one commune, one plan"
    assert len({next(iter(v)) for v in by_commune.values()}) == 100, "each commune has its own bulletin"

    assert timeline(list(plans["xa-05/loa-042"].slots)) == [
        ("06:00:00", "Bản tin huyện"), ("06:30:00", "Bản tin xã số 5"), ("08:00:00", "Thông báo tiêm chủng"),
        ("17:00:00", "Bản tin huyện"),
        ("06:00:00", "Thông báo bão số 9"), ("06:15:00", "Bản tin huyện"), ("06:30:00", "Bản tin xã số 5"),
        ("17:00:00", "Bản tin huyện")]
    assert timeline(list(plans["xa-50/loa-000"].slots)) == [
        ("06:00:00", "Bản tin huyện"), ("06:30:00", "Bản tin xã số 50"), ("08:00:00", "Thông báo tiêm chủng"),
        ("17:00:00", "Bản tin huyện"),
        ("06:00:00", "Bản tin huyện"), ("06:30:00", "Bản tin xã số 50"), ("17:00:00", "Bản tin huyện")]
    # the receivers of one commune hear the same programme of the same vaccination campaign as their cluster
    assert {s.programme_id for s in plans["xa-05/loa-042"].slots} & {300 + k for k in range(10)} == {300}
    assert {s.programme_id for s in plans["xa-99/loa-099"].slots} & {300 + k for k in range(10)} == {309}
