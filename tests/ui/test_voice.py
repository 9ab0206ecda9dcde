"""Which voice read it, and the key instruction read again, in Chromium: a long announcement offers "Nhắc lại ý
chính ở cuối" prominently, prefilled with its last sentence; listening and saving say which voice read it (the
UI world speaks with eSpeak alone: tests/conftest.py's OFFLINE_ONLY), and what is read ends with the repeat. The
emergency confirmation lets duty hear the warning, with its voice, before sending (nothing sent here)."""

from __future__ import annotations

import random
import string
from typing import Any

from .conftest import UiWorld, sign_in, wait_text

COMPOSE = "/ui/soan-tin"
ESPEAK = "Giọng đọc: Giọng máy eSpeak"


def test_compose_says_which_voice_read_it_and_repeats_the_key_instruction(page: Any, ui_world: UiWorld) -> None:
    title = "Nhắc lại " + "".join(random.choices(string.ascii_uppercase, k=6))
    body = ("Ủy ban nhân dân xã thông báo: do mưa lớn kéo dài nhiều ngày, nước sông Trường dâng cao, nguy cơ lũ "
            "quét và sạt lở đất ở các thôn ven suối là rất lớn. Các hộ gia đình cần chằng chống nhà cửa, chuẩn bị "
            "lương thực, nước uống và thuốc men cho ba ngày, theo dõi loa truyền thanh của xã. ")
    last = "Bà con thôn 2 di chuyển lên nhà văn hóa trước 17 giờ hôm nay."
    sign_in(page, ui_world, "op-nu", next_path=COMPOSE)
    page.get_by_test_id("compose-title").fill(title)
    page.get_by_test_id("compose-text").fill(body + last)
    assert len(body + last) > 300
    page.get_by_text("Nội dung dài: nên nhắc lại ý chính").wait_for()  # offered prominently for a long text
    page.get_by_test_id("compose-key-on").click()
    key = page.get_by_test_id("compose-key")
    key.wait_for()
    assert key.input_value() == last  # prefilled with the last sentence, editable

    page.get_by_test_id("compose-listen").click()
    page.get_by_test_id("compose-audio").wait_for(timeout=60_000)
    wait_text(page.get_by_test_id("compose-engine-spoke"), ESPEAK)

    page.get_by_test_id("compose-save").click()
    page.get_by_test_id("compose-saved").wait_for(timeout=60_000)
    wait_text(page.get_by_test_id("compose-saved-engine"), ESPEAK)
    saved = next(a for a in ui_world.api.get("/api/v1/announcements", params={"limit": 20}).json()["data"]
                 if a["title"] == title)
    assert saved["engine"] == "offline" and saved["key_instruction"] == last
    assert saved["normalized_text"].endswith(
        "Xin nhắc lại: Bà con thôn hai di chuyển lên nhà văn hóa trước mười bảy giờ hôm nay."), saved

    page.get_by_test_id("compose-to-library").click()
    card = page.get_by_test_id("library-items").locator("[data-testid^=announcement-]", has_text=title)
    wait_text(card.get_by_test_id("item-engine"), ESPEAK)


def test_emergency_can_be_heard_with_its_voice_before_sending(page: Any, ui_world: UiWorld) -> None:
    sign_in(page, ui_world, "duty", next_path="/ui/khan-cap")
    page.get_by_test_id("em-text").fill("Thử nghe trước: nước suối lên nhanh. Bà con tránh xa bờ suối.")
    page.get_by_test_id("em-key-on").click()  # the key instruction, prefilled with the last sentence
    key = page.get_by_test_id("em-key")
    key.wait_for()
    assert key.input_value() == "Bà con tránh xa bờ suối."
    page.get_by_test_id("em-commune-tra-ka").click()
    page.get_by_test_id("em-review").click()
    page.get_by_test_id("em-confirm").wait_for()
    spoken = page.get_by_test_id("em-confirm-spoken").inner_text()
    assert spoken.endswith("bờ suối. Xin nhắc lại: Bà con tránh xa bờ suối."), spoken
    sent_before = ui_world.api.get("/api/v1/emergencies", params={"limit": 1}).json()["count"]
    page.get_by_test_id("em-listen").click()
    audio = page.get_by_test_id("em-audio")
    audio.wait_for(timeout=60_000)
    wait_text(page.get_by_test_id("em-engine-spoke"), ESPEAK)
    src = audio.get_attribute("src")
    assert src and page.request.get(f"{ui_world.url}{src}").status == 200
    page.get_by_test_id("em-send-cancel").click()
    page.get_by_test_id("em-confirm").wait_for(state="hidden")
    assert ui_world.api.get("/api/v1/emergencies", params={"limit": 1}).json()["count"] == sent_before
