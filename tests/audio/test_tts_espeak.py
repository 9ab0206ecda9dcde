"""eSpeak NG's settings as the offline engine applies them: word gaps and pauses at punctuation are heard as
silence; text that looks like markup is read, not interpreted."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from audio.tts import EspeakEngine

TEXT = "Cảnh báo lũ quét, mưa lớn. Bà con di dời ngay lên chỗ cao."


def speech(engine: EspeakEngine, text: str, out: Path) -> tuple[float, float]:
    """(duration, longest silence) of `text` read by `engine`, in seconds."""
    engine.synthesize(text, "vi", out)
    with wave.open(str(out)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    frames = pcm[: len(pcm) // 220 * 220].reshape(-1, 220)  # 10 ms at 22 050 Hz
    quiet = np.sqrt((frames ** 2).mean(axis=1)) < 100
    longest = run = 0
    for q in quiet[:-1]:  # not the tail
        run = run + 1 if q else 0
        longest = max(longest, run)
    return len(pcm) / rate, longest * 220 / rate


def test_pauses_at_punctuation_are_silence(tmp_path: Path) -> None:
    plain_s, plain_gap = speech(EspeakEngine(rate_wpm=110), TEXT, tmp_path / "a.wav")
    paused_s, paused_gap = speech(EspeakEngine(rate_wpm=110, comma_pause_ms=400, sentence_pause_ms=1500), TEXT,
                                  tmp_path / "b.wav")
    assert plain_gap < 1.0 and paused_gap > 1.4  # the full stop's pause is as long as asked
    assert paused_s > plain_s + 0.6


def test_word_gap_lengthens_the_reading(tmp_path: Path) -> None:
    plain_s, _ = speech(EspeakEngine(rate_wpm=110, word_gap_10ms=0), TEXT, tmp_path / "a.wav")
    gapped_s, _ = speech(EspeakEngine(rate_wpm=110, word_gap_10ms=5), TEXT, tmp_path / "b.wav")
    assert gapped_s > plain_s + 0.04 * 12  # 13 words, 50 ms more between each


def test_markup_characters_are_read_with_pauses_on(tmp_path: Path) -> None:
    engine = EspeakEngine(comma_pause_ms=200, sentence_pause_ms=400)
    whole_s, _ = speech(engine, "Nhà văn hóa <thôn 2> & trạm y tế; bà con đến ngay.", tmp_path / "a.wav")
    short_s, _ = speech(engine, "Nhà văn hóa", tmp_path / "b.wav")
    assert whole_s > short_s + 1.5  # the text after "<" was not swallowed as a tag
