"""Tổng quan: live counts per commune that follow the fleet, limited to the person's communes; alarms that
link to their receiver; what is on air; no horizontal scroll on a phone."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlmodel import Session

from controller.db.models import CommandRecord

from .conftest import UiWorld, sign_in, wait_text


@contextmanager
def cut(world: UiWorld, rid: str) -> Iterator[None]:
    """Receiver `rid`'s agent stopped inside; started again afterwards, so later tests see the whole fleet."""
    world.fleet.stop_one(rid)
    try:
        yield
    finally:
        again = [s for s in world.fleet.settings(controller_url=world.url) if s.receiver_id == rid]
        world.fleet.start(again, timeout=30)


def test_counts_match_the_fleet_and_follow_a_cut_link(page: Any, ui_world: UiWorld) -> None:
    sign_in(page, ui_world, "admin")
    nu = ui_world.receivers("tra-nu")
    wait_text(page.get_by_test_id("online-tra-nu"), str(len(nu)))
    wait_text(page.get_by_test_id("offline-tra-nu"), "0")
    wait_text(page.get_by_test_id("total-total"), str(len(ui_world.receivers())))
    rid = nu[-1]
    with cut(ui_world, rid):
        wait_text(page.get_by_test_id("offline-tra-nu"), "1")
        wait_text(page.get_by_test_id("online-tra-nu"), str(len(nu) - 1))
    wait_text(page.get_by_test_id("online-tra-nu"), str(len(nu)), timeout=20)
    wait_text(page.get_by_test_id("offline-tra-nu"), "0")


def test_a_commune_operator_sees_only_their_commune(page: Any, ui_world: UiWorld) -> None:
    sign_in(page, ui_world, "op-bui")
    bui = ui_world.receivers("tra-bui")
    wait_text(page.get_by_test_id("online-tra-bui"), str(len(bui)))
    wait_text(page.get_by_test_id("total-total"), str(len(bui)))
    assert page.get_by_test_id("commune-tra-nu").count() == 0
    assert page.get_by_test_id("commune-tra-my").count() == 0
    # Another commune's receiver, opened by its address: not found (nothing of it shown).
    other = ui_world.receivers("tra-nu")[0]
    page.goto(f"{ui_world.url}/ui/cum-loa/{other}")
    page.get_by_test_id("no-access").get_by_text("Không tìm thấy").wait_for()
    assert page.get_by_test_id("receiver-name").count() == 0


def test_a_failed_self_test_is_an_alarm_linking_to_its_receiver_only_where_it_is_seen(
        page: Any, ui_world: UiWorld) -> None:
    rid = ui_world.receivers("tra-nu")[1]
    now = dt.datetime.now(dt.UTC)
    with Session(ui_world.testbed.engine) as s:
        s.add(CommandRecord(command_id=str(uuid.uuid4()), kind="self-test", target=f"receiver:{rid}", issued_at=now,
                            expires_at=now + dt.timedelta(minutes=1), issued_by="tests", outcome="rejected",
                            reason="amplifier relay did not switch on", answered_at=now))
        s.commit()
    try:
        sign_in(page, ui_world, "admin")
        alarm = page.get_by_test_id(f"alarm-self_test_failed-{rid}")
        alarm.get_by_text("Tự kiểm tra không đạt").wait_for(timeout=20_000)
        alarm.click()
        page.wait_for_url(f"**/ui/cum-loa/{rid}")
        page.get_by_test_id("receiver-name").wait_for()
        # The operator of another commune is not told about it.
        page.context.clear_cookies()
        sign_in(page, ui_world, "op-bui")
        page.locator("[data-testid=alarm-list].tt-loaded").wait_for(timeout=20_000)
        assert page.get_by_test_id(f"alarm-self_test_failed-{rid}").count() == 0
    finally:
        with Session(ui_world.testbed.engine) as s:  # a passed self-test clears the alarm for the other tests
            s.add(CommandRecord(command_id=str(uuid.uuid4()), kind="self-test", target=f"receiver:{rid}",
                                issued_at=now + dt.timedelta(seconds=1), expires_at=now + dt.timedelta(minutes=1),
                                issued_by="tests", outcome="applied", answered_at=now))
            s.commit()


def test_each_commune_says_what_is_on_air_and_what_comes_next(page: Any, ui_world: UiWorld) -> None:
    # Trà Ka: no other test of this area plays there.
    suffix = uuid.uuid4().hex[:6]
    text = "Thông báo lịch tiêm phòng cho gia súc và gia cầm tại nhà văn hóa thôn. " * 3
    r = ui_world.api.post("/api/v1/announcements", json={"text": text, "title": f"Tiêm phòng {suffix}",
                                                         "commune": "tra-ka", "engine": "offline"}, timeout=120)
    assert r.status_code == 201, r.text
    item = r.json()["id"]
    soon, later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=12), dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    created = []
    for title, start in ((f"Phát ngay {suffix}", soon), (f"Phát chiều {suffix}", later)):
        r = ui_world.api.post("/api/v1/programmes", json={
            "title": title, "items": [{"announcement_id": item}], "targets": {"communes": ["tra-ka"]},
            "start": start.isoformat()})
        assert r.status_code == 201, r.text
        created.append(r.json()["id"])
    try:
        sign_in(page, ui_world, "admin")
        on_air, coming = page.get_by_test_id("onair-tra-ka"), page.get_by_test_id("next-tra-ka")
        coming.get_by_text(f"Tiếp theo: Phát ngay {suffix}").wait_for(timeout=20_000)
        # At its start the dashboard moves on by itself (no reload).
        on_air.get_by_text(f"Đang phát theo lịch: Phát ngay {suffix}").wait_for(timeout=30_000)
        coming.get_by_text(f"Tiếp theo: Phát chiều {suffix}").wait_for()
        # Another commune's operator does not see it in theirs.
        page.context.clear_cookies()
        sign_in(page, ui_world, "op-bui")
        page.get_by_test_id("next-tra-bui").get_by_text("Chưa có chương trình nào").wait_for(timeout=20_000)
        assert page.get_by_test_id("onair-tra-ka").count() == 0
    finally:
        for pid in created:
            ui_world.api.delete(f"/api/v1/programmes/{pid}")


def test_no_horizontal_scroll_on_a_phone(phone: Any, ui_world: UiWorld) -> None:
    sign_in(phone, ui_world, "admin")
    phone.get_by_test_id("commune-tra-nu").wait_for()
    phone.locator("[data-testid=alarm-list].tt-loaded").wait_for(timeout=20_000)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
