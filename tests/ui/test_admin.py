"""Quản trị and Nhật ký in the browser: a district admin creates a commune operator who then signs in and sees
only their commune; a token made in the page is shown once, works against the API, and stops working once
revoked in the page; the audit log filters refusals; who may not open these pages gets "no access"."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import httpx
import pytest

from schedules import TZ

from .conftest import PASSWORD, UiWorld, sign_in

USERS, TOKENS, AUDIT, APPROVAL = "/ui/quan-tri/tai-khoan", "/ui/quan-tri/ma-api", "/ui/nhat-ky", "/ui/duyet-tin"


def _choose(page: Any, testid: str, option: str) -> None:
    page.get_by_test_id(testid).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_an_admin_creates_a_commune_operator_who_sees_only_their_commune(page: Any, ui_world: UiWorld,
                                                                         browser: Any) -> None:
    name = f"can-bo-{uuid.uuid4().hex[:6]}"
    sign_in(page, ui_world, "admin", next_path=USERS)
    page.get_by_test_id("new-user").click()
    page.get_by_test_id("user-username").fill(name)
    page.get_by_test_id("user-display").fill("Cán bộ Trà Kót")
    page.get_by_test_id("user-password").fill("ngan")
    _choose(page, "user-role", "Cán bộ xã")
    page.get_by_test_id("user-save").click()
    page.get_by_text("Hãy chọn ít nhất một xã").wait_for()  # a commune role needs its communes
    _choose(page, "user-communes", "Xã Trà Kót")
    page.keyboard.press("Escape")
    page.get_by_test_id("user-save").click()
    page.get_by_text("Mật khẩu cần ít nhất 10 ký tự.").wait_for()  # the service's rule, in Vietnamese
    page.get_by_test_id("user-password").fill(PASSWORD)
    page.get_by_test_id("user-save").click()
    card = page.get_by_test_id(f"user-{name}")
    card.wait_for()
    assert "Cán bộ xã" in card.inner_text() and "Xã Trà Kót" in card.inner_text()

    ui_world.users[name] = PASSWORD
    context = browser.new_context(locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh",
                                  viewport={"width": 1280, "height": 800})
    try:
        theirs = context.new_page()
        sign_in(theirs, ui_world, name)
        theirs.get_by_test_id("commune-tra-kot").wait_for()
        shown = theirs.locator("[data-testid^=commune-]:not([data-testid^=commune-link-])")
        assert shown.count() == 1
        theirs.goto(f"{ui_world.url}{USERS}")
        theirs.get_by_test_id("no-access").wait_for()

        # Disabled in the page: their open session ends.
        page.get_by_test_id(f"toggle-{name}").click()
        page.get_by_test_id("toggle-confirm").click()
        page.get_by_test_id(f"user-state-{name}").filter(has_text="Đã khóa").wait_for()
        theirs.reload()
        theirs.wait_for_url("**/ui/dang-nhap**")
    finally:
        context.close()


def test_an_account_for_every_commune_and_a_role_changed_in_the_page(page: Any, ui_world: UiWorld) -> None:
    name = f"truc-{uuid.uuid4().hex[:6]}"
    sign_in(page, ui_world, "admin", next_path=USERS)
    page.get_by_test_id("new-user").click()
    page.get_by_test_id("user-username").fill(name)
    page.get_by_test_id("user-password").fill(PASSWORD)
    _choose(page, "user-role", "Trực khẩn cấp")
    page.get_by_test_id("user-every-commune").click()
    page.get_by_test_id("user-save").click()
    card = page.get_by_test_id(f"user-{name}")
    card.wait_for()
    assert "Trực khẩn cấp" in card.inner_text() and "Toàn huyện" in card.inner_text()
    page.get_by_test_id(f"edit-{name}").click()
    _choose(page, "user-role", "Xem")
    page.get_by_test_id("user-every-commune").click()  # no longer every commune: name them
    _choose(page, "user-communes", "Xã Trà Bui")
    page.keyboard.press("Escape")
    page.get_by_test_id("user-save").click()
    card.filter(has_text="Xã Trà Bui").wait_for()
    assert "Vai trò: Xem" in card.inner_text()
    users = ui_world.api.get("/api/v1/users", params={"limit": 1000}).json()["data"]
    assert [(u["role"], u["communes"]) for u in users if u["username"] == name] == [("viewer", ["tra-bui"])]


def test_a_token_made_in_the_page_is_shown_once_works_and_is_revoked(page: Any, ui_world: UiWorld) -> None:
    label = f"Hệ thống thử {uuid.uuid4().hex[:6]}"
    sign_in(page, ui_world, "admin", next_path=TOKENS)
    page.get_by_test_id("new-token").click()
    page.get_by_test_id("token-name").fill(label)
    page.get_by_test_id("token-save").click()
    page.get_by_text("Hãy chọn ít nhất một quyền.").wait_for()
    page.get_by_test_id("scope-receivers-read").click()
    _choose(page, "token-communes", "Xã Trà Nú")
    page.keyboard.press("Escape")
    page.get_by_test_id("token-save").click()
    token = page.get_by_test_id("token-value").inner_text().strip()
    assert token.startswith("tt_")
    page.get_by_text("Mã chỉ hiển thị MỘT LẦN").wait_for()
    page.get_by_test_id("token-copy").wait_for()
    with httpx.Client(base_url=ui_world.url, headers={"Authorization": f"Bearer {token}"}) as api:
        r = api.get("/api/v1/communes")
        assert r.status_code == 200 and [c["code"] for c in r.json()["data"]] == ["tra-nu"]
        page.get_by_test_id("token-done").click()
        card = page.locator("[data-testid^=token-]").filter(has_text=label).first
        card.wait_for()
        assert "Xem cụm loa" in card.inner_text() and "Đang dùng được" in card.inner_text()
        page.reload()
        page.locator("[data-testid^=token-]").filter(has_text=label).first.wait_for()
        assert token not in page.content()  # shown once only
        card = page.locator("[data-testid^=token-]").filter(has_text=label).first
        card.get_by_role("button", name="Thu hồi").click()
        page.get_by_test_id("revoke-confirm").click()
        card.get_by_text("Đã thu hồi").wait_for()
        assert api.get("/api/v1/communes").status_code == 401


def test_the_audit_log_filters_refusals(page: Any, ui_world: UiWorld) -> None:
    sign_in(page, ui_world, "viewer", next_path=AUDIT)  # refused, and audited
    page.get_by_test_id("no-access").wait_for()
    page.get_by_test_id("logout").click()
    page.wait_for_url("**/ui/dang-nhap**")
    sign_in(page, ui_world, "admin", next_path=AUDIT)
    page.get_by_test_id("audit-table").locator("tbody tr").first.wait_for()
    _choose(page, "audit-outcome", "Bị từ chối")
    page.get_by_test_id("audit-actor").fill("viewer")
    page.get_by_test_id("audit-apply").click()
    rows = page.get_by_test_id("audit-table").locator("tbody tr")
    rows.filter(has_text="/nhat-ky").first.wait_for()
    assert page.get_by_test_id("outcome-ok").count() == 0
    assert rows.count() == page.get_by_test_id("outcome-refused").count() >= 1
    first = rows.first.inner_text()
    assert "viewer" in first and "Giao diện · mở trang" in first
    assert re.search(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d", first)
    # A period: from tomorrow on there is nothing yet; today's refusals are there.
    tomorrow = dt.datetime.now(TZ).date() + dt.timedelta(days=1)
    page.get_by_test_id("audit-start").fill(f"{tomorrow:%d/%m/%Y}")
    page.get_by_test_id("audit-apply").click()
    page.get_by_test_id("audit-count").filter(has_text="Không có mục nào").wait_for()
    page.get_by_test_id("audit-start").fill(f"{tomorrow - dt.timedelta(days=1):%d/%m/%Y}")
    page.get_by_test_id("audit-apply").click()
    rows.filter(has_text="/nhat-ky").first.wait_for()
    page.get_by_test_id("audit-start").fill("2026-12-01")
    page.get_by_test_id("audit-apply").click()
    page.get_by_text("Ngày phải viết theo dạng dd/mm/yyyy").wait_for()


@pytest.mark.parametrize("who, path", [("viewer", APPROVAL), ("viewer", USERS), ("viewer", TOKENS), ("viewer", AUDIT),
                                       ("op-nu", APPROVAL), ("op-nu", USERS), ("op-nu", TOKENS), ("op-nu", AUDIT)])
def test_who_lacks_the_right_gets_no_access(page: Any, ui_world: UiWorld, who: str, path: str) -> None:
    sign_in(page, ui_world, who, next_path=path)
    page.get_by_test_id("no-access").wait_for()
    assert page.get_by_test_id("new-user").count() == 0 and page.get_by_test_id("new-token").count() == 0


# ------------------------------------------------------------------------------ page logic, no browser


def test_audit_actions_times_and_dates_as_staff_read_them() -> None:
    from controller.ui.pages.audit_log import action_vi, parse_day, stamp

    assert action_vi("programme.return") == "Chương trình · trả lại"
    assert action_vi("ui.page:/nhat-ky") == "Giao diện · mở trang"
    assert action_vi("something.new") == "something · new"  # unknown words as written
    assert stamp(dt.datetime(2026, 12, 7, 17, 5, 9, tzinfo=dt.UTC)) == "08/12/2026 00:05:09"
    assert parse_day("07/12/2026") == dt.date(2026, 12, 7) and parse_day(" ") is None
    with pytest.raises(ValueError):
        parse_day("2026-12-07")
