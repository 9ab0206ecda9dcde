"""What receivers get of synthesised speech: an emergency read aloud and an announcement come out mono at the speech
bitrate (22.05 kHz, 32 kbps), play to their end at the broadcast loudness, and the emergency's audio travels
inside its signed command at about half the bytes of the broadcast format; an uploaded bulletin keeps the
broadcast format (44.1 kHz, 64 kbps); an earlier emergency's audio made in another format (64 kbps, before the
speech bitrate) is made again, not reused, while audio in today's format is reused. In-memory bridge."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

from sqlmodel import Session

from controller.db.models import Emergency
from tests.conftest import Api
from tests.samples import FFMPEG, integrated_lufs, make, probe_line

TEXT = "Cảnh báo lũ quét, sơ tán ngay."


def served(api: Api, url: str, out: Path) -> Path:
    r = api.get(url)
    assert r.status_code == 200, r.text
    out.write_bytes(r.content)
    return out


def plays_for(path: Path) -> float:
    """Seconds decoded from the whole file, as a receiver's ffmpeg decodes it; a decoding error fails."""
    out = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", "44100", "-"],
                         capture_output=True, check=True)
    assert out.stderr == b"", out.stderr.decode(errors="replace")
    return len(out.stdout) / 2 / 44100


def signed_command(api: Api, eid: str) -> tuple[int, dict]:
    with Session(api.engine) as s:
        row = s.get(Emergency, eid)
        assert row is not None and row.payloads
        payload = next(iter(row.payloads.values()))
    return len(payload.encode()), json.loads(json.loads(payload)["body"])


def test_an_emergency_read_aloud_is_speech_at_the_speech_bitrate_inside_its_command(api: Api, tmp_path: Path) -> None:
    r = api.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-nu"]}})
    assert r.status_code == 202, r.text
    body = r.json()
    audio = served(api, body["media_url"], tmp_path / "emergency.mp3")
    line = probe_line(audio)
    assert "mp3" in line and "22050 Hz" in line and "mono" in line and "32 kb/s" in line, line
    assert abs(plays_for(audio) - body["duration_s"]) < 0.1 and body["duration_s"] > 2  # the chime and the words
    lufs, peak = integrated_lufs(audio)
    assert abs(lufs + 16) <= 1 and peak <= -1.5, (lufs, peak)
    size, command = signed_command(api, body["id"])
    assert body["inline"] is True and base64.b64decode(command["inline_audio"]) == audio.read_bytes()
    # 32 kbps: 4 kB per second of audio, base64 in the command; the rest of the command is under 1 kB.
    assert size < 4000 * 4 / 3 * body["duration_s"] * 1.05 + 1000, (size, body["duration_s"])


def test_an_announcement_is_speech_at_the_speech_bitrate_and_a_bulletin_keeps_the_broadcast_format(
        api: Api, tmp_path: Path) -> None:
    r = api.post("/api/v1/announcements", json={"text": "Kính mời bà con đi họp lúc 7h30 tại nhà văn hóa thôn 2.",
                                                "engine": "offline", "chime_before": True, "repeat": 2})
    assert r.status_code == 201, r.text
    announcement = served(api, r.json()["media_url"], tmp_path / "announcement.mp3")
    line = probe_line(announcement)
    assert "22050 Hz" in line and "mono" in line and "32 kb/s" in line, line
    assert abs(plays_for(announcement) - r.json()["duration_s"]) < 0.1
    lufs, peak = integrated_lufs(announcement)
    assert abs(lufs + 16) <= 1 and peak <= -1.5, (lufs, peak)

    music = make(tmp_path / "music.mp3", seconds=5, source="tone")
    with music.open("rb") as f:
        up = api.client.post("/api/v1/bulletins", headers=api.headers, data={"title": "Nhạc hiệu"},
                             files={"file": ("music.mp3", f, "audio/mpeg")})
    assert up.status_code == 201, up.text
    line = probe_line(served(api, up.json()["media_url"], tmp_path / "bulletin.mp3"))
    assert "44100 Hz" in line and "mono" in line and "64 kb/s" in line, line


def test_earlier_emergency_audio_at_another_bitrate_is_made_again(api: Api, tmp_path: Path) -> None:
    """Audio made while speech was broadcast at 64 kbps (before the speech bitrate) is not reused: the same warning
    is made again at 32 kbps, and that one is reused the next time."""
    audio_settings = api.client.app.state.settings.audio  # type: ignore[attr-defined]
    send = {"text": TEXT, "targets": {"communes": ["tra-nu"]}}
    audio_settings.speech_sample_rate, audio_settings.speech_bitrate_kbps = 44100, 64  # as before
    old = api.post("/api/v1/emergencies", json=send).json()
    assert "64 kb/s" in probe_line(served(api, old["media_url"], tmp_path / "old.mp3"))
    audio_settings.speech_sample_rate, audio_settings.speech_bitrate_kbps = 22050, 32  # today's defaults
    new = api.post("/api/v1/emergencies", json=send).json()
    assert new["media_url"] != old["media_url"]
    assert "32 kb/s" in probe_line(served(api, new["media_url"], tmp_path / "new.mp3"))
    again = api.post("/api/v1/emergencies", json=send).json()
    assert again["media_url"] == new["media_url"]
