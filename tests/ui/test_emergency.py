"""Khẩn cấp in Chromium: emergency duty sends a warning to one small commune (Trà Ka) whose simulated
receivers really play it — the confirmation shows the text exactly as it will be read (built-in and district
abbreviations, never the commune's list) and how many receivers it reaches — then follows it to 100 %; a second
one is stopped through its confirmation; a CAP alert that arrived is listed with the emergency it became;
people without the right, or outside the communes it reached, do not
see it; the page and the progress page fit a phone.

Every emergency here targets Trà Ka only and is finished or cancelled before its test ends, so the other UI
tests' receivers are undisturbed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from controller.services.accounts import UserCreate, add_user
from controller.services.emergencies import read_aloud

from .conftest import PASSWORD, UiWorld, sign_in, wait_text

SAMPLES = Path(__file__).parents[1] / "controller" / "cap_samples"
COMMUNE, COMMUNE_NAME = "tra-ka", "Xã Trà Ka"
ABBR = "KCUITEST"  # a district abbreviation of this test's own; Trà Ka's own list says otherwise
TEXT = f"UBND xã thông báo {ABBR}: lũ quét, bà con tránh xa suối."
LONG_TEXT = ("Thông báo khẩn cấp của UBND xã. Mưa lớn kéo dài, nước suối dâng cao. Bà con không đi qua ngầm tràn, "
             "không vào rừng, khẩn trương di chuyển người và tài sản đến nơi an toàn. ") * 3
PLAY_S = 90.0
LIVE_S = 30.0  # a live view's change, on a busy machine


@pytest.fixture(scope="module")
def abbreviations(ui_world: UiWorld) -> Iterator[str]:
    """A district abbreviation and, for the same word, Trà Ka's own (which an emergency must not use);
    answers the text as the loudspeakers will read it."""
    district = ui_world.api.put(f"/api/v1/abbreviations/{ABBR}", json={"expansion": "khẩn cấp cấp huyện"})
    assert district.status_code == 200, district.text
    own = ui_world.api.put(f"/api/v1/abbreviations/{ABBR}", json={"expansion": "tin của xã", "commune": COMMUNE})
    assert own.status_code == 200, own.text
    with Session(ui_world.testbed.engine) as s:
        said = read_aloud(s, TEXT)
    assert "ủy ban nhân dân" in said and "khẩn cấp cấp huyện" in said and "tin của xã" not in said
    yield said
    ui_world.api.delete(f"/api/v1/abbreviations/{ABBR}", params={"commune": COMMUNE})
    ui_world.api.delete(f"/api/v1/abbreviations/{ABBR}")


def compose(page: Any, text: str, repeat: int) -> None:
    page.get_by_test_id("em-text").fill(text)
    page.get_by_test_id(f"em-commune-{COMMUNE}").click()
    page.get_by_test_id("em-repeat").fill(str(repeat))
    page.get_by_test_id("em-review").click()
    page.get_by_test_id("em-confirm").wait_for()


def send(page: Any, ui_world: UiWorld) -> str:
    """Confirm the open dialog; answers the new emergency's id (from the progress page's address)."""
    page.get_by_test_id("em-send").click()
    page.wait_for_url(f"{ui_world.url}/ui/khan-cap/*", timeout=60_000)  # the speech is made first
    page.get_by_test_id("em-percent").wait_for()
    return str(page.url.rsplit("/", 1)[1])


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def count(page: Any, key: str) -> int:
    return int(page.get_by_test_id(f"count-{key}").inner_text())


@pytest.fixture(scope="module")
def finished(ui_world: UiWorld) -> dict[str, str]:
    """The emergencies this module sent and saw finish: name → id."""
    return {}


def played(ui_world: UiWorld, finished: dict[str, str]) -> str:
    """A finished emergency of Trà Ka: the first test's, or (when run alone) one sent through the API."""
    if "played" not in finished:
        r = ui_world.api.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": [COMMUNE]},
                                                           "repeat": 1})
        assert r.status_code == 202, r.text
        eid = r.json()["id"]
        wait_until(lambda: ui_world.api.get(f"/api/v1/emergencies/{eid}").json()["state"] == "finished", PLAY_S,
                   "the emergency to finish")
        finished["played"] = eid
    return finished["played"]


def test_duty_sends_to_one_commune_reads_what_is_said_and_watches_it_play(
        page: Any, ui_world: UiWorld, abbreviations: str, finished: dict[str, str]) -> None:
    sign_in(page, ui_world, "duty", next_path="/ui/khan-cap")
    page.get_by_text("← Về trang chính").wait_for()
    compose(page, TEXT, repeat=1)
    wait_text(page.get_by_test_id("em-confirm-spoken"), abbreviations)
    wait_text(page.get_by_test_id("em-confirm-where"), COMMUNE_NAME)
    targeted = len(ui_world.receivers(COMMUNE))
    wait_text(page.get_by_test_id("em-confirm-count"), str(targeted))
    # Nothing has gone out before the confirmation.
    assert not [e for e in ui_world.api.get("/api/v1/emergencies").json()["data"] if e["title"] == TEXT[:80]]
    eid = send(page, ui_world)

    wait_text(page.get_by_test_id("count-targeted"), str(targeted), timeout=LIVE_S)
    wait_text(page.get_by_test_id("em-percent"), "100% đã phát xong", timeout=PLAY_S)
    assert count(page, "done") == targeted
    wait_text(page.get_by_test_id("em-state"), "Đã phát xong", timeout=LIVE_S)
    assert page.get_by_test_id("em-receivers").get_by_text("Đã phát xong").count() == targeted
    got = ui_world.api.get(f"/api/v1/emergencies/{eid}").json()
    assert got["state"] == "finished" and got["totals"]["done"] == targeted
    assert sorted(r["id"] for r in got["receivers"]) == sorted(ui_world.receivers(COMMUNE))
    finished["played"] = eid

    # The list on the main page shows it, done, and leads back to it.
    page.get_by_text("← Về trang khẩn cấp").click()
    row = page.get_by_test_id(f"em-row-{eid}")
    row.wait_for()
    assert "100% đã phát xong" in row.inner_text() and COMMUNE_NAME in row.inner_text()
    row.click()
    page.wait_for_url(f"{ui_world.url}/ui/khan-cap/{eid}")
    page.get_by_test_id("back-home").click()
    page.wait_for_url(f"{ui_world.url}/ui/")


def test_an_emergency_is_stopped_after_its_confirmation(page: Any, ui_world: UiWorld,
                                                        finished: dict[str, str]) -> None:
    sign_in(page, ui_world, "duty", next_path="/ui/khan-cap")
    compose(page, LONG_TEXT, repeat=3)
    page.get_by_test_id("em-send-cancel").click()  # "Hủy" in the confirmation sends nothing
    page.get_by_test_id("em-confirm").wait_for(state="hidden")
    page.get_by_test_id("em-review").click()
    eid = send(page, ui_world)
    targeted = len(ui_world.receivers(COMMUNE))
    try:
        wait_until(lambda: count(page, "playing") > 0, PLAY_S, "the loudspeakers to start")
        page.get_by_test_id("em-stop").click()
        page.get_by_test_id("em-stop-dialog").wait_for()
        page.get_by_test_id("em-stop-keep").click()  # second thoughts: it goes on
        page.get_by_test_id("em-stop-dialog").wait_for(state="hidden")
        assert page.get_by_test_id("em-state").inner_text().strip() == "Đang phát"
        page.get_by_test_id("em-stop").click()
        page.get_by_test_id("em-stop-confirm").click()
        wait_text(page.get_by_test_id("em-state"), "Đã dừng phát (hủy)", timeout=LIVE_S)
        page.get_by_test_id("em-cancelled-at").get_by_text("Đã dừng lúc").wait_for()
        wait_text(page.get_by_test_id("count-cancelled"), str(targeted), timeout=LIVE_S)
        page.get_by_test_id("em-stop").wait_for(state="hidden")
    finally:
        ui_world.api.post(f"/api/v1/emergencies/{eid}/cancel")  # whatever happened above, Trà Ka goes quiet
    got = ui_world.api.get(f"/api/v1/emergencies/{eid}").json()
    assert got["state"] == "cancelled" and got["totals"]["cancelled"] == targeted
    finished["stopped"] = eid


def test_approved_content_to_one_village_is_confirmed_before_anything_is_sent(page: Any, ui_world: UiWorld) -> None:
    made = ui_world.api.post("/api/v1/announcements", json={
        "title": "Thông báo khẩn cấp mẫu", "text": "UBND xã đề nghị bà con chuẩn bị lương thực.",
        "commune": COMMUNE})
    assert made.status_code == 201, made.text
    announcement = made.json()
    before = ui_world.api.get("/api/v1/emergencies").json()["count"]
    sign_in(page, ui_world, "duty", next_path="/ui/khan-cap")
    page.get_by_test_id("em-source").get_by_text("Chọn tin có sẵn").click()
    page.get_by_test_id("em-content").click()
    page.get_by_role("option", name="Thông báo: Thông báo khẩn cấp mẫu").click()
    page.get_by_test_id("em-where").get_by_text("Chọn thôn").click()
    page.get_by_test_id("em-villages").fill(COMMUNE_NAME)  # the list is long: typing narrows it
    page.get_by_role("option", name=f"Thôn 1 — {COMMUNE_NAME}").click()
    page.keyboard.press("Escape")
    page.get_by_test_id("em-review").click()
    page.get_by_test_id("em-confirm").wait_for()
    wait_text(page.get_by_test_id("em-confirm-spoken"), announcement["normalized_text"])
    wait_text(page.get_by_test_id("em-confirm-where"), COMMUNE_NAME)
    village = [r for r in ui_world.receivers(COMMUNE) if r.startswith(f"{COMMUNE}-thon-1-")]
    wait_text(page.get_by_test_id("em-confirm-count"), str(len(village)))
    page.get_by_test_id("em-send-cancel").click()
    page.get_by_test_id("em-confirm").wait_for(state="hidden")
    assert ui_world.api.get("/api/v1/emergencies").json()["count"] == before


def test_a_cap_alert_that_arrived_is_listed_with_the_emergency_it_became(page: Any, ui_world: UiWorld) -> None:
    """An exercise alert for Trà Ka: it plays only on a receiver marked for tests, and is stopped at the end."""
    tester = ui_world.receivers(COMMUNE)[0]
    assert ui_world.api.patch(f"/api/v1/receivers/{tester}", json={"accepts_tests": True}).status_code == 200
    ident = f"UI-DT-{uuid.uuid4().hex[:8]}"
    xml = (SAMPLES / "flash-flood-exercise.xml").read_text(encoding="utf-8")
    xml = (xml.replace("BTM-DT-2024-05-01", ident).replace("xã Trà Tân và xã Trà Giác", "xã Trà Ka")
           .replace("Xã Trà Tân, xã Trà Giác", COMMUNE_NAME).replace("20923", "20932")
           .replace("<geocode><valueName>MaDVHC</valueName><value>20926</value></geocode>", ""))
    r = ui_world.api.post("/api/v1/cap", content=xml.encode(), headers={"Content-Type": "application/cap+xml"})
    assert r.status_code == 202, r.text
    eid = r.json()["id"]
    try:
        sign_in(page, ui_world, "duty", next_path="/ui/khan-cap")
        card = page.get_by_test_id(f"cap-{eid}")
        card.wait_for()
        shown = card.inner_text()
        assert "Diễn tập: cảnh báo lũ quét tại xã Trà Ka" in shown and "Diễn tập" in shown
        assert "bch-pctt-bactramy@canhbao.example" in shown and COMMUNE_NAME in shown
        card.get_by_text("Đã phát thành thông báo khẩn cấp").click()
        page.wait_for_url(f"{ui_world.url}/ui/khan-cap/{eid}")
        wait_text(page.get_by_test_id("count-targeted"), "1", timeout=LIVE_S)
    finally:
        ui_world.api.post(f"/api/v1/emergencies/{eid}/cancel")
        ui_world.api.patch(f"/api/v1/receivers/{tester}", json={"accepts_tests": False})


@pytest.mark.parametrize("who", ["op-bui", "viewer"])
def test_people_without_the_emergency_right_get_no_access(page: Any, ui_world: UiWorld, who: str) -> None:
    sign_in(page, ui_world, who)
    page.goto(f"{ui_world.url}/ui/khan-cap")
    page.get_by_test_id("no-access").wait_for()
    page.get_by_text("Không có quyền truy cập").wait_for()
    assert page.get_by_test_id("em-review").count() == 0


def test_an_emergency_outside_ones_communes_is_not_found(page: Any, ui_world: UiWorld,
                                                         finished: dict[str, str]) -> None:
    eid = played(ui_world, finished)
    with Session(ui_world.testbed.engine) as s:
        add_user(s, UserCreate(username="duty-bui", display_name="Trực Trà Bui", password=PASSWORD,
                               role="emergency_duty", communes=["tra-bui"]), created_by="tests")
    ui_world.users["duty-bui"] = PASSWORD
    sign_in(page, ui_world, "duty-bui", next_path="/ui/khan-cap")
    # Only Trà Bui to choose from, and no "whole district".
    page.get_by_test_id("em-commune-tra-bui").wait_for()
    assert page.get_by_test_id(f"em-commune-{COMMUNE}").count() == 0
    assert page.get_by_test_id("em-where").get_by_text("Toàn huyện").count() == 0
    page.get_by_text("Các lần phát khẩn cấp gần đây").wait_for()
    assert page.get_by_test_id(f"em-row-{eid}").count() == 0
    page.goto(f"{ui_world.url}/ui/khan-cap/{eid}")
    page.get_by_text("Không tìm thấy").wait_for()
    assert page.get_by_test_id("em-percent").count() == 0


def test_the_pages_fit_a_phone(phone: Any, ui_world: UiWorld, finished: dict[str, str]) -> None:
    sign_in(phone, ui_world, "duty", next_path="/ui/khan-cap")
    phone.get_by_test_id("em-review").wait_for()
    phone.get_by_text("Các lần phát khẩn cấp gần đây").wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    compose(phone, LONG_TEXT, repeat=1)  # the confirmation of a long text fits too; nothing is sent
    phone.get_by_test_id("em-confirm-count").wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    phone.get_by_test_id("em-send-cancel").click()
    phone.get_by_test_id("em-confirm").wait_for(state="hidden")
    eid = played(ui_world, finished)
    phone.goto(f"{ui_world.url}/ui/khan-cap/{eid}")
    phone.get_by_test_id("em-receivers").wait_for()
    phone.get_by_test_id("count-targeted").wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
