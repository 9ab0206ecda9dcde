"""Duyệt tin: trả lại — an approver sends a draft (bulletin, announcement, programme) back to its author with a
comment. Who may: whoever may approve it; the comment is required and at most 1000 characters; only a draft
can be sent back; it stays a draft, the author reads the comment in the public row, and an approval (or, for
a programme, an edit) clears it. Every sending back is audited."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from controller.db.models import AuditEntry
from tests.conftest import Api
from tests.controller.api.test_content_policy import LEADER, OPERATOR, Who
from tests.controller.api.test_programmes import at
from tests.controller.api.test_programmes_policy import Bed, bed  # noqa: F401  # the fixture
from tests.samples import make

A, B = "tra-bui", "tra-doc"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return make(tmp_path / "tin.wav", seconds=2)


def test_a_leader_sends_an_operators_bulletin_back_and_its_author_reads_why(api: Api, sample: Path) -> None:
    client: TestClient = api.client
    operator, leader_a, leader_b = Who(client, OPERATOR, [A]), Who(client, LEADER, [A]), Who(client, LEADER, [B])
    draft = operator.upload(sample, A, "Bản tin cần sửa").json()
    assert draft["approved"] is False and draft["returned_comment"] is None
    path = f"/api/v1/bulletins/{draft['id']}/return"
    assert operator.post(path, json={"comment": "Sửa"}).status_code == 403  # no content:approve
    assert leader_b.post(path, json={"comment": "Sửa"}).status_code == 404  # another commune's
    empty = leader_a.post(path, json={"comment": "   "})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    assert leader_a.post(path, json={"comment": "x" * 1001}).status_code == 422
    r = leader_a.post(path, json={"comment": "Đọc lại đoạn cuối, tiếng nhỏ quá."})
    assert r.status_code == 200, r.text
    back = r.json()
    assert back["approved"] is False and back["returned_comment"] == "Đọc lại đoạn cuối, tiếng nhỏ quá."
    assert back["returned_by"].endswith(f":{A}") and back["returned_at"]
    seen = operator.get(f"/api/v1/bulletins/{draft['id']}").json()  # the author sees the outcome
    assert seen["returned_comment"] == back["returned_comment"]
    # Approval clears it; an approved bulletin is not sent back.
    approved = leader_a.post(f"/api/v1/bulletins/{draft['id']}/approve").json()
    assert approved["approved"] and (approved["returned_by"], approved["returned_comment"]) == (None, None)
    assert leader_a.post(path, json={"comment": "Muộn rồi"}).status_code == 409
    with Session(api.engine) as s:
        entry = s.exec(select(AuditEntry).where(AuditEntry.action == "bulletin.return",
                                                AuditEntry.outcome == "ok")).one()
        assert "tiếng nhỏ quá" in (entry.detail or "") and entry.target == str(draft["id"])


def test_an_announcement_is_sent_back_only_by_an_approver_of_where_it_is(api: Api) -> None:
    client: TestClient = api.client
    operator, leader_a = Who(client, OPERATOR, [A]), Who(client, LEADER, [A])
    r = operator.post("/api/v1/announcements", json={"text": "Họp thôn lúc 8 giờ.", "commune": A})
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    district = Who(client, ["admin"]).post("/api/v1/announcements", json={"text": "Thông báo huyện."}).json()
    assert district["approved"]  # the district's own: approved at once, so nothing to send back
    back = leader_a.post(f"/api/v1/announcements/{aid}/return", json={"comment": "Ghi rõ địa điểm."})
    assert back.status_code == 200, back.text
    assert back.json()["returned_comment"] == "Ghi rõ địa điểm." and back.json()["approved"] is False
    listed = operator.get("/api/v1/announcements", params={"approved": "false"}).json()["data"]
    assert [a["returned_comment"] for a in listed if a["id"] == aid] == ["Ghi rõ địa điểm."]


def test_a_programme_sent_back_stays_off_air_and_an_edit_or_approval_clears_the_comment(bed: Bed) -> None:  # noqa: F811
    p = bed.programme("operator", "Bản tin sáng", at(6)).json()
    assert p["approved"] is False and p["returned_comment"] is None
    path = f"/programmes/{p['id']}/return"
    assert bed.call("operator", "POST", path, json={"comment": "Sửa"}).status_code == 403
    assert bed.call("leader-kot", "POST", path, json={"comment": "Sửa"}).status_code == 404
    assert bed.call("leader", "POST", path, json={"comment": ""}).status_code == 422
    r = bed.call("leader", "POST", path, json={"comment": "Đổi sang 6 giờ 30."})
    assert r.status_code == 200, r.text
    back = r.json()
    assert back["approved"] is False and back["returned_comment"] == "Đổi sang 6 giờ 30."
    assert back["returned_by"].endswith(":lanh-dao-tra-son") and back["returned_at"].endswith("+07:00")
    assert p["id"] not in bed.on_plans()
    seen = bed.call("operator", "GET", f"/programmes/{p['id']}").json()
    assert seen["returned_comment"] == "Đổi sang 6 giờ 30."
    # Pausing keeps the comment; the author's edit is a new proposal and clears it.
    assert bed.call("operator", "POST", f"/programmes/{p['id']}/pause").json()["returned_comment"]
    edited = bed.call("operator", "PATCH", f"/programmes/{p['id']}", json={"start": at(6, 30), "paused": False})
    assert edited.status_code == 200, edited.text
    assert edited.json()["returned_comment"] is None and edited.json()["approved"] is False
    assert bed.call("leader", "POST", path, json={"comment": "Vẫn chưa được."}).status_code == 200
    approved = bed.call("leader", "POST", f"/programmes/{p['id']}/approve").json()
    assert approved["approved"] and approved["returned_comment"] is None
    assert bed.call("leader", "POST", path, json={"comment": "Muộn rồi"}).status_code == 409
    with Session(bed.engine) as s:
        assert len(s.exec(select(AuditEntry).where(AuditEntry.action == "programme.return",
                                                   AuditEntry.outcome == "ok")).all()) == 2
