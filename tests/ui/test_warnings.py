"""Cảnh báo ghi sẵn (issue 13): a district admin uploads the pre-recorded warning of an event type on its page,
sees it listed as recorded with its player, and the emergency page says that type will play it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.samples import make

from .conftest import UiWorld, sign_in

WARNINGS = "/ui/canh-bao-ghi-san"


def test_an_admin_uploads_a_warning_and_sees_it_recorded(page: Any, ui_world: UiWorld, tmp_path: Path) -> None:
    sample = make(tmp_path / "canh-bao-bao.wav", seconds=4.0, gain_db=-24)
    sign_in(page, ui_world, "admin", next_path=WARNINGS)
    assert page.get_by_text("Cảnh báo ghi sẵn").first.is_visible()  # in the menu and the title
    card = page.get_by_test_id("warning-storm")
    assert "Bão" in card.inner_text() and card.get_by_test_id("warning-state-missing").is_visible()
    card.get_by_test_id("warning-uploader").locator("input[type=file]").set_input_files(str(sample))
    card.get_by_test_id("warning-state-recorded").wait_for(timeout=60_000)
    text = card.inner_text()
    assert "canh-bao-bao.wav" in text and "admin" in text and "0:04" in text, text
    src = card.get_by_test_id("warning-audio").get_attribute("src")
    assert src and src.startswith("/media/") and httpx.get(f"{ui_world.url}{src}").status_code == 200
    listed = {w["event_type"]: w for w in ui_world.api.get("/api/v1/warnings").json()["data"]}
    assert listed["storm"]["recorded"] and listed["storm"]["media_url"] == src
    # The emergency page: a storm warning will play the recording.
    page.goto(f"{ui_world.url}/ui/khan-cap")
    page.get_by_test_id("em-event-type").click()
    page.get_by_role("option", name="Bão", exact=True).click()
    hint = page.get_by_test_id("em-event-hint")
    hint.wait_for()
    assert "Đã có bản ghi cảnh báo «Bão»" in hint.inner_text()
    # Removed meanwhile (by another admin): reviewing the type alone says so, it does not promise the recording.
    assert ui_world.api.delete("/api/v1/warnings/storm").status_code == 204
    page.get_by_test_id("em-commune-tra-ka").click()
    page.get_by_test_id("em-review").click()
    page.get_by_text("Chưa có bản ghi cảnh báo «Bão»").first.wait_for()
    assert "Chưa có bản ghi cảnh báo «Bão»" in hint.inner_text()
    assert page.get_by_test_id("em-confirm-recorded").count() == 0
