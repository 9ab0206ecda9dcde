"""Emergencies and CAP alerts through the API, with the in-memory bridge (no receivers running: every targeted
receiver shows as offline). What the loudspeakers do is in tests/e2e/test_emergency.py."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from controller.db.models import AuditEntry, Emergency, EmergencyReceiver
from controller.services.accounts import issue_token
from schedules import TZ
from tests.conftest import Api, wait_for

SAMPLES = Path(__file__).parent.parent / "cap_samples"
TEXT = "Cảnh báo lũ quét. Bà con khẩn trương di chuyển đến nơi an toàn."


def commune_receivers(api: Api, code: str) -> list[str]:
    return sorted(r["id"] for r in api.get("/api/v1/receivers", params={"commune": code, "limit": 500}).json()["data"])


def audits(api: Api, action: str, outcome: str) -> list[AuditEntry]:
    with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action, AuditEntry.outcome == outcome)
                           .order_by(col(AuditEntry.id))))


def cap(name: str, **replace: str) -> bytes:
    """A sample alert, its times moved to today (the samples were written in 2024)."""
    text = (SAMPLES / name).read_text(encoding="utf-8")
    later = (dt.datetime.now(TZ) + dt.timedelta(hours=2)).replace(microsecond=0).isoformat()
    text = re.sub(r"<expires>[^<]+</expires>", f"<expires>{later}</expires>", text)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text.encode()


def post_cap(api: Api, body: bytes) -> tuple[int, dict]:
    r = api.client.post("/api/v1/cap", content=body, headers={**api.headers, "Content-Type": "application/cap+xml"})
    return r.status_code, r.json()


def test_trigger_answers_at_once_with_the_targeted_receivers(api: Api) -> None:
    r = api.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-nu"]}})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["receivers"] == commune_receivers(api, "tra-nu") and body["topics"] == ["commune:tra-nu"]
    assert body["inline"] is True  # a short warning travels inside the command
    got = api.get(f"/api/v1/emergencies/{body['id']}").json()
    n = len(body["receivers"])
    assert got["totals"]["targeted"] == n and got["totals"]["offline"] == n  # nobody is running here
    assert {x["status"] for x in got["receivers"]} == {"offline"}
    assert {x["commune"] for x in got["receivers"]} == {"tra-nu"}
    [entry] = audits(api, "emergency.trigger", "ok")
    assert entry.target == body["id"] and "commune:tra-nu" in (entry.detail or "")
    # A village target reaches only that village's receivers, one publish each.
    village = api.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"villages": ["tra-nu/thon-1"]}}).json()
    assert village["topics"] == [f"receiver:{rid}" for rid in village["receivers"]]
    assert all(rid.startswith("tra-nu-thon-1-") for rid in village["receivers"])


def test_the_same_request_id_makes_one_emergency(api: Api) -> None:
    body = {"text": TEXT, "targets": {"communes": ["tra-kot"]}, "request_id": "lu-2026-11-26-01"}
    first = api.post("/api/v1/emergencies", json=body).json()
    again = api.post("/api/v1/emergencies", json=body).json()
    assert again["id"] == first["id"] and again["duplicate"] is True
    by_header = api.client.post("/api/v1/emergencies", json={**body, "request_id": None},
                                headers={**api.headers, "Idempotency-Key": "lu-2026-11-26-01"}).json()
    assert by_header["id"] == first["id"]
    with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
        assert len(s.exec(select(Emergency)).all()) == 1


def test_cancel_marks_every_receiver_cancelled_and_is_audited(api: Api) -> None:
    eid = api.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-kot"]}}).json()["id"]
    r = api.post(f"/api/v1/emergencies/{eid}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert r.json()["totals"]["cancelled"] == r.json()["totals"]["targeted"] > 0
    assert audits(api, "emergency.cancel", "ok")[0].target == eid

    def stored() -> set[str]:  # progress reaches the database too (what a restarted controller reads)
        with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
            return set(s.exec(select(EmergencyReceiver.status).where(EmergencyReceiver.emergency_id == eid)))

    wait_for(lambda: stored() == {"cancelled"}, 5, "cancelled in the database")
    assert api.post("/api/v1/emergencies/no-such-id/cancel").status_code == 404


@pytest.mark.parametrize("change, status, words", [
    ({"bulletin_id": 1}, 422, "exactly one of"),
    ({"text": "   "}, 422, "blank"),
    ({"targets": {"communes": ["atlantis"]}}, 422, "atlantis"),
    ({"targets": {}}, 422, "no receiver"),
    ({"expires_at": "2020-01-01T00:00:00+07:00"}, 422, "already past"),
    ({"expires_at": "2099-01-01T00:00:00+07:00"}, 422, "at most"),
    ({"volume": 101}, 422, "volume"),
    ({"repeat": 0}, 422, "repeat"),
])
def test_bad_requests_are_refused_with_a_reason(api: Api, change: dict, status: int, words: str) -> None:
    r = api.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-kot"]}, **change})
    assert r.status_code == status and words in str(r.json()["detail"]), r.text
    with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
        assert s.exec(select(Emergency)).all() == []


def test_tokens_without_the_scope_or_outside_their_communes_are_refused_and_audited(api: Api) -> None:
    body = {"text": TEXT, "targets": {"communes": ["tra-kot"]}}
    assert api.client.post("/api/v1/emergencies", json=body).status_code == 401
    with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
        reader = issue_token(s, "viewer", ["receivers:read"])[1]
        nu_only = issue_token(s, "xa-tra-nu", ["emergency:trigger"], communes=["tra-nu"])[1]
    r = api.client.post("/api/v1/emergencies", json=body, headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 403 and "emergency:trigger" in r.json()["detail"]
    r = api.client.post("/api/v1/emergencies", json=body, headers={"Authorization": f"Bearer {nu_only}"})
    # Outside its communes is answered as if it did not exist (see test_emergencies_policy).
    assert r.status_code == 404 and r.json()["detail"] == "No commune 'tra-kot'."
    assert any("emergency:trigger" in (a.detail or "") for a in audits(api, "api.emergency:trigger", "refused"))
    [refused] = audits(api, "emergency.trigger", "refused")
    assert "xa-tra-nu" in refused.actor and "tra-kot" in (refused.detail or "")
    ok = api.client.post("/api/v1/emergencies", json={**body, "targets": {"communes": ["tra-nu"]}},
                         headers={"Authorization": f"Bearer {nu_only}"})
    assert ok.status_code == 202


def test_rate_limit_per_token(api: Api) -> None:
    api.client.app.state.settings.emergency.rate_per_minute = 2  # type: ignore[attr-defined]
    body = {"text": TEXT, "targets": {"communes": ["tra-kot"]}}
    assert [api.post("/api/v1/emergencies", json=body).status_code for _ in range(3)] == [202, 202, 429]
    assert audits(api, "emergency.trigger", "refused")


def test_cap_alert_update_and_cancel(api: Api) -> None:
    status, alert = post_cap(api, cap("flash-flood-alert.xml"))
    assert status == 202 and alert["action"] == "created", alert
    got = api.get(f"/api/v1/emergencies/{alert['id']}").json()
    communes = {x["commune"] for x in got["receivers"]}
    assert communes == {"tra-giap", "tra-ka", "tra-bui", "tra-doc"}, communes
    assert got["source"] == "cap" and got["cap_identifier"] == "QNM-LQ-20241028-001" and got["area_desc"]
    assert "lũ" in (got["text"] or "").lower()
    status, again = post_cap(api, cap("flash-flood-alert.xml"))
    assert status == 202 and again["id"] == alert["id"]  # the same alert twice is one emergency
    status, update = post_cap(api, cap("flash-flood-update.xml"))
    assert status == 202 and update["action"] == "updated" and update["cancelled"] == [alert["id"]]
    assert api.get(f"/api/v1/emergencies/{alert['id']}").json()["state"] == "cancelled"
    status, cancel = post_cap(api, cap("flash-flood-cancel.xml"))
    assert status == 202 and set(cancel["cancelled"]) == {alert["id"], update["id"]}
    assert api.get(f"/api/v1/emergencies/{update['id']}").json()["state"] == "cancelled"
    assert len(audits(api, "cap.receive", "ok")) == 3


def test_cap_test_and_exercise_reach_only_receivers_marked_for_tests(api: Api) -> None:
    status, body = post_cap(api, cap("flash-flood-exercise.xml"))  # its area: Trà Tân and Trà Giác
    assert status == 422 and "marked for tests" in body["detail"]
    tester = commune_receivers(api, "tra-tan")[0]
    r = api.client.patch(f"/api/v1/receivers/{tester}", json={"accepts_tests": True}, headers=api.headers)
    assert r.status_code == 200 and r.json()["accepts_tests"] is True
    status, body = post_cap(api, cap("flash-flood-exercise.xml"))
    assert status == 202 and body["receivers"] == [tester], body


@pytest.mark.parametrize("body, status, words", [
    (b"<alert>not closed", 422, "not XML"),
    (b'<?xml version="1.0"?><alarm xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>', 422, "alarm"),
    (None, 422, "none of its areas"),
    ("draft", 422, "not broadcast"),
    ("unknown-reference", 404, "refers to no alert"),
])
def test_bad_cap_is_refused_with_what_is_wrong(api: Api, body: bytes | str | None, status: int, words: str) -> None:
    if body is None:
        body = cap("flash-flood-alert.xml", **{f"<value>{v}</value>": "<value>99999</value>"
                                               for v in ("20929", "20932", "20917", "20920")})
    elif body == "draft":
        body = cap("flash-flood-alert.xml", **{"<status>Actual</status>": "<status>Draft</status>"})
    elif body == "unknown-reference":
        body = cap("flash-flood-cancel.xml")
    assert isinstance(body, bytes)
    got_status, got = post_cap(api, body)
    assert got_status == status and words in got["detail"], got
    assert audits(api, "cap.receive", "refused")
    with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
        assert s.exec(select(Emergency)).all() == []


def test_an_uploaded_recording_becomes_an_emergency(api: Api, tmp_path: Path) -> None:
    from tests.samples import make

    wav = make(tmp_path / "canh-bao.wav", seconds=4)
    with wav.open("rb") as f:
        r = api.client.post("/api/v1/emergencies/upload", headers=api.headers, files={"file": ("canh-bao.wav", f)},
                            data={"targets": '{"communes": ["tra-giap"]}', "title": "Cảnh báo sạt lở", "repeat": "3"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["receivers"] == commune_receivers(api, "tra-giap") and body["inline"] is True
    got = api.get(f"/api/v1/emergencies/{body['id']}").json()
    assert got["source"] == "upload" and got["title"] == "Cảnh báo sạt lở" and got["repeat"] == 3
    bad = api.client.post("/api/v1/emergencies/upload", headers=api.headers, files={"file": ("note.txt", b"no audio")},
                          data={"targets": '{"communes": ["tra-giap"]}'})
    assert bad.status_code == 415, bad.text
    broken = api.client.post("/api/v1/emergencies/upload", headers=api.headers,
                             files={"file": ("a.wav", wav.read_bytes())}, data={"targets": "tra-giap"})
    assert broken.status_code == 422 and "targets" in broken.json()["detail"]


def test_unsigned_cap_is_refused_where_signatures_are_required(api: Api) -> None:
    api.client.app.state.settings.emergency.cap_require_signature = True  # type: ignore[attr-defined]
    status, body = post_cap(api, cap("flash-flood-alert.xml"))
    assert status == 422 and "unsigned" in body["detail"], body
    [refusal] = audits(api, "cap.receive", "refused")
    assert "unsigned" in (refusal.detail or "")


def test_a_long_expired_emergency_is_read_from_the_database(api: Api) -> None:
    eid = api.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-kot"]}}).json()["id"]
    tracker = api.client.app.state.tracker  # type: ignore[attr-defined]
    live = tracker.live[eid]
    tracker._prune(live.expires_at + dt.timedelta(minutes=5))
    assert eid in tracker.live  # still within the grace period for late acks
    wait_for(lambda: not tracker._dirty, 5, "progress written")
    tracker._prune(live.expires_at + dt.timedelta(minutes=11))
    assert eid not in tracker.live and not set(live.command_ids) & set(tracker.by_command)
    got = api.get(f"/api/v1/emergencies/{eid}").json()
    assert got["totals"]["targeted"] == len(commune_receivers(api, "tra-kot")) and got["state"] == "active"
