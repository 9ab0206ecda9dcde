"""The access policy on emergencies and CAP (issue 10): an emergency is seen, followed and cancelled only by a
principal whose communes hold every commune it reached; lists leave the others out; a CAP `Cancel` or `Update`
checks the communes of what it references before cancelling anything; content used by an emergency must be
visible (drafts are fine: the emergency right is the approval); the text actually spoken follows the
targeted commune's abbreviations and is answered and audited.

Each test named `test_leak_…` failed before the service layer (the leak it closes is in its docstring)."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, select

from controller.db.models import Abbreviation, AuditEntry, Bulletin, Commune, Emergency
from controller.services.accounts import issue_token
from tests.conftest import Api

from .test_emergencies import TEXT, audits, cap, post_cap

# What an emergency-duty officer of one commune holds (the role `emergency_duty`, as a token).
DUTY = ["emergency:trigger", "receivers:read", "content:read"]


def token(api: Api, name: str, communes: list[str] | None, scopes: list[str] = DUTY) -> dict[str, str]:
    with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
        return {"Authorization": f"Bearer {issue_token(s, name, scopes, communes)[1]}"}


def trigger(api: Api, targets: dict, headers: dict[str, str] | None = None) -> str:
    r = api.client.post("/api/v1/emergencies", json={"text": TEXT, "targets": targets},
                        headers=headers or api.headers)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def stored(api: Api, eid: str) -> Emergency:
    with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
        row = s.get(Emergency, eid)
        assert row is not None
        return row


def test_leak_list_shows_only_emergencies_wholly_within_the_communes(api: Api) -> None:
    """Leak: a commune-limited token listed every emergency of the district."""
    own = trigger(api, {"communes": ["tra-nu"]})
    trigger(api, {"communes": ["tra-kot"]})
    trigger(api, {"communes": ["tra-nu", "tra-kot"]})  # reaches tra-nu, but not only tra-nu
    trigger(api, {"all": True})
    nu = token(api, "truc-tra-nu", ["tra-nu"])
    listed = api.client.get("/api/v1/emergencies", headers=nu).json()
    assert [e["id"] for e in listed["data"]] == [own] and listed["count"] == 1
    everything = api.get("/api/v1/emergencies", params={"limit": 2}).json()
    assert everything["count"] == 4 and len(everything["data"]) == 2  # the district sees all, paged


def test_leak_reading_another_communes_emergency_is_404_and_audited(api: Api) -> None:
    """Leak: a commune-limited token read any emergency's text and per-receiver status."""
    kot = trigger(api, {"communes": ["tra-kot"]})
    both = trigger(api, {"communes": ["tra-nu", "tra-kot"]})
    district = trigger(api, {"all": True})
    own = trigger(api, {"communes": ["tra-nu"]})
    nu = token(api, "truc-tra-nu", ["tra-nu"])
    for eid in (kot, both, district):
        r = api.client.get(f"/api/v1/emergencies/{eid}", headers=nu)
        assert r.status_code == 404 and r.json() == {"detail": f"No emergency {eid!r}."}, r.text
    missing = api.client.get("/api/v1/emergencies/no-such-id", headers=nu).json()
    assert missing == {"detail": "No emergency 'no-such-id'."}  # the same answer as for one outside
    got = api.client.get(f"/api/v1/emergencies/{own}", headers=nu)
    assert got.status_code == 200 and got.json()["text"] == TEXT
    refused = audits(api, "emergency.read", "refused")
    assert len(refused) == 3 and all("truc-tra-nu" in a.actor and a.address for a in refused)
    assert refused[0].target == f"GET /api/v1/emergencies/{kot}"


def test_leak_events_of_another_communes_emergency_are_refused_before_streaming(api: Api) -> None:
    """Leak: a commune-limited token streamed any emergency's progress events."""
    kot = trigger(api, {"communes": ["tra-kot"]})
    nu = token(api, "truc-tra-nu", ["tra-nu"])
    r = api.client.get(f"/api/v1/emergencies/{kot}/events", headers=nu)
    assert r.status_code == 404 and r.json()["detail"] == f"No emergency {kot!r}."
    assert audits(api, "emergency.read", "refused")
    # Its own emergency streams: once cancelled, the stream is the snapshot, the change, then the end.
    own = trigger(api, {"communes": ["tra-nu"]}, nu)
    assert api.client.post(f"/api/v1/emergencies/{own}/cancel", headers=nu).status_code == 200
    with api.client.stream("GET", f"/api/v1/emergencies/{own}/events", headers=nu) as stream:
        assert stream.status_code == 200
        kinds = [line[7:] for line in stream.iter_lines() if line.startswith("event: ")]
    assert kinds[0] == "snapshot" and kinds[-1] == "end"


def test_leak_cancelling_a_district_wide_emergency_is_refused(api: Api) -> None:
    """Leak: a commune-limited token cancelled a district-wide emergency (`POST …/{id}/cancel`)."""
    district = trigger(api, {"all": True})
    both = trigger(api, {"communes": ["tra-nu", "tra-kot"]})
    nu = token(api, "truc-tra-nu", ["tra-nu"])
    for eid in (district, both):
        r = api.client.post(f"/api/v1/emergencies/{eid}/cancel", headers=nu)
        assert r.status_code == 404, r.text
        assert stored(api, eid).cancelled_at is None
        assert api.get(f"/api/v1/emergencies/{eid}").json()["state"] == "active"
    assert audits(api, "emergency.cancel", "ok") == []
    assert len(audits(api, "emergency.cancel", "refused")) == 2
    own = trigger(api, {"communes": ["tra-nu"]}, nu)
    assert api.client.post(f"/api/v1/emergencies/{own}/cancel", headers=nu).json()["state"] == "cancelled"


def test_a_commune_limited_token_may_not_aim_at_every_receiver(api: Api) -> None:
    """`all` is the district's: even a token holding every commune that has receivers names them instead."""
    with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
        codes = [c.code for c in s.exec(select(Commune))]
    r = api.client.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"all": True}},
                        headers=token(api, "every-commune", codes))
    assert r.status_code == 403 and "every receiver" in r.json()["detail"]


def test_leak_cap_cancel_checks_the_communes_before_cancelling(api: Api) -> None:
    """Leak: a CAP Cancel cancelled the alerts it referenced before the communes were checked."""
    status, alert = post_cap(api, cap("flash-flood-alert.xml"))  # Trà Giáp, Trà Ka, Trà Bui, Trà Đốc
    assert status == 202, alert
    giap = token(api, "truc-tra-giap", ["tra-giap"])
    r = api.client.post("/api/v1/cap", content=cap("flash-flood-cancel.xml"),
                        headers={**giap, "Content-Type": "application/cap+xml"})
    assert r.status_code == 404 and "refers to no alert" in r.json()["detail"], r.text
    assert stored(api, alert["id"]).cancelled_at is None
    assert audits(api, "cap.receive", "refused") and audits(api, "emergency.cancel", "ok") == []


def test_leak_cap_update_checks_everything_before_cancelling_what_it_replaces(api: Api) -> None:
    """Leak: a CAP Update cancelled the alert it replaced, then was refused for its own communes — the
    warning was gone and nothing replaced it."""
    status, alert = post_cap(api, cap("flash-flood-alert.xml"))
    assert status == 202, alert
    four = token(api, "truc-4-xa", ["tra-giap", "tra-ka", "tra-bui", "tra-doc"])
    # The update also reaches Trà Tân and Trà Giác, outside this token's communes.
    r = api.client.post("/api/v1/cap", content=cap("flash-flood-update.xml"),
                        headers={**four, "Content-Type": "application/cap+xml"})
    assert r.status_code == 403 and "tra-giac" in r.json()["detail"], r.text
    assert stored(api, alert["id"]).cancelled_at is None
    with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
        assert len(s.exec(select(Emergency)).all()) == 1


def _bulletin(api: Api, tmp_path: Path, commune: str | None, approved: bool) -> int:
    """A bulletin uploaded by the district, then moved to `commune` and made a draft if asked."""
    from tests.samples import make

    wav = make(tmp_path / "canh-bao.wav", seconds=3)
    with wav.open("rb") as f:
        r = api.client.post("/api/v1/bulletins", headers=api.headers, files={"file": ("canh-bao.wav", f)},
                            data={"title": "Cảnh báo"})
    assert r.status_code == 201, r.text
    with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
        b = s.get(Bulletin, r.json()["id"])
        assert b is not None and b.id is not None
        if commune is not None:
            b.commune_id = s.exec(select(Commune.id).where(Commune.code == commune)).one()
        if not approved:
            b.approved_by = b.approved_at = None
        s.add(b)
        s.commit()
        return b.id


def test_leak_another_communes_bulletin_cannot_be_used_but_a_draft_can(api: Api, tmp_path: Path) -> None:
    """Leak: an emergency accepted any commune's bulletin id."""
    nu = token(api, "truc-tra-nu", ["tra-nu"])
    theirs = _bulletin(api, tmp_path, "tra-kot", approved=True)
    r = api.client.post("/api/v1/emergencies", json={"bulletin_id": theirs, "targets": {"communes": ["tra-nu"]}},
                        headers=nu)
    assert r.status_code == 404 and r.json()["detail"] == f"No bulletin {theirs}.", r.text
    draft = _bulletin(api, tmp_path, "tra-nu", approved=False)
    r = api.client.post("/api/v1/emergencies", json={"bulletin_id": draft, "targets": {"communes": ["tra-nu"]}},
                        headers=nu)
    assert r.status_code == 202, r.text  # not held for approval: the emergency right is the approval
    assert r.json()["spoken_text"] is None  # a recording


def test_spoken_text_follows_the_targeted_commune_and_is_audited(api: Api) -> None:
    with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
        nu_id = s.exec(select(Commune.id).where(Commune.code == "tra-nu")).one()
        s.add(Abbreviation(abbr="TTX", commune_id=None, expansion="trung tâm xã", updated_by="test"))
        s.add(Abbreviation(abbr="TTX", commune_id=nu_id, expansion="thôn Trà Nú", updated_by="test"))
        s.commit()
    text = "Bà con TTX khẩn trương sơ tán."
    one = api.post("/api/v1/emergencies", json={"text": text, "targets": {"communes": ["tra-nu"]},
                                                "request_id": "ttx-1"}).json()
    assert one["spoken_text"] == "Bà con thôn Trà Nú khẩn trương sơ tán."
    several = api.post("/api/v1/emergencies", json={"text": text, "targets": {"communes": ["tra-nu", "tra-kot"]}})
    assert several.json()["spoken_text"] == "Bà con trung tâm xã khẩn trương sơ tán."  # the district's list
    again = api.post("/api/v1/emergencies", json={"text": text, "targets": {"communes": ["tra-nu"]},
                                                  "request_id": "ttx-1"}).json()
    assert again["duplicate"] is True and again["spoken_text"] == one["spoken_text"]
    with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
        entry = s.exec(select(AuditEntry).where(AuditEntry.target == one["id"],
                                                AuditEntry.action == "emergency.trigger")).one()
    assert "spoken: 'Bà con thôn Trà Nú khẩn trương sơ tán.'" in (entry.detail or "")


def test_cap_text_is_spoken_with_the_district_list_and_answered(api: Api) -> None:
    status, alert = post_cap(api, cap("flash-flood-alert.xml"))
    assert status == 202 and alert["spoken_text"] and "lũ" in alert["spoken_text"].lower(), alert


def test_leak_emergency_speech_stays_out_of_the_content_library(api: Api) -> None:
    """Leak: the audio of an emergency's text was kept as a district-wide announcement, whose text every
    commune's staff could list. It now stays with the emergency; the same spoken text reuses its audio."""
    first = api.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-kot"]}}).json()
    again = api.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-kot"]},
                                                  "request_id": "again"}).json()
    assert again["id"] != first["id"] and again["media_url"] == first["media_url"]
    operator = token(api, "canbo-tra-nu", ["tra-nu"], ["content:read"])
    listed = api.client.get("/api/v1/announcements", headers=operator).json()
    assert listed["count"] == 0 and TEXT not in str(listed)
    assert api.get("/api/v1/announcements").json()["count"] == 0  # nobody's library holds it
    assert stored(api, first["id"]).spoken_text == first["spoken_text"]
