"""Pre-recorded warnings (cảnh báo ghi sẵn): one recording per event type (`controller.warnings.EVENT_TYPES`)
that an emergency or a CAP alert of that type plays before any synthesis — the attention chime, the recording,
then the names of the communes concerned and the text (an emergency's, with its key instruction; a CAP alert's)
read by the synthesis chain. A CAP test, exercise, all-clear or past event never plays it
(`controller.cap.plays_recording`); when the recording cannot be played (damaged, ffmpeg failing:
`RecordingFailed`) the caller reads the text instead and notes why.

- `list_warnings(ctx)`: every event type, recorded or not (`WarningsPublic`).
- `set_warning(ctx, event_type, filename, receive)`: the recording of an event type from an upload that
  `receive(directory)` copies into a temporary file there (the face counts the bytes: 413), made broadcast-ready
  as a bulletin is (`ingest_slot`, `make_media`: 415 not audio, 422 otherwise); it replaces the one before.
- `remove_warning(ctx, event_type)`: emergencies of that type are synthesised again.
- `recording_for(session, store, event_type)`, `names_read(...)`, `after_recording(names, text)`,
  `warning_media(...) -> WarningAudio`: what the emergency and CAP services use (no policy of their own: they
  are called after the emergency's checks). The audio is made once per recording, words, engine that read
  them and broadcast format (an index under data_dir/warning-audio, written atomically, rebuilt if unreadable).

The policy: a recording is the district's, used by every commune's emergencies of its type, so only a
principal holding the emergency right over the whole district may set or remove one (a commune-limited
principal must not change what another commune hears: 403); anyone holding the emergency right may list
them, since their emergencies play them (the UI's emergency page says which types are recorded). Sets,
removals and refused uploads (413, not audio, a recording's part refused) are audited (`warning.set`,
`warning.remove`). Two first uploads of one type at once: the later one is kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from audio import ffmpeg
from audio.ingest import IngestError
from audio.store import MediaStore
from audio.tts import cache_path
from audio.tts_chain import NoEngineSpoke, Skipped, skipped_note
from controller.content import broadcast_format, make_media, media_url, speak_first, voice_order
from controller.db.models import Commune, MediaFile, WarningRecording
from controller.emergencies import SpeechLayout
from controller.errors import DomainError, NotFound
from controller.policy import Right, require, require_district
from controller.scheduling import local
from controller.warnings import EVENT_TYPES, communes_sentence

from .content import display_filename, ingest_slot, refused_audio, spoken_text
from .context import Ctx

log = logging.getLogger(__name__)
READ, SET, REMOVE = "warning.read", "warning.set", "warning.remove"
RECORDED = "recorded"  # `Emergency.engine` when a pre-recorded warning spoke
ALL_DISTRICT = "Toàn huyện."  # read after the recording when an emergency reaches every receiver


class WarningPublic(BaseModel):
    event_type: str = Field(description="the key: flash-flood, landslide, storm, …")
    name: str = Field(description="the event type in Vietnamese")
    recorded: bool
    duration_s: float | None = None
    media_url: str | None = Field(default=None, description="the recording, to listen to")
    source_filename: str | None = None
    created_by: str | None = None
    created_at: dt.datetime | None = None


class WarningsPublic(BaseModel):
    data: list[WarningPublic]
    count: int


def _public(key: str, row: WarningRecording | None, media: MediaFile | None) -> WarningPublic:
    kind = EVENT_TYPES[key]
    if row is None or media is None:
        return WarningPublic(event_type=key, name=kind.name, recorded=False)
    return WarningPublic(event_type=key, name=kind.name, recorded=True, duration_s=media.duration_s,
                         media_url=media_url(media.sha256), source_filename=row.source_filename,
                         created_by=row.created_by, created_at=local(row.created_at))


def _known(event_type: str) -> str:
    if event_type not in EVENT_TYPES:
        raise NotFound(f"No event type {event_type!r}; known: {', '.join(EVENT_TYPES)}.")
    return event_type


def list_warnings(ctx: Ctx) -> WarningsPublic:
    """Every event type, in `EVENT_TYPES` order, with its recording if it has one."""
    require(ctx.who, Right.EMERGENCY, READ)
    rows = {r.event_type: r for r in ctx.session.exec(select(WarningRecording))}
    media = {m.sha256: m for m in ctx.session.exec(select(MediaFile).where(
        col(MediaFile.sha256).in_([r.media_sha256 for r in rows.values()])))}
    data = [_public(key, rows.get(key), media.get(rows[key].media_sha256) if key in rows else None)
            for key in EVENT_TYPES]
    return WarningsPublic(data=data, count=len(data))


def set_warning(ctx: Ctx, event_type: str, filename: str | None, receive: Callable[[Path], Path]) -> WarningPublic:
    """Make the upload the recording of `event_type` (replacing any before). The file is received only once
    the principal may set it."""
    require_district(ctx.who, Right.EMERGENCY, SET)
    key = _known(event_type)
    label = display_filename(filename)
    store, audio = ctx.require_media(), ctx.settings.audio
    with ingest_slot(ctx):
        try:
            source = receive(store.root)  # 413 too large, a recording's part refused: audited as refusals
        except DomainError as e:
            ctx.audit(SET, "refused", target=key, detail=f"{label}: {e.message}")
            raise
        try:
            media, _ = make_media(ctx.session, store, source, broadcast_format(audio), trim_silence=audio.trim_silence)
        except IngestError as e:
            ctx.audit(SET, "refused", target=key, detail=f"{label}: {e}")
            raise refused_audio(e) from None
        finally:
            source.unlink(missing_ok=True)
    sha = media.sha256
    try:
        ctx.session.commit()  # the audio first: the same file uploaded twice at once is stored once
    except IntegrityError:
        ctx.session.rollback()
    stored = ctx.session.get(MediaFile, sha)
    assert stored is not None
    media = stored
    for attempt in (1, 2):  # two first uploads of one type at once: the later one replaces the other's
        row = ctx.session.get(WarningRecording, key) or WarningRecording(event_type=key, media_sha256=media.sha256,
                                                                         created_by=ctx.who.actor)
        row.media_sha256, row.source_filename = media.sha256, label
        row.created_by, row.created_at = ctx.who.actor, dt.datetime.now(dt.UTC)
        ctx.session.add(row)
        try:
            ctx.session.commit()
            break
        except IntegrityError:
            ctx.session.rollback()
            if attempt == 2:
                raise
    ctx.session.refresh(row)
    ctx.audit(SET, target=key, detail=f"{label} ({media.sha256[:12]}, {media.duration_s:.1f} s)")
    return _public(key, row, media)


def remove_warning(ctx: Ctx, event_type: str) -> None:
    """Emergencies of `event_type` are synthesised again (the audio itself stays: emergencies refer to it)."""
    require_district(ctx.who, Right.EMERGENCY, REMOVE)
    key = _known(event_type)
    row = ctx.session.get(WarningRecording, key)
    if row is None:
        raise NotFound(f"No recording for event type {key!r}.")
    ctx.session.delete(row)
    ctx.session.commit()
    ctx.audit(REMOVE, target=key, detail=row.media_sha256[:12])


# ------------------------------------------------------------------------------------------ use


def recording_for(session: Session, store: MediaStore, event_type: str | None) -> MediaFile | None:
    """The recording of `event_type`, if one is set and its audio is in the store."""
    if event_type is None:
        return None
    row = session.get(WarningRecording, event_type)
    media = session.get(MediaFile, row.media_sha256) if row is not None else None
    if media is None or not store.exists(media.sha256):
        if row is not None:
            log.warning("the recording of %s (%s) is missing from the media store", event_type, row.media_sha256)
        return None
    return media


def names_read(session: Session, communes: Iterable[str], everywhere: bool) -> str:
    """What is read after the recording: the names of `communes` (codes), as the loudspeakers read them
    (with the built-in and district abbreviations only), or "Toàn huyện." for an emergency to every receiver."""
    if everywhere:
        return ALL_DISTRICT
    codes = sorted(set(communes))
    names = {c.code: c.name for c in session.exec(select(Commune).where(col(Commune.code).in_(codes)))}
    return spoken_text(session, communes_sentence(names.get(c, c) for c in codes), None)


def after_recording(names: str, text: str | None) -> str:
    """What is read after a recording: the communes' names, then the text (as read out) when there is one."""
    return " ".join(part for part in (names.strip(), (text or "").strip()) if part)


class RecordingFailed(Exception):
    """The recorded warning's audio could not be made (a damaged recording, ffmpeg failing): the caller reads
    the text instead."""


@dataclass(frozen=True)
class WarningAudio:
    """Broadcast audio of a recorded warning and what was read after the recording."""

    media: MediaFile
    spoken: str | None  # what the engine read after it (None: nothing could be read; the recording plays alone)
    engine: str | None  # the engine that read it
    note: str | None  # why engines did not read it (or why nothing was)


def _cache_file(settings: Any, recording_sha: str, said: str) -> Path:
    """The index of the audio made of a recording and `said`, by the engine that read `said`, in today's
    broadcast format (a change of loudness, bitrate or sample rate makes it again)."""
    fmt = broadcast_format(settings.audio)
    shape = f"{fmt.sample_rate}/{fmt.bitrate_kbps}/{fmt.target_lufs}/{fmt.true_peak_dbtp}/{fmt.lra}"
    key = hashlib.sha256(f"{recording_sha}\0{said}\0{shape}".encode()).hexdigest()
    return Path(settings.data_dir) / "warning-audio" / f"{key}.json"


def _read_index(path: Path) -> dict[str, str]:
    """{engine: broadcast sha} of an index file; empty when it is missing or unreadable (it is made again)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as e:
        log.warning("the warning audio index %s is unreadable (%s): made again", path.name, e)
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def _write_index(path: Path, index: dict[str, str]) -> None:
    """Atomically: a reader sees the old index or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".index-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(index, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _decoded(source: Path, out: Path) -> Any:
    """`source` as a 22.05 kHz mono pydub segment."""
    from audio.compose import AudioSegment  # pydub: imported where it is used

    ffmpeg.run(["-i", str(source), "-ac", "1", "-ar", "22050", "-y", str(out)])
    with out.open("rb") as f:
        return AudioSegment.from_wav(f)


def warning_media(engine: Engine, settings: Any, store: MediaStore, recording: MediaFile, said: str,
                  use: str = "emergencies") -> WarningAudio:
    """Broadcast audio of a pre-recorded warning: the attention chime, the recording, then `said` (the
    communes' names and the text) read by the first engine of `use`'s order ("emergencies", "cap") that can —
    for each engine in turn, the audio made before of the same recording and words by that engine (while its
    speech of them is in the speech cache, as `controller.emergencies.voiced_media` reuses), else that engine
    now. When no engine can, the recording plays alone (not kept: made again next time). Not put in the
    content library. `RecordingFailed` when the audio cannot be made (the caller reads the text instead)."""
    try:
        return _warning_media(engine, settings, store, recording, said, use)
    except Exception as e:  # a damaged recording, ffmpeg, pydub: the warning must still go out, read
        log.exception("the pre-recorded warning %s could not be played", recording.sha256[:12])
        raise RecordingFailed(f"the pre-recorded warning could not be played ({type(e).__name__}: {e})") from e


def _warning_media(engine: Engine, settings: Any, store: MediaStore, recording: MediaFile, said: str,
                   use: str) -> WarningAudio:
    from audio.compose import AudioSegment, chime  # pydub: imported where it is used

    index_file = _cache_file(settings, recording.sha256, said)
    index = _read_index(index_file)
    cache = Path(settings.data_dir) / "tts-cache"
    candidates = voice_order(settings, use, chars=len(said)) if said else []
    skipped: list[Skipped] = []
    with Session(engine) as s:
        for c in candidates:
            sha = index.get(c.engine.name)
            known = s.get(MediaFile, sha) if sha else None
            if known is not None and store.exists(known.sha256) and cache_path(c.engine, c.voice, said, cache).exists():
                return WarningAudio(known, said, c.engine.name, skipped_note(skipped, c.engine.name))
        if not said and (known := s.get(MediaFile, index.get("", ""))) is not None and store.exists(known.sha256):
            return WarningAudio(known, None, None, None)
    with tempfile.TemporaryDirectory(dir=store.root, prefix=".work-") as tmp:
        work = Path(tmp)
        warning = _decoded(store.verified_path(recording.sha256), work / "warning.wav")
        rate = warning.frame_rate
        body = chime(rate) + AudioSegment.silent(400, frame_rate=rate) + warning
        spoke: str | None = None
        for c in candidates:
            try:
                speak_first([c], said, cache, work / "said.wav", SpeechLayout(chime_before=False))
            except NoEngineSpoke as e:
                skipped.extend(e.skipped)
                continue
            body = body + AudioSegment.silent(700, frame_rate=rate) + _decoded(work / "said.wav", work / "said-22k.wav")
            spoke = c.engine.name
            break
        composed = work / "composed.wav"
        with composed.open("wb") as f:
            body.export(f, format="wav")
        with Session(engine) as s:
            media, _ = make_media(s, store, composed, broadcast_format(settings.audio), trim_silence=False)
            s.commit()  # the emergency row that refers to it is written in another session
            s.refresh(media)
    if said and spoke is None:  # the recording alone: made again next time, when an engine may read
        log.warning("the words after a pre-recorded warning could not be read: %s", NoEngineSpoke(skipped))
        return WarningAudio(media, None, None, f"the names and text after the recording were not read: "
                                               f"{NoEngineSpoke(skipped)}")
    _write_index(index_file, {**_read_index(index_file), spoke or "": media.sha256})
    return WarningAudio(media, said or None, spoke, skipped_note(skipped, spoke) if spoke else None)
