"""Pre-recorded warnings (issue 13): one recording per event type, set and removed only over the whole
district, listed for anyone with the emergency right; an emergency of a recorded type plays the chime, the
recording and the communes' names instead of synthesising its text."""

from __future__ import annotations

import io
import math
import struct
import wave
from collections.abc import Iterator

import pytest
from sqlmodel import Session, select

from controller.db.models import AuditEntry, Emergency
from controller.services import emergencies
from controller.services.accounts import issue_token
from controller.services.emergencies import EmergencyCreate
from tests.conftest import Api

from .test_emergencies import TEXT
from .test_emergency_preview import as_token

DUTY = ["emergency:trigger", "receivers:read", "content:read"]  # the emergency-duty role, as a token
OPERATOR = ["receivers:read", "receivers:control", "content:read", "content:write"]  # a commune operator's
VIEWER = ["receivers:read", "content:read"]


def wav(seconds: float = 2.0, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * 330 * i / rate)
                                                      * (0.6 + 0.4 * math.sin(2 * math.pi * 3 * i / rate))))
                               for i in range(int(seconds * rate))))
    return buf.getvalue()


def headers(api: Api, name: str, scopes: list[str], communes: list[str] | None = None) -> dict[str, str]:
    with Session(api.engine) as s:
        return {"Authorization": f"Bearer {issue_token(s, name, scopes, communes)[1]}"}


def put(api: Api, event_type: str, data: bytes, name: str = "lu-quet.wav", h: dict[str, str] | None = None) -> object:
    return api.client.put(f"/api/v1/warnings/{event_type}", files={"file": (name, data, "audio/wav")},
                          headers=h or api.headers)


def listed(api: Api, h: dict[str, str] | None = None) -> dict[str, dict]:
    r = api.client.get("/api/v1/warnings", headers=h or api.headers)
    assert r.status_code == 200, r.text
    return {w["event_type"]: w for w in r.json()["data"]}


@pytest.fixture
def recorded(api: Api) -> Iterator[Api]:
    r = put(api, "flash-flood", wav(3.0))
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    yield api


def test_set_list_replace_remove_audited(api: Api) -> None:
    before = listed(api)
    assert before["flash-flood"] == {"event_type": "flash-flood", "name": "Lũ quét", "recorded": False,
                                     "duration_s": None, "media_url": None, "source_filename": None,
                                     "created_by": None, "created_at": None}
    assert len(before) >= 11
    r = put(api, "flash-flood", wav(2.0))
    assert r.status_code == 200 and r.json()["recorded"] and 1.5 < r.json()["duration_s"] < 2.5, r.text
    first = r.json()["media_url"]
    assert api.client.get(first).status_code == 200
    r = put(api, "flash-flood", wav(3.0), "moi.wav")  # a replacement
    now = listed(api)["flash-flood"]
    assert r.status_code == 200 and now["media_url"] != first and now["source_filename"] == "moi.wav"
    assert api.delete("/api/v1/warnings/flash-flood").status_code == 204
    assert listed(api)["flash-flood"]["recorded"] is False
    assert api.delete("/api/v1/warnings/flash-flood").status_code == 404
    with Session(api.engine) as s:
        actions = [(a.action, a.outcome, a.target) for a in s.exec(select(AuditEntry)) if a.action.startswith("warn")]
    assert actions == [("warning.set", "ok", "flash-flood")] * 2 + [("warning.remove", "ok", "flash-flood")]


def test_who_may_list_set_and_remove(recorded: Api) -> None:
    api = recorded
    operator = headers(api, "can-bo-tra-nu", OPERATOR, ["tra-nu"])
    viewer = headers(api, "xem", VIEWER)
    nu_duty = headers(api, "truc-tra-nu", DUTY, ["tra-nu"])
    nu_admin = headers(api, "admin-tra-nu", ["admin"], ["tra-nu"])
    district_duty = headers(api, "truc-huyen", DUTY)
    for h in (operator, viewer):
        assert api.client.get("/api/v1/warnings", headers=h).status_code == 403
        assert put(api, "flash-flood", wav(), h=h).status_code == 403  # type: ignore[attr-defined]
        assert api.client.delete("/api/v1/warnings/flash-flood", headers=h).status_code == 403
    # A commune's emergency duty (or even its admin) sees what its emergencies play, but cannot change what
    # every other commune hears.
    for h in (nu_duty, nu_admin):
        assert listed(api, h)["flash-flood"]["recorded"] is True
        r = put(api, "flash-flood", wav(), h=h)
        assert r.status_code == 403 and "whole district" in r.json()["detail"]  # type: ignore[attr-defined]
        assert api.client.delete("/api/v1/warnings/flash-flood", headers=h).status_code == 403
    assert listed(api)["flash-flood"]["source_filename"] == "lu-quet.wav"  # unchanged
    assert put(api, "landslide", wav(), h=district_duty).status_code == 200  # type: ignore[attr-defined]
    with Session(api.engine) as s:
        refused = [a for a in s.exec(select(AuditEntry)) if a.outcome == "refused"]
    assert len(refused) >= 8


def test_uploads_refused_with_a_reason(api: Api) -> None:
    r = put(api, "flash-flood", b"this is not audio at all, only text" * 20, "note.txt")
    assert r.status_code == 415, r.text  # type: ignore[attr-defined]
    r = put(api, "flash-flood", b"")
    assert r.status_code == 422 and "empty" in r.json()["detail"]  # type: ignore[attr-defined]
    r = put(api, "no-such-event", wav())
    assert r.status_code == 404 and "flash-flood" in r.json()["detail"]  # type: ignore[attr-defined]
    api.client.app.state.settings.audio.max_upload_mb = 0.02  # type: ignore[attr-defined]
    r = put(api, "flash-flood", wav(2.0))  # 64 kB
    assert r.status_code == 413, r.text  # type: ignore[attr-defined]
    assert listed(api)["flash-flood"]["recorded"] is False


def test_an_emergency_of_a_recorded_type_plays_the_recording_then_the_communes(recorded: Api) -> None:
    api = recorded
    recording = listed(api)["flash-flood"]
    body = {"text": TEXT, "event_type": "flash-flood", "targets": {"communes": ["tra-nu", "tra-kot"]}}
    with as_token(api, None) as ctx:  # the confirmation the staff read first
        plan = emergencies.preview(ctx, EmergencyCreate.model_validate(body))
    assert plan.recorded and plan.event_type == "flash-flood" and plan.warning_url == recording["media_url"]
    assert plan.spoken_text == "Xã Trà Kót, xã Trà Nú." and plan.communes == ["tra-kot", "tra-nu"]
    r = api.post("/api/v1/emergencies", json=body)
    assert r.status_code == 202, r.text
    sent = r.json()
    assert sent["recorded"] is True and sent["event_type"] == "flash-flood"
    assert sent["spoken_text"] == "Xã Trà Kót, xã Trà Nú."
    assert sent["duration_s"] > recording["duration_s"] + 2  # the chime before, the names after
    with Session(api.engine) as s:
        row = s.get(Emergency, sent["id"])
        assert row is not None and row.engine == "recorded" and row.event_type == "flash-flood"
        assert row.text == TEXT  # kept for display
    shown = api.get(f"/api/v1/emergencies/{sent['id']}").json()
    assert shown["recorded"] is True and shown["event_type"] == "flash-flood" and shown["text"] == TEXT
    again = api.post("/api/v1/emergencies", json=body).json()
    assert again["id"] != sent["id"] and again["media_url"] == sent["media_url"]  # made once
    # Alone, without any text.
    alone = api.post("/api/v1/emergencies", json={"event_type": "flash-flood", "targets": {"communes": ["tra-nu"]}})
    assert alone.status_code == 202 and alone.json()["spoken_text"] == "Xã Trà Nú.", alone.text


def test_without_a_recording_the_text_is_synthesised_as_before(api: Api) -> None:
    r = api.post("/api/v1/emergencies", json={"text": TEXT, "event_type": "landslide",
                                              "targets": {"communes": ["tra-nu"]}})
    assert r.status_code == 202 and r.json()["recorded"] is False and r.json()["event_type"] == "landslide"
    assert "lũ quét" in r.json()["spoken_text"].lower()
    with Session(api.engine) as s:
        row = s.get(Emergency, r.json()["id"])
        assert row is not None and row.engine != "recorded" and row.event_type == "landslide"
    r = api.post("/api/v1/emergencies", json={"event_type": "landslide", "targets": {"communes": ["tra-nu"]}})
    assert r.status_code == 422 and "no pre-recorded warning" in r.json()["detail"]


@pytest.mark.parametrize(("change", "words"), [
    ({"event_type": "tsunami-on-mars"}, "unknown event_type"),
    ({"event_type": "flash-flood", "text": None, "bulletin_id": 1}, "event_type goes with text"),
])
def test_bad_event_types_are_refused(api: Api, change: dict, words: str) -> None:
    r = api.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-nu"]}, **change})
    assert r.status_code == 422 and words in str(r.json()["detail"]), r.text
