"""Keeping a part of a browser recording (`audio.cut`): a WebM/Opus file as MediaRecorder writes it (streamed:
no duration, no cues) is cut to the part asked for, losslessly; an end past the audio stops at the audio;
what is not audio, or an empty part, is refused as the ingest refuses it."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from audio import cut as cut_module
from audio import ffmpeg
from audio.cut import cut
from audio.ingest import IngestError, Limits
from tests.samples import FFMPEG


def streamed_webm(path: Path, seconds: float) -> Path:
    """Opus in WebM written to a pipe, like a browser's recorder: the header has no duration and no cues."""
    out = subprocess.run([FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                          "-c:a", "libopus", "-b:a", "64k", "-f", "webm", "pipe:1"], capture_output=True, check=True)
    path.write_bytes(out.stdout)
    return path


def length(path: Path) -> float:
    seen: list[float] = []
    ffmpeg.run(["-i", str(path), "-f", "null", "-"], on_time=seen.append)
    return seen[-1]


def test_the_part_asked_for_is_kept_as_flac(tmp_path: Path) -> None:
    source = streamed_webm(tmp_path / "ghi-am.webm", 10)
    out = tmp_path / "part.flac"
    cut(source, out, 2.5, 7.0)
    assert out.read_bytes()[:4] == b"fLaC"
    assert abs(length(out) - 4.5) < 0.05


def test_an_end_past_the_audio_stops_with_it(tmp_path: Path) -> None:
    source = streamed_webm(tmp_path / "ghi-am.webm", 3)
    out = tmp_path / "part.flac"
    cut(source, out, 1.0, 3.4)
    assert abs(length(out) - 2.0) < 0.05


def test_what_is_not_audio_or_an_empty_part_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "ghi-am.webm"
    fake.write_text("không phải âm thanh\n" * 100)
    with pytest.raises(IngestError, match="could not be decoded"):
        cut(fake, tmp_path / "a.flac", 0, 2)
    with pytest.raises(IngestError) as refused:
        cut(streamed_webm(tmp_path / "b.webm", 2), tmp_path / "b.flac", 1.5, 1.5)
    assert refused.value.code == "audio_empty"


def test_a_huge_or_infinite_end_is_bounded_by_the_longest_audio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """The browser's word: an end of 1e7 s on a slow upload must not keep ffmpeg (and an ingest slot) for 30 min."""
    source = streamed_webm(tmp_path / "r.webm", 2.0)
    asked: list[tuple[list[str], float]] = []
    real = cut_module.ffmpeg.run

    def run(args: list[str], **kw: float) -> object:
        asked.append((args, kw["timeout"]))
        return real(args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(cut_module.ffmpeg, "run", run)
    cut(source, tmp_path / "huge.flac", 0.0, 1e7, max_s=5.0)
    monkeypatch.setattr(cut_module.ffmpeg, "run", real)
    [(args, timeout)] = asked
    assert float(args[args.index("-t") + 1]) <= 5.0 and timeout <= Limits().for_audio(5.0)
    assert abs(length(tmp_path / "huge.flac") - 2.0) < 0.2
    for end in (math.inf, math.nan):
        with pytest.raises(IngestError):
            cut(source, tmp_path / "inf.flac", 0.0, end)
    assert len(asked) == 1  # refused before ffmpeg
