"""A CAP flash-flood alert uses the pre-recorded flash-flood warning (issue 13), end to end: the real
controller (HTTP + MQTT), a real Mosquitto, real agents whose simulated loudspeakers record what they played.
The audio they played must contain the recording — found by cross-correlation, which a synthesised reading
of the alert does not pass — and be longer than it (the communes' names and the alert's text follow)."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session

from audio.ffmpeg import ffmpeg_exe
from controller.db.models import Emergency, MediaFile
from controller.emergencies import speech_media
from firmware_sim.sink import RecordingSink
from tests.conftest import FleetThread, LiveController, wait_for
from tests.controller.api.test_emergencies import cap
from tests.e2e.test_emergency import commune_settings, em_plays, media_pcm_sha

pytestmark = pytest.mark.integration
RATE = 8000  # enough to find a recording in a broadcast


def recording(seconds: float = 3.0, rate: int = 22050) -> bytes:
    """A warning nobody could synthesise: bursts of band-limited noise, like syllables (fixed seed)."""
    rng = np.random.default_rng(13)
    n = int(seconds * rate)
    noise = np.convolve(rng.standard_normal(n), np.ones(6) / 6, mode="same")
    t = np.arange(n) / rate
    envelope = np.clip(np.sin(2 * np.pi * 2.7 * t), 0, None) ** 0.5
    pcm = (noise / np.abs(noise).max() * envelope * 0.5 * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def decoded(source: Path | bytes) -> np.ndarray:
    """Mono float samples at `RATE`, decoded by ffmpeg from a file or bytes."""
    args = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", "-" if isinstance(source, bytes) else str(source),
            "-f", "s16le", "-ac", "1", "-ar", str(RATE), "-"]
    out = subprocess.run(args, input=source if isinstance(source, bytes) else None, capture_output=True, check=True)
    return np.frombuffer(out.stdout, "<i2").astype(np.float64)


def best_match(haystack: np.ndarray, needle: np.ndarray) -> float:
    """The highest normalised cross-correlation of `needle` against every window of `haystack` (1.0: the
    same waveform, whatever its level)."""
    n = len(needle)
    if len(haystack) < n:
        return 0.0
    needle = needle - needle.mean()
    size = 1 << int(np.ceil(np.log2(len(haystack) + n)))
    dots = np.fft.irfft(np.fft.rfft(haystack, size) * np.conj(np.fft.rfft(needle, size)), size)[:len(haystack) - n + 1]
    sums = np.concatenate(([0.0], np.cumsum(haystack)))
    squares = np.concatenate(([0.0], np.cumsum(haystack ** 2)))
    window_sum = sums[n:] - sums[:-n]
    energy = np.maximum(squares[n:] - squares[:-n] - window_sum ** 2 / n, 1e-9)
    return float(np.max(dots / np.sqrt(energy * np.sum(needle ** 2))))


def stored(live: LiveController, url: str) -> Path:
    sha = url.rsplit("/", 1)[1].removesuffix(".mp3")
    return live.testbed.settings.media_dir / sha[:2] / sha[2:4] / f"{sha}.mp3"


def test_a_cap_flash_flood_alert_plays_the_pre_recorded_flash_flood_warning(fleet: FleetThread,
                                                                            live: LiveController) -> None:
    agents = fleet.start(commune_settings(fleet, live, "tra-doc"))
    wait_for(lambda: live.http.get("/api/v1/receivers", params={"commune": "tra-doc", "status": "online"}
                                   ).json()["count"] == len(agents), 15, "Trà Đốc online")
    r = live.http.put("/api/v1/warnings/flash-flood", files={"file": ("lu-quet.wav", recording(), "audio/wav")})
    assert r.status_code == 200, r.text
    warning = r.json()
    live.testbed.settings.emergency.repeat = 1  # once is enough to hear it

    # Its text is read after the recording: kept short, for the loudspeakers play in real time.
    alert_xml = re.sub(r"<instruction>.*?</instruction>", "<instruction>Di chuyển ngay.</instruction>",
                       re.sub(r"<description>.*?</description>", "<description>Nguy cơ lũ quét.</description>",
                              cap("flash-flood-alert.xml").decode(), flags=re.S), flags=re.S)
    r = live.http.post("/api/v1/cap", content=alert_xml.encode(),  # Trà Giáp, Ka, Bui and Đốc
                       headers={"Content-Type": "application/cap+xml"})
    assert r.status_code == 202, r.text
    alert = r.json()
    assert alert["event_type"] == "flash-flood" and alert["recorded"] is True
    names = "Xã Trà Bui, xã Trà Đốc, xã Trà Giáp, xã Trà Ka."
    assert alert["spoken_text"].startswith(names + " ")  # the names, then the alert's text
    eid = alert["id"]
    with Session(live.testbed.engine) as s:
        row = s.get(Emergency, eid)
        assert row is not None and row.engine == "recorded" and row.event_type == "flash-flood"
        assert row.text and "lũ quét" in row.text  # the alert's text, kept for display

    wait_for(lambda: all(p.completed for a in agents for p in em_plays(a, eid)) and all(em_plays(a, eid)
                                                                                         for a in agents),
             60, "every loudspeaker of Trà Đốc played it through")
    broadcast = stored(live, alert["media_url"])
    played = media_pcm_sha(live, alert["media_url"])
    for agent in agents:
        assert isinstance(agent.sink, RecordingSink)
        [heard] = em_plays(agent, eid)
        assert heard.pcm_sha256 == played, agent.rid  # exactly the broadcast audio below

    audio, recorded = decoded(broadcast), decoded(stored(live, warning["media_url"]))
    assert best_match(audio, recorded) > 0.8  # the recording is in it
    assert len(audio) / RATE > len(recorded) / RATE + 2.0  # the chime before it, the names and text after it
    # The check tells a synthesised reading apart: the alert read by the offline engine does not pass it.
    with Session(live.testbed.engine) as s:
        text = s.get(Emergency, eid).text  # type: ignore[union-attr]
    synthesised = asyncio.run(asyncio.to_thread(speech_media, live.testbed.engine, live.testbed.settings,
                                                live.app.state.media, text))
    assert isinstance(synthesised, MediaFile)
    assert best_match(decoded(stored(live, f"/media/{synthesised.sha256}.mp3")), recorded) < 0.5
