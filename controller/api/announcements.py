"""`/api/v1/announcements`: Vietnamese text read aloud (thông báo), with optional chimes and repeats.

Text is normalised first (numbers, dates, units, abbreviations… → words: `audio.vi_text`), and
`POST /preview-text` shows staff exactly what will be read. When Google's engine is chosen but cannot be
reached, the offline engine reads it and the response says so in `note`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field, field_validator
from sqlmodel import col, func, select

from audio.ingest import IngestError
from audio.tts import TtsUnavailable
from controller.auth import CanReadContent, CanWriteContent, audit
from controller.content import (
    broadcast_format,
    commune_for,
    content_query,
    delete_content,
    engines,
    find_content,
    ingest_error,
    make_media,
    media_url,
    normalized,
    speak,
)
from controller.db.models import Abbreviation, Announcement, AnnouncementPublic, AnnouncementsPublic, Commune, MediaFile

from .deps import SessionDep

router = APIRouter(prefix="/announcements", tags=["announcements"])
abbreviations = APIRouter(prefix="/abbreviations", tags=["announcements"])


class AnnouncementCreate(BaseModel):
    text: str = Field(description="Vietnamese text to read aloud")
    title: str | None = Field(default=None, max_length=200)
    engine: str | None = Field(default=None, description="'offline' (eSpeak NG) or 'gtts' (Google, online)")
    voice: str | None = None
    chime_before: bool = False
    chime_after: bool = False
    repeat: int = Field(default=1, ge=1, le=10)
    gap_s: float = Field(default=2.0, ge=0, le=60)
    commune: str | None = None

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the text is empty")
        return v


class PreviewRequest(BaseModel):
    text: str


class PreviewResponse(BaseModel):
    text: str
    normalized_text: str


def _public(a: Announcement, m: MediaFile, code: str | None) -> AnnouncementPublic:
    assert a.id is not None
    return AnnouncementPublic(
        id=a.id, title=a.title, commune=code, sha256=m.sha256, duration_s=m.duration_s,
        loudness_before=a.loudness_before, loudness_after=a.loudness_after, true_peak_after=m.true_peak_dbtp,
        media_url=media_url(m.sha256), created_by=a.created_by, created_at=a.created_at, text=a.text,
        normalized_text=a.normalized_text, engine_requested=a.engine_requested, engine=a.engine, voice=a.voice,
        chime_before=a.chime_before, chime_after=a.chime_after, repeat=a.repeat, gap_s=a.gap_s, note=a.note)


def _text_limit(request: Request, text: str) -> None:
    limit = request.app.state.settings.audio.max_text_chars
    if len(text) > limit:
        raise HTTPException(422, f"The text is {len(text)} characters long; the limit is {limit}.")


@router.post("/preview-text", response_model=PreviewResponse)
def preview_text(body: PreviewRequest, request: Request, session: SessionDep, who: CanReadContent) -> PreviewResponse:
    _text_limit(request, body.text)
    return PreviewResponse(text=body.text, normalized_text=normalized(session, body.text))


@router.post("", status_code=201, response_model=AnnouncementPublic)
def create_announcement(body: AnnouncementCreate, request: Request, session: SessionDep,
                        who: CanWriteContent) -> AnnouncementPublic:
    settings = request.app.state.settings
    _text_limit(request, body.text)
    available = engines(settings.audio)
    requested = body.engine or settings.audio.default_engine
    if requested not in available:
        raise HTTPException(422, f"Unknown engine {requested!r}: choose one of {', '.join(available)}.")
    voice = body.voice or available[requested].voices[0]
    if voice not in available[requested].voices:
        raise HTTPException(422, f"Engine {requested!r} has no voice {voice!r}: "
                                 f"choose one of {', '.join(available[requested].voices)}.")
    target = commune_for(session, who, body.commune)
    text = normalized(session, body.text)
    store = request.app.state.media
    note = None
    with tempfile.TemporaryDirectory(dir=store.root, prefix=".work-") as work:
        composed = Path(work) / "announcement.wav"
        engine = available[requested]
        try:
            speak(engine, text, voice, settings.data_dir / "tts-cache", composed, body)
        except TtsUnavailable as e:
            if requested == "offline":
                raise HTTPException(503, f"Text-to-speech is not available on this controller: {e}") from None
            note = "Google TTS could not be reached; the offline engine read this announcement instead."
            engine = available["offline"]
            voice = engine.voices[0]
            speak(engine, text, voice, settings.data_dir / "tts-cache", composed, body)
        try:
            media, result = make_media(session, store, composed, broadcast_format(settings.audio),
                                       trim_silence=False)
        except IngestError as e:
            raise ingest_error(e) from None
    announcement = Announcement(
        title=(body.title or body.text.strip()[:80]), commune_id=target.id if target else None,
        media_sha256=media.sha256, text=body.text, normalized_text=text, engine_requested=requested,
        engine=engine.name, voice=voice, chime_before=body.chime_before, chime_after=body.chime_after,
        repeat=body.repeat, gap_s=body.gap_s, note=note, loudness_before=result.loudness_before,
        loudness_after=result.loudness_after, created_by=who.actor)
    session.add(announcement)
    session.commit()
    session.refresh(announcement)
    audit(request.app.state.engine, who.actor, "announcement.create", "ok", target=str(announcement.id),
          detail=f"{engine.name}/{voice}, {media.duration_s:.1f} s" + (f"; {note}" if note else ""))
    return _public(announcement, media, target.code if target else None)


@router.get("", response_model=AnnouncementsPublic)
def list_announcements(session: SessionDep, who: CanReadContent, commune: str | None = None,
                       limit: int = 100, offset: int = 0) -> AnnouncementsPublic:
    q = content_query(Announcement, who)
    if commune:
        q = q.where(Commune.code == commune)
    count = session.exec(select(func.count()).select_from(q.subquery())).one()
    rows = session.exec(q.order_by(col(Announcement.id).desc()).offset(offset).limit(min(limit, 1000))).all()
    return AnnouncementsPublic(data=[_public(a, m, c.code if c else None) for a, m, c in rows], count=count)


@router.get("/{aid}", response_model=AnnouncementPublic)
def get_announcement(aid: int, session: SessionDep, who: CanReadContent) -> AnnouncementPublic:
    a, m, c = find_content(session, Announcement, aid, who)
    return _public(a, m, c.code if c else None)


@router.delete("/{aid}", status_code=204)
def delete_announcement(aid: int, request: Request, session: SessionDep, who: CanWriteContent) -> None:
    delete_content(session, request.app.state.engine, request.app.state.media,
                   find_content(session, Announcement, aid, who), who)


# --------------------------------------------------------------------------------- abbreviation list


class AbbreviationIn(BaseModel):
    expansion: Annotated[str, Field(min_length=1, max_length=200)]


@abbreviations.get("", response_model=dict[str, str])
def list_abbreviations(session: SessionDep, who: CanReadContent) -> dict[str, str]:
    """The staff's own abbreviations (the built-in list is in `audio/vi_abbreviations.toml`)."""
    return {a.abbr: a.expansion for a in session.exec(select(Abbreviation).order_by(col(Abbreviation.abbr)))}


@abbreviations.put("/{abbr}", response_model=dict[str, str])
def put_abbreviation(abbr: str, body: AbbreviationIn, request: Request, session: SessionDep,
                     who: CanWriteContent) -> dict[str, str]:
    if not abbr.strip() or len(abbr) > 40 or " " in abbr.strip():
        raise HTTPException(422, "An abbreviation is one word of at most 40 characters.")
    row = session.get(Abbreviation, abbr) or Abbreviation(abbr=abbr, expansion="", updated_by=who.actor)
    row.expansion, row.updated_by = body.expansion.strip(), who.actor
    session.add(row)
    session.commit()
    audit(request.app.state.engine, who.actor, "abbreviation.put", "ok", target=abbr, detail=row.expansion)
    return {row.abbr: row.expansion}


@abbreviations.delete("/{abbr}", status_code=204)
def delete_abbreviation(abbr: str, request: Request, session: SessionDep, who: CanWriteContent) -> None:
    row = session.get(Abbreviation, abbr)
    if row is None:
        raise HTTPException(404, f"No abbreviation {abbr!r} in the staff list.")
    session.delete(row)
    session.commit()
    audit(request.app.state.engine, who.actor, "abbreviation.delete", "ok", target=abbr)
