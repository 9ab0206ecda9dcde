"""Duyệt tin in the browser: an operator's draft cannot be scheduled until a commune leader approves it in the
page; a draft sent back with a comment shows its author "Bị trả lại" and the comment; a leader sees only the
drafts of their own communes; the page fits a phone."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from audio.store import MediaStore
from controller.db.models import ProgrammeCreate, Targets, User
from controller.errors import Conflict
from controller.services import Ctx
from controller.services.accounts import issue_token, user_principal
from controller.services.content import AnnouncementCreate, BulletinUpload, create_announcement, create_bulletin
from controller.services.programmes import create_programme
from schedules import TZ
from tests.controller.api.test_policy_routes import _wav

from .conftest import UiWorld, sign_in

APPROVAL = "/ui/duyet-tin"
MINE = "/ui/duyet-tin/cua-toi"
WRITER = ["receivers:read", "content:read", "content:write"]




class As:
    """One of the world's people acting through the services, as the staff UI does (what they make is theirs:
    `created_by` is their account), and the API with a token they own (never more than their rights)."""

    def __init__(self, world: UiWorld, username: str, scopes: list[str]) -> None:
        self.world = world
        with Session(world.testbed.engine) as s:
            user = s.exec(select(User).where(User.username == username)).one()
            self.who = user_principal(user)
            token = issue_token(s, f"{username}-{uuid.uuid4().hex[:6]}", scopes, owner=user, created_by="tests")[1]
        self.client = httpx.Client(base_url=world.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def _call(self, fn: Any, *args: Any) -> Any:
        settings = self.world.testbed.settings
        with Session(self.world.testbed.engine) as s:
            return fn(Ctx(session=s, who=self.who, settings=settings, engine=self.world.testbed.engine,
                          media=MediaStore(settings.media_dir)), *args)

    def bulletin(self, title: str, commune: str) -> dict[str, Any]:
        def receive(directory: Path) -> Path:
            path = directory / f".upload-{uuid.uuid4().hex}"
            path.write_bytes(_wav())
            return path

        made = self._call(create_bulletin, BulletinUpload(title=title, filename="tin.wav", commune=commune), receive)
        return dict(made.model_dump())

    def announcement(self, text: str, commune: str) -> dict[str, Any]:
        return dict(self._call(create_announcement, AnnouncementCreate(text=text, commune=commune)).model_dump())

    def programme(self, title: str, bulletin_id: int, start: dt.datetime, commune: str = "tra-nu") -> dict[str, Any]:
        body = ProgrammeCreate(title=title, items=[{"bulletin_id": bulletin_id}],
                               targets=Targets(communes=[commune]), start=start)
        return dict(self._call(create_programme, body).model_dump())


@pytest.fixture
def op_nu(ui_world: UiWorld) -> Iterator[As]:
    who = As(ui_world, "op-nu", WRITER)
    yield who
    who.client.close()


def _start() -> dt.datetime:
    """A time of night weeks ahead, to the second: no other test's programme is there."""
    day = dt.datetime.now(TZ).date() + dt.timedelta(days=random.randint(15, 25))
    return dt.datetime.combine(day, dt.time(1, random.randint(0, 59), random.randint(0, 59)), TZ)


def _scheduled(world: UiWorld, pid: int, start: dt.datetime) -> bool:
    hour = dt.timedelta(hours=1)
    r = world.api.get("/api/v1/schedule", params={"commune": "tra-nu", "from": (start - hour).isoformat(),
                                                  "to": (start + hour).isoformat()})
    assert r.status_code == 200, r.text
    return any(row["programme_id"] == pid for row in r.json()["data"])


def test_an_operators_draft_goes_on_air_only_once_a_leader_approves_it_in_the_page(page: Any, ui_world: UiWorld,
                                                                                   op_nu: As) -> None:
    tag = uuid.uuid4().hex[:6]
    draft = op_nu.bulletin(f"Bản tin nháp {tag}", "tra-nu")
    assert draft["approved"] is False
    start = _start()
    with pytest.raises(Conflict, match="draft"):  # a draft cannot be scheduled
        op_nu.programme(f"Chương trình {tag}", draft["id"], start)

    sign_in(page, ui_world, "leader-nu", next_path=APPROVAL)
    card = page.get_by_test_id(f"draft-bulletin-{draft['id']}")
    card.wait_for()
    assert f"Bản tin nháp {tag}" in card.inner_text() and "Chờ duyệt" in card.inner_text()
    assert card.locator("audio").count() == 1  # listen before deciding
    page.get_by_test_id(f"approve-bulletin-{draft['id']}").click()
    page.get_by_text(f"Đã duyệt «Bản tin nháp {tag}».").wait_for()
    card.wait_for(state="detached")
    assert ui_world.api.get(f"/api/v1/bulletins/{draft['id']}").json()["approved"] is True

    # Approved content can be put in a programme: the operator's programme is itself a draft, off air.
    made = op_nu.programme(f"Chương trình {tag}", draft["id"], start)
    pid = made["id"]
    assert made["approved"] is False and not _scheduled(ui_world, pid, start)
    page.reload()
    card = page.get_by_test_id(f"draft-programme-{pid}")
    card.wait_for()
    text = card.inner_text()
    assert f"Chương trình {tag}" in text and f"Bản tin nháp {tag}" in text  # its items, named
    assert "Trà Nú" in text and start.strftime("%H:%M") in text  # where and when
    page.get_by_test_id(f"approve-programme-{pid}").click()
    card.wait_for(state="detached")
    assert ui_world.api.get(f"/api/v1/programmes/{pid}").json()["approved"] is True
    assert _scheduled(ui_world, pid, start)


def test_a_draft_sent_back_shows_its_author_the_comment(page: Any, ui_world: UiWorld, op_nu: As) -> None:
    tag = uuid.uuid4().hex[:6]
    content = op_nu.bulletin(f"Nội dung {tag}", "tra-nu")
    leader = As(ui_world, "leader-nu", [*WRITER, "content:approve"])
    assert leader.client.post(f"/api/v1/bulletins/{content['id']}/approve").status_code == 200
    pid = op_nu.programme(f"Phát sáng {tag}", content["id"], _start())["id"]
    draft = op_nu.bulletin(f"Bản tin cần sửa {tag}", "tra-nu")

    sign_in(page, ui_world, "leader-nu", next_path=APPROVAL)
    page.get_by_test_id(f"return-programme-{pid}").click()
    page.get_by_test_id("return-confirm").click()  # no comment: refused, says why
    page.get_by_text("Hãy ghi lý do trả lại").wait_for()
    page.get_by_test_id("return-comment").fill("Đổi sang 6 giờ sáng, thêm bản tin thời tiết.")
    page.get_by_test_id("return-confirm").click()
    page.get_by_test_id(f"draft-programme-{pid}").wait_for(state="detached")
    page.get_by_test_id(f"return-bulletin-{draft['id']}").click()
    page.get_by_test_id("return-comment").fill("Tiếng nhỏ, thu lại.")
    page.get_by_test_id("return-confirm").click()
    page.get_by_test_id(f"draft-bulletin-{draft['id']}").wait_for(state="detached")
    leader.client.close()
    back = ui_world.api.get(f"/api/v1/programmes/{pid}").json()
    assert back["approved"] is False and back["returned_comment"].startswith("Đổi sang 6 giờ")

    page.get_by_test_id("logout").click()
    page.wait_for_url("**/ui/dang-nhap**")
    sign_in(page, ui_world, "op-nu", next_path=MINE)
    state = page.get_by_test_id(f"state-programme-{pid}")
    state.wait_for()
    assert state.inner_text() == "Bị trả lại"
    comment = page.get_by_test_id(f"comment-programme-{pid}").inner_text()
    assert "Đổi sang 6 giờ sáng, thêm bản tin thời tiết." in comment
    assert page.get_by_test_id(f"state-bulletin-{draft['id']}").inner_text() == "Bị trả lại"
    assert "Tiếng nhỏ, thu lại." in page.get_by_test_id(f"comment-bulletin-{draft['id']}").inner_text()
    assert page.get_by_test_id(f"state-bulletin-{content['id']}").inner_text() == "Đã duyệt"


def test_a_leader_sees_only_their_communes_drafts_and_new_ones_on_refresh(page: Any, ui_world: UiWorld,
                                                                          op_nu: As) -> None:
    tag = uuid.uuid4().hex[:6]
    op_bui = As(ui_world, "op-bui", WRITER)
    theirs = op_bui.bulletin(f"Tin Trà Bui {tag}", "tra-bui")
    op_bui.client.close()
    ours = op_nu.bulletin(f"Tin Trà Nú {tag}", "tra-nu")
    sign_in(page, ui_world, "leader-nu", next_path=APPROVAL)
    page.get_by_test_id(f"draft-bulletin-{ours['id']}").wait_for()
    assert f"Tin Trà Bui {tag}" not in page.content()
    assert page.get_by_test_id(f"draft-bulletin-{theirs['id']}").count() == 0
    later = op_nu.bulletin(f"Tin mới {tag}", "tra-nu")  # made while the leader has the page open
    page.get_by_role("button", name="Làm mới").click()
    page.get_by_test_id(f"draft-bulletin-{later['id']}").wait_for()


def test_the_approval_page_fits_a_phone(phone: Any, ui_world: UiWorld, op_nu: As) -> None:
    draft = op_nu.bulletin(f"Bản tin điện thoại có tiêu đề rất dài để thử xuống dòng {uuid.uuid4().hex}", "tra-nu")
    sign_in(phone, ui_world, "leader-nu", next_path=APPROVAL)
    phone.get_by_test_id(f"draft-bulletin-{draft['id']}").wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360


def test_an_announcement_is_read_as_typed_and_as_it_will_be_spoken(page: Any, ui_world: UiWorld, op_nu: As) -> None:
    made = op_nu.announcement(f"Họp dân lúc 8h ngày 15/12 tại nhà văn hóa {uuid.uuid4().hex[:4]}.", "tra-nu")
    assert made["approved"] is False
    sign_in(page, ui_world, "leader-nu", next_path=APPROVAL)
    card = page.get_by_test_id(f"draft-announcement-{made['id']}")
    card.wait_for()
    assert "Họp dân lúc 8h ngày 15/12" in card.inner_text()
    spoken = page.get_by_test_id(f"spoken-{made['id']}").inner_text()
    assert spoken == made["normalized_text"] and "tám giờ" in spoken
    assert card.locator("audio").count() == 1
