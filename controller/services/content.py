"""The content library: bulletins (bản tin) and announcements (thông báo), their approval (duyệt tin), the text
that will actually be spoken, and the staff's abbreviation lists.

- Shapes: `BulletinUpload`, `AnnouncementCreate`, `ReturnRequest`, `PreviewRequest` / `PreviewPublic`; the
  public rows are `BulletinPublic` / `AnnouncementPublic` (`controller.db.models`), with `approved`,
  `approved_by`, `approved_at` and `returned_by`, `returned_at`, `returned_comment`.
- Bulletins and announcements: `create_bulletin`, `create_announcement`, `list_bulletins`, `list_announcements`,
  `get_bulletin`, `get_announcement`, `delete_bulletin`, `delete_announcement`, `preview_text`;
  `listen_announcement`: an announcement made to be heard before it is saved, and not kept.
- Approval: content made by a commune operator is a draft until someone who `may_approve` it approves it
  (`approve_bulletin`, `approve_announcement`; a commune leader or the district for a commune's content, the
  district for district-wide content), or sends it back with a comment its author reads (`return_bulletin`,
  `return_announcement`: `returned_by/_at/_comment`; it stays a draft, and approval clears them). Content
  made by someone who may approve it, or in a commune whose `approval_required` is off, is approved at once.
  Nothing edits content after it is made.
- Abbreviations: `controller.services.abbreviations` (the district's list and each commune's own).

Bounds: making audio holds a slot of the media store's `IngestGate` (`TT_AUDIO__MAX_CONCURRENT_INGESTS` at
a time, a short queue, then `Unavailable` 503 "busy, try again"); texts are at most `max_text_chars`, titles
`MAX_TITLE`; an upload's file name is kept only as a label (`display_filename`: no directories, control or
bidirectional-override characters), never used as a path.

Shared with the other domains (these signatures are relied on):
- `usable_content(ctx, bulletin_id=…, announcement_id=…, action=…)`: the content a play, programme or
  emergency may use — visible to the principal (another commune's is `Hidden`, 404) and approved (a draft
  is a `Conflict`, 409).
- `spoken_text(session, text, commune)`: what the engine will actually read: the built-in abbreviations, the
  district's list, then the commune's own (None: the district list only, as for text sent to several
  communes).
"""

from __future__ import annotations

import os
import tempfile
import unicodedata
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session, col, func, select

from audio.ingest import IngestBusy, IngestError, IngestGate, Progress, ingest
from audio.store import MediaStore
from audio.tts import TtsUnavailable
from audio.tts_chain import Speech
from audio.vi_text import normalize
from controller.content import (
    broadcast_format,
    engines,
    ingest_error,
    make_media,
    media_url,
    speak_and_make,
    speech_format,
    voice_order,
)
from controller.db.models import (
    Announcement,
    AnnouncementPublic,
    AnnouncementsPublic,
    Bulletin,
    BulletinPublic,
    BulletinsPublic,
    Commune,
    Emergency,
    MediaFile,
    Programme,
    WarningRecording,
    utcnow,
)
from controller.errors import Conflict, DomainError, Forbidden, Hidden, Invalid, NotFound, Unavailable
from controller.policy import Principal, Right, require

from .abbreviations import abbreviations_for
from .communes import commune_named
from .context import Ctx, Page

ContentModel = Bulletin | Announcement
Kind = Literal["bulletin", "announcement"]
MODELS: dict[str, type[Bulletin] | type[Announcement]] = {"bulletin": Bulletin, "announcement": Announcement}


# ------------------------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class BulletinUpload:
    """The form fields of an upload (the file itself is received by the face: see `create_bulletin`)."""

    title: str
    filename: str | None = None
    commune: str | None = None
    trim_silence: bool | None = None  # None: the controller's setting


T = TypeVar("T")
MAX_TITLE = 200
MAX_KEY_INSTRUCTION = 500
REPEAT_INTRO = "Xin nhắc lại:"


class AnnouncementCreate(BaseModel):
    text: str = Field(description="Vietnamese text to read aloud")
    title: str | None = Field(default=None, max_length=MAX_TITLE)
    engine: str | None = Field(default=None, max_length=40,
                               description="'offline' (eSpeak NG), 'gtts' (Google, online) or 'neural' (the installed "
                                           "neural voice): tried first, then the order of TT_TTS__ANNOUNCEMENTS")
    voice: str | None = Field(default=None, max_length=100)
    key_instruction: str | None = Field(
        default=None, max_length=MAX_KEY_INSTRUCTION,
        description="read again at the end, after 'Xin nhắc lại:' (the key instruction of a long text)")
    chime_before: bool = False
    chime_after: bool = False
    repeat: int = Field(default=1, ge=1, le=10)
    gap_s: float = Field(default=2.0, ge=0, le=60)
    commune: str | None = Field(default=None, max_length=100,
                                description="the commune's code; none for district-wide content")

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the text is empty")
        return v


class ReturnRequest(BaseModel):
    comment: str = Field(description="why the draft is sent back, for its author (required, ≤ 1000 characters)")


class PreviewRequest(BaseModel):
    text: str
    commune: str | None = Field(default=None, max_length=100,
                                description="read with this commune's own abbreviations too")


class PreviewPublic(BaseModel):
    text: str
    normalized_text: str = Field(description="exactly what the engine will read")
    commune: str | None = None


# ------------------------------------------------------------------------------------- spoken text


def spoken_text(session: Session, text: str, commune: str | None, key_instruction: str | None = None) -> str:
    """What the engine reads: `text` normalised, then "Xin nhắc lại: <key_instruction>" when one is given."""
    table = abbreviations_for(session, commune)
    said = normalize(text, table)
    key = (key_instruction or "").strip()
    if not key:
        return said
    return f"{_sentence(said)} {REPEAT_INTRO} {_sentence(normalize(key, table))}"


def _sentence(text: str) -> str:
    """`text` ending as a sentence does, so the engine pauses before what follows."""
    text = text.strip()
    return text if not text or text[-1] in ".!?…" else text + "."


def _text_limit(ctx: Ctx, text: str) -> None:
    limit = ctx.settings.audio.max_text_chars
    if len(text) > limit:
        raise Invalid(f"The text is {len(text)} characters long; the limit is {limit}.")


# Abbreviations lengthen a text (an expansion may have 200 characters): what is read is bounded too, or a
# text of one-letter abbreviations within the limit would be read for hours.
SPOKEN_FACTOR = 3


def _spoken(ctx: Ctx, text: str, commune: str | None, key_instruction: str | None = None) -> str:
    spoken = spoken_text(ctx.session, text, commune, key_instruction)
    limit = SPOKEN_FACTOR * ctx.settings.audio.max_text_chars
    if len(spoken) > limit:
        raise Invalid(f"With its abbreviations written out, the text is {len(spoken)} characters long; "
                      f"the limit is {limit}.")
    return spoken


def preview_text(ctx: Ctx, body: PreviewRequest) -> PreviewPublic:
    """What an announcement of `body.text` in `body.commune` (None: district-wide) would read."""
    require(ctx.who, Right.CONTENT_READ, "announcement.preview")
    _text_limit(ctx, body.text)
    commune = commune_named(ctx, body.commune, "announcement.preview")
    code = commune.code if commune else None
    return PreviewPublic(text=body.text, normalized_text=_spoken(ctx, body.text, code), commune=code)


# ------------------------------------------------------------------------------------------- bounds

BUSY = ("Máy chủ đang bận xử lý các tệp âm thanh khác; hãy thử lại sau ít phút. "
        "(The server is busy making other audio broadcast-ready; try again in a minute.)")
_GATES: weakref.WeakKeyDictionary[MediaStore, IngestGate] = weakref.WeakKeyDictionary()
# Characters that change how a name is read without being seen: bidirectional overrides and marks.
_INVISIBLE = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}


@contextmanager
def ingest_slot(ctx: Ctx) -> Iterator[None]:
    """A slot of the controller's ingest gate (one per media store) while audio is made; `Unavailable`
    (503, with Retry-After) when every slot is taken and the queue is full or the wait runs out.

    The request's read transaction ends first, so its database connection goes back to the pool while it
    waits and while ffmpeg runs: a flood of uploads held every pooled connection, each then waiting for a
    second one (the audit row of its refusal), and the emergency route waited 30 s for one, then failed."""
    ctx.session.commit()
    store, audio = ctx.require_media(), ctx.settings.audio
    gate = _GATES.get(store)
    if gate is None:
        gate = _GATES.setdefault(store, IngestGate(audio.max_concurrent_ingests, audio.max_waiting_ingests,
                                                   audio.ingest_wait_s))
    try:
        with gate.slot():
            yield
    except IngestBusy as e:
        raise Unavailable(BUSY, headers={"Retry-After": "30"}, code="ingest_busy", detail=BUSY) from e


def refused_audio(e: IngestError) -> DomainError:
    """The domain error for audio that cannot be made (415 not audio, 422 otherwise), with the code the
    ingest gave when the message alone does not name one."""
    error = ingest_error(e)
    error.code = error.code or e.code
    return error


def display_filename(name: str | None) -> str:
    """An upload's file name as a label: its last path part, without control characters or bidirectional
    overrides, normalised, at most `MAX_TITLE` characters ("upload" when nothing is left). It is never
    used as a path (the audio is stored by its hash)."""
    text = unicodedata.normalize("NFC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in text if c not in _INVISIBLE and unicodedata.category(c)[0] != "C").strip()
    return text.strip(".") and text[:MAX_TITLE] or "upload"


def checked_title(title: str) -> str:
    text = (title or "").strip()
    if not text:
        raise Invalid("The title is empty.")
    if len(text) > MAX_TITLE:
        raise Invalid(f"The title is {len(text)} characters long; the limit is {MAX_TITLE}.")
    return text


# ------------------------------------------------------------------------------ communes and approval


def _publishing_in(ctx: Ctx, code: str | None, action: str) -> Commune | None:
    """Where new content goes: a commune of the principal's, or the district for an unrestricted one."""
    require(ctx.who, Right.CONTENT_WRITE, action)
    if code is None and not ctx.who.district:
        raise Forbidden(f"This {ctx.who.kind} is limited to some communes: name one of them (commune=…).",
                        who=ctx.who, action=action)
    return commune_named(ctx, code, action)


def may_approve(who: Principal, commune: str | None) -> bool:
    """A commune's content: an approver in that commune; district-wide content: a district-wide approver."""
    return who.has(Right.CONTENT_APPROVE) and who.may_touch(commune)


def _approve_at_once(ctx: Ctx, content: ContentModel, commune: Commune | None) -> str:
    """Approve new content when nobody else needs to; returns how it stands, for the audit log."""
    code = commune.code if commune else None
    if may_approve(ctx.who, code):
        why = "approved: made by an approver"
    elif commune is not None and not commune.approval_required:
        why = f"approved: {commune.code} does not require approval"
    else:
        return "draft: waits for approval"
    content.approved_by, content.approved_at = ctx.who.actor, utcnow()
    return why


def _approve(ctx: Ctx, kind: Kind, ident: int) -> BulletinPublic | AnnouncementPublic:
    action = f"{kind}.approve"
    require(ctx.who, Right.CONTENT_APPROVE, action)
    content, media, commune = _find(ctx, kind, ident, action)
    code = commune.code if commune else None
    if not may_approve(ctx.who, code):
        raise Forbidden(f"The {kind} {ident} is district-wide: it is approved by a district-wide approver.",
                        who=ctx.who, action=action)
    if content.approved_at is None:  # approving twice changes nothing: the first approval stands
        content.approved_by, content.approved_at = ctx.who.actor, utcnow()
        content.returned_by = content.returned_at = content.returned_comment = None
        ctx.session.add(content)
        ctx.session.commit()
        ctx.session.refresh(content)
        ctx.audit(action, target=str(ident), detail=f"{content.title} ({code or 'district-wide'})")
    return _public(content, media, code)


def approve_bulletin(ctx: Ctx, ident: int) -> BulletinPublic:
    out = _approve(ctx, "bulletin", ident)
    assert isinstance(out, BulletinPublic)
    return out


def approve_announcement(ctx: Ctx, ident: int) -> AnnouncementPublic:
    out = _approve(ctx, "announcement", ident)
    assert isinstance(out, AnnouncementPublic)
    return out


MAX_RETURN_COMMENT = 1000


def return_comment(comment: str) -> str:
    """The approver's comment on what it sends back: required, at most `MAX_RETURN_COMMENT` characters."""
    text = (comment or "").strip()
    if not text:
        raise Invalid("Say why it is sent back: the comment is empty.", code="return_comment_required")
    if len(text) > MAX_RETURN_COMMENT:
        raise Invalid(f"The comment is {len(text)} characters long; the limit is {MAX_RETURN_COMMENT}.",
                      code="return_comment_long", params={"max": MAX_RETURN_COMMENT})
    return text


def _send_back(ctx: Ctx, kind: Kind, ident: int, comment: str) -> BulletinPublic | AnnouncementPublic:
    """Send a draft back to its author with a comment (who may: whoever may approve it). It stays a draft."""
    action = f"{kind}.return"
    require(ctx.who, Right.CONTENT_APPROVE, action)
    content, media, commune = _find(ctx, kind, ident, action)
    code = commune.code if commune else None
    if not may_approve(ctx.who, code):
        raise Forbidden(f"The {kind} {ident} is district-wide: it is judged by a district-wide approver.",
                        who=ctx.who, action=action)
    send_back(ctx, content, f"{kind} {ident}", action, comment, f"{content.title} ({code or 'district-wide'})")
    return _public(content, media, code)


def send_back(ctx: Ctx, row: Any, what: str, action: str, comment: str, about: str) -> None:
    """Mark the draft `row` (a bulletin, an announcement, a programme) sent back to its author with
    `comment` (checked: required, not too long), and audit it. An approved one cannot be sent back."""
    text = return_comment(comment)
    if row.approved_at is not None:
        raise Conflict(f"The {what} is approved already: only a draft can be sent back.", code="return_approved")
    row.returned_by, row.returned_at, row.returned_comment = ctx.who.actor, utcnow(), text
    ctx.session.add(row)
    ctx.session.commit()
    ctx.session.refresh(row)
    ctx.audit(action, target=str(row.id), detail=f"{about}: {text}")


def return_bulletin(ctx: Ctx, ident: int, comment: str) -> BulletinPublic:
    out = _send_back(ctx, "bulletin", ident, comment)
    assert isinstance(out, BulletinPublic)
    return out


def return_announcement(ctx: Ctx, ident: int, comment: str) -> AnnouncementPublic:
    out = _send_back(ctx, "announcement", ident, comment)
    assert isinstance(out, AnnouncementPublic)
    return out


# --------------------------------------------------------------------------------- public shapes


@overload
def _public(content: Bulletin, m: MediaFile, code: str | None) -> BulletinPublic: ...
@overload
def _public(content: Announcement, m: MediaFile, code: str | None) -> AnnouncementPublic: ...
@overload
def _public(content: ContentModel, m: MediaFile, code: str | None) -> BulletinPublic | AnnouncementPublic: ...
def _public(content: ContentModel, m: MediaFile, code: str | None) -> BulletinPublic | AnnouncementPublic:
    assert content.id is not None
    common: dict[str, Any] = dict(
        id=content.id, title=content.title, commune=code, sha256=m.sha256, duration_s=m.duration_s,
        loudness_before=content.loudness_before, loudness_after=content.loudness_after,
        true_peak_after=m.true_peak_dbtp, media_url=media_url(m.sha256), created_by=content.created_by,
        created_at=content.created_at, approved=content.approved_at is not None, approved_by=content.approved_by,
        approved_at=content.approved_at, returned_by=content.returned_by, returned_at=content.returned_at,
        returned_comment=content.returned_comment)
    if isinstance(content, Bulletin):
        return BulletinPublic(**common, source_filename=content.source_filename,
                              source_format=content.source_format, trimmed_s=content.trimmed_s)
    a = content
    return AnnouncementPublic(
        **common, text=a.text, normalized_text=a.normalized_text, engine_requested=a.engine_requested,
        engine=a.engine, voice=a.voice, chime_before=a.chime_before, chime_after=a.chime_after, repeat=a.repeat,
        gap_s=a.gap_s, note=a.note, key_instruction=a.key_instruction)


# ------------------------------------------------------------------------------------ finding content


def _visible_query(model: type[Bulletin] | type[Announcement], who: Principal) -> Any:
    """Rows of (content, its MediaFile, its Commune or None) that `who` may see: its communes' content and
    the district-wide content."""
    q = (select(model, MediaFile, Commune)
         .join(MediaFile, MediaFile.sha256 == model.media_sha256)  # type: ignore[arg-type]
         .join(Commune, Commune.id == model.commune_id, isouter=True))  # type: ignore[arg-type]
    communes = who.communes
    if communes is not None:
        q = q.where(col(Commune.code).in_(communes) | col(model.commune_id).is_(None))
    return q


def _find(ctx: Ctx, kind: Kind, ident: int, action: str) -> tuple[Any, MediaFile, Commune | None]:
    model = MODELS[kind]
    if not 0 < ident < 2**63:  # beyond SQLite's integers: binding it would be an OverflowError (a 500)
        raise NotFound(f"No {kind} {ident}.")
    row = ctx.session.exec(select(model, MediaFile, Commune)
                           .join(MediaFile, MediaFile.sha256 == model.media_sha256)  # type: ignore[arg-type]
                           .join(Commune, Commune.id == model.commune_id, isouter=True)  # type: ignore[arg-type]
                           .where(model.id == ident)).first()
    if row is None:
        raise NotFound(f"No {kind} {ident}.")
    content, media, commune = row
    if not ctx.who.may_see(commune.code if commune else None):
        raise Hidden(f"No {kind} {ident}.", who=ctx.who, action=action)
    return content, media, commune


def _list(ctx: Ctx, kind: Kind, page: Page, commune: str | None,
          approved: bool | None) -> tuple[list[BulletinPublic | AnnouncementPublic], int]:
    require(ctx.who, Right.CONTENT_READ, f"{kind}.list")
    model = MODELS[kind]
    q = _visible_query(model, ctx.who)
    if commune:
        q = q.where(Commune.code == commune)
    if approved is not None:
        q = q.where(col(model.approved_at).is_not(None) if approved else col(model.approved_at).is_(None))
    count = ctx.session.exec(select(func.count()).select_from(q.subquery())).one()
    rows = ctx.session.exec(page.apply(q.order_by(col(model.id).desc()))).all()
    return [_public(c, m, cm.code if cm else None) for c, m, cm in rows], count


def list_bulletins(ctx: Ctx, page: Page, *, commune: str | None = None,
                   approved: bool | None = None) -> BulletinsPublic:
    data, count = _list(ctx, "bulletin", page, commune, approved)
    return BulletinsPublic(data=[d for d in data if isinstance(d, BulletinPublic)], count=count)


def list_announcements(ctx: Ctx, page: Page, *, commune: str | None = None,
                       approved: bool | None = None) -> AnnouncementsPublic:
    data, count = _list(ctx, "announcement", page, commune, approved)
    return AnnouncementsPublic(data=[d for d in data if isinstance(d, AnnouncementPublic)], count=count)


def get_bulletin(ctx: Ctx, ident: int) -> BulletinPublic:
    require(ctx.who, Right.CONTENT_READ, "bulletin.read")
    b, m, c = _find(ctx, "bulletin", ident, "bulletin.read")
    assert isinstance(b, Bulletin)
    return _public(b, m, c.code if c else None)


def get_announcement(ctx: Ctx, ident: int) -> AnnouncementPublic:
    require(ctx.who, Right.CONTENT_READ, "announcement.read")
    a, m, c = _find(ctx, "announcement", ident, "announcement.read")
    assert isinstance(a, Announcement)
    return _public(a, m, c.code if c else None)


def usable_content(ctx: Ctx, *, bulletin_id: int | None = None, announcement_id: int | None = None,
                   action: str = "content.use",
                   allow_draft: bool = False) -> tuple[ContentModel, MediaFile, str | None]:
    """(content, its audio, its commune code or None for the district's) if `ctx.who` may put it on air.
    `allow_draft`: for emergencies, which are not held for approval (the emergency right is the approval)."""
    require(ctx.who, Right.CONTENT_READ, action)
    if (bulletin_id is None) == (announcement_id is None):
        raise Invalid("Give exactly one of bulletin_id or announcement_id.")
    kind: Kind = "bulletin" if bulletin_id is not None else "announcement"
    ident = bulletin_id if bulletin_id is not None else announcement_id or 0
    content, media, commune = _find(ctx, kind, ident, action)
    if content.approved_at is None and not allow_draft:
        raise Conflict(f"The {kind} {ident} ({content.title!r}) is a draft: it goes on air once a commune "
                       "leader or the district approves it.")
    return content, media, commune.code if commune else None


# ------------------------------------------------------------------------------------------- making


def _store(ctx: Ctx, content: ContentModel, commune: Commune | None, action: str, detail: str) -> None:
    content.commune_id = commune.id if commune else None
    content.created_by = ctx.who.actor
    standing = _approve_at_once(ctx, content, commune)
    ctx.session.add(content)
    ctx.session.commit()
    ctx.session.refresh(content)
    ctx.audit(action, target=str(content.id), detail=f"{standing}; {detail}")


def create_bulletin(ctx: Ctx, form: BulletinUpload, receive: Callable[[Path], Path],
                    on_progress: Progress | None = None) -> BulletinPublic:
    """Make a bulletin of the upload that `receive(directory)` copies into a temporary file there (the face
    counts the bytes and refuses what is too large); the file is received only once the principal may
    publish where it asked to. `on_progress(stage, fraction)`: how far making it broadcast-ready has got."""
    action = "bulletin.create"
    commune = _publishing_in(ctx, form.commune, action)
    title, filename = checked_title(form.title), display_filename(form.filename)
    store, audio = ctx.require_media(), ctx.settings.audio
    with ingest_slot(ctx):
        source = receive(store.root)
        try:
            media, result = make_media(
                ctx.session, store, source, broadcast_format(audio),
                trim_silence=audio.trim_silence if form.trim_silence is None else form.trim_silence,
                on_progress=on_progress)
        except IngestError as e:
            ctx.audit(action, "refused", target=filename, detail=str(e))
            raise refused_audio(e) from None
        finally:
            source.unlink(missing_ok=True)
    bulletin = Bulletin(title=title, media_sha256=media.sha256,
                        source_filename=filename, source_format=result.probe.container,
                        loudness_before=result.loudness_before, loudness_after=result.loudness_after,
                        trimmed_s=result.trimmed_s, created_by=ctx.who.actor)
    _store(ctx, bulletin, commune, action, f"{bulletin.title} ({media.sha256[:12]}, {media.duration_s:.1f} s)")
    return _public(bulletin, media, commune.code if commune else None)


def _engine_and_voice(ctx: Ctx, body: AnnouncementCreate) -> tuple[str | None, str | None]:
    """The engine asked for first (the body's, else `TT_AUDIO__DEFAULT_ENGINE`; None: the order alone) and
    the voice asked of it (None: its first), checked."""
    settings = ctx.settings
    available = engines(settings.audio, settings.neural_dir)
    requested = body.engine or settings.audio.default_engine
    if requested is not None and requested not in available:
        raise Invalid(f"Unknown engine {requested!r}: choose one of {', '.join(available)}.")
    if body.voice is not None:
        first = available[requested or settings.tts.announcements[0]]
        if body.voice not in first.voices:
            raise Invalid(f"Engine {first.name!r} has no voice {body.voice!r}: "
                          f"choose one of {', '.join(first.voices)}.")
    return requested, body.voice


def _speak(ctx: Ctx, requested: str | None, voice: str | None, text: str, body: AnnouncementCreate,
           composed: Path, make: Callable[[], T]) -> tuple[Speech, T]:
    """Speech of `text` laid out as `body` asks into `composed`, and what `make()` makes of it (the broadcast
    audio), by the first engine that can read it: the requested one, then the order of
    `TT_TTS__ANNOUNCEMENTS` (Google under its deadline); an engine whose speech cannot be made into audio (a
    damaged cached file, removed) gives way to the next. The answer says which engine read it, with which
    voice, and (`note`) why the ones before it did not."""
    candidates = voice_order(ctx.settings, "announcements", first=requested, voice=voice, chars=len(text))
    try:
        return speak_and_make(candidates, text, ctx.settings.data_dir / "tts-cache", composed, body, make)
    except TtsUnavailable as e:
        raise Unavailable(f"Text-to-speech is not available on this controller: {e}") from None
    except IngestError as e:  # the text's audio too long for broadcast
        raise refused_audio(e) from None


@dataclass(frozen=True)
class Listening:
    """An announcement made to be heard and not kept (`listen_announcement`)."""

    path: Path  # broadcast-ready MP3; the caller deletes it
    normalized_text: str
    engine: str
    voice: str
    note: str | None
    duration_s: float
    loudness_before: float
    loudness_after: float


def listen_announcement(ctx: Ctx, body: AnnouncementCreate, directory: Path) -> Listening:
    """What `create_announcement(ctx, body)` would make, as an MP3 file in `directory`, without keeping
    anything (no library item, no stored audio, no audit row): for listening before saving. Checked like
    making it (the right to write, in a commune of the principal's). Blocking (TTS, ffmpeg)."""
    action = "announcement.listen"
    _text_limit(ctx, body.text)
    requested, voice = _engine_and_voice(ctx, body)
    commune = _publishing_in(ctx, body.commune, action)
    text = _spoken(ctx, body.text, commune.code if commune else None, body.key_instruction)
    with ingest_slot(ctx), tempfile.TemporaryDirectory(dir=directory, prefix=".work-") as work:
        composed = Path(work) / "announcement.wav"
        fd, name = tempfile.mkstemp(dir=directory, prefix="listen-", suffix=".mp3")
        os.close(fd)
        try:
            speech, result = _speak(ctx, requested, voice, text, body, composed, lambda: ingest(
                composed, Path(name), speech_format(ctx.settings.audio), trim_silence=False))
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
    return Listening(path=Path(name), normalized_text=text, engine=speech.engine, voice=speech.voice,
                     note=speech.note,
                     duration_s=result.duration_s, loudness_before=result.loudness_before,
                     loudness_after=result.loudness_after)


def create_announcement(ctx: Ctx, body: AnnouncementCreate) -> AnnouncementPublic:
    """Read `body.text` (normalised with the commune's abbreviations) aloud, with its chimes and repeats.
    Google's engine unreachable: the offline engine reads it and `note` says so. Blocking (TTS, ffmpeg)."""
    action = "announcement.create"
    settings = ctx.settings
    _text_limit(ctx, body.text)
    requested, voice = _engine_and_voice(ctx, body)
    commune = _publishing_in(ctx, body.commune, action)
    text = _spoken(ctx, body.text, commune.code if commune else None, body.key_instruction)
    store = ctx.require_media()
    with ingest_slot(ctx), tempfile.TemporaryDirectory(dir=store.root, prefix=".work-") as work:
        composed = Path(work) / "announcement.wav"
        speech, (media, result) = _speak(ctx, requested, voice, text, body, composed, lambda: make_media(
            ctx.session, store, composed, speech_format(settings.audio), trim_silence=False))
    announcement = Announcement(
        title=(body.title or body.text.strip()[:80]), media_sha256=media.sha256, text=body.text,
        normalized_text=text, engine_requested=requested or ctx.settings.tts.announcements[0], engine=speech.engine,
        voice=speech.voice, chime_before=body.chime_before, chime_after=body.chime_after, repeat=body.repeat,
        gap_s=body.gap_s, note=speech.note, key_instruction=(body.key_instruction or "").strip() or None,
        loudness_before=result.loudness_before, loudness_after=result.loudness_after,
        created_by=ctx.who.actor)
    note = speech.note
    _store(ctx, announcement, commune, action, f"{speech.engine}/{speech.voice}, {media.duration_s:.1f} s"
           + (f"; {note}" if note else "") + f"; reads: {text}")
    return _public(announcement, media, commune.code if commune else None)


# ----------------------------------------------------------------------------------------- deleting


def _programmes_using(session: Session, kind: Kind, ident: int) -> list[Programme]:
    key = f"{kind}_id"
    return [p for p in session.exec(select(Programme)) if any(item.get(key) == ident for item in p.items)]


def _delete(ctx: Ctx, kind: Kind, ident: int) -> None:
    """Delete a bulletin or announcement, and its audio once nothing else refers to it."""
    action = f"{kind}.delete"
    require(ctx.who, Right.CONTENT_WRITE, action)
    content, media, commune = _find(ctx, kind, ident, action)
    if commune is None and not ctx.who.district:
        raise Forbidden("District-wide content can only be deleted by a district-wide principal.",
                        who=ctx.who, action=action)
    using = _programmes_using(ctx.session, kind, ident)
    if using:
        if ctx.who.district:
            names = ", ".join(f'#{p.id} "{p.title}"' for p in using[:5]) + (" …" if len(using) > 5 else "")
        else:  # programmes may reach other communes: not named to a commune-limited principal
            names = f"{len(using)}"
        message = f"This {kind} is used by programme(s) {names}: remove it from them (or delete them) first."
        ctx.audit(action, "refused", target=str(ident), detail=message)
        raise Conflict(message, code="content_in_use", params={"count": len(using)})
    ctx.session.delete(content)
    ctx.session.commit()
    used = sum(ctx.session.exec(select(func.count()).select_from(m).where(m.media_sha256 == media.sha256)).one()
               for m in (Bulletin, Announcement, Emergency, WarningRecording))  # a warning may share the file
    if used == 0:
        ctx.session.delete(media)
        ctx.session.commit()
        ctx.require_media().delete(media.sha256)
    ctx.audit(action, target=str(ident), detail=content.title)


def delete_bulletin(ctx: Ctx, ident: int) -> None:
    _delete(ctx, "bulletin", ident)


def delete_announcement(ctx: Ctx, ident: int) -> None:
    _delete(ctx, "announcement", ident)
