"""Pre-recorded warnings (cảnh báo ghi sẵn): one recording per event type (`controller.warnings.EVENT_TYPES`)
that an emergency or a CAP alert of that type plays before any synthesis — the attention chime, the recording,
then the names of the communes concerned read by the synthesis chain.

- `list_warnings(ctx)`: every event type, recorded or not (`WarningsPublic`).
- `set_warning(ctx, event_type, filename, receive)`: the recording of an event type from an upload that
  `receive(directory)` copies into a temporary file there (the face counts the bytes: 413), made broadcast-ready
  as a bulletin is (`ingest_slot`, `make_media`: 415 not audio, 422 otherwise); it replaces the one before.
- `remove_warning(ctx, event_type)`: emergencies of that type are synthesised again.
- `recording_for(session, store, event_type)`, `names_read(...)`, `warning_media(...)`: what the emergency and
  CAP services use (no policy of their own: they are called after the emergency's checks).

The policy: a recording is the district's, used by every commune's emergencies of its type, so only a
principal holding the emergency right over the whole district may set or remove one (a commune-limited
principal must not change what another commune hears: 403); anyone holding the emergency right may list
them, since their emergencies play them (the UI's emergency page says which types are recorded). Sets,
removals and refused uploads are audited (`warning.set`, `warning.remove`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from audio import ffmpeg
from audio.ingest import IngestError
from audio.store import MediaStore
from audio.tts import TtsUnavailable
from controller.content import broadcast_format, make_media, media_url, speak_first, voice_order
from controller.db.models import Commune, MediaFile, WarningRecording
from controller.emergencies import SpeechLayout
from controller.errors import NotFound
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
        source = receive(store.root)
        try:
            media, _ = make_media(ctx.session, store, source, broadcast_format(audio), trim_silence=audio.trim_silence)
        except IngestError as e:
            ctx.audit(SET, "refused", target=key, detail=f"{label}: {e}")
            raise refused_audio(e) from None
        finally:
            source.unlink(missing_ok=True)
    row = ctx.session.get(WarningRecording, key) or WarningRecording(event_type=key, media_sha256=media.sha256,
                                                                     created_by=ctx.who.actor)
    row.media_sha256, row.source_filename = media.sha256, label
    row.created_by, row.created_at = ctx.who.actor, dt.datetime.now(dt.UTC)
    ctx.session.add(row)
    ctx.session.commit()
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


def _cache_file(settings: Any, recording_sha: str, said: str) -> Path:
    key = hashlib.sha256(f"{recording_sha}\0{said}".encode()).hexdigest()
    return Path(settings.data_dir) / "warning-audio" / key


def _decoded(source: Path, out: Path) -> Any:
    """`source` as a 22.05 kHz mono pydub segment."""
    from audio.compose import AudioSegment  # pydub: imported where it is used

    ffmpeg.run(["-i", str(source), "-ac", "1", "-ar", "22050", "-y", str(out)])
    with out.open("rb") as f:
        return AudioSegment.from_wav(f)


def _names_speech(settings: Any, said: str, work: Path, use: str) -> Any:
    """`said` read by the first engine of `use`'s order that can (its deadlines and speech cache: see
    `controller.emergencies.voiced_media`), without the chime (it comes before the recording), as a 22.05 kHz
    mono pydub segment; None when no engine could (the recording then plays alone)."""
    out = work / "names.wav"
    try:
        speak_first(voice_order(settings, use), said, Path(settings.data_dir) / "tts-cache", out,
                    SpeechLayout(chime_before=False))
    except TtsUnavailable as e:
        log.warning("the communes' names after a pre-recorded warning could not be read: %s", e)
        return None
    return _decoded(out, work / "names-22k.wav")


def warning_media(engine: Engine, settings: Any, store: MediaStore, recording: MediaFile, said: str,
                  use: str = "emergencies") -> MediaFile:
    """Broadcast audio of a pre-recorded warning: the attention chime, the recording, then `said` (the
    communes' names) read by the synthesis chain of `use` ("emergencies", "cap") — the one made before for the
    same recording and names, or made now. Not put in the content library."""
    from audio.compose import AudioSegment, chime  # pydub: imported where it is used

    cached = _cache_file(settings, recording.sha256, said)
    if cached.exists():
        sha = cached.read_text().strip()
        with Session(engine) as s:
            known = s.get(MediaFile, sha)
            if known is not None and store.exists(sha):
                return known
    with tempfile.TemporaryDirectory(dir=store.root, prefix=".work-") as tmp:
        work = Path(tmp)
        warning = _decoded(store.verified_path(recording.sha256), work / "warning.wav")
        rate = warning.frame_rate
        body = chime(rate) + AudioSegment.silent(400, frame_rate=rate) + warning
        names = _names_speech(settings, said, work, use) if said else None
        if names is not None:
            body = body + AudioSegment.silent(700, frame_rate=rate) + names
        composed = work / "composed.wav"
        with composed.open("wb") as f:
            body.export(f, format="wav")
        with Session(engine) as s:
            media, _ = make_media(s, store, composed, broadcast_format(settings.audio), trim_silence=False)
            s.commit()  # the emergency row that refers to it is written in another session
            s.refresh(media)
    if names is not None or not said:  # without the names it is made again next time
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(media.sha256)
    return media
