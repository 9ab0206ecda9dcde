"""An emergency while Google's voice hangs: the controller waits for it only its deadline (2 s), eSpeak reads the
warning, and the receivers play it — in the deadline plus the offline synthesis time. Real controller (HTTP +
MQTT), real Mosquitto, real agents; Google is a local fake that reads the request and never answers."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from audio.tts import EspeakEngine
from controller.config import AudioSettings, TtsSettings
from controller.content import broadcast_format, speak
from controller.emergencies import SpeechLayout
from devrig.testbed import Testbed
from tests.conftest import FleetThread, LiveController, _testbed, wait_for
from tests.e2e.test_emergency import agent_overrides, em_plays, emergency, media_pcm_sha, reached
from tests.fake_google import FakeGoogleTts
from tests.samples import make

pytestmark = pytest.mark.integration
TEXT = "Cảnh báo sạt lở đất ở thôn 3 xã Trà Ka. Bà con khẩn trương rời khỏi khu vực nguy hiểm."


@pytest.fixture
def google(tmp_path: Path) -> Iterator[FakeGoogleTts]:
    fake = FakeGoogleTts(make(tmp_path / "google.mp3", seconds=2.0, source="tone", gain_db=-12))
    fake.hang = True
    yield fake
    fake.close()


@pytest.fixture
def testbed(data_dir: Path, google: FakeGoogleTts) -> Iterator[Testbed]:
    """The shipped order (Google, the neural voice, eSpeak) and deadline (2 s) for emergencies; no neural voice.
    Google's configured timeout (10 s) does not count here: under a deadline its HTTP timeout is the deadline
    plus 1 s, so that the deadline decides."""
    tb = _testbed(data_dir, "mosquitto", status_flush_s=0.1, command_timeout_s=5.0,
                  audio=AudioSettings(gtts_url=google.url, gtts_timeout_s=10),
                  tts=TtsSettings(neural_dir=data_dir / "no-voice-here"))
    yield tb
    tb.close()


def offline_preparation_s(spoken: str, work: Path) -> float:
    """What making this warning's audio with eSpeak alone takes here: synthesis, chime, broadcast format."""
    from audio.ingest import ingest

    began = time.monotonic()
    speak(EspeakEngine(), spoken, "vi", work / "cache", work / "composed.wav", SpeechLayout())
    ingest(work / "composed.wav", work / "out.mp3", broadcast_format(AudioSettings()), trim_silence=False)
    return time.monotonic() - began


def test_a_hung_google_delays_a_warning_by_its_deadline_only(fleet: FleetThread, live: LiveController,
                                                              google: FakeGoogleTts) -> None:
    agents = fleet.start([s for s in fleet.settings(None, **agent_overrides(live)) if s.commune == "tra-ka"])
    wait_for(lambda: live.http.get("/api/v1/receivers", params={"commune": "tra-ka", "status": "online"}
                                   ).json()["count"] == len(agents), 15, "tra-ka online")
    began = time.monotonic()
    r = live.http.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-ka"]}, "repeat": 1})
    answered = time.monotonic() - began
    assert r.status_code == 202, r.text
    sent = r.json()
    wait_for(lambda: reached(live, sent["id"], ("received", "fetched", "playing", "done")), 30, "all received")
    heard_after = time.monotonic() - began

    assert google.texts, "Google was asked first"
    assert sent["engine"] == "offline" and "no answer within 2 s" in sent["engine_note"]
    with tempfile.TemporaryDirectory() as work:
        offline_s = offline_preparation_s(sent["spoken_text"], Path(work))
    # The deadline, eSpeak's own time (measured just now, with room for the load changing), and a margin for a
    # shared 2-core machine. That the deadline gave up on Google, not Google's HTTP timeout (1 s later), the note
    # says above ("no answer within 2 s"; a timeout would have named the HTTP error instead).
    budget = 2.0 + 1.5 * offline_s + 4.0
    assert answered < budget and heard_after < budget + 2.0, (answered, heard_after, offline_s)

    wait_for(lambda: reached(live, sent["id"], ("done",)), 60, "every receiver played it through")
    got = emergency(live, sent["id"])
    assert got["engine"] == "offline"
    expected = media_pcm_sha(live, got["media_url"])
    for agent in agents:
        [heard] = em_plays(agent, sent["id"])
        assert heard.completed and heard.pcm_sha256 == expected, agent.rid
    print(f"\nhung Google: answered in {answered:.2f} s, all received in {heard_after:.2f} s; "
          f"eSpeak alone {offline_s:.2f} s; deadline 2 s")
