"""Thư viện: uploading a recording through the page (progress, then processing, then the item with its
loudness before → after and a player that fetches), a file that is not audio refused in Vietnamese with
nothing stored, deleting (and a delete refused because a programme uses the item), who sees what."""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import socket
import string
import tempfile
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session, func, select
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from controller.db.models import Bulletin, MediaFile
from controller.policy import Principal, Right
from controller.services.accounts import issue_token
from controller.ui.upload_limit import MULTIPART_OVERHEAD, UploadLimit
from schedules import TZ
from tests.samples import make

from .conftest import UiWorld, sign_in

LIBRARY = "/ui/thu-vien"


def unique(prefix: str) -> str:
    return f"{prefix} {''.join(random.choices(string.ascii_uppercase, k=6))}"


def media_rows(world: UiWorld) -> int:
    with Session(world.testbed.engine) as s:
        return s.exec(select(func.count()).select_from(MediaFile)).one()


def bulletins_titled(world: UiWorld, title: str) -> int:
    with Session(world.testbed.engine) as s:
        return s.exec(select(func.count()).select_from(Bulletin).where(Bulletin.title == title)).one()


def item(page: Any, title: str) -> Any:
    return page.get_by_test_id("library-items").locator("[data-testid^=bulletin-],[data-testid^=announcement-]",
                                                        has_text=title)


def announce(world: UiWorld, title: str, commune: str | None) -> dict[str, Any]:
    r = world.api.post("/api/v1/announcements", json={"text": f"{title}.", "title": title, "commune": commune,
                                                      "engine": "offline"}, timeout=120)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_an_operator_uploads_a_recording_sees_its_loudness_and_plays_it(page: Any, ui_world: UiWorld,
                                                                        tmp_path: Path) -> None:
    title = unique("Bản tin họp dân")
    sample = make(tmp_path / "hop-dan.wav", seconds=12.0, gain_db=-28)
    sign_in(page, ui_world, "op-nu", next_path=LIBRARY)
    page.get_by_test_id("upload-title").fill(title)
    page.get_by_test_id("uploader").locator("input[type=file]").set_input_files(str(sample))
    page.get_by_test_id("upload-processing").wait_for(state="visible")  # the server is normalising loudness
    page.get_by_test_id("upload-done").wait_for(timeout=60_000)
    assert "100" in page.get_by_test_id("uploader").inner_text()  # QUploader's progress reached the end
    assert not page.get_by_test_id("upload-processing").is_visible()
    card = item(page, title)
    card.wait_for()
    loudness = card.get_by_test_id("item-loudness").inner_text()
    m = re.fullmatch(r"Âm lượng (−\d+,\d) → (−\d+,\d) LUFS", loudness)
    assert m, loudness
    before, after = (float(v.replace("−", "-").replace(",", ".")) for v in m.groups())
    assert before < -25 and abs(after + 16) <= 1
    assert "Trà Nú" in card.inner_text() and "Bản tin ghi âm" in card.inner_text()
    assert "Chờ duyệt" in card.inner_text()  # a commune operator's recording waits for approval
    assert re.search(r"op-nu tạo lúc \d\d/\d\d/\d{4} \d\d:\d\d", card.inner_text())
    src = card.get_by_test_id("item-audio").get_attribute("src")
    assert src and src.startswith("/media/")
    served = httpx.get(f"{ui_world.url}{src}")  # no token: receivers and players fetch by hash
    assert served.status_code == 200 and served.headers["content-type"].startswith("audio/")
    # The player plays in the page.
    duration = card.get_by_test_id("item-audio").evaluate(
        "a => new Promise(ok => { a.preload = 'auto'; a.onloadedmetadata = () => ok(a.duration); a.load(); })")
    assert 10 < duration < 14


def test_a_district_admin_uploads_for_the_whole_district(page: Any, ui_world: UiWorld, tmp_path: Path) -> None:
    title = unique("Bản tin toàn huyện")
    sample = make(tmp_path / "huyen.mp3", seconds=4.0, gain_db=-12)
    sign_in(page, ui_world, "admin", next_path=LIBRARY)
    assert page.get_by_test_id("upload-commune").inner_text().strip().endswith("Toàn huyện")  # the default
    page.get_by_test_id("upload-title").fill(title)
    page.get_by_test_id("uploader").locator("input[type=file]").set_input_files(str(sample))
    page.get_by_test_id("upload-done").wait_for(timeout=60_000)
    card = item(page, title)
    text = card.inner_text()
    assert "Toàn huyện" in text and "Đã duyệt" in text  # an approver's own upload is approved at once
    listed = ui_world.api.get("/api/v1/bulletins", params={"limit": 1000}).json()["data"]
    assert next(b for b in listed if b["title"] == title)["commune"] is None


def test_a_file_that_is_not_audio_is_refused_in_vietnamese_and_nothing_is_stored(page: Any, ui_world: UiWorld,
                                                                                tmp_path: Path) -> None:
    title = unique("Không phải âm thanh")
    fake = tmp_path / "bien-ban.mp3"  # named like audio; a text inside
    fake.write_text("Biên bản họp thôn, không phải tệp âm thanh.\n" * 200)
    media = media_rows(ui_world)
    sign_in(page, ui_world, "op-nu", next_path=LIBRARY)
    page.get_by_test_id("upload-title").fill(title)
    page.get_by_test_id("uploader").locator("input[type=file]").set_input_files(str(fake))
    page.get_by_text("Định dạng tệp không được hỗ trợ").wait_for(timeout=30_000)
    assert bulletins_titled(ui_world, title) == 0 and media_rows(ui_world) == media
    media_dir = ui_world.testbed.settings.media_dir
    assert not [p for p in media_dir.rglob(".upload-*")] and not [p for p in media_dir.glob(".work-*")]
    assert item(page, title).count() == 0


def test_delete_asks_first_and_a_programme_using_the_item_keeps_it(page: Any, ui_world: UiWorld) -> None:
    kept, gone = unique("Thông báo có lịch"), unique("Thông báo bỏ đi")
    used = announce(ui_world, kept, "tra-nu")
    announce(ui_world, gone, "tra-nu")
    start = dt.datetime.combine(dt.date.today() + dt.timedelta(days=random.randint(200, 300)),
                                dt.time(random.randint(1, 4), random.randint(0, 59)), TZ)
    r = ui_world.api.post("/api/v1/programmes", json={
        "title": unique("Lịch thử"), "items": [{"announcement_id": used["id"]}],
        "targets": {"communes": ["tra-nu"]}, "start": start.isoformat()})
    assert r.status_code == 201, r.text
    sign_in(page, ui_world, "op-nu", next_path=LIBRARY)
    card = item(page, gone)
    card.get_by_test_id("item-delete").click()
    page.get_by_test_id("delete-dialog").get_by_text("không thể hoàn tác").wait_for()
    page.get_by_test_id("delete-confirm").click()
    page.get_by_text(f"Đã xóa «{gone}».").wait_for()
    card.wait_for(state="detached")
    item(page, kept).get_by_test_id("item-delete").click()
    page.get_by_test_id("delete-confirm").click()
    page.get_by_text("đang được dùng trong 1 chương trình phát").wait_for()
    assert ui_world.api.get(f"/api/v1/announcements/{used['id']}").status_code == 200
    assert item(page, kept).count() == 1


def test_an_operator_sees_only_their_communes_and_the_districts_items(page: Any, ui_world: UiWorld) -> None:
    nu, bui, district = unique("Tin Trà Nú"), unique("Tin Trà Bui"), unique("Tin toàn huyện")
    announce(ui_world, nu, "tra-nu")
    announce(ui_world, bui, "tra-bui")
    announce(ui_world, district, None)
    sign_in(page, ui_world, "op-bui", next_path=LIBRARY)
    item(page, bui).wait_for()
    district_card = item(page, district)
    assert "Toàn huyện" in district_card.inner_text() and "Đã duyệt" in district_card.inner_text()
    assert district_card.get_by_test_id("item-delete").count() == 0  # the district's, not op-bui's to delete
    assert item(page, nu).count() == 0
    assert nu not in page.content()


def test_a_viewer_sees_the_library_without_upload_or_delete_and_cannot_compose(page: Any,
                                                                             ui_world: UiWorld) -> None:
    title, other = unique("Tin cho người xem"), unique("Tin Trà Bui cho người xem")
    announce(ui_world, title, "tra-nu")
    announce(ui_world, other, "tra-bui")
    sign_in(page, ui_world, "viewer", next_path=LIBRARY)
    card = item(page, title)
    card.wait_for()
    item(page, other).wait_for()
    page.get_by_test_id("commune-filter").click()  # the viewer's two communes: one at a time
    page.get_by_role("option", name="Xã Trà Nú").click()
    item(page, other).wait_for(state="detached")
    card.wait_for()
    assert card.get_by_test_id("item-audio").get_attribute("src")
    assert page.get_by_test_id("upload-card").count() == 0 and page.get_by_test_id("uploader").count() == 0
    assert card.get_by_test_id("item-delete").count() == 0
    assert page.get_by_text("Soạn tin").count() == 0  # not in the menu
    page.goto(f"{ui_world.url}/ui/soan-tin")
    page.get_by_test_id("no-access").wait_for()
    assert page.get_by_test_id("compose-text").count() == 0


def test_the_library_fits_a_phone(phone: Any, ui_world: UiWorld) -> None:
    announce(ui_world, unique("Tin rất dài để thử màn hình điện thoại nhỏ, xem có bị tràn ngang hay không"),
             "tra-nu")
    sign_in(phone, ui_world, "op-nu", next_path=LIBRARY)
    phone.get_by_test_id("library-items").wait_for()
    phone.get_by_test_id("uploader").wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360


def test_an_operator_reads_why_an_approver_sent_their_announcement_back(page: Any, ui_world: UiWorld) -> None:
    title = unique("Tin bị trả lại")
    with Session(ui_world.testbed.engine) as s:
        token = issue_token(s, unique("op-nu-token"), ["content:read", "content:write"], ["tra-nu"],
                            created_by="tests")[1]
    made = ui_world.api.post("/api/v1/announcements", headers={"Authorization": f"Bearer {token}"}, timeout=120,
                             json={"text": f"{title}.", "title": title, "commune": "tra-nu"}).json()
    assert made["approved"] is False
    r = ui_world.api.post(f"/api/v1/announcements/{made['id']}/return",
                          json={"comment": "Sai giờ họp, sửa lại thành 8 giờ."})
    assert r.status_code == 200, r.text
    sign_in(page, ui_world, "op-nu", next_path=LIBRARY)
    card = item(page, title)
    card.get_by_test_id("state-returned").wait_for()
    returned = card.get_by_test_id("item-returned").inner_text()
    assert "Sai giờ họp, sửa lại thành 8 giờ." in returned and "trả lại lúc" in returned


def test_the_server_refuses_an_upload_over_the_limit_before_storing_it() -> None:
    """NiceGUI's upload route reads any size; the middleware in front of it does not let it."""
    seen: list[int] = []

    async def upload(request: Request) -> JSONResponse:
        seen.append(len(await request.body()))
        return JSONResponse({"upload": "success"})

    app = Starlette(routes=[Route("/_nicegui/client/{c}/upload/{e}", upload, methods=["POST"]),
                            Route("/other", upload, methods=["POST"])],
                    middleware=[Middleware(UploadLimit, limit=lambda: 1000)])  # as install() puts it on NiceGUI's
    limited = TestClient(app)
    url = "/_nicegui/client/abc/upload/7"
    assert limited.post(url, content=b"x" * 1000).status_code == 200
    assert limited.post(url, content=b"x" * (1001 + MULTIPART_OVERHEAD)).status_code == 413  # declared length

    def chunks() -> Any:  # no declared length: counted as it arrives
        for _ in range(100):
            yield b"x" * 1024

    assert limited.post(url, content=chunks()).status_code == 413
    assert limited.post("/other", content=chunks()).status_code == 200  # other routes are not limited
    assert seen == [1000, 102400]


def test_the_ui_refuses_a_declared_oversize_upload_at_once(ui_world: UiWorld) -> None:
    """The limit is on the running UI: 413 from the headers alone, before a byte of the body is read."""
    host, port = ui_world.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"POST /ui/_nicegui/client/someone/upload/1 HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 900000000\r\n\r\n")
        assert conn.recv(200).startswith(b"HTTP/1.1 413")


def test_loudness_makers_and_where_one_may_publish_read_as_staff_expect() -> None:
    os.environ.setdefault("NICEGUI_STORAGE_PATH", tempfile.mkdtemp(prefix="tt-nicegui-"))  # as test_page_policy
    from controller.ui.pages.library import actor_name, commune_choices, lufs_vi

    assert lufs_vi(-23.44) == "−23,4" and lufs_vi(-16.0) == "−16,0" and lufs_vi(-15.96) == "−16,0"
    assert actor_name("user:3:op-nu") == "op-nu" and actor_name("token:7:ui-tests") == "ui-tests"
    names = {"tra-bui": "Xã Trà Bui", "tra-nu": "Xã Trà Nú"}
    district = Principal("user", 1, "huyen", frozenset({Right.CONTENT_WRITE}), None)
    nu = Principal("user", 2, "op-nu", frozenset({Right.CONTENT_WRITE}), frozenset({"tra-nu"}))
    assert commune_choices(district, names) == {"": "Toàn huyện", **names}
    assert commune_choices(nu, names) == {"tra-nu": "Xã Trà Nú"}
