"""Making broadcast audio for the content library: helpers without policy, HTTP or audit, shared by the
content services (`controller.services.content`), emergencies and the command line (`truyenthanh ingest`,
`truyenthanh tts`).

- `broadcast_format`, `speech_format`, `make_media`, `ingest_error`: a source file → stored broadcast audio (a
  `MediaFile`) in the broadcast format (uploads) or the speech format (synthesised speech), or the domain error
  that says why not (415 not audio, 422 otherwise); `made_in`: whether stored audio is in a format.
- `media_url`: where receivers and staff fetch stored audio (without a token, by hash).
- `engines`, `voice_order`, `speak_first`, `speak_and_make`, `speak`: the text-to-speech engines, which read a
  text for each use, and the layout of speech with chimes and repeats (what is spoken is
  `controller.services.content.spoken_text`, with the district's and the commune's abbreviations).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol, TypeVar

from sqlmodel import Session

from audio import ffmpeg
from audio.compose import compose_file
from audio.ingest import BroadcastFormat, Ingested, IngestError, Progress, ingest
from audio.mp3 import Mp3Format, parse_format
from audio.store import MediaStore
from audio.tts import EspeakEngine, GttsEngine, TtsEngine, TtsUnavailable, synthesize
from audio.tts_chain import Candidate, Speech, SpeechUnusable, first_speech
from controller.config import AudioSettings, Settings
from controller.db.models import MediaFile
from controller.errors import DomainError, Invalid, Unsupported

T = TypeVar("T")


class Layout(Protocol):
    chime_before: bool
    chime_after: bool
    repeat: int
    gap_s: float


def broadcast_format(a: AudioSettings) -> BroadcastFormat:
    """The format of uploads (bulletins, music, recorded warnings): `TT_AUDIO__SAMPLE_RATE`/`BITRATE_KBPS`."""
    return BroadcastFormat(sample_rate=a.sample_rate, bitrate_kbps=a.bitrate_kbps, target_lufs=a.target_lufs,
                           true_peak_dbtp=a.true_peak_dbtp, max_duration_s=a.max_duration_s)


def speech_format(a: AudioSettings) -> BroadcastFormat:
    """The format of synthesised speech (emergencies, announcements): the broadcast format's loudness, at
    `TT_AUDIO__SPEECH_SAMPLE_RATE`/`SPEECH_BITRATE_KBPS` (22.05 kHz, 32 kbps): half the bytes of the
    broadcast format's 64 kbps for every receiver an emergency reaches."""
    return replace(broadcast_format(a), sample_rate=a.speech_sample_rate, bitrate_kbps=a.speech_bitrate_kbps)


def made_in(store: MediaStore, media: MediaFile, fmt: BroadcastFormat) -> bool:
    """Whether stored `media` is audio of format `fmt` (rate, bitrate, mono, and loudness within 1 LU of its
    target), read from its first frame header: audio made before a format changed (speech at 64 kbps before
    the speech bitrate) is made again rather than reused."""
    try:
        with store.path(media.sha256).open("rb") as f:
            found = parse_format(f.read(8192))
    except OSError:
        return False
    return (found == Mp3Format(fmt.sample_rate, fmt.bitrate_kbps, 1)
            and abs(media.loudness_lufs - fmt.target_lufs) <= 1.0)


def make_media(session: Session, store: MediaStore, source: Path, fmt: BroadcastFormat, *,
               trim_silence: bool, on_progress: Progress | None = None) -> tuple[MediaFile, Ingested]:
    """Ingest `source` and store the result once; the MediaFile row is added to `session`, not committed.
    Raises IngestError for input that cannot become broadcast audio. `on_progress(stage, fraction)`: as
    `audio.ingest.ingest` reports it."""
    with tempfile.TemporaryDirectory(dir=store.root, prefix=".work-") as work:
        result = ingest(source, Path(work) / "out.mp3", fmt, trim_silence=trim_silence, on_progress=on_progress)
        sha = store.put(result.output)
    media = session.get(MediaFile, sha) or MediaFile(
        sha256=sha, size_bytes=store.path(sha).stat().st_size, duration_s=result.duration_s,
        loudness_lufs=result.loudness_after, true_peak_dbtp=result.true_peak_after)
    session.add(media)
    session.flush()  # the row must exist before anything refers to it
    return media, result


# What an IngestError says → the code a face puts into its own words (`errors.<code>` in the staff UI).
INGEST_CODES = (("could not be decoded", "audio_damaged"), ("audio is empty", "audio_empty"),
                ("audio lasts", "audio_too_long"), ("audio is silent", "audio_silent"))


def ingest_error(e: IngestError) -> DomainError:
    """The domain error for input that cannot become broadcast audio: 415 for what is not audio at all."""
    message = str(e)
    if "not audio" in message or "no audio track" in message:
        return Unsupported(message)
    return Invalid(message, code=next((code for words, code in INGEST_CODES if words in message), None))


def media_url(sha: str) -> str:
    return f"/media/{sha}.mp3"


class _NoNeuralEngine:
    """Stands for the neural engine where this build has none (`audio.neural` missing)."""

    name = "neural"
    voices: tuple[str, ...] = ("default",)

    def synthesize(self, text: str, voice: str, out: Path) -> None:
        raise TtsUnavailable("this controller has no neural engine (audio.neural is not installed)")


def neural_engine(model_dir: Path) -> TtsEngine:
    """The neural voices installed in `model_dir` (`audio.neural`: constructing one only lists the directory;
    a voice's model is loaded once per process, on first use)."""
    try:
        from audio.neural import NeuralEngine
    except ImportError:
        return _NoNeuralEngine()
    return NeuralEngine(model_dir)


def engines(a: AudioSettings, neural_dir: Path | None = None, *,
            gtts_timeout_s: float | None = None) -> dict[str, TtsEngine]:
    """The engines by name: `offline` (eSpeak NG), `gtts` (Google), and `neural` when `neural_dir` is given."""
    out: dict[str, TtsEngine] = {
        "offline": EspeakEngine(),
        "gtts": GttsEngine(timeout_s=gtts_timeout_s or a.gtts_timeout_s, url=a.gtts_url)}
    if neural_dir is not None:
        out["neural"] = neural_engine(neural_dir)
    return out


def voice_order(settings: Settings, use: str, *, first: str | None = None, voice: str | None = None,
                chars: int = 0) -> list[Candidate]:
    """The engines that may read a text for `use` ("announcements", "emergencies", "cap"), in the order they
    are tried (`TT_TTS__<USE>`; `first`, a requested engine, before them, with `voice`), the online engine
    under the use's deadline and, for emergencies and CAP, the neural voice under its own. `chars`: the
    text's length (the deadlines grow with it)."""
    online = settings.tts_deadline_s(use, chars)
    deadlines = {"gtts": online, "neural": settings.neural_deadline_s(use, chars)}
    # Google's own HTTP timeout is set past the deadline: the chain's deadline always decides (and the note
    # says so), never a read timeout that happens to fire first.
    available = engines(settings.audio, settings.neural_dir, gtts_timeout_s=online + 1.0)
    order = settings.tts.order(use)
    if first is not None:
        order = [first, *(e for e in order if e != first)]
    return [Candidate(available[name], voice if (voice and i == 0) else (available[name].voices or ("default",))[0],
                      deadlines.get(name)) for i, name in enumerate(order)]


def speak_first(candidates: list[Candidate], text: str, cache_dir: Path, out_wav: Path, options: Layout) -> Speech:
    """Speech of `text` by the first of `candidates` that can (`audio.tts_chain.first_speech`), laid out with
    chimes and repeats into `out_wav`; says which engine spoke and why the ones before it did not."""
    return speak_and_make(candidates, text, cache_dir, out_wav, options, lambda: None)[0]


def speak_and_make(candidates: list[Candidate], text: str, cache_dir: Path, out_wav: Path, options: Layout,
                   make: Callable[[], T]) -> tuple[Speech, T]:
    """`speak_first`, and what `make()` makes of `out_wav` (its broadcast audio), from the same engine. Speech
    that cannot be laid out (ffmpeg cannot decode it: a damaged file in the cache) or made into broadcast
    audio (`IngestError`) is removed from the cache, and the next engine reads: a damaged cached file must not
    fail that text for good. Except audio too long for broadcast: that is the text's, raised as it is."""
    made: list[T] = []

    def use(speech: Speech) -> None:
        try:
            _lay_out(speech.path, out_wav, options)
            made.append(make())
        except ffmpeg.FfmpegError as e:
            raise SpeechUnusable(f"it could not be decoded: {e}") from e
        except IngestError as e:
            if next((code for words, code in INGEST_CODES if words in str(e)), None) == "audio_too_long":
                raise
            raise SpeechUnusable(f"no broadcast audio could be made of it: {e}") from e

    speech = first_speech(candidates, text, cache_dir, use)
    return speech, made[-1]


def speak(engine: TtsEngine, text: str, voice: str, cache_dir: Path, out_wav: Path, options: Layout) -> None:
    """Synthesise `text` (cached) and lay it out with chimes and repeats into `out_wav`."""
    _lay_out(synthesize(engine, text, voice, cache_dir), out_wav, options)


def _lay_out(speech: Path, out_wav: Path, options: Layout) -> None:
    decoded = out_wav.with_suffix(".speech.wav")
    ffmpeg.run(["-i", str(speech), "-ac", "1", "-ar", "22050", "-y", str(decoded)])
    compose_file(decoded, out_wav, chime_before=options.chime_before, chime_after=options.chime_after,
                 repeat=options.repeat, gap_s=options.gap_s)
    decoded.unlink()

