"""Text to speech behind one interface, `TtsEngine`, with two engines:

- `GttsEngine` — Google's voice through gTTS (online; better quality). `url` points it elsewhere: the tests
  run it against a local fake of Google's endpoint.
- `EspeakEngine` — eSpeak NG, offline, from the `espeakng-loader` wheel (library and voice data inside,
  no root needed), or Debian's `espeak-ng` program where that is installed.

`synthesize(engine, text, voice, cache_dir)` caches by (engine, voice, text): the same announcement made
twice is synthesised once. Engines raise `TtsUnavailable` when they cannot be reached, so the caller can
fall back to the offline engine and say so.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import wave
from collections import deque
from pathlib import Path
from typing import Protocol

import requests
from gtts import gTTS
from gtts.tts import gTTSError


class TtsUnavailable(RuntimeError):
    """The engine cannot be used right now (no network, service refused); another may be tried."""


class TtsEngine(Protocol):
    name: str
    voices: tuple[str, ...]  # the first is the default

    def synthesize(self, text: str, voice: str, out: Path) -> None:
        """Write speech for `text` to `out` (any format ffmpeg reads)."""


# ------------------------------------------------------------------------------------------------ gTTS


class _RedirectedGtts(gTTS):
    """gTTS with its endpoint replaced (gTTS builds the URL inside `_prepare_requests`)."""

    def __init__(self, *args: object, url: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._url = url

    def _prepare_requests(self) -> list[requests.PreparedRequest]:
        prepared: list[requests.PreparedRequest] = super()._prepare_requests()
        for p in prepared:
            p.prepare_url(self._url, None)
        return prepared


class GttsEngine:
    name: str = "gtts"
    # gTTS has one Vietnamese voice; the Google domain changes little but is offered as a "region".
    voices: tuple[str, ...] = ("vi", "vi-com.vn")

    def __init__(self, *, timeout_s: float = 10.0, url: str | None = None) -> None:
        self.timeout_s = timeout_s
        self.url = url

    def synthesize(self, text: str, voice: str, out: Path) -> None:
        tld = "com.vn" if voice == "vi-com.vn" else "com"
        kwargs: dict[str, object] = {"lang": "vi", "tld": tld, "timeout": self.timeout_s, "lang_check": False}
        tts = _RedirectedGtts(text, url=self.url, **kwargs) if self.url else gTTS(text, **kwargs)
        try:
            with out.open("wb") as f:
                tts.write_to_fp(f)
        except (gTTSError, requests.RequestException, AssertionError) as e:
            out.unlink(missing_ok=True)
            raise TtsUnavailable(f"Google TTS unavailable: {e}") from None
        if out.stat().st_size == 0:
            out.unlink()
            raise TtsUnavailable("Google TTS returned no audio")


# ---------------------------------------------------------------------------------------------- eSpeak


class FifoLock:
    """A lock handed to its waiters in the order they asked: a thread that releases and asks again at once
    (the next sentence of a long text) queues behind those already waiting (an emergency's reading)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiting: deque[threading.Lock] = deque()
        self._held = False

    def __enter__(self) -> None:
        with self._mutex:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        turn.acquire()  # released by the holder's release, which hands the lock over

    def __exit__(self, *_: object) -> None:
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._held = False


MAX_CHUNK_CHARS = 400  # the most text read under eSpeak's lock at once, when a sentence is longer


def espeak_chunks(text: str) -> list[str]:
    """`text` in the pieces eSpeak reads one at a time: its sentences, a longer one cut at a clause's
    punctuation or a line break, else between words, into pieces of at most MAX_CHUNK_CHARS."""
    chunks: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        while len(sentence) > MAX_CHUNK_CHARS:
            head = sentence[: MAX_CHUNK_CHARS + 1]
            ends = [m.end() for m in re.finditer(r"[,;:](?=\s)|\n", head)] or [
                m.start() for m in re.finditer(r"\s", head)] or [MAX_CHUNK_CHARS]
            cut = max(ends[-1], 1)
            chunks.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            chunks.append(sentence)
    return chunks


class EspeakEngine:
    """eSpeak NG in-process through its C API (`espeak_ng` library from the espeakng-loader wheel), or
    the `espeak-ng` program. The library keeps global state, so calls are serialised: one sentence (at most
    MAX_CHUNK_CHARS) at a time, each with this engine's voice and settings, so a short reading (an
    emergency's) waits for one sentence of a long one, not all of it."""

    name: str = "offline"
    voices: tuple[str, ...] = ("vi", "vi-vn-x-central", "vi-vn-x-south")
    _lock = FifoLock()
    _lib: ctypes.CDLL | None = None

    # The defaults are the best setting that bench/tts_intelligibility.py found (docs/PERFORMANCE.md): 110 words a
    # minute and 50 ms between words cut the recogniser's word error rate from 0.87 (150 wpm, no gap) to 0.81.
    def __init__(self, *, rate_wpm: int = 110, pitch: int = 50, pitch_range: int = 50, word_gap_10ms: int = 5,
                 comma_pause_ms: int = 0, sentence_pause_ms: int = 0) -> None:
        """`pitch` and `pitch_range` 0–100 (eSpeak's 50 is its voice's own), `word_gap_10ms` a pause between
        words in units of 10 ms, `comma_pause_ms` and `sentence_pause_ms` the pauses after a clause's and a
        sentence's punctuation (SSML breaks, which take the place of eSpeak's own pause there; 0: eSpeak's own)."""
        self.rate_wpm = rate_wpm
        self.pitch = pitch
        self.pitch_range = pitch_range
        self.word_gap_10ms = word_gap_10ms
        self.comma_pause_ms = comma_pause_ms
        self.sentence_pause_ms = sentence_pause_ms

    @property
    def cache_tag(self) -> str:
        """The settings, part of the speech cache's key (`cache_path`): new defaults are heard at once."""
        return (f"{self.rate_wpm}/{self.pitch}/{self.pitch_range}/{self.word_gap_10ms}/{self.comma_pause_ms}/"
                f"{self.sentence_pause_ms}")

    def _prepared(self, text: str) -> tuple[str, bool]:
        """The text eSpeak reads and whether it is SSML: breaks after punctuation when pauses are asked for."""
        if not (self.comma_pause_ms or self.sentence_pause_ms):
            return text, False
        pieces = re.split(r"([.,;:!?])(?=\s|$)", text)  # text, punctuation, text, …
        out = []
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                out.append(piece.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
                continue
            ms = self.sentence_pause_ms if piece in ".!?" else self.comma_pause_ms
            out.append(f'{piece}<break time="{ms}ms"/>' if ms else piece)
        return "<speak>" + "".join(out) + "</speak>", True

    def synthesize(self, text: str, voice: str, out: Path) -> None:
        if voice not in self.voices:
            raise ValueError(f"unknown voice {voice!r} for the offline engine: {', '.join(self.voices)}")
        with self._lock:
            lib = self._library()
        if lib is not None:
            pcm = [self._synthesize_chunk(lib, chunk, voice) for chunk in espeak_chunks(text) or [text]]
            with wave.open(str(out), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(self._sample_rate)
                w.writeframes(b"".join(pcm))
            return
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise TtsUnavailable("offline TTS unavailable: neither espeakng-loader nor espeak-ng is installed")
        prepared, ssml = self._prepared(text)
        with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as f:
            f.write(prepared)
        try:  # the program has no option for the pitch range
            subprocess.run([exe, "-v", voice, "-s", str(self.rate_wpm), "-p", str(self.pitch),
                            "-g", str(self.word_gap_10ms), *(["-m"] if ssml else []), "-f", f.name, "-w", str(out)],
                           check=True, capture_output=True, timeout=300)
        finally:
            os.unlink(f.name)

    @classmethod
    def _library(cls) -> ctypes.CDLL | None:
        if cls._lib is None:
            try:
                import espeakng_loader
            except ImportError:
                return None
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            rate = lib.espeak_Initialize(0x0002, 0, espeakng_loader.get_data_path().encode(), 0)  # SYNCHRONOUS
            if rate <= 0:
                raise TtsUnavailable("eSpeak NG failed to initialise")
            cls._sample_rate = rate
            cls._lib = lib
        return cls._lib

    _sample_rate = 22050

    def _synthesize_chunk(self, lib: ctypes.CDLL, text: str, voice: str) -> bytes:
        """The PCM of `text` (one chunk), read under the lock with this engine's voice and settings."""
        pcm: list[bytes] = []
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

        def collect(wav: ctypes._Pointer[ctypes.c_short], n: int, _events: int | None) -> int:
            if wav and n > 0:
                pcm.append(ctypes.string_at(wav, n * 2))
            return 0

        callback = callback_type(collect)
        prepared, ssml = self._prepared(text)
        data = prepared.encode("utf-8")
        buf = ctypes.create_string_buffer(data)
        with self._lock:
            lib.espeak_SetSynthCallback(callback)
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice {voice!r}")
            # espeakRATE, espeakPITCH, espeakRANGE, espeakWORDGAP (10 ms units); absolute values
            for parameter, value in ((1, self.rate_wpm), (3, self.pitch), (4, self.pitch_range),
                                     (7, self.word_gap_10ms)):
                lib.espeak_SetParameter(parameter, value, 0)
            lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                         ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
            # espeakCHARS_UTF8 = 1, espeakSSML = 0x10; position type 0
            if lib.espeak_Synth(buf, len(data) + 1, 0, 0, 0, 1 | (0x10 if ssml else 0), None, None) != 0:
                raise TtsUnavailable("eSpeak NG could not synthesise the text")
            lib.espeak_Synchronize()
        return b"".join(pcm)


# ------------------------------------------------------------------------------------------------ cache


def cache_key(engine: str, voice: str, text: str) -> str:
    return hashlib.sha256(f"{engine}\0{voice}\0{text}".encode()).hexdigest()


def cache_path(engine: TtsEngine, voice: str, text: str, cache_dir: Path) -> Path:
    """Where the speech of this (engine, voice, text) is cached (`synthesize`, `audio.tts_chain`); an engine's
    `cache_tag` (its settings, if it has one) is part of the key, so changed settings are not served old speech."""
    tag = getattr(engine, "cache_tag", "")
    key = cache_key(f"{engine.name}@{tag}" if tag else engine.name, voice, text)
    return cache_dir / f"{key}.{'mp3' if engine.name == 'gtts' else 'wav'}"


def synthesize(engine: TtsEngine, text: str, voice: str, cache_dir: Path) -> Path:
    """Speech for `text`, from the cache when this (engine, voice, text) was made before."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_path(engine, voice, text, cache_dir)
    if path.exists() and path.stat().st_size > 0:
        return path
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tts-", suffix=path.suffix)
    os.close(fd)
    try:
        engine.synthesize(text, voice, Path(tmp))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
