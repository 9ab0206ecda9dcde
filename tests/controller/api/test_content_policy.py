"""The content library under the one access policy: abbreviations per commune plus a district list that only
district admins change, approval (duyệt tin) of what commune operators make, and content of other communes
out of sight. Each test marked LEAK failed before the policy moved into `controller.services.content`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from controller.db.models import Abbreviation, AuditEntry
from controller.errors import Conflict, Hidden
from controller.services import Ctx
from controller.services.accounts import issue_token, principal_for_token
from controller.services.content import usable_content
from tests.conftest import Api
from tests.samples import make

A, B = "tra-bui", "tra-doc"
OPERATOR = ["receivers:read", "receivers:control", "content:read", "content:write"]  # cán bộ xã
LEADER = [*OPERATOR, "content:approve"]  # lãnh đạo xã


class Who(Api):
    """The controller as one principal: a token with `scopes` (limited to `communes`)."""

    def __init__(self, client: TestClient, scopes: list[str], communes: list[str] | None = None) -> None:
        with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
            token = issue_token(s, "-".join(communes or ["district"]), scopes, communes)[1]
        super().__init__(client, token)
        self.token = token

    def upload(self, sample: Path, commune: str | None, title: str = "Bản tin") -> Any:
        with sample.open("rb") as f:
            return self.post("/api/v1/bulletins", data={"title": title, **({"commune": commune} if commune else {})},
                             files={"file": (sample.name, f, "audio/wav")})

    def usable(self, bulletin_id: int) -> object:
        """What a play or programme does with a bulletin id: `usable_content` as this principal."""
        app = self.client.app
        with Session(app.state.engine) as s:  # type: ignore[attr-defined]
            ctx = Ctx(session=s, who=principal_for_token(s, self.token), settings=app.state.settings,  # type: ignore[attr-defined]
                      engine=app.state.engine)  # type: ignore[attr-defined]
            return usable_content(ctx, bulletin_id=bulletin_id, action="play")


@pytest.fixture
def client(api: Api) -> TestClient:
    return api.client


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return make(tmp_path / "tin.wav", seconds=3)


def district_list(client: TestClient) -> dict[str, str]:
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        return {a.abbr: a.expansion for a in s.exec(select(Abbreviation).where(Abbreviation.commune_id == None))}  # noqa: E711


def preview(who: Who, text: str, commune: str | None = None) -> str:
    r = who.post("/api/v1/announcements/preview-text", json={"text": text, "commune": commune})
    assert r.status_code == 200, r.text
    return str(r.json()["normalized_text"])


# ------------------------------------------------------------------------------------------ abbreviations


def test_a_commune_writer_cannot_change_the_district_list_nor_another_communes(client: TestClient) -> None:
    """LEAK: any content:write token changed the district-wide list (applied to every commune's speech)."""
    admin, operator = Who(client, ["admin"]), Who(client, OPERATOR, [A])
    assert admin.put("/api/v1/abbreviations/UBND", json={"expansion": "ủy ban nhân dân"}).status_code == 200
    before = district_list(client)

    r = operator.put("/api/v1/abbreviations/UBND", json={"expansion": "ủy ban"})
    assert r.status_code == 403 and "district admins" in r.json()["detail"]
    assert operator.delete("/api/v1/abbreviations/UBND").status_code == 403
    assert operator.put("/api/v1/abbreviations/UBND", json={"expansion": "ủy ban", "commune": B}).status_code == 404
    assert operator.delete("/api/v1/abbreviations/UBND", params={"commune": B}).status_code == 404
    assert operator.get("/api/v1/abbreviations", params={"commune": B}).status_code == 404
    commune_admin = Who(client, ["admin"], [A])  # an admin scope limited to a commune is not the district
    assert commune_admin.put("/api/v1/abbreviations/UBND", json={"expansion": "ủy ban"}).status_code == 403
    assert district_list(client) == before

    # Its own commune's list is its to keep.
    own = operator.put("/api/v1/abbreviations/UBND", json={"expansion": "ủy ban xã", "commune": A})
    assert own.status_code == 200 and own.json()["commune"] == A
    assert district_list(client) == before
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        refused = s.exec(select(AuditEntry).where(AuditEntry.outcome == "refused")).all()
    assert len(refused) >= 5 and all(a.actor.startswith("token:") for a in refused)


@pytest.mark.parametrize("expansion", ["", " ", "  \t\n ", " . "])
def test_an_expansion_that_reads_nothing_is_refused(client: TestClient, expansion: str) -> None:
    """LEAK: PUT /abbreviations/không {"expansion": " "} was stored as "", so "Bà con không được về nhà" was
    read "Bà con được về nhà" in every commune, emergencies included."""
    admin = Who(client, ["admin"])
    assert admin.put("/api/v1/abbreviations/ko", json={"expansion": "không"}).status_code == 200
    for abbr in ("không", "ko"):
        r = admin.put(f"/api/v1/abbreviations/{abbr}", json={"expansion": expansion})
        assert r.status_code == 422, r.text
        assert "expansion" in r.text
    assert district_list(client) == {"ko": "không"}
    assert preview(admin, "Bà con không được về nhà") == "Bà con không được về nhà"


@pytest.mark.parametrize("word", ["không", "Không", "chưa", "cấm", "đừng", "chẳng"])
def test_words_of_negation_are_never_remapped(client: TestClient, word: str) -> None:
    """A remapped negation reverses what a notice says, whatever it is remapped to."""
    admin, operator = Who(client, ["admin"]), Who(client, OPERATOR, [A])
    r = admin.put(f"/api/v1/abbreviations/{word}", json={"expansion": "có"})
    assert r.status_code == 422 and "negation" in r.json()["detail"]
    assert operator.put(f"/api/v1/abbreviations/{word}", json={"expansion": "có", "commune": A}).status_code == 422
    assert district_list(client) == {}
    assert preview(operator, f"{word} được về nhà", A) == f"{word} được về nhà"
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        tried = s.exec(select(AuditEntry).where(AuditEntry.action == "abbreviation.put",
                                                AuditEntry.outcome == "refused")).all()
    assert len(tried) == 2 and all("có" in (e.detail or "") for e in tried)  # the attempt is on record


def test_a_communes_abbreviation_applies_only_in_that_commune(client: TestClient) -> None:
    """LEAK: there was one list for everybody; a commune's expansion was read in every commune."""
    admin, operator = Who(client, ["admin"]), Who(client, OPERATOR, [A])
    assert operator.put("/api/v1/abbreviations/HTX", json={"expansion": "hợp tác xã Trà Bui", "commune": A}
                        ).status_code == 200
    assert preview(operator, "Họp HTX", A) == "Họp hợp tác xã Trà Bui"
    assert preview(admin, "Họp HTX", B) == "Họp hợp tác xã"
    assert preview(admin, "Họp HTX") == "Họp hợp tác xã"  # district-wide text: the district list only

    # The list of A shows the district's rows and A's own; the text spoken is returned and audited.
    assert admin.put("/api/v1/abbreviations/UBND", json={"expansion": "ủy ban"}).status_code == 200
    rows = operator.get("/api/v1/abbreviations", params={"commune": A}).json()
    assert rows["count"] == 2 and [(r["abbr"], r["commune"]) for r in rows["data"]] == [("UBND", None), ("HTX", A)]
    made = operator.post("/api/v1/announcements", json={"text": "UBND mời HTX họp.", "commune": A})
    assert made.status_code == 201, made.text
    assert made.json()["normalized_text"] == "ủy ban mời hợp tác xã Trà Bui họp."
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        audit = s.exec(select(AuditEntry).where(AuditEntry.action == "announcement.create")).one()
    assert audit.detail is not None and "ủy ban mời hợp tác xã Trà Bui họp." in audit.detail


# -------------------------------------------------------------------------------------------- approval


def test_an_operators_bulletin_is_a_draft_until_a_leader_of_its_commune_approves(client: TestClient,
                                                                                 sample: Path) -> None:
    """LEAK (of the old model): whatever a content:write token uploaded could be played at once."""
    operator, leader_a, leader_b = Who(client, OPERATOR, [A]), Who(client, LEADER, [A]), Who(client, LEADER, [B])
    made = operator.upload(sample, A)
    assert made.status_code == 201, made.text
    draft = made.json()
    assert (draft["approved"], draft["approved_by"], draft["approved_at"]) == (False, None, None)
    with pytest.raises(Conflict, match="draft"):
        operator.usable(draft["id"])
    assert operator.get("/api/v1/bulletins", params={"approved": "false"}).json()["count"] == 1

    assert operator.post(f"/api/v1/bulletins/{draft['id']}/approve").status_code == 403  # no content:approve
    assert leader_b.post(f"/api/v1/bulletins/{draft['id']}/approve").status_code == 404  # another commune's
    ok = leader_a.post(f"/api/v1/bulletins/{draft['id']}/approve")
    assert ok.status_code == 200, ok.text
    approved = ok.json()
    assert approved["approved"] and approved["approved_by"].endswith(f":{A}") and approved["approved_at"]
    again = leader_a.post(f"/api/v1/bulletins/{draft['id']}/approve").json()  # idempotent
    assert (again["approved_by"], again["approved_at"]) == (approved["approved_by"], approved["approved_at"])
    operator.usable(draft["id"])  # now it may go on air
    assert operator.get("/api/v1/bulletins", params={"approved": "false"}).json()["count"] == 0
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        audits = s.exec(select(AuditEntry).where(AuditEntry.action == "bulletin.approve")).all()
    # once approved (by whom, when), once refused (leader B: audited by the API with what it tried)
    assert sorted((a.outcome, a.actor.rsplit(":", 1)[1]) for a in audits) == [("ok", A), ("refused", B)]

    # A leader's own bulletin, and an admin's, are approved at once.
    assert leader_a.upload(sample, A).json()["approved"] is True
    assert Who(client, ["admin"]).upload(sample, None).json()["approved"] is True


def test_district_content_needs_a_district_approver_and_approval_can_be_turned_off(client: TestClient,
                                                                                   sample: Path) -> None:
    admin, writer = Who(client, ["admin"]), Who(client, ["content:read", "content:write"])
    operator, leader_a = Who(client, OPERATOR, [A]), Who(client, LEADER, [A])
    district_draft = writer.post("/api/v1/announcements", json={"text": "Thông báo chung."}).json()
    assert district_draft["approved"] is False and district_draft["commune"] is None
    r = leader_a.post(f"/api/v1/announcements/{district_draft['id']}/approve")
    assert r.status_code == 403 and "district" in r.json()["detail"]
    assert admin.post(f"/api/v1/announcements/{district_draft['id']}/approve").json()["approved"] is True

    # A commune that does not require approval: its operator's content is approved at once.
    assert operator.patch(f"/api/v1/communes/{A}", json={"approval_required": False}).status_code == 403
    changed = admin.patch(f"/api/v1/communes/{A}", json={"approval_required": False})
    assert changed.status_code == 200 and changed.json()["approval_required"] is False
    assert admin.patch("/api/v1/communes/atlantis", json={"approval_required": False}).status_code == 404
    # The setting is the district's: even an admin-scoped token limited to a commune cannot change it.
    assert Who(client, ["admin"], [B]).patch(f"/api/v1/communes/{A}", json={"approval_required": True}
                                            ).status_code == 403
    listed = operator.get("/api/v1/communes").json()
    assert listed["count"] == 1 and listed["data"][0]["code"] == A and listed["data"][0]["approval_required"] is False
    assert {"code", "name", "receivers_online", "receivers_offline"} <= set(listed["data"][0])
    assert operator.upload(sample, A).json()["approved"] is True
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        audit = s.exec(select(AuditEntry).where(AuditEntry.action == "commune.update",
                                                 AuditEntry.outcome == "ok")).one()
    assert audit.target == A and "False" in (audit.detail or "")


def test_another_communes_content_cannot_be_read_listed_deleted_or_used(client: TestClient,
                                                                        sample: Path) -> None:
    admin, operator, leader_a = Who(client, ["admin"]), Who(client, OPERATOR, [A]), Who(client, LEADER, [A])
    theirs = admin.upload(sample, B).json()
    shared = admin.upload(sample, None).json()
    mine = operator.upload(sample, A).json()
    path = f"/api/v1/bulletins/{theirs['id']}"
    assert operator.get(path).status_code == 404
    assert operator.delete(path).status_code == 404
    assert leader_a.post(f"{path}/approve").status_code == 404
    with pytest.raises(Hidden):
        operator.usable(theirs["id"])
    listed = operator.get("/api/v1/bulletins").json()
    assert listed["count"] == 2 and {b["id"] for b in listed["data"]} == {shared["id"], mine["id"]}
    assert operator.get("/api/v1/bulletins", params={"commune": B}).json() == {"data": [], "count": 0}
    # District-wide content is shared: readable by all, deleted by the district only.
    assert operator.get(f"/api/v1/bulletins/{shared['id']}").status_code == 200
    assert operator.delete(f"/api/v1/bulletins/{shared['id']}").status_code == 403
    assert operator.upload(sample, B).status_code == 404
    assert operator.upload(sample, None).status_code == 403
    assert operator.delete(f"/api/v1/bulletins/{mine['id']}").status_code == 204
    assert admin.get(path).status_code == 200
