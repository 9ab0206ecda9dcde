"""Making broadcast audio for the content library: helpers without policy, HTTP or audit, shared by the
content services (`controller.services.content`), emergencies and the command line (`truyenthanh ingest`,
`truyenthanh tts`).

- `broadcast_format`, `make_media`, `ingest_error`: a source file → stored broadcast audio (a `MediaFile`),
  or the domain error that says why not (415 not audio, 422 otherwise).
- `media_url`: where receivers and staff fetch stored audio (without a token, by hash).
- `engines`, `speak`: the text-to-speech engines and the layout of speech with chimes and repeats (what is
  spoken is `controller.services.content.spoken_text`, with the district's and the commune's abbreviations).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Protocol

from sqlmodel import Session

from audio import ffmpeg
from audio.compose import compose_file
from audio.ingest import BroadcastFormat, Ingested, IngestError, Progress, ingest
from audio.store import MediaStore
from audio.tts import EspeakEngine, GttsEngine, TtsEngine, synthesize
from controller.config import AudioSettings
from controller.db.models import MediaFile
from controller.errors import DomainError, Invalid, Unsupported


class Layout(Protocol):
    chime_before: bool
    chime_after: bool
    repeat: int
    gap_s: float


def broadcast_format(a: AudioSettings) -> BroadcastFormat:
    return BroadcastFormat(sample_rate=a.sample_rate, bitrate_kbps=a.bitrate_kbps, target_lufs=a.target_lufs,
                           true_peak_dbtp=a.true_peak_dbtp, max_duration_s=a.max_duration_s)


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


def engines(a: AudioSettings) -> dict[str, TtsEngine]:
    return {"offline": EspeakEngine(), "gtts": GttsEngine(timeout_s=a.gtts_timeout_s, url=a.gtts_url)}


def speak(engine: TtsEngine, text: str, voice: str, cache_dir: Path, out_wav: Path, options: Layout) -> None:
    """Synthesise `text` (cached) and lay it out with chimes and repeats into `out_wav`."""
    speech = synthesize(engine, text, voice, cache_dir)
    decoded = out_wav.with_suffix(".speech.wav")
    ffmpeg.run(["-i", str(speech), "-ac", "1", "-ar", "22050", "-y", str(decoded)])
    compose_file(decoded, out_wav, chime_before=options.chime_before, chime_after=options.chime_after,
                 repeat=options.repeat, gap_s=options.gap_s)
    decoded.unlink()

