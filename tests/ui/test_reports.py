"""Báo cáo in the browser: the month's chart of planned against played minutes, the CSV download (a header row
at least), a receiver's proof of play, only the person's communes, and a page that fits a phone."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from schedules import TZ

from .conftest import UiWorld, sign_in

REPORTS = "/ui/bao-cao"
HEADER = ("commune,programme_id,title,occurrences,planned_minutes,planned_receiver_minutes,played_receiver_minutes,"
          "completion_percent")


def test_the_report_shows_the_chart_and_downloads_the_csv(page: Any, ui_world: UiWorld, tmp_path: Path) -> None:
    sign_in(page, ui_world, "admin", next_path=REPORTS)
    page.get_by_test_id("report-chart").locator("canvas").first.wait_for(timeout=60_000)
    month = dt.datetime.now(TZ)
    assert page.get_by_test_id("report-period").inner_text().startswith(f"Từ 00:00 01/{month:%m/%Y}")
    with page.expect_download() as info:
        page.get_by_test_id("report-csv").click()
    download = info.value
    assert download.suggested_filename == f"bao-cao-phat-thanh-{month:%Y-%m}.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    text = saved.read_text(encoding="utf-8")
    assert text.startswith("\ufeff") and text.lstrip("\ufeff").splitlines()[0] == HEADER


def test_proof_of_play_of_one_receiver_and_only_ones_own_communes(page: Any, ui_world: UiWorld) -> None:
    sign_in(page, ui_world, "op-nu", next_path=REPORTS)
    page.get_by_test_id("report-chart").locator("canvas").first.wait_for(timeout=60_000)
    page.get_by_test_id("report-commune").click()
    options = page.get_by_role("option")
    options.first.wait_for()
    assert sorted(options.all_inner_texts()) == ["Tất cả xã của tôi", "Xã Trà Nú"]
    page.keyboard.press("Escape")
    rid = ui_world.receivers("tra-nu")[0]
    assert ui_world.receivers("tra-bui")[0] not in page.content()
    page.get_by_test_id("proof-receiver").click()
    page.get_by_role("option", name=rid, exact=False).first.click()
    page.locator("[data-testid=proof-table], [data-testid=proof-none]").first.wait_for()


def test_the_reports_page_fits_a_phone(phone: Any, ui_world: UiWorld) -> None:
    sign_in(phone, ui_world, "leader-nu", next_path=REPORTS)
    phone.get_by_test_id("report-chart").locator("canvas").first.wait_for(timeout=60_000)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360


# ------------------------------------------------------------------------------ page logic, no browser


def test_month_choices_and_reasons_read_in_vietnamese() -> None:
    from controller.ui.pages.reports import month_bounds, months, reason_vi

    assert list(months(dt.date(2027, 2, 10), 3).items()) == [
        ("2027-02", "Tháng 02/2027"), ("2027-01", "Tháng 01/2027"), ("2026-12", "Tháng 12/2026")]
    start, end = month_bounds("2026-12")
    assert (start.isoformat(), end.isoformat()) == ("2026-12-01T00:00:00+07:00", "2027-01-01T00:00:00+07:00")
    assert reason_vi("no report", None).startswith("Cụm loa không gửi báo cáo")
    assert reason_vi("missed", "start at 2026-12-07T06:00:00+07:00 missed").startswith("Lỡ giờ phát")
    assert reason_vi("cut", "pre-empted by emergency item em-1").startswith("Bị ngắt")
    assert reason_vi("cut", "power cut or restart while playing").startswith("Mất điện")
    assert reason_vi("failed", "audio not available: 404").startswith("Không tải được")
    assert reason_vi("failed", "ALSA underrun") == "Lỗi khi phát: ALSA underrun"
