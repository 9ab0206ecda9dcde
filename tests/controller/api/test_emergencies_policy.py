"""The access policy on emergencies and CAP (issue 10): an emergency is seen, followed and cancelled only by a
principal whose communes hold every commune it reached; lists leave the others out; a CAP `Cancel` or `Update`
checks the communes of what it references before cancelling anything; content used by an emergency must be
visible (drafts are fine: the emergency right is the approval); the text actually spoken follows the
built-in and district abbreviations only (never a commune's list) and is answered and audited; an open event
stream ends once its token no longer holds; targets outside the principal's communes look like unknown ones.

Each test named `test_leak_…` failed before the service layer or before the security review's fixes (the
leak it closes is in its docstring)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from controller.db.models import Abbreviation, AuditEntry, Bulletin, Commune, Emergency, User
from controller.services import emergencies as emergency_service
from controller.services.accounts import issue_token
from tests.conftest import Api

from .test_emergencies import TEXT, audits, cap, commune_receivers, post_cap

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


def test_spoken_text_ignores_the_targeted_communes_list_and_is_audited(api: Api) -> None:
    """An emergency is read with the built-in and district lists only, even aimed at one commune that has its
    own expansion; the text actually spoken is answered and audited."""
    with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
        nu_id = s.exec(select(Commune.id).where(Commune.code == "tra-nu")).one()
        s.add(Abbreviation(abbr="TTX", commune_id=None, expansion="trung tâm xã", updated_by="test"))
        s.add(Abbreviation(abbr="TTX", commune_id=nu_id, expansion="thôn Trà Nú", updated_by="test"))
        s.commit()
    text = "Bà con TTX khẩn trương sơ tán."
    district = "Bà con trung tâm xã khẩn trương sơ tán."  # the district's list, not tra-nu's
    one = api.post("/api/v1/emergencies", json={"text": text, "targets": {"communes": ["tra-nu"]},
                                                "request_id": "ttx-1"}).json()
    assert one["spoken_text"] == district
    several = api.post("/api/v1/emergencies", json={"text": text, "targets": {"communes": ["tra-nu", "tra-kot"]}})
    assert several.json()["spoken_text"] == district
    again = api.post("/api/v1/emergencies", json={"text": text, "targets": {"communes": ["tra-nu"]},
                                                  "request_id": "ttx-1"}).json()
    assert again["duplicate"] is True and again["spoken_text"] == one["spoken_text"]
    with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
        entry = s.exec(select(AuditEntry).where(AuditEntry.target == one["id"],
                                                AuditEntry.action == "emergency.trigger")).one()
    assert f"spoken: {district!r}" in (entry.detail or "")


def test_leak_a_commune_operator_cannot_change_what_an_emergency_says(api: Api) -> None:
    """Leak: a commune operator (content:write in its commune) set `được` → `không được` in the commune's
    list, and an emergency to that commune "Bà con được về nhà." was read "Bà con không được về nhà.": the
    emergency text went through the single targeted commune's list. Neither text nor CAP uses it now."""
    operator = token(api, "canbo-tra-nu", ["tra-nu"], ["content:read", "content:write"])
    r = api.client.put("/api/v1/abbreviations/được", json={"expansion": "không được", "commune": "tra-nu"},
                       headers=operator)
    assert r.status_code in (200, 201), r.text  # its own commune's list is its to change
    said = api.post("/api/v1/emergencies", json={"text": "Bà con được về nhà.",
                                                 "targets": {"communes": ["tra-nu"]}}).json()["spoken_text"]
    assert "không" not in said and "được về nhà" in said, said
    # A CAP alert for that commune alone is read the district's way too.
    geocode = "<geocode><valueName>MaDVHC</valueName><value>{}</value></geocode>"
    only_nu = {geocode.format(code): "" for code in ("20932", "20917", "20920")}
    only_nu[geocode.format("20929")] = geocode.format("20905")  # Trà Nú
    status, alert = post_cap(api, cap("flash-flood-alert.xml", **only_nu,
                                      **{"<description>": "<description>Bà con được về nhà. "}))
    assert status == 202 and alert["receivers"] == commune_receivers(api, "tra-nu"), alert
    assert "được về nhà" in alert["spoken_text"] and "không được" not in alert["spoken_text"], alert


def sse(lines: list[str]) -> list[tuple[str, dict]]:
    """(event, data) of the SSE lines read so far."""
    out, kind = [], ""
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            out.append((kind, json.loads(line[6:])))
    return out


def follow_until_end(stream: Iterator[str], act: Callable[[], None], seconds: float = 15) -> list[tuple[str, dict]]:
    """Read the stream's lines; `act()` once the snapshot is in; return the events up to the end, failing if no end
    comes within `seconds` (keepalives keep the reading loop turning meanwhile)."""
    lines: list[str] = []
    acted = False
    deadline = time.monotonic() + seconds
    for line in stream:
        lines.append(line)
        events = sse(lines)
        if events and not acted:
            act()
            acted = True
        if events and events[-1][0] == "end":
            return events
        assert time.monotonic() < deadline, f"the stream did not end: {events}"
    raise AssertionError(f"the stream closed without an end: {sse(lines)}")


@pytest.mark.parametrize("how", ["revoke", "disable", "demote", "move"])
def test_leak_an_open_event_stream_ends_when_its_principal_no_longer_holds(
        api: Api, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """Leak: `GET /emergencies/{id}/events` was checked once, when it opened; revoking its token, disabling
    its owner, demoting the owner or moving it to another commune left it streaming progress for the rest of
    the emergency (up to hours). Now it ends — `end` with a reason, then closed — at the next batch or
    keepalive."""
    monkeypatch.setattr(emergency_service, "KEEPALIVE_S", 0.2)  # quiet here: no receiver is running
    engine = api.client.app.state.engine  # type: ignore[attr-defined]
    if how == "revoke":
        with Session(engine) as s:
            row, secret = issue_token(s, "truc-tra-nu", DUTY, ["tra-nu"])
            tid = row.id
        duty = {"Authorization": f"Bearer {secret}"}
    else:
        made = api.post("/api/v1/users", json={"username": "truc.tra-nu", "display_name": "Trực Trà Nú",
                                               "password": "mat-khau-dai-du-123", "role": "emergency_duty",
                                               "communes": ["tra-nu"]})
        assert made.status_code == 201, made.text
        uid = made.json()["id"]
        with Session(engine) as s:
            owner = s.get(User, uid)
            secret = issue_token(s, "truc-tra-nu", DUTY, ["tra-nu"], owner=owner)[1]
        duty = {"Authorization": f"Bearer {secret}"}
    eid = trigger(api, {"communes": ["tra-nu"]}, duty)

    def take_away() -> None:
        if how == "revoke":
            r = api.client.delete(f"/api/v1/tokens/{tid}", headers=api.headers)
        elif how == "disable":
            r = api.client.patch(f"/api/v1/users/{uid}", json={"disabled": True}, headers=api.headers)
        elif how == "demote":  # a role without the emergency right
            r = api.client.patch(f"/api/v1/users/{uid}", json={"role": "viewer"}, headers=api.headers)
        else:  # its communes changed to another: the emergency is no longer within them
            r = api.client.patch(f"/api/v1/users/{uid}", json={"communes": ["tra-kot"]}, headers=api.headers)
        assert r.status_code in (200, 204), r.text

    with api.client.stream("GET", f"/api/v1/emergencies/{eid}/events", headers=duty) as stream:
        assert stream.status_code == 200
        events = follow_until_end(stream.iter_lines(), take_away)
    kinds = [k for k, _ in events]
    assert kinds == ["snapshot", "end"], kinds  # no progress after the principal lost it
    assert events[-1][1]["reason"] and "totals" not in events[-1][1]
    ended = [a for a in audits(api, "emergency.read", "refused") if a.target == eid]
    assert ended and "event stream ended" in (ended[0].detail or "")


def test_leak_an_open_event_stream_sends_no_progress_after_the_token_is_revoked(api: Api) -> None:
    """Leak (as above, with progress to send): after the revocation, a cancel by the district still streamed
    every receiver's change to the revoked token; now the stream ends at that batch, before sending it."""
    with Session(api.client.app.state.engine) as s:  # type: ignore[attr-defined]
        row, secret = issue_token(s, "truc-tra-nu", DUTY, ["tra-nu"])
        tid = row.id
    duty = {"Authorization": f"Bearer {secret}"}
    eid = trigger(api, {"communes": ["tra-nu"]}, duty)

    def revoke_then_cancel() -> None:
        assert api.client.delete(f"/api/v1/tokens/{tid}", headers=api.headers).status_code == 204
        assert api.post(f"/api/v1/emergencies/{eid}/cancel").status_code == 200

    with api.client.stream("GET", f"/api/v1/emergencies/{eid}/events", headers=duty) as stream:
        events = follow_until_end(stream.iter_lines(), revoke_then_cancel)
    assert [k for k, _ in events] == ["snapshot", "end"] and "revoked" in events[-1][1]["reason"], events


@pytest.mark.parametrize("targets", [{"receivers": ["tra-bui-thon-1-1"]}, {"receivers": ["no-such-rx"]},
                                     {"communes": ["tra-bui"]}, {"communes": ["no-such-commune"]},
                                     {"villages": ["tra-bui/thon-1"]}, {"villages": ["nowhere/thon-9"]}])
@pytest.mark.parametrize("upload", [False, True])
def test_leak_targets_outside_the_communes_look_like_unknown_ones(
        api: Api, tmp_path: Path, targets: dict, upload: bool) -> None:
    """Leak: for a commune-limited token, a receiver (commune, village) of another commune was refused 403
    naming that commune while an unknown one was 422 "No receiver …": the answer told what exists elsewhere
    (and where). Both are now 404 "No <kind> '<name>'." — checked before anything is resolved."""
    nu = token(api, "truc-tra-nu", ["tra-nu"])
    if upload:
        from tests.samples import make

        wav = make(tmp_path / "canh-bao.wav", seconds=2)
        with wav.open("rb") as f:
            r = api.client.post("/api/v1/emergencies/upload", headers=nu, files={"file": ("canh-bao.wav", f)},
                                data={"targets": json.dumps(targets)})
    else:
        r = api.client.post("/api/v1/emergencies", json={"text": TEXT, "targets": targets}, headers=nu)
    kind, [name] = next((k, v) for k, v in targets.items())
    noun = {"receivers": "receiver", "communes": "commune", "villages": "village"}[kind]
    assert r.status_code == 404 and r.json() == {"detail": f"No {noun} {name!r}."}, r.text
    # `all` stays refused outright for a commune-limited token.
    r = api.client.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"all": True}}, headers=nu)
    assert r.status_code == 403


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
