"""eSpeak NG's settings as the offline engine applies them: word gaps and pauses at punctuation are heard as
silence; text that looks like markup is read, not interpreted; a long reading holds eSpeak one sentence at a
time, each engine at its own settings."""

from __future__ import annotations

import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from audio.tts import MAX_CHUNK_CHARS, EspeakEngine, espeak_chunks

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
    without_s, _ = speech(engine, "Nhà văn hóa & trạm y tế; bà con đến ngay.", tmp_path / "b.wav")
    assert whole_s > without_s + 0.5  # "<thôn 2>" is read, not swallowed as a tag


def test_a_long_reading_holds_espeak_one_sentence_at_a_time(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An emergency read while a long announcement is being synthesised is done while most of the long text
    is still to be read, and each reading is whole and at its own engine's rate, as when read alone."""
    slow, fast = EspeakEngine(rate_wpm=90), EspeakEngine(rate_wpm=180)
    long_text, short_text = " ".join([TEXT] * 20), "Lũ quét, di dời ngay."
    alone = {"long": speech(slow, long_text, tmp_path / "long-alone.wav")[0],
             "short": speech(fast, short_text, tmp_path / "short-alone.wav")[0],
             "short slow": speech(slow, short_text, tmp_path / "short-slow.wav")[0]}
    assert alone["short"] < 0.7 * alone["short slow"]  # the two engines' rates differ
    started, long_read = threading.Event(), []  # the long text's sentences read so far
    real = slow._synthesize_chunk

    def chunk(*args: object) -> bytes:
        pcm = real(*args)  # type: ignore[arg-type]
        long_read.append(len(pcm))
        started.set()
        return pcm

    monkeypatch.setattr(slow, "_synthesize_chunk", chunk)
    long_reading = threading.Thread(target=slow.synthesize, args=(long_text, "vi", tmp_path / "long.wav"))
    long_reading.start()
    assert started.wait(30)  # the long text's first sentence is read
    fast.synthesize(short_text, "vi", tmp_path / "short.wav")
    read_meanwhile = len(long_read)
    long_reading.join(60)
    assert len(long_read) == 40 and read_meanwhile < 20  # the emergency waited for a sentence or so, not all

    def duration(name: str) -> float:
        with wave.open(str(tmp_path / f"{name}.wav")) as w:
            return w.getnframes() / w.getframerate()

    # Whole: within a few tens of milliseconds of the reading alone (eSpeak's pauses at chunk ends vary a
    # little with what ran before), far less than a word (about 0.3 s) or a sentence (about 4.6 s) missing.
    assert duration("long") == pytest.approx(alone["long"], abs=0.2)
    assert duration("short") == pytest.approx(alone["short"], abs=0.1)


def test_a_long_sentence_is_read_in_bounded_pieces() -> None:
    text = "Thôn 1 Thôn 2 Trạm y tế xã " * 60 + "Nhà văn hóa, bà con đến ngay. Xin cảm ơn."
    chunks = espeak_chunks(text)
    assert max(map(len, chunks)) <= MAX_CHUNK_CHARS and chunks[-1] == "Xin cảm ơn."
    assert " ".join(chunks).split() == text.split()  # cut between words only
