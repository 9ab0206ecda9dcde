"""Programmes, receiver groups, the schedule and the broadcast report under the access policy (issue 10,
section 3): a principal limited to some communes neither uses another commune's content nor targets, sees
or deletes its receivers' groups, schedules or reports; the emergency class needs the emergency right; and
programmes are approved (duyệt tin) — an operator's is a draft on no receiver's plan until a leader of
every commune it reaches approves it, an operator's edit makes it a draft again.

Tests marked LEAK failed before this change (the behaviour they refuse was allowed then)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from controller.app import create_app
from controller.config import Settings
from controller.db.models import AuditEntry, Commune, Programme, Receiver
from controller.inventory import apply_seed, load_seed
from controller.scheduling import load_programmes
from controller.services.accounts import issue_token
from schedules import TZ
from tests.controller.api.test_programmes import add_bulletin, at

MASKED = "Chương trình chung của huyện/xã khác"  # a programme reaching other communes, as they see it
OPERATOR = ["content:read", "content:write", "receivers:read"]  # cán bộ xã
LEADER = [*OPERATOR, "content:approve"]  # lãnh đạo xã


class Bed:
    """The controller without a broker, the seed, some bulletins and a token per kind of principal."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.engine = client.app.state.engine  # type: ignore[attr-defined]
        with Session(self.engine) as s:
            apply_seed(s, load_seed(Settings().seed_file))
            s.commit()
            ids = {c.code: c.id for c in s.exec(select(Commune))}
            self.bulletin = {
                "district": add_bulletin(s, "Bản tin huyện", 300),
                "tra-kot": add_bulletin(s, "Bản tin Trà Kót", 120, commune_id=ids["tra-kot"]),
                "tra-son": add_bulletin(s, "Bản tin Trà Sơn", 120, commune_id=ids["tra-son"]),
                "draft": add_bulletin(s, "Bản tin nháp", 60, commune_id=ids["tra-son"], approved=False),
            }
            self.tokens = {
                "admin": issue_token(s, "admin", ["admin"])[1],
                "operator": issue_token(s, "can-bo-tra-son", OPERATOR, ["tra-son"])[1],
                "leader": issue_token(s, "lanh-dao-tra-son", LEADER, ["tra-son"])[1],
                "leader-kot": issue_token(s, "lanh-dao-tra-kot", LEADER, ["tra-kot"])[1],
                "writer-emergency": issue_token(s, "truc", [*OPERATOR, "emergency:trigger"], ["tra-son"])[1],
            }
            self.receivers = {code: sorted(s.exec(select(Receiver.id).join(Commune).where(Commune.code == code)))
                              for code in ("tra-kot", "tra-son")}

    def call(self, who: str, method: str, path: str, **kw: Any) -> Any:
        return self.client.request(method, f"/api/v1{path}", headers={"Authorization": f"Bearer {self.tokens[who]}"},
                                   **kw)

    def programme(self, who: str, title: str, start: str, *, bulletin: str = "district",
                  targets: dict[str, Any] | None = None, **extra: Any) -> Any:
        body = {"title": title, "items": [{"bulletin_id": self.bulletin[bulletin]}],
                "targets": targets or {"communes": ["tra-son"]}, "start": start, **extra}
        return self.call(who, "POST", "/programmes", json=body)

    def scheduled(self, who: str, commune: str = "tra-son") -> set[int]:
        r = self.call(who, "GET", "/schedule", params={"commune": commune, "from": at(0), "to": at(23, 59)})
        assert r.status_code == 200, r.text
        return {row["programme_id"] for row in r.json()["data"]}

    def on_plans(self) -> set[int]:
        """The programmes on any receiver's plan, as the runner compiles them."""
        runner = self.client.app.state.runner  # type: ignore[attr-defined]
        self.client.portal.call(runner.recompile)  # type: ignore[union-attr]
        return {slot.programme_id for plan in runner.plans.values() for slot in plan.slots}


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[Bed]:
    with TestClient(create_app(Settings(demo=True, data_dir=tmp_path / "data"), with_bridge=False)) as c:
        yield Bed(c)


# ------------------------------------------------------------------------------------------ content


def test_leak_programmes_refuse_another_communes_bulletin(bed: Bed) -> None:
    """LEAK: a tra-son principal scheduled tra-kot's bulletin on its own receivers (201 before)."""
    r = bed.programme("leader", "Mượn bản tin", at(9), bulletin="tra-kot")
    assert r.status_code == 404 and f"bulletin {bed.bulletin['tra-kot']}" in r.json()["detail"]
    assert bed.programme("leader", "Bản tin xã", at(9), bulletin="tra-son").status_code == 201
    assert bed.programme("leader", "Bản tin huyện", at(10), bulletin="district").status_code == 201  # shared
    with Session(bed.engine) as s:
        assert s.exec(select(AuditEntry).where(AuditEntry.outcome == "refused",
                                               col(AuditEntry.actor).contains("lanh-dao-tra-son"))).first()


def test_a_draft_bulletin_cannot_be_scheduled(bed: Bed) -> None:
    """A draft is not content a programme may play (201 before: approval did not exist)."""
    r = bed.programme("leader", "Nháp", at(9), bulletin="draft")
    assert r.status_code == 409 and "draft" in r.json()["detail"]
    r = bed.programme("leader", "Hai mục", at(9))
    assert r.status_code == 201
    edit = bed.call("leader", "PATCH", f"/programmes/{r.json()['id']}",
                    json={"items": [{"bulletin_id": bed.bulletin["draft"]}]})
    assert edit.status_code == 409


# ------------------------------------------------------------------------------------------ targets


@pytest.mark.parametrize("targets", [
    {"communes": ["tra-kot"]},
    {"communes": ["tra-son", "tra-kot"]},
    {"villages": ["tra-kot/thon-1"]},
    {"villages": ["tra-son/thon-1", "tra-kot/thon-2"]},
    {"receivers": ["tra-kot-thon-1-1"]},
    {"receivers": ["no-such-receiver"]},  # unknown is answered as hidden: nothing to probe
    {"all": True},
])
def test_every_target_lies_within_the_principals_communes(bed: Bed, targets: dict[str, Any]) -> None:
    """Was a 403 naming the communes (the targets were checked once resolved); now every target named is
    hidden (404) outside the principal's communes, and nothing is stored."""
    r = bed.programme("leader", "Ra ngoài xã", at(9), targets=targets)
    assert r.status_code == 404, r.text
    assert bed.call("admin", "GET", "/programmes").json()["count"] == 0


def test_a_bare_village_code_of_several_communes_asks_for_the_commune(bed: Bed) -> None:
    r = bed.programme("leader", "Thôn 1", at(9), targets={"villages": ["thon-1"]})
    assert r.status_code == 422 and "tra-son/thon-1" not in r.json()["detail"] and "several" in r.json()["detail"]
    assert bed.programme("leader", "Thôn 1", at(9), targets={"villages": ["tra-son/thon-1"]}).status_code == 201


def test_a_group_of_another_communes_receivers_cannot_be_targeted(bed: Bed) -> None:
    group = bed.call("admin", "POST", "/receiver-groups", json={"name": "Loa chợ Trà Kót",
                                                                "receivers": bed.receivers["tra-kot"][:2]})
    assert group.status_code == 201
    r = bed.programme("leader", "Chợ", at(9), targets={"groups": [group.json()["id"]]})
    assert r.status_code == 404


# ------------------------------------------------------------------------------------------- groups


def test_leak_groups_are_listed_created_and_deleted_only_within_the_communes(bed: Bed) -> None:
    """LEAK: a tra-son token listed tra-kot's groups, created groups of tra-kot's receivers and deleted
    tra-kot's groups (count 1, 201, 204 before)."""
    kot = bed.call("admin", "POST", "/receiver-groups", json={"name": "Loa chợ Trà Kót",
                                                              "receivers": bed.receivers["tra-kot"][:2]}).json()
    mixed = bed.call("admin", "POST", "/receiver-groups",
                     json={"name": "Hai xã", "receivers": [bed.receivers["tra-kot"][0], bed.receivers["tra-son"][0]]})
    assert mixed.status_code == 201
    assert bed.call("operator", "GET", "/receiver-groups").json() == {"data": [], "count": 0}
    r = bed.call("operator", "POST", "/receiver-groups", json={"name": "Lấn sang",
                                                               "receivers": [bed.receivers["tra-kot"][0]]})
    assert r.status_code == 404
    r = bed.call("operator", "POST", "/receiver-groups",
                 json={"name": "Lấn sang", "receivers": [bed.receivers["tra-son"][0], bed.receivers["tra-kot"][0]]})
    assert r.status_code == 404
    assert bed.call("operator", "DELETE", f"/receiver-groups/{kot['id']}").status_code == 404
    assert bed.call("operator", "DELETE", f"/receiver-groups/{mixed.json()['id']}").status_code == 404
    assert bed.call("admin", "GET", "/receiver-groups").json()["count"] == 2  # both still there
    # Its own commune's: created, listed (paged), deleted.
    own = bed.call("operator", "POST", "/receiver-groups", json={"name": "Loa chợ Trà Sơn",
                                                                 "receivers": bed.receivers["tra-son"][:2]})
    assert own.status_code == 201
    listed = bed.call("operator", "GET", "/receiver-groups", params={"limit": 1}).json()
    assert listed["count"] == 1 and [g["name"] for g in listed["data"]] == ["Loa chợ Trà Sơn"]
    assert bed.call("operator", "DELETE", f"/receiver-groups/{own.json()['id']}").status_code == 204


# --------------------------------------------------------------------------------- schedule, report


def test_leak_schedule_and_report_of_another_commune_are_hidden(bed: Bed) -> None:
    """LEAK: naming another commune (or its receiver) answered 200 with an empty schedule or report before;
    now 404, and the unfiltered views hold only the principal's own communes."""
    kot = bed.programme("admin", "Trà Kót", at(9), targets={"communes": ["tra-kot"]}).json()
    son = bed.programme("admin", "Trà Sơn", at(10)).json()
    for path, params in [("/schedule", {"commune": "tra-kot"}), ("/schedule", {"receiver": "tra-kot-thon-1-1"}),
                         ("/reports/broadcast", {"commune": "tra-kot"})]:
        r = bed.call("operator", "GET", path, params=params)
        assert r.status_code == 404, (path, params, r.text)
    rows = bed.call("operator", "GET", "/schedule", params={"from": at(0), "to": at(23, 59)}).json()["data"]
    assert {r["programme_id"] for r in rows} == {son["id"]} and {c for r in rows for c in r["communes"]} == {"tra-son"}
    assert bed.scheduled("admin", "tra-kot") == {kot["id"]}
    report = bed.call("operator", "GET", "/reports/broadcast").json()
    assert {c["commune"] for c in report["communes"]} <= {"tra-son"}
    listed = bed.call("operator", "GET", "/programmes").json()
    assert [p["id"] for p in listed["data"]] == [son["id"]] and listed["count"] == 1
    assert bed.call("operator", "GET", f"/programmes/{kot['id']}").status_code == 404
    assert bed.call("operator", "PATCH", f"/programmes/{kot['id']}", json={"title": "x"}).status_code == 404
    assert bed.call("operator", "DELETE", f"/programmes/{kot['id']}").status_code == 404


def _shared_programme(bed: Bed) -> tuple[dict[str, Any], int]:
    """The district's programme reaching a tra-son group and tra-kot, playing tra-kot's bulletin, with its
    group's id."""
    group = bed.call("admin", "POST", "/receiver-groups", json={"name": "Loa chợ Trà Sơn",
                                                                "receivers": bed.receivers["tra-son"][:2]})
    assert group.status_code == 201, group.text
    made = bed.programme("admin", "KOT-SECRET", at(9), bulletin="tra-kot",
                         targets={"groups": [group.json()["id"]], "communes": ["tra-kot"]})
    assert made.status_code == 201, made.text
    return made.json(), group.json()["id"]


def test_leak_schedule_masks_programmes_reaching_other_communes(bed: Bed) -> None:
    """LEAK: a programme of the district reaching a tra-son group and tra-kot showed its title and its
    tra-kot bulletin's title in the tra-son operator's schedule (while GET /programmes listed 0 for it and
    the bulletin was 404). It still shows — it plays on tra-son's receivers, the slot is taken — but
    masked, with only tra-son among its communes."""
    shared, _ = _shared_programme(bed)
    own = bed.programme("admin", "Trà Sơn", at(10)).json()
    assert bed.call("operator", "GET", "/programmes").json()["count"] == 1  # only its own
    rows = bed.call("operator", "GET", "/schedule", params={"from": at(0), "to": at(23, 59)}).json()["data"]
    by_id = {r["programme_id"]: r for r in rows}
    assert set(by_id) == {shared["id"], own["id"]}
    masked = by_id[shared["id"]]
    assert "KOT-SECRET" not in str(rows) and "Trà Kót" not in str(rows)
    assert masked["title"] == MASKED and masked["item"]["title"] is None and masked["item"]["id"] is None
    assert masked["communes"] == ["tra-son"] and masked["receivers"] == 2
    assert masked["priority"] == "normal" and masked["item"]["duration_s"] == 120
    assert masked["start"] == at(9) and masked["end"] > masked["start"]
    assert by_id[own["id"]]["title"] == "Trà Sơn"  # its own programme as ever
    # The district sees it whole.
    whole = bed.call("admin", "GET", "/schedule", params={"from": at(0), "to": at(23, 59)}).json()["data"]
    row = next(r for r in whole if r["programme_id"] == shared["id"])
    assert row["title"] == "KOT-SECRET" and row["item"]["title"] == "Bản tin Trà Kót"
    assert row["communes"] == ["tra-kot", "tra-son"]


def test_leak_schedule_hides_the_title_of_another_communes_item(bed: Bed) -> None:
    """LEAK: a programme of the district reaching only tra-son but playing tra-kot's bulletin showed that
    bulletin's title in the schedule and in GET /programmes (the bulletin itself is 404 to tra-son)."""
    made = bed.programme("admin", "Bản tin mượn", at(9), bulletin="tra-kot")
    assert made.status_code == 201, made.text
    pid = made.json()["id"]
    rows = bed.call("operator", "GET", "/schedule", params={"from": at(0), "to": at(23, 59)}).json()["data"]
    assert [r["title"] for r in rows] == ["Bản tin mượn"] and rows[0]["item"]["title"] is None
    shown = bed.call("operator", "GET", f"/programmes/{pid}").json()
    assert shown["items"][0]["title"] is None and "Trà Kót" not in str(shown)
    assert bed.call("admin", "GET", f"/programmes/{pid}").json()["items"][0]["title"] == "Bản tin Trà Kót"


def test_leak_report_masks_programmes_reaching_other_communes(bed: Bed) -> None:
    """LEAK: the broadcast report (JSON and CSV) named every programme planned on the principal's
    receivers, those reaching other communes too."""
    shared, _ = _shared_programme(bed)
    with Session(bed.engine) as s:  # as though it had been running since yesterday
        row = s.get(Programme, shared["id"])
        assert row is not None
        row.start, row.rrule = row.start - dt.timedelta(days=2), "FREQ=DAILY"
        s.add(row)
        s.commit()
    window = {"from": (dt.datetime.now(TZ) - dt.timedelta(days=2)).isoformat(), "to": dt.datetime.now(TZ).isoformat()}
    report = bed.call("operator", "GET", "/reports/broadcast", params=window)
    assert report.status_code == 200, report.text
    body = report.json()
    assert "KOT-SECRET" not in report.text
    programmes = [p for p in body["programmes"] if p["programme_id"] == shared["id"]]
    assert programmes and all(p["title"] == MASKED and p["commune"] == "tra-son" for p in programmes)
    assert programmes[0]["planned_minutes"] > 0
    assert body["missed"] and all(m["title"] == MASKED for m in body["missed"])
    for part in ("summary", "missed"):
        table = bed.call("operator", "GET", "/reports/broadcast", params={**window, "format": "csv", "part": part})
        assert table.status_code == 200 and "KOT-SECRET" not in table.text and MASKED in table.text
    district = bed.call("admin", "GET", "/reports/broadcast", params=window).json()
    assert {p["title"] for p in district["programmes"]} == {"KOT-SECRET"}


def test_leak_group_in_use_names_only_the_principals_programmes(bed: Bed) -> None:
    """LEAK: deleting its own group answered a tra-son operator with the title of the district's programme
    reaching tra-kot that uses it ('used by programme(s) #1 "KOT-SECRET"')."""
    shared, gid = _shared_programme(bed)
    r = bed.call("operator", "DELETE", f"/receiver-groups/{gid}")
    assert r.status_code == 409 and "KOT-SECRET" not in r.text and f"#{shared['id']}" not in r.text
    assert "1 programme of another commune" in r.json()["detail"]
    own = bed.programme("admin", "Chợ Trà Sơn", at(11), targets={"groups": [gid]}).json()
    r = bed.call("operator", "DELETE", f"/receiver-groups/{gid}")
    assert r.status_code == 409 and f'#{own["id"]} "Chợ Trà Sơn"' in r.json()["detail"]
    assert "and 1 programme of another commune" in r.json()["detail"] and "KOT-SECRET" not in r.text
    r = bed.call("admin", "DELETE", f"/receiver-groups/{gid}")  # the district is told everything
    assert r.status_code == 409 and "KOT-SECRET" in r.text and "Chợ Trà Sơn" in r.text


def test_leak_a_group_name_of_another_commune_is_not_confirmed(bed: Bed) -> None:
    """LEAK: creating a group named as another commune's (invisible) group answered 409 '... exists
    already', confirming the name. Names stay unique; the refusal no longer says why."""
    kot = bed.call("admin", "POST", "/receiver-groups", json={"name": "Loa chợ Trà Kót",
                                                              "receivers": bed.receivers["tra-kot"][:2]})
    assert kot.status_code == 201
    r = bed.call("operator", "POST", "/receiver-groups", json={"name": "Loa chợ Trà Kót",
                                                               "receivers": bed.receivers["tra-son"][:1]})
    detail = r.json()["detail"]
    assert r.status_code == 409 and "exist" not in detail and "commune" not in detail and "choose another" in detail
    own = bed.call("operator", "POST", "/receiver-groups", json={"name": "Loa chợ Trà Sơn",
                                                                 "receivers": bed.receivers["tra-son"][:1]})
    assert own.status_code == 201
    again = bed.call("operator", "POST", "/receiver-groups", json={"name": "Loa chợ Trà Sơn",
                                                                   "receivers": bed.receivers["tra-son"][:1]})
    assert again.status_code == 409 and "exists already" in again.json()["detail"]  # its own: said plainly
    assert bed.call("admin", "GET", "/receiver-groups").json()["count"] == 2


# -------------------------------------------------------------------------------------- emergency class


def test_emergency_class_programmes_need_the_emergency_right(bed: Bed) -> None:
    r = bed.programme("leader", "Diễn tập", at(9), priority="emergency")
    assert r.status_code == 403 and "emergency:trigger" in r.json()["detail"]
    made = bed.programme("writer-emergency", "Diễn tập", at(9), priority="emergency")
    assert made.status_code == 201 and made.json()["approved"]  # the emergency right is its approval
    pid = made.json()["id"]
    for method, path, body in [("PATCH", f"/programmes/{pid}", {"title": "Diễn tập 2"}),
                               ("PATCH", f"/programmes/{pid}", {"priority": "normal"}),
                               ("POST", f"/programmes/{pid}/pause", None),
                               ("DELETE", f"/programmes/{pid}", None)]:
        r = bed.call("leader", method, path, json=body)
        assert r.status_code == 403, (method, path, r.text)
    assert bed.call("writer-emergency", "DELETE", f"/programmes/{pid}").status_code == 204


# ------------------------------------------------------------------------------------------ approval


def test_an_operators_programme_is_a_draft_on_no_plan_until_a_leader_approves_it(bed: Bed) -> None:
    r = bed.programme("operator", "Bản tin sáng", at(6))
    assert r.status_code == 201, r.text
    draft = r.json()
    assert draft["approved"] is False and draft["approved_by"] is None and draft["approved_at"] is None
    assert draft["next"]  # it shows when it would play
    # Drafts are proposals: a second one at the same time is no clash.
    rival = bed.programme("operator", "Nhạc sáng", at(6, 2))
    assert rival.status_code == 201
    assert draft["id"] not in bed.scheduled("admin") and draft["id"] not in bed.on_plans()
    with Session(bed.engine) as s:
        assert load_programmes(s) == [] and len(load_programmes(s, drafts=True)) == 2
    drafts = bed.call("leader", "GET", "/programmes", params={"approved": False}).json()
    assert drafts["count"] == 2
    # Who may approve: content:approve (403 without), in every commune the programme reaches (404 outside).
    assert bed.call("operator", "POST", f"/programmes/{draft['id']}/approve").status_code == 403
    assert bed.call("leader-kot", "POST", f"/programmes/{draft['id']}/approve").status_code == 404
    ok = bed.call("leader", "POST", f"/programmes/{draft['id']}/approve")
    assert ok.status_code == 200, ok.text
    approved = ok.json()
    assert approved["approved"] and approved["approved_by"].endswith(":lanh-dao-tra-son")
    assert approved["approved_at"].endswith("+07:00")
    assert draft["id"] in bed.scheduled("operator") and draft["id"] in bed.on_plans()
    # Approving the rival now would put two programmes at once on the same receivers.
    clash = bed.call("leader", "POST", f"/programmes/{rival.json()['id']}/approve")
    assert clash.status_code == 409 and f"#{draft['id']}" in clash.json()["detail"]
    with Session(bed.engine) as s:
        actions = {(a.action, a.outcome) for a in s.exec(select(AuditEntry).where(
            col(AuditEntry.action).startswith("programme.")))}
        assert {("programme.approve", "ok"), ("programme.approve", "refused"), ("programme.create", "ok")} <= actions


def test_an_edit_after_approval_needs_a_new_approval(bed: Bed) -> None:
    p = bed.programme("leader", "Bản tin sáng", at(6)).json()
    assert p["approved"] and p["approved_by"].endswith(":lanh-dao-tra-son")  # a leader's is approved at once
    paused = bed.call("operator", "POST", f"/programmes/{p['id']}/pause").json()
    assert paused["approved"] and paused["paused"]  # pausing and resuming change nothing that plays
    resumed = bed.call("operator", "POST", f"/programmes/{p['id']}/resume").json()
    assert resumed["approved"] and p["id"] in bed.on_plans()
    edited = bed.call("operator", "PATCH", f"/programmes/{p['id']}", json={"start": at(7)}).json()
    assert edited["approved"] is False and edited["approved_by"] is None
    assert p["id"] not in bed.scheduled("admin") and p["id"] not in bed.on_plans()
    again = bed.call("leader", "PATCH", f"/programmes/{p['id']}", json={"title": "Bản tin sáng (sửa)"}).json()
    assert again["approved"] and again["approved_at"] >= p["approved_at"]
    assert p["id"] in bed.on_plans()
    with Session(bed.engine) as s:
        entry = s.exec(select(AuditEntry).where(AuditEntry.action == "programme.edit",
                                                col(AuditEntry.detail).contains("back to draft"))).one()
        assert "can-bo-tra-son" in entry.actor


def test_a_commune_that_does_not_require_approval_puts_an_operators_programme_on_air(bed: Bed) -> None:
    with Session(bed.engine) as s:
        commune = s.exec(select(Commune).where(Commune.code == "tra-son")).one()
        commune.approval_required = False
        s.add(commune)
        s.commit()
    p = bed.programme("operator", "Bản tin sáng", at(6)).json()
    assert p["approved"] and p["id"] in bed.on_plans()
    # Reaching a commune that does require it (by the district) keeps it a draft.
    both = bed.programme("admin", "Hai xã", at(8), targets={"communes": ["tra-son", "tra-kot"]}).json()
    assert both["approved"]  # the district approves everywhere


def test_the_report_plans_only_approved_programmes(bed: Bed) -> None:
    """Planned minutes come from approved programmes; a draft plans nothing (it is on no plan)."""
    on_air = bed.programme("leader", "Bản tin chiều", at(17), rrule="FREQ=DAILY").json()
    draft = bed.programme("operator", "Nháp chiều", at(18), rrule="FREQ=DAILY").json()
    assert on_air["approved"] and not draft["approved"]
    three_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    with Session(bed.engine) as s:  # as though they had been running for a while
        for row in s.exec(select(Programme)):
            row.start = row.start - dt.timedelta(days=3)
            s.add(row)
        s.commit()
    window = {"from": three_days_ago.astimezone(TZ).isoformat(), "to": dt.datetime.now(TZ).isoformat()}
    report = bed.call("operator", "GET", "/reports/broadcast", params=window)
    assert report.status_code == 200, report.text
    planned = {p["programme_id"]: p["planned_minutes"] for p in report.json()["programmes"]}
    assert planned.get(on_air["id"], 0) > 0 and draft["id"] not in planned
    table = bed.call("operator", "GET", "/reports/broadcast", params={**window, "format": "csv"})
    assert table.headers["content-type"].startswith("text/csv") and table.text.startswith("\ufeff")
    assert table.text.splitlines()[0].lstrip("\ufeff") == ("commune,programme_id,title,occurrences,planned_minutes,"
                                                           "planned_receiver_minutes,played_receiver_minutes,"
                                                           "completion_percent")
