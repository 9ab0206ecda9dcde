"""Soạn tin: typing a text and seeing what will actually be read, correcting it with a commune abbreviation,
listening (nothing kept), saving (the announcement is in the library), the offline engine throughout."""

from __future__ import annotations

import random
import re
import string
from typing import Any

from sqlmodel import Session, func, select

from controller.db.models import Announcement

from .conftest import UiWorld, sign_in, wait_text

COMPOSE = "/ui/soan-tin"


def word() -> str:
    return "".join(random.choices(string.ascii_uppercase, k=7))


def announcements(world: UiWorld) -> int:
    with Session(world.testbed.engine) as s:
        return s.exec(select(func.count()).select_from(Announcement)).one()


def test_compose_preview_abbreviation_listen_and_save(page: Any, ui_world: UiWorld) -> None:
    place, title = word(), f"Họp dân {word()}"
    sign_in(page, ui_world, "op-nu", next_path=COMPOSE)
    page.get_by_test_id("compose-title").fill(title)
    page.get_by_test_id("compose-text").fill(f"UBND xã họp lúc 8h tại {place}")
    preview = page.get_by_test_id("compose-preview")
    wait_text(preview, f"ủy ban nhân dân xã họp lúc tám giờ tại {place}")
    assert "/ 5000" in page.get_by_test_id("compose-text").locator("xpath=ancestor::label").inner_text()

    # Correct it: the commune's own abbreviation, and the preview follows.
    page.get_by_test_id("abbr-abbr").fill(place)
    page.get_by_test_id("abbr-expansion").fill("nhà văn hóa thôn hai")
    page.get_by_test_id("abbr-save").click()
    wait_text(preview, "ủy ban nhân dân xã họp lúc tám giờ tại nhà văn hóa thôn hai")
    page.get_by_test_id(f"abbr-{place}").get_by_text("nhà văn hóa thôn hai").wait_for()
    listed = ui_world.api.get("/api/v1/abbreviations", params={"commune": "tra-nu", "limit": 1000}).json()["data"]
    assert {"abbr": place, "expansion": "nhà văn hóa thôn hai", "commune": "tra-nu"}.items() <= next(
        a for a in listed if a["abbr"] == place).items()

    # Listen: a spinner while it is made, then a player; nothing is kept.
    kept = announcements(ui_world)
    page.get_by_test_id("compose-listen").click()
    page.get_by_test_id("compose-busy").get_by_text("Đang tạo giọng đọc").wait_for()
    audio = page.get_by_test_id("compose-audio")
    audio.wait_for(timeout=60_000)
    src = audio.get_attribute("src")
    assert src and src.startswith("/ui/")
    assert page.request.get(f"{ui_world.url}{src}").status == 200
    assert announcements(ui_world) == kept

    # Save: the announcement is in the library, as a draft of tra-nu.
    page.get_by_test_id("compose-save").click()
    page.get_by_test_id("compose-saved").wait_for(timeout=60_000)
    assert announcements(ui_world) == kept + 1
    assert page.get_by_test_id("compose-saved-audio").get_attribute("src")
    page.get_by_test_id("compose-to-library").click()
    page.wait_for_url("**/ui/thu-vien")
    card = page.get_by_test_id("library-items").locator("[data-testid^=announcement-]", has_text=title)
    card.wait_for()
    text = card.inner_text()
    assert "Trà Nú" in text and "Chờ duyệt" in text and "nhà văn hóa thôn hai" in text
    assert card.get_by_test_id("item-audio").get_attribute("src")


def test_an_empty_text_is_not_spoken(page: Any, ui_world: UiWorld) -> None:
    sign_in(page, ui_world, "op-nu", next_path=COMPOSE)
    page.get_by_test_id("compose-listen").click()
    page.get_by_text("Hãy nhập nội dung cần đọc.").wait_for()
    assert page.get_by_test_id("compose-audio").count() == 0


def test_a_negation_cannot_be_remapped_from_the_page(page: Any, ui_world: UiWorld) -> None:
    sign_in(page, ui_world, "op-bui", next_path=COMPOSE)
    page.get_by_test_id("abbr-abbr").fill("không")
    page.get_by_test_id("abbr-expansion").fill("có")
    page.get_by_test_id("abbr-save").click()
    page.get_by_text("Không được đổi cách đọc từ phủ định «không»").wait_for()


def test_compose_fits_a_phone(phone: Any, ui_world: UiWorld) -> None:
    sign_in(phone, ui_world, "op-nu", next_path=COMPOSE)
    phone.get_by_test_id("compose-text").fill("Thông báo rất dài " * 30)
    phone.get_by_test_id("abbr-card").wait_for()
    phone.get_by_test_id("compose-preview").get_by_text(re.compile("rất dài")).wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360


def test_after_saving_a_new_text_can_be_started(page: Any, ui_world: UiWorld) -> None:
    sign_in(page, ui_world, "op-nu", next_path=COMPOSE)
    page.get_by_test_id("compose-text").fill(f"Thông báo ngắn {word()}.")
    page.get_by_test_id("compose-save").click()
    page.get_by_test_id("compose-new").click()
    wait_text(page.get_by_test_id("compose-preview"), "(Chưa có nội dung)")
    assert page.get_by_test_id("compose-text").input_value() == ""
    assert page.get_by_test_id("compose-saved").count() == 0
