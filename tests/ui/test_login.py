"""Đăng nhập: signing in and out through the real form in Chromium, the limit on failures, CSRF on every form
post, the page's websocket only from its own origin, sessions that end when the account changes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlmodel import Session

from controller.services.accounts import UserCreate, add_user

from .conftest import PASSWORD, UiWorld, sign_in


def test_sign_in_shows_the_dashboard_and_sign_out_ends_the_session(page: Any, ui_world: UiWorld) -> None:
    page.goto(f"{ui_world.url}/ui/")
    assert "/ui/dang-nhap" in page.url  # not signed in: sent to the login page
    sign_in(page, ui_world, "admin", fresh=True)
    page.get_by_text("Tổng quan").first.wait_for()
    cookie = next(c for c in page.context.cookies() if c["name"] == "tt_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.get_by_test_id("logout").click()
    page.wait_for_url("**/ui/dang-nhap**")
    page.get_by_text("Bạn đã đăng xuất.").wait_for()
    page.goto(f"{ui_world.url}/ui/")
    assert "/ui/dang-nhap" in page.url
    # The old cookie no longer opens anything, even replayed by hand.
    r = httpx.get(f"{ui_world.url}/ui/", cookies={"tt_session": cookie["value"]}, follow_redirects=False)
    assert r.status_code == 303 and "/ui/dang-nhap" in r.headers["location"]


def test_a_wrong_password_is_refused_with_a_message(page: Any, ui_world: UiWorld) -> None:
    page.goto(f"{ui_world.url}/ui/dang-nhap")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    page.get_by_text("Sai tên đăng nhập hoặc mật khẩu.").wait_for()
    assert not [c for c in page.context.cookies() if c["name"] == "tt_session"]


def test_sign_in_is_refused_after_repeated_failures_even_with_the_right_password(page: Any, ui_world: UiWorld) -> None:
    with Session(ui_world.testbed.engine) as s:
        add_user(s, UserCreate(username="guessed", display_name="guessed", password=PASSWORD, role="viewer",
                               communes=["tra-nu"]), created_by="tests")
    for _ in range(5):
        page.goto(f"{ui_world.url}/ui/dang-nhap")
        page.fill("input[name=username]", "guessed")
        page.fill("input[name=password]", "wrong-guess-123")
        page.click("button[type=submit]")
        page.get_by_text("Sai tên đăng nhập hoặc mật khẩu.").wait_for()
    page.goto(f"{ui_world.url}/ui/dang-nhap")
    page.fill("input[name=username]", "guessed")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.get_by_text("Đăng nhập sai quá nhiều lần").wait_for()
    assert "/ui/dang-nhap" in page.url
    # Other people are not locked out by it.
    sign_in(page, ui_world, "viewer", fresh=True)


def test_a_forged_form_post_without_the_csrf_token_is_refused(page: Any, ui_world: UiWorld) -> None:
    sign_in(page, ui_world, "admin")
    session = next(c["value"] for c in page.context.cookies() if c["name"] == "tt_session")
    forged = httpx.post(f"{ui_world.url}/ui/auth/logout", cookies={"tt_session": session}, data={},
                        follow_redirects=False)
    assert forged.status_code == 403
    wrong = httpx.post(f"{ui_world.url}/ui/auth/logout", cookies={"tt_session": session},
                       data={"csrf": "guessed"}, follow_redirects=False)
    assert wrong.status_code == 403
    page.reload()  # the session survived both
    page.get_by_text("Tổng quan").first.wait_for()
    assert "/ui/dang-nhap" not in page.url
    # A login form posted from elsewhere (no login CSRF cookie) signs nobody in.
    r = httpx.post(f"{ui_world.url}/ui/auth/login", data={"username": "admin", "password": PASSWORD, "csrf": "x"},
                   follow_redirects=False)
    assert r.status_code == 303 and "error=csrf" in r.headers["location"] and "tt_session" not in r.cookies
    audit = ui_world.api.get("/api/v1/audit", params={"outcome": "refused", "limit": 1000}).json()["data"]
    assert any(e["action"] == "ui.csrf" for e in audit)


def test_the_pages_websocket_refuses_another_sites_origin(ui_world: UiWorld) -> None:
    path = "/ui/_nicegui_ws/socket.io/?EIO=4&transport=polling"
    ours = httpx.get(ui_world.url + path, headers={"Origin": ui_world.url})
    theirs = httpx.get(ui_world.url + path, headers={"Origin": "https://evil.example"})
    assert ours.status_code == 200
    assert theirs.status_code == 400


def test_disabling_an_account_ends_its_open_session(page: Any, ui_world: UiWorld) -> None:
    with Session(ui_world.testbed.engine) as s:
        uid = add_user(s, UserCreate(username="leaving", display_name="leaving", password=PASSWORD, role="viewer",
                                     communes=["tra-nu"]), created_by="tests").id
    ui_world.users["leaving"] = PASSWORD
    sign_in(page, ui_world, "leaving")
    assert ui_world.api.patch(f"/api/v1/users/{uid}", json={"disabled": True}).status_code == 200
    page.reload()
    page.wait_for_url("**/ui/dang-nhap**")


def test_a_person_changes_their_own_password(page: Any, ui_world: UiWorld) -> None:
    with Session(ui_world.testbed.engine) as s:
        add_user(s, UserCreate(username="changer", display_name="changer", password=PASSWORD, role="viewer",
                               communes=["tra-nu"]), created_by="tests")
    ui_world.users["changer"] = PASSWORD
    sign_in(page, ui_world, "changer", next_path="/ui/tai-khoan")
    inputs = page.locator("input[type=password]")
    inputs.nth(0).fill("wrong-current-pw")
    inputs.nth(1).fill("mat-khau-moi-12345")
    inputs.nth(2).fill("mat-khau-moi-12345")
    page.get_by_role("button", name="Đổi mật khẩu").click()
    page.get_by_text("Mật khẩu hiện tại không đúng.").wait_for()
    inputs.nth(0).fill(PASSWORD)
    page.get_by_role("button", name="Đổi mật khẩu").click()
    page.get_by_text("Đã đổi mật khẩu").wait_for()
    ui_world.users["changer"] = "mat-khau-moi-12345"
    page.get_by_test_id("logout").click()
    sign_in(page, ui_world, "changer", fresh=True)


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x"])
def test_sign_in_never_redirects_to_another_site(page: Any, ui_world: UiWorld, target: str) -> None:
    page.goto(f"{ui_world.url}/ui/dang-nhap?next={target}")
    page.fill("input[name=username]", "viewer")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{ui_world.url}/ui/")  # the dashboard, not the other site


def test_the_menu_opens_every_page_the_person_may_use_and_only_those(page: Any, ui_world: UiWorld) -> None:
    sign_in(page, ui_world, "admin")
    entries = ["Tổng quan", "Cụm loa", "Bản đồ", "Thư viện", "Soạn tin", "Lịch phát", "Duyệt tin", "Tin của tôi",
               "Báo cáo", "Nhật ký", "Tài khoản", "Mã truy cập API"]
    paths = ["/ui/", "/ui/cum-loa", "/ui/ban-do", "/ui/thu-vien", "/ui/soan-tin", "/ui/lich-phat", "/ui/duyet-tin",
             "/ui/duyet-tin/cua-toi", "/ui/bao-cao", "/ui/nhat-ky", "/ui/quan-tri/tai-khoan", "/ui/quan-tri/ma-api"]
    for name, path in zip(entries, paths, strict=True):
        page.locator(".q-drawer").get_by_text(name, exact=True).click()
        page.wait_for_url(f"{ui_world.url}{path}")
        assert page.get_by_test_id("no-access").count() == 0, f"{name} refused the district admin"
    # The emergency page is set apart (its own frame): reached from the menu too.
    page.locator(".q-drawer").get_by_text("Khẩn cấp", exact=True).click()
    page.wait_for_url(f"{ui_world.url}/ui/khan-cap")
    page.get_by_test_id("logout").wait_for()
    # A viewer's menu offers only what a viewer may do.
    page.get_by_test_id("logout").click()
    sign_in(page, ui_world, "viewer")
    drawer = page.locator(".q-drawer")
    drawer.get_by_text("Cụm loa", exact=True).wait_for()
    for hidden in ("Soạn tin", "Duyệt tin", "Tin của tôi", "Khẩn cấp", "Nhật ký", "Tài khoản", "Mã truy cập API"):
        assert drawer.get_by_text(hidden, exact=True).count() == 0, f"a viewer is offered {hidden}"
    page.goto(f"{ui_world.url}/ui/nhat-ky")  # typed by hand: refused, and audited
    page.get_by_test_id("no-access").wait_for()
    audit = ui_world.api.get("/api/v1/audit", params={"outcome": "refused", "action": "ui.page",
                                                       "limit": 1000}).json()["data"]
    assert any(e["action"] == "ui.page:/nhat-ky" and e["actor"].endswith(":viewer") for e in audit)
