"""Lịch phát in Chromium: a weekly programme made through the form shows on its days in the week calendar; a
clashing one is named (the other programme and its time) before anything is saved, and saving it is refused;
pause, resume and delete show in the calendar; a commune operator is offered only its communes (and the
service refuses a forged target); content waiting for approval is pointed out and an operator's programme
waits for approval; the calendar fits a 360 px phone. Dates are well ahead (the world is shared by every
UI test: names and times here are this file's own)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from controller.db.models import Commune, ProgrammeCreate, Targets
from controller.errors import Hidden
from controller.policy import Principal
from controller.services import Ctx
from controller.services import programmes as service
from schedules import TZ
from tests.controller.api.test_programmes import add_bulletin

from .conftest import UiWorld, sign_in

SCHEDULE = "/ui/lich-phat"
FORM = "/ui/lich-phat/chuong-trinh/moi"


def uid() -> str:
    return uuid.uuid4().hex[:6]


def announcement(world: UiWorld, title: str, commune: str = "tra-nu") -> int:
    r = world.api.post("/api/v1/announcements", json={"text": f"Kính mời bà con nghe {title}.", "title": title,
                                                      "engine": "offline", "commune": commune})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def field(page: Any, testid: str, value: str) -> None:
    box = page.get_by_test_id(testid)  # Quasar puts it on the <input> itself
    for _ in range(3):  # the form's card may be redrawn while a busy machine types: type it again then
        box.fill("")
        box.press_sequentially(value)
        if box.input_value() == value:
            break
    expect(box).to_have_value(value)
    box.blur()  # the field's last change is sent before the next control is touched


def pick(page: Any, testid: str, option: str, search: str | None = None) -> None:
    """Choose `option` in a select (typing `search` first: long lists show only what is scrolled to)."""
    page.get_by_test_id(testid).click()
    if search:
        page.get_by_test_id(testid).press_sequentially(search)
    page.get_by_role("option", name=re.compile(re.escape(option))).first.click()
    page.keyboard.press("Escape")


def weekdays(page: Any, days: set[int]) -> None:
    for d in range(7):
        box = page.get_by_test_id(f"wd-{d}")
        if (box.get_attribute("aria-checked") == "true") != (d in days):
            box.click()


def fill_programme(page: Any, title: str, item: str, day: str, time: str, days: set[int] | None) -> None:
    field(page, "title", title)
    pick(page, "items", item)
    field(page, "start-date", day)
    field(page, "start-time", time)
    if days is None:
        pick(page, "repeat", "Một lần")
    else:
        weekdays(page, days)


def day_box(page: Any, day: str) -> Any:
    return page.get_by_test_id(f"day-{day}")


def programmes(world: UiWorld, title: str) -> list[dict[str, Any]]:
    rows = world.api.get("/api/v1/programmes", params={"limit": 1000}).json()["data"]
    return [p for p in rows if p["title"] == title]


def test_a_weekly_programme_shows_on_its_days_and_a_clash_is_named_before_saving(page: Any, ui_world: UiWorld) -> None:
    tag = uid()
    item = f"Bản tin sáng {tag}"
    announcement(ui_world, item)
    sign_in(page, ui_world, "admin", next_path=SCHEDULE)
    page.goto(f"{ui_world.url}{FORM}?xa=tra-nu")
    fill_programme(page, item, item, "01/02/2027", "05:37", {0, 2})
    page.get_by_test_id("repeat-text").get_by_text("Thứ Hai, Thứ Tư hằng tuần lúc 05:37").wait_for()
    page.get_by_test_id("clash-status").get_by_text("Không trùng lịch").wait_for()
    page.get_by_test_id("save").click()
    page.wait_for_url(re.compile(r"^http://[^/]+/ui/lich-phat\?tuan=2027-02-01&xa=tra-nu"))
    day_box(page, "2027-02-01").get_by_text(item).wait_for()
    day_box(page, "2027-02-03").get_by_text(item).wait_for()
    assert day_box(page, "2027-02-01").get_by_text("05:37–05:").count() >= 1
    assert day_box(page, "2027-02-02").get_by_text(item).count() == 0
    assert page.get_by_test_id("week").inner_text() == "Tuần 01/02/2027 – 07/02/2027"
    (saved,) = programmes(ui_world, item)
    card = page.get_by_test_id(f"programme-{saved['id']}")
    assert card.get_by_test_id("rule").inner_text() == "Thứ Hai, Thứ Tư hằng tuần lúc 05:37"

    # A one-off programme at the same time is named as a clash while the form is filled in, before saving.
    clashing = f"Trùng giờ {tag}"
    page.goto(f"{ui_world.url}{FORM}?xa=tra-nu")
    fill_programme(page, clashing, item, "01/02/2027", "05:37", None)
    status = page.get_by_test_id("clash-status")
    status.get_by_text(f"Trùng với «{item}» lúc 05:37").wait_for()
    assert "Thứ Hai 01/02/2027" in status.inner_text() and "Xã Trà Nú" in status.inner_text()
    assert not programmes(ui_world, clashing)  # nothing saved by checking
    page.get_by_test_id("save").click()
    page.get_by_text(f"Trùng lịch với «{item}»").first.wait_for()  # the refusal, in Vietnamese
    assert "/chuong-trinh/moi" in page.url and not programmes(ui_world, clashing)

    # Pause, resume and delete, reflected in the calendar.
    page.goto(f"{ui_world.url}{SCHEDULE}?tuan=2027-02-01&xa=tra-nu")
    card = page.get_by_test_id(f"programme-{saved['id']}")
    card.get_by_test_id("pause").click()
    card.get_by_test_id("status").get_by_text("Tạm dừng").wait_for()
    assert day_box(page, "2027-02-01").get_by_text(item).count() == 0
    card = page.get_by_test_id(f"programme-{saved['id']}")
    card.get_by_test_id("resume").click()
    card.get_by_test_id("status").get_by_text("Đang xếp lịch").wait_for()
    day_box(page, "2027-02-01").get_by_text(item).wait_for()
    page.get_by_test_id(f"programme-{saved['id']}").get_by_test_id("delete").click()
    page.get_by_test_id("confirm-delete").click()
    page.get_by_text(f"Đã xóa «{item}».").wait_for()
    page.get_by_test_id(f"programme-{saved['id']}").wait_for(state="detached")
    assert day_box(page, "2027-02-01").get_by_text(item).count() == 0
    assert not programmes(ui_world, item)


def test_the_week_buttons_move_the_calendar(page: Any, ui_world: UiWorld) -> None:
    sign_in(page, ui_world, "viewer", next_path=SCHEDULE)
    page.goto(f"{ui_world.url}{SCHEDULE}?tuan=2027-02-03")
    week = page.get_by_test_id("week")
    week.get_by_text("Tuần 01/02/2027 – 07/02/2027").wait_for()
    page.get_by_test_id("next-week").click()
    week.get_by_text("Tuần 08/02/2027 – 14/02/2027").wait_for()
    page.get_by_test_id("prev-week").click()
    page.get_by_test_id("prev-week").click()
    week.get_by_text("Tuần 25/01/2027 – 31/01/2027").wait_for()
    page.get_by_test_id("this-week").click()
    today = dt.datetime.now(TZ).date()
    monday = today - dt.timedelta(days=today.weekday())
    week.get_by_text(f"Tuần {monday:%d/%m/%Y}").wait_for()
    assert page.get_by_test_id("new-programme").count() == 0  # a viewer changes nothing


def test_an_operator_is_offered_only_its_communes_and_a_forged_target_is_refused(page: Any,
                                                                                  ui_world: UiWorld) -> None:
    sign_in(page, ui_world, "op-bui", next_path=SCHEDULE)
    page.goto(f"{ui_world.url}{FORM}")
    page.get_by_test_id("communes").click()
    page.get_by_role("option", name="Xã Trà Bui").wait_for()
    assert page.get_by_role("option", name="Xã Trà Nú").count() == 0
    page.keyboard.press("Escape")
    page.get_by_test_id("villages").click()
    page.get_by_role("option").first.wait_for()
    assert page.get_by_role("option", name=re.compile("Trà Nú")).count() == 0
    page.keyboard.press("Escape")
    # Nor is another commune's programme opened by its address, or its commune offered on the calendar.
    tag = uid()
    item = f"Tin Trà Nú {tag}"
    theirs = ui_world.api.post("/api/v1/programmes", json={
        "title": item, "items": [{"announcement_id": announcement(ui_world, item)}],
        "targets": {"villages": ["tra-nu/thon-2"]}, "start": "2027-02-16T21:07:00+07:00"}).json()
    page.goto(f"{ui_world.url}/ui/lich-phat/chuong-trinh/{theirs['id']}")
    page.get_by_test_id("no-access").wait_for()
    assert page.get_by_test_id("title").count() == 0
    page.goto(f"{ui_world.url}{SCHEDULE}?tuan=2027-02-15&xa=tra-nu")
    page.get_by_test_id("day-2027-02-16").wait_for()
    assert page.get_by_test_id(f"occ-{theirs['id']}").count() == 0 and page.get_by_text(item).count() == 0
    page.get_by_test_id("scope").click()
    page.get_by_role("option", name="Xã Trà Bui").wait_for()
    assert page.get_by_role("option", name="Xã Trà Nú").count() == 0
    page.keyboard.press("Escape")
    ui_world.api.delete(f"/api/v1/programmes/{theirs['id']}")
    # The service is what refuses: a programme for tra-nu by op-bui, as a forged call would ask.
    with Session(ui_world.testbed.engine) as s:
        who = Principal.for_user(0, "op-bui", "commune_operator", frozenset({"tra-bui"}))
        ctx = Ctx(session=s, who=who, settings=ui_world.testbed.settings, engine=ui_world.testbed.engine)
        body = ProgrammeCreate(title=f"Giả mạo {uid()}", items=[{"announcement_id": 1}],
                               targets=Targets(communes=["tra-nu"]),
                               start=dt.datetime(2027, 2, 1, 9, 0, tzinfo=TZ))
        with pytest.raises(Hidden):
            service.check_programme(ctx, body)
        with pytest.raises(Hidden):
            service.create_programme(ctx, body)


def test_an_operators_programme_waits_for_approval_and_drafts_are_pointed_out(page: Any, ui_world: UiWorld) -> None:
    tag = uid()
    item = f"Thông báo họp {tag}"
    announcement(ui_world, item)
    draft = f"Bản tin nháp {tag}"
    with Session(ui_world.testbed.engine) as s:
        nu = s.exec(select(Commune).where(Commune.code == "tra-nu")).one()
        add_bulletin(s, draft, 30, commune_id=nu.id, approved=False)
    sign_in(page, ui_world, "op-nu", next_path=SCHEDULE)
    page.goto(f"{ui_world.url}{FORM}?xa=tra-nu")
    note = page.get_by_test_id("drafts-note")
    note.get_by_text(f"«{draft}»", exact=False).wait_for()
    assert "chờ duyệt" in note.inner_text()
    page.get_by_test_id("approval-note").wait_for()
    title = f"Họp thôn {tag}"
    fill_programme(page, title, item, "09/02/2027", "19:41", {1})
    page.get_by_test_id("clash-status").get_by_text("Không trùng lịch").wait_for()
    page.get_by_test_id("save").click()
    page.get_by_text(f"Đã lưu «{title}». Chương trình đang chờ duyệt.").wait_for()
    page.wait_for_url(re.compile(r"^http://[^/]+/ui/lich-phat\?tuan=2027-02-08&xa=tra-nu"))
    (saved,) = programmes(ui_world, title)
    assert saved["approved"] is False
    card = page.get_by_test_id(f"programme-{saved['id']}")
    card.get_by_test_id("status").get_by_text("Chờ duyệt").wait_for()
    # The calendar shows when it would play, marked as waiting (it is on no receiver's plan).
    day_box(page, "2027-02-09").get_by_test_id(f"occ-{saved['id']}").get_by_test_id("draft").wait_for()
    placed = ui_world.api.get("/api/v1/schedule", params={"commune": "tra-nu", "from": "2027-02-09T00:00:00+07:00",
                                                          "to": "2027-02-10T00:00:00+07:00"}).json()["data"]
    assert saved["id"] not in {r["programme_id"] for r in placed}
    ui_world.api.delete(f"/api/v1/programmes/{saved['id']}")


def test_the_calendar_fits_a_phone(phone: Any, ui_world: UiWorld) -> None:
    sign_in(phone, ui_world, "op-nu", next_path=SCHEDULE)
    phone.get_by_test_id("day-" + (dt.datetime.now(TZ).date() - dt.timedelta(
        days=dt.datetime.now(TZ).weekday())).isoformat()).wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    phone.goto(f"{ui_world.url}{FORM}")
    phone.get_by_test_id("save").wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360


def test_a_shifted_occurrence_is_marked_and_a_programme_is_edited_through_the_form(page: Any,
                                                                                   ui_world: UiWorld) -> None:
    tag = uid()
    item = f"Tin nông nghiệp {tag}"
    ident = announcement(ui_world, item)
    common = {"items": [{"announcement_id": ident}], "targets": {"villages": ["tra-nu/thon-5"]},
              "start": "2027-02-15T09:13:00+07:00"}
    normal = ui_world.api.post("/api/v1/programmes", json={"title": f"Thường {tag}", **common})
    urgent = ui_world.api.post("/api/v1/programmes", json={"title": f"Ưu tiên {tag}", "priority": "priority",
                                                           **common})
    assert normal.status_code == urgent.status_code == 201, (normal.text, urgent.text)
    sign_in(page, ui_world, "leader-nu", next_path=SCHEDULE)
    page.goto(f"{ui_world.url}{SCHEDULE}?tuan=2027-02-15&xa=tra-nu")
    monday = day_box(page, "2027-02-15")
    shifted = monday.get_by_test_id(f"occ-{normal.json()['id']}")
    shifted.get_by_test_id("shifted").wait_for()
    assert shifted.get_by_test_id("shifted").inner_text().startswith("dời ")
    first = monday.get_by_test_id(f"occ-{urgent.json()['id']}")
    assert first.get_by_text("Ưu tiên", exact=True).count() == 1 and first.get_by_test_id("shifted").count() == 0

    # Edit the normal one: another time, every Monday; the calendar follows.
    shifted.click()
    page.wait_for_url(f"**/ui/lich-phat/chuong-trinh/{normal.json()['id']}")
    assert page.get_by_test_id("title").input_value() == f"Thường {tag}"
    assert page.get_by_test_id("start-time").input_value() == "09:13"
    field(page, "start-time", "10:13")
    pick(page, "repeat", "Hằng tuần")
    weekdays(page, {0})
    page.get_by_test_id("repeat-text").get_by_text("Thứ Hai hằng tuần lúc 10:13").wait_for()
    page.get_by_test_id("clash-status").get_by_text("Không trùng lịch").wait_for()
    page.get_by_test_id("save").click()
    page.wait_for_url(re.compile(r"^http://[^/]+/ui/lich-phat\?tuan=2027-02-15&xa=tra-nu"))
    moved = day_box(page, "2027-02-15").get_by_test_id(f"occ-{normal.json()['id']}")
    moved.get_by_text("10:13–10:").wait_for()
    assert moved.get_by_test_id("shifted").count() == 0
    page.get_by_test_id("next-week").click()
    day_box(page, "2027-02-22").get_by_test_id(f"occ-{normal.json()['id']}").wait_for()
    # Deleted from its own page, with a confirmation.
    page.goto(f"{ui_world.url}/ui/lich-phat/chuong-trinh/{urgent.json()['id']}")
    page.wait_for_function("window.did_handshake === true")  # a click before the page's socket is up is lost
    page.get_by_test_id("delete").click()
    page.get_by_test_id("confirm-delete").click()
    page.wait_for_url(re.compile(r"^http://[^/]+/ui/lich-phat(\?.*)?$"))
    assert ui_world.api.get(f"/api/v1/programmes/{urgent.json()['id']}").status_code == 404
    ui_world.api.delete(f"/api/v1/programmes/{normal.json()['id']}")


def test_validity_and_days_skipped_shape_the_calendar(page: Any, ui_world: UiWorld) -> None:
    tag = uid()
    item = f"Phát thanh sớm {tag}"
    announcement(ui_world, item)
    sign_in(page, ui_world, "admin", next_path=SCHEDULE)
    page.goto(f"{ui_world.url}{FORM}?xa=tra-nu")
    fill_programme(page, item, item, "01/03/2027", "04:19", {0})
    pick(page, "repeat", "Hằng tháng, vào thứ")
    page.get_by_test_id("repeat-text").get_by_text("Thứ Hai đầu tiên của tháng lúc 04:19").wait_for()
    pick(page, "repeat", "Hằng ngày")
    page.get_by_test_id("repeat-text").get_by_text("Hằng ngày lúc 04:19").wait_for()
    field(page, "valid-until", "05/03/2027")
    field(page, "exdate", "03/03/2027")
    page.get_by_test_id("exdate-add").click()
    page.get_by_text("03/03/2027", exact=True).wait_for()
    page.get_by_test_id("clash-status").get_by_text("Không trùng lịch").wait_for()
    page.get_by_test_id("save").click()
    page.wait_for_url(re.compile(r"^http://[^/]+/ui/lich-phat\?tuan=2027-03-01&xa=tra-nu"))
    for day in ("2027-03-01", "2027-03-02", "2027-03-04", "2027-03-05"):
        day_box(page, day).get_by_text(item).wait_for()
    for day in ("2027-03-03", "2027-03-06", "2027-03-07"):
        assert day_box(page, day).get_by_text(item).count() == 0
    (saved,) = programmes(ui_world, item)
    assert saved["exdates"] == ["2027-03-03"] and saved["valid_until"] == "2027-03-05"
    ui_world.api.delete(f"/api/v1/programmes/{saved['id']}")


def test_a_clash_is_resolved_by_playing_after_the_other(page: Any, ui_world: UiWorld) -> None:
    tag = uid()
    item = f"Tin thời tiết {tag}"
    ident = announcement(ui_world, item)
    base = ui_world.api.post("/api/v1/programmes", json={
        "title": item, "items": [{"announcement_id": ident}], "targets": {"villages": ["tra-nu/thon-3"]},
        "start": "2027-02-22T03:11:00+07:00"}).json()
    sign_in(page, ui_world, "admin", next_path=SCHEDULE)
    page.goto(f"{ui_world.url}{FORM}")
    title = f"Phát sau {tag}"
    fill_programme(page, title, item, "22/02/2027", "03:11", None)
    pick(page, "villages", "Thôn 3 (Xã Trà Nú)", search="Thôn 3 (Xã Trà N")
    page.get_by_test_id("clash-status").get_by_text(f"Trùng với «{item}» lúc 03:11").wait_for()
    pick(page, "order", "Phát ngay sau")
    page.get_by_test_id("clash-status").get_by_text("Không trùng lịch").wait_for()
    page.get_by_test_id("save").click()
    page.wait_for_url(re.compile(r"^http://[^/]+/ui/lich-phat\?tuan=2027-02-22&xa=tra-nu"))
    (saved,) = programmes(ui_world, title)
    after = day_box(page, "2027-02-22").get_by_test_id(f"occ-{saved['id']}")
    after.get_by_test_id("shifted").wait_for()
    assert saved["order"] == "after"
    for pid in (saved["id"], base["id"]):
        ui_world.api.delete(f"/api/v1/programmes/{pid}")
