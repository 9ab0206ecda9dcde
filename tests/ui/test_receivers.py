"""Cụm loa: the list (filters, search, live status, a row opens the receiver), one receiver's page (status,
history, telemetry, controls that reach the simulated receiver), the controls hidden from a viewer, another
commune's receiver not found, and no horizontal scroll on a phone."""

from __future__ import annotations

import time
from typing import Any

from .conftest import UiWorld, sign_in, wait_text
from .test_dashboard import cut


def test_the_list_preselects_a_commune_filters_and_searches(page: Any, ui_world: UiWorld) -> None:
    bui = ui_world.receivers("tra-bui")
    total = len(ui_world.receivers())
    sign_in(page, ui_world, "admin", next_path="/ui/cum-loa?commune=tra-bui")
    wait_text(page.get_by_test_id("receiver-count"), f"{len(bui)} / {total} cụm loa")
    for rid in bui:
        page.get_by_test_id(f"rx-{rid}").wait_for()
    assert page.get_by_test_id(f"rx-{ui_world.receivers('tra-nu')[0]}").count() == 0
    # Search without diacritics: "thon 5" finds Thôn 5's clusters only.
    page.get_by_test_id("filter-search").fill("thon 5")
    fifth = [r for r in bui if r.startswith("tra-bui-thon-5-")]
    wait_text(page.get_by_test_id("receiver-count"), f"{len(fifth)} / {total} cụm loa")
    # Only the offline ones: none, the whole fleet runs.
    page.get_by_test_id("filter-status").click()
    page.get_by_role("option", name="Mất kết nối").click()
    wait_text(page.get_by_test_id("receiver-count"), f"0 / {total} cụm loa")
    page.get_by_text("Không có cụm loa nào khớp với bộ lọc.").wait_for()
    page.get_by_test_id("filter-status").click()
    page.get_by_role("option", name="Mọi trạng thái").click()
    page.get_by_test_id(f"rx-{fifth[0]}").click()
    page.wait_for_url(f"**/ui/cum-loa/{fifth[0]}")
    page.get_by_test_id("receiver-name").wait_for()
    wait_text(page.get_by_test_id("receiver-status"), "Đang hoạt động")


def test_a_commune_operator_lists_only_their_receivers_and_cannot_open_another_communes(
        page: Any, ui_world: UiWorld) -> None:
    bui = ui_world.receivers("tra-bui")
    sign_in(page, ui_world, "op-bui", next_path="/ui/cum-loa")
    wait_text(page.get_by_test_id("receiver-count"), f"{len(bui)} / {len(bui)} cụm loa")
    page.goto(f"{ui_world.url}/ui/cum-loa/{ui_world.receivers('tra-nu')[0]}")
    page.get_by_test_id("no-access").get_by_text("Không tìm thấy").wait_for()
    page.goto(f"{ui_world.url}/ui/cum-loa/no-such-receiver")
    page.get_by_test_id("no-access").get_by_text("Không tìm thấy").wait_for()


def test_a_viewer_sees_the_receiver_but_no_controls(page: Any, ui_world: UiWorld) -> None:
    rid = ui_world.receivers("tra-nu")[0]
    sign_in(page, ui_world, "viewer", next_path=f"/ui/cum-loa/{rid}")
    page.get_by_test_id("telemetry").get_by_text("Bộ nhớ còn trống").wait_for()
    wait_text(page.get_by_test_id("receiver-status"), "Đang hoạt động")
    for control in ("controls", "volume-slider", "apply-volume", "self-test", "restart"):
        assert page.get_by_test_id(control).count() == 0, control


def test_a_volume_set_on_the_page_reaches_the_receiver(page: Any, ui_world: UiWorld) -> None:
    rid = ui_world.receivers("tra-nu")[2]
    sign_in(page, ui_world, "op-nu", next_path=f"/ui/cum-loa/{rid}")
    box = page.get_by_test_id("volume-input")
    try:
        box.fill("35")
        box.press("Tab")
        page.get_by_test_id("apply-volume").click()
        wait_text(page.get_by_test_id("command-outcome"), "Cụm loa đã đặt âm lượng 35%.")
        deadline = time.monotonic() + 10
        while ui_world.api.get(f"/api/v1/receivers/{rid}").json()["volume"] != 35:
            assert time.monotonic() < deadline, "the receiver never reported volume 35"
            time.sleep(0.2)
        wait_text(page.get_by_test_id("volume"), "35%")
    finally:
        ui_world.api.post(f"/api/v1/receivers/{rid}/volume", json={"volume": 70})


def test_a_self_test_asks_first_then_says_it_passed(page: Any, ui_world: UiWorld) -> None:
    rid = ui_world.receivers("tra-nu")[3]
    sign_in(page, ui_world, "op-nu", next_path=f"/ui/cum-loa/{rid}")
    page.get_by_test_id("self-test").click()
    dialog = page.get_by_test_id("self-test-dialog")
    dialog.get_by_text("Chạy tự kiểm tra?").wait_for()
    dialog.get_by_role("button", name="Hủy").click()
    dialog.wait_for(state="hidden")
    assert page.get_by_test_id("command-outcome").inner_text().strip() == ""
    page.get_by_test_id("self-test").click()
    page.get_by_test_id("self-test-confirm").click()
    wait_text(page.get_by_test_id("command-outcome"), "Tự kiểm tra đạt: cụm loa đã phát tiếng thử.", timeout=20)


def test_a_restart_asks_first_and_the_receiver_comes_back(page: Any, ui_world: UiWorld) -> None:
    rid = ui_world.receivers("tra-nu")[6]
    sign_in(page, ui_world, "admin", next_path=f"/ui/cum-loa/{rid}")
    page.get_by_test_id("restart").click()
    page.get_by_test_id("restart-dialog").get_by_text("Nội dung đang phát sẽ bị ngắt").wait_for()
    page.get_by_test_id("restart-confirm").click()
    wait_text(page.get_by_test_id("command-outcome"), "Cụm loa đã nhận lệnh và đang khởi động lại phần mềm.",
              timeout=20)
    wait_text(page.get_by_test_id("receiver-status"), "Đang hoạt động", timeout=30)


def test_the_status_history_records_a_stop_and_the_return(page: Any, ui_world: UiWorld) -> None:
    rid = ui_world.receivers("tra-nu")[4]
    sign_in(page, ui_world, "admin", next_path=f"/ui/cum-loa/{rid}")
    history = page.get_by_test_id("status-history")
    history.get_by_text("Đang hoạt động").first.wait_for()
    with cut(ui_world, rid):
        wait_text(page.get_by_test_id("receiver-status"), "Đã tắt")
        history.get_by_text("Đã tắt").wait_for()
    wait_text(page.get_by_test_id("receiver-status"), "Đang hoạt động", timeout=20)
    rows = history.locator("tbody tr")
    deadline = time.monotonic() + 10
    while rows.count() < 3:  # newest first: online, stopped, online
        assert time.monotonic() < deadline, "the return was not recorded"
        time.sleep(0.2)
    assert "Đang hoạt động" in rows.nth(0).inner_text() and "Đã tắt" in rows.nth(1).inner_text()


def test_no_horizontal_scroll_on_a_phone(phone: Any, ui_world: UiWorld) -> None:
    sign_in(phone, ui_world, "admin", next_path="/ui/cum-loa")
    phone.get_by_test_id(f"rx-{ui_world.receivers()[0]}").wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    rid = ui_world.receivers("tra-nu")[0]
    phone.goto(f"{ui_world.url}/ui/cum-loa/{rid}")
    phone.get_by_test_id("telemetry").get_by_text("Bộ nhớ còn trống").wait_for()
    phone.get_by_test_id("status-history").get_by_text("Đang hoạt động").first.wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
