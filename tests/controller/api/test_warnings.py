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

from controller.db.models import AuditEntry, Emergency, MediaFile, WarningRecording
from controller.errors import Invalid
from controller.services import emergencies
from controller.services import warnings as warning_service
from controller.services.accounts import issue_token
from controller.services.emergencies import EmergencyCreate, EmergencyTargets
from controller.ui.i18n import t
from tests.conftest import Api

from .test_emergencies import TEXT, cap, commune_receivers, post_cap
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
    with Session(api.engine) as s:
        refused = [a.detail for a in s.exec(select(AuditEntry)) if (a.action, a.outcome) == ("warning.set", "refused")]
    assert len(refused) == 3 and "larger" in (refused[-1] or "").lower(), refused  # 415, 422 and the 413


def test_an_emergency_of_a_recorded_type_plays_the_recording_then_the_communes(recorded: Api) -> None:
    api = recorded
    recording = listed(api)["flash-flood"]
    body = {"text": TEXT, "event_type": "flash-flood", "targets": {"communes": ["tra-nu", "tra-kot"]},
            "key_instruction": "Di chuyển ngay"}
    said = f"Xã Trà Kót, xã Trà Nú. {TEXT} Xin nhắc lại: Di chuyển ngay."  # the names, the text, its key
    with as_token(api, None) as ctx:  # the confirmation the staff read first
        plan = emergencies.preview(ctx, EmergencyCreate.model_validate(body))
    assert plan.recorded and plan.event_type == "flash-flood" and plan.warning_url == recording["media_url"]
    assert plan.spoken_text == said and plan.communes == ["tra-kot", "tra-nu"]
    r = api.post("/api/v1/emergencies", json=body)
    assert r.status_code == 202, r.text
    sent = r.json()
    assert sent["recorded"] is True and sent["event_type"] == "flash-flood"
    assert sent["spoken_text"] == said  # what was read after the recording, the typed text too
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
    with as_token(api, None) as ctx, pytest.raises(Invalid) as refused:  # the staff UI says it in Vietnamese
        emergencies.preview(ctx, EmergencyCreate(event_type="landslide", targets=EmergencyTargets(communes=["tra-nu"])))
    assert refused.value.code == "warning_missing"
    assert t("errors.warning_missing", **refused.value.params).startswith("Chưa có bản ghi cảnh báo «sạt lở đất»")


@pytest.mark.parametrize(("change", "words"), [
    ({"event_type": "tsunami-on-mars"}, "unknown event_type"),
    ({"event_type": "flash-flood", "text": None, "bulletin_id": 1}, "event_type goes with text"),
])
def test_bad_event_types_are_refused(api: Api, change: dict, words: str) -> None:
    r = api.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-nu"]}, **change})
    assert r.status_code == 422 and words in str(r.json()["detail"]), r.text


def test_cap_tests_and_all_clears_are_read_not_recorded(recorded: Api) -> None:
    api = recorded
    status, alert = post_cap(api, cap("flash-flood-alert.xml"))  # Actual, Evacuate: the recording
    names = "Xã Trà Bui, xã Trà Đốc, xã Trà Giáp, xã Trà Ka."
    assert status == 202 and alert["recorded"] is True and alert["spoken_text"].startswith(names + " "), alert
    assert "lũ quét" in alert["spoken_text"].lower()  # then the alert's own text
    # The all-clear that updates it says the danger is over: its text is read, not the warning.
    status, clear = post_cap(api, cap("flash-flood-update.xml", **{
        "<responseType>Evacuate</responseType>": "<responseType>AllClear</responseType>"}))
    assert status == 202 and clear["action"] == "updated" and clear["recorded"] is False, clear
    assert clear["engine"] != "recorded" and not clear["spoken_text"].startswith(names)
    # A test alert never plays the real warning.
    tester = commune_receivers(api, "tra-tan")[0]
    assert api.client.patch(f"/api/v1/receivers/{tester}", json={"accepts_tests": True},
                            headers=api.headers).status_code == 200
    status, test = post_cap(api, cap("flash-flood-exercise.xml",
                                     **{"<status>Exercise</status>": "<status>Test</status>"}))
    assert status == 202 and test["event_type"] == "flash-flood" and test["recorded"] is False, test
    assert test["engine"] != "recorded"


def test_a_damaged_recording_is_read_instead_and_a_damaged_index_made_again(recorded: Api) -> None:
    api = recorded
    body = {"text": TEXT, "event_type": "flash-flood", "targets": {"communes": ["tra-nu"]}}
    first = api.post("/api/v1/emergencies", json=body).json()
    assert first["recorded"] is True
    index = api.client.app.state.settings.data_dir / "warning-audio"  # type: ignore[attr-defined]
    for f in index.iterdir():
        f.write_bytes(b"\xff\xfe{ not json")
    again = api.post("/api/v1/emergencies", json=body)
    assert again.status_code == 202 and again.json()["recorded"] is True, again.text
    store = api.client.app.state.media  # type: ignore[attr-defined]
    with Session(api.engine) as s:
        sha = s.get(WarningRecording, "flash-flood").media_sha256  # type: ignore[union-attr]
    store.path(sha).write_bytes(b"damaged on the card")
    body["targets"] = {"communes": ["tra-kot"]}  # other names: made afresh from the recording
    r = api.post("/api/v1/emergencies", json=body)
    assert r.status_code == 202, r.text
    sent = r.json()
    assert sent["recorded"] is False and sent["engine"] not in (None, "recorded") and "lũ quét" in sent["spoken_text"]
    with Session(api.engine) as s:
        row = s.get(Emergency, sent["id"])
        assert row is not None and row.engine != "recorded" and row.event_type == "flash-flood"
    with Session(api.engine) as s:
        detail = [a.detail or "" for a in s.exec(select(AuditEntry)) if a.action == "emergency.trigger"][-1]
    assert "could not be played" in detail


def test_deleting_a_bulletin_keeps_audio_a_warning_shares(api: Api) -> None:
    data = wav(2.0)
    bulletin = api.client.post("/api/v1/bulletins", data={"title": "Lũ quét"}, headers=api.headers,
                               files={"file": ("lu-quet.wav", data, "audio/wav")}).json()
    warning = put(api, "flash-flood", data).json()  # type: ignore[attr-defined]
    assert bulletin["media_url"] == warning["media_url"]  # one file
    assert api.delete(f"/api/v1/bulletins/{bulletin['id']}").status_code == 204
    assert listed(api)["flash-flood"]["recorded"] is True and api.client.get(warning["media_url"]).status_code == 200
    with Session(api.engine) as s:
        assert [a.outcome for a in s.exec(select(AuditEntry)) if a.action == "bulletin.delete"] == ["ok"]


def test_two_first_uploads_of_one_type_at_once_keep_the_later(api: Api) -> None:
    """The other upload's row is committed between this one's look-up and its commit."""
    with as_token(api, None) as ctx:
        rival = wav(1.5)

        def receive(directory: object) -> object:
            assert put(api, "flash-flood", rival, "rival.wav").status_code == 200  # type: ignore[attr-defined]
            path = api.client.app.state.media.root / "mine.wav"  # type: ignore[attr-defined]
            path.write_bytes(wav(2.5))
            return path

        real_get = ctx.session.get
        ctx.session.get = lambda model, key, **kw: (  # type: ignore[method-assign]
            None if model is WarningRecording and not getattr(receive, "seen", False) and
            setattr(receive, "seen", True) is None else real_get(model, key, **kw))
        mine = warning_service.set_warning(ctx, "flash-flood", "mine.wav", receive)  # type: ignore[arg-type]
    assert mine.source_filename == "mine.wav" and listed(api)["flash-flood"]["source_filename"] == "mine.wav"
    with Session(api.engine) as s:
        assert len(s.exec(select(MediaFile)).all()) == 2


def test_words_not_read_are_not_claimed_and_reuse_follows_the_voice_and_the_format(recorded: Api) -> None:
    api = recorded
    settings = api.client.app.state.settings  # type: ignore[attr-defined]
    body = {"text": TEXT, "event_type": "flash-flood", "targets": {"communes": ["tra-nu"]}}
    settings.tts.emergencies = ["neural"]  # no neural voice installed here: nothing can read the words
    alone = api.post("/api/v1/emergencies", json=body).json()
    assert alone["recorded"] is True and alone["spoken_text"] is None and "not read" in alone["engine_note"]
    with Session(api.engine) as s:
        assert s.get(Emergency, alone["id"]).spoken_text is None  # type: ignore[union-attr]
    settings.tts.emergencies = ["offline"]
    read = api.post("/api/v1/emergencies", json=body).json()
    assert read["spoken_text"].startswith("Xã Trà Nú.") and read["media_url"] != alone["media_url"]
    assert api.post("/api/v1/emergencies", json=body).json()["media_url"] == read["media_url"]  # reused
    settings.audio.target_lufs -= 3  # another broadcast loudness: made again, not the louder one reused
    assert api.post("/api/v1/emergencies", json=body).json()["media_url"] != read["media_url"]
