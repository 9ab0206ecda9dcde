"""Speech at the speech bitrate, and the ingest pipeline that encodes and measures at once: an MP3's format read
from its first frame (`audio.mp3`); speech made mono at 22.05 kHz and 32 kbps, decodable to its end, at the
broadcast loudness under the true-peak ceiling, and measured as written; the encoder feeding the meter through a
pipe (`audio.ffmpeg.run(feed=…)`) writes anywhere and reports the failing side's error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from audio import ffmpeg
from audio.compose import compose_file
from audio.ingest import BroadcastFormat, ingest
from audio.mp3 import Mp3Format, parse_format
from audio.tts import EspeakEngine
from tests.samples import FFMPEG, integrated_lufs, make, probe_line

SPEECH = BroadcastFormat(sample_rate=22050, bitrate_kbps=32)
WARNING = "Cảnh báo lũ quét, sơ tán ngay. Bà con thôn hai di chuyển lên đồi."


@pytest.fixture(scope="module")
def warning_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An emergency as the controller lays it out: the chime, then eSpeak reading the warning."""
    d = tmp_path_factory.mktemp("speech")
    EspeakEngine().synthesize(WARNING, "vi", d / "speech.wav")
    ffmpeg.run(["-i", str(d / "speech.wav"), "-ac", "1", "-ar", "22050", "-y", str(d / "mono.wav")])
    compose_file(d / "mono.wav", d / "warning.wav", chime_before=True, chime_after=False, repeat=1, gap_s=0.0)
    return d / "warning.wav"


def decoded_seconds(path: Path) -> float:
    """Decode the whole file as a receiver's ffmpeg would; any decoding error fails the test."""
    out = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", "44100", "-"],
                         capture_output=True, check=True)
    assert out.stderr == b"", out.stderr.decode(errors="replace")
    return len(out.stdout) / 2 / 44100


@pytest.mark.parametrize(("rate", "kbps", "channels"), [(44100, 64, 1), (22050, 32, 1), (24000, 32, 1),
                                                         (16000, 24, 1), (48000, 320, 2), (8000, 8, 1)])
def test_the_format_is_read_from_the_first_audio_frame(tmp_path: Path, rate: int, kbps: int, channels: int) -> None:
    """Past the ID3v2 tag and the Xing/Info frame that ffmpeg writes (whose own bitrate is only what fits)."""
    out = tmp_path / "x.mp3"
    subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-ac", str(channels),
                    "-ar", str(rate), "-c:a", "libmp3lame", "-b:a", f"{kbps}k", "-metadata", "title=Bản tin",
                    str(out)], check=True)
    head = out.read_bytes()[:8192]
    assert head[:3] == b"ID3" and (b"Info" in head or b"Xing" in head)  # what the parser must step over
    assert parse_format(head) == Mp3Format(rate, kbps, channels)
    assert parse_format(make(tmp_path / "x.wav", seconds=1).read_bytes()[:8192]) is None
    assert parse_format(b"") is None and parse_format(b"ID3\x04\x00\x00\x00\x00\x00\x05abcde") is None


def test_speech_is_mono_at_the_speech_bitrate_plays_to_its_end_at_the_broadcast_loudness(
        warning_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "warning.mp3"
    result = ingest(warning_wav, out, SPEECH)
    line = probe_line(out)
    assert "mp3" in line and "22050 Hz" in line and "mono" in line and "32 kb/s" in line, line
    assert parse_format(out.read_bytes()[:8192]) == Mp3Format(22050, 32, 1)
    assert abs(decoded_seconds(out) - result.duration_s) < 0.1, (decoded_seconds(out), result.duration_s)
    lufs, peak = integrated_lufs(out)
    assert abs(lufs + 16) <= 0.5 and peak <= -1.5, (lufs, peak)
    # What ingest reports is the file it wrote (measured from the same frames as they were written).
    assert abs(result.loudness_after - lufs) <= 0.2 and abs(result.true_peak_after - peak) <= 0.2
    # Half the bytes of the broadcast format, for the same speech.
    broadcast = ingest(warning_wav, tmp_path / "broadcast.mp3", BroadcastFormat())
    assert "44100 Hz" in probe_line(broadcast.output) and "64 kb/s" in probe_line(broadcast.output)
    assert out.stat().st_size < 0.55 * broadcast.output.stat().st_size


def test_the_encoder_writes_to_any_path_and_measures_what_it_wrote(warning_wav: Path, tmp_path: Path) -> None:
    """The encoder's outputs are named to ffmpeg's tee muxer, where `|`, `[`, `]` and quotes mean something."""
    odd = tmp_path / "a|b [c]'d" / "speech 'x'.mp3"
    odd.parent.mkdir()
    result = ingest(warning_wav, odd, SPEECH)
    assert [p.name for p in odd.parent.iterdir()] == ["speech 'x'.mp3"]
    lufs, _ = integrated_lufs(odd)
    assert abs(result.loudness_after - lufs) <= 0.2


def test_a_failing_feeder_is_the_error_raised(tmp_path: Path) -> None:
    """The reader sees only an empty pipe; the error says why the writer failed."""
    with pytest.raises(ffmpeg.FfmpegError, match="No such file") as e:
        ffmpeg.run(["-f", "mp3", "-i", "pipe:0", "-f", "null", "-"],
                   feed=[["-i", str(tmp_path / "missing.wav"), "-f", "mp3", "pipe:1"]], timeout=30)
    assert "missing.wav" in e.value.stderr


def test_a_failing_reader_is_the_error_raised_not_its_writers_broken_pipe() -> None:
    with pytest.raises(ffmpeg.FfmpegError, match="No such filter") as e:
        ffmpeg.run(["-f", "nut", "-i", "pipe:0", "-af", "nosuchfilter", "-f", "null", "-"],
                   feed=[["-f", "lavfi", "-i", "sine=duration=3600", "-c:a", "pcm_f32le", "-f", "nut", "pipe:1"]],
                   timeout=30)
    assert "Broken pipe" not in str(e.value)
