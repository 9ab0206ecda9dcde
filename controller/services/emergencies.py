"""Emergencies (thông báo khẩn cấp): trigger, read, follow and cancel — the core behind `/api/v1/emergencies`
(`services.cap` turns CAP alerts into the same steps).

- Inputs: `EmergencyTargets`, `EmergencyCreate` (text, a bulletin or an announcement), `EmergencyUpload` (the
  form fields sent with a recording).
- Answers: `EmergencyTriggered` (the 202 of a trigger), `EmergencyPublic` (progress: `totals`, `receivers`),
  `EmergencySummary` / `EmergenciesPublic` (the list), `StreamEvent` (what the SSE stream sends).
- `trigger(ctx, body)`, `trigger_upload(ctx, form, path, filename)`: the checks (idempotency, the rate limit,
  targets within the principal's communes, expiry, content it may use), then `launch`: the fast path —
  sign one play command per target topic, record, publish, answer.
- `preview(ctx, body)`: what a trigger would send — the text as read out, the receivers and communes reached —
  checked the same way, nothing sent (`EmergencyPreview`: the staff UI's confirmation). `read_aloud` is how an
  emergency's text is read, for both.
- `list_emergencies`, `get_emergency`, `subscribe` (a snapshot and a live `Subscription`), `cancel_emergency`;
  `visible_ids`, the emergencies a principal may see (for `services.cap`'s list of alerts too).

The policy: reading, triggering and cancelling all need the emergency right. An emergency belongs to every
commune it reached; a principal sees, follows and cancels it only if all of them are within its communes
(otherwise `Hidden`, 404); lists leave the others out. One aimed at every receiver (`all`) is the district's:
unrestricted principals only. A commune-limited principal's targets are checked against its communes before
they are resolved: a commune, village or receiver outside them is answered as one that does not exist
(`Hidden`, 404), so targets cannot probe what exists elsewhere. Stored content is used if the principal may
see it, drafts included (the emergency right is the approval). Text is read with the built-in and district
abbreviations only — never a commune's list, which a commune operator may change, so no operator can change
what an emergency says — and the text actually spoken is answered and audited. A live stream re-checks its
principal (the token re-authenticated, the emergency still visible to it) at every batch and keepalive, and
ends (`end` with a `reason`) once it fails. Every trigger, cancel and refusal is audited (`emergency.trigger`,
`emergency.cancel`, `emergency.read`); the refusals of the policy itself (`Forbidden`, `Hidden`) by the face
that caught them.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from sqlalchemy.orm import defer
from sqlmodel import Session, col, or_, select

from audio.ingest import IngestError, ingest
from controller.content import broadcast_format, make_media, media_url, speech_format
from controller.db.models import (
    Announcement,
    Commune,
    Emergency,
    EmergencyReceiver,
    MediaFile,
    Receiver,
    utcnow,
)
from controller.emergencies import (
    FINAL,
    Live,
    Tracker,
    offline_among,
    plan_topics,
    speak_emergency,
    store_rows,
    totals,
    voiced_media,
)
from controller.errors import (
    DomainError,
    Forbidden,
    Hidden,
    Invalid,
    NotFound,
    RateLimited,
    Refusal,
    Unavailable,
    Unsupported,
)
from controller.policy import Principal, Right, require
from controller.ports import CommandNotSent
from controller.scheduling import Inventory, ScheduleError, local
from controller.warnings import EVENT_TYPES
from receivers.protocol import INLINE_AUDIO_MAX, MediaRef, Play, Stop, Target

from .content import ingest_slot, spoken_text, usable_content
from .context import Ctx, Page
from .programmes import _targets_within
from .warnings import RECORDED, RecordingFailed, after_recording, names_read, recording_for, warning_media

TRIGGER, CANCEL, READ = "emergency.trigger", "emergency.cancel", "emergency.read"
SSE_BATCH_S = 0.1  # a thousand receivers answer within a second: one event per batch of changes
KEEPALIVE_S = 10.0

State = Literal["active", "finished", "expired", "cancelled"]


# ------------------------------------------------------------------------------------------ models


class EmergencyTargets(BaseModel):
    all: bool = False
    communes: list[str] = Field(default_factory=list)
    villages: list[str] = Field(default_factory=list, description="'commune-code/village-code'")
    receivers: list[str] = Field(default_factory=list)


class EmergencyCreate(BaseModel):
    text: str | None = Field(default=None, min_length=1, max_length=5000, description="read by TTS after a chime")
    bulletin_id: int | None = None
    announcement_id: int | None = None
    title: str | None = Field(default=None, max_length=200)
    targets: EmergencyTargets
    repeat: int | None = Field(default=None, ge=1, le=10)
    volume: int | None = Field(default=None, ge=0, le=100, description="default: the emergency volume")
    expires_at: dt.datetime | None = Field(default=None, description="default: in an hour; no offset = local")
    request_id: str | None = Field(default=None, min_length=1, max_length=100, description="idempotency key")
    key_instruction: str | None = Field(default=None, max_length=500, description=(
        "with text: read again at the end after 'Xin nhắc lại:' (part of spoken_text)"))
    event_type: str | None = Field(default=None, max_length=40, description=(
        "flash-flood, landslide, storm, … (GET /api/v1/warnings): its pre-recorded warning, when there is one, "
        "is played first, then the communes' names and the text (with its key instruction) are read"))

    @model_validator(mode="after")
    def _one_source(self) -> EmergencyCreate:
        if self.event_type is not None and self.event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event_type {self.event_type!r}: choose from {', '.join(EVENT_TYPES)}")
        given = [n for n in ("text", "bulletin_id", "announcement_id") if getattr(self, n) is not None]
        if self.event_type is not None and given and given != ["text"]:
            raise ValueError("event_type goes with text, or alone: not with bulletin_id or announcement_id")
        if len(given) != 1 and not (self.event_type is not None and not given):
            raise ValueError("give exactly one of text, bulletin_id or announcement_id (or an event_type alone)")
        if self.text is not None and not self.text.strip():
            raise ValueError("text is blank")
        if self.key_instruction is not None and self.text is None:
            raise ValueError("key_instruction goes with text: it is read again at the end of it")
        return self


class EmergencyUpload(BaseModel):
    """The form fields sent with a recording; `targets` is the JSON of `EmergencyTargets`."""

    targets: str
    title: str | None = None
    filename: str | None = None  # the uploaded file's name: the title when none is given
    repeat: int | None = None
    volume: int | None = None
    expires_at: dt.datetime | None = None
    request_id: str | None = None


class EmergencyTriggered(BaseModel):
    """Answered at once (202): who was targeted and how it went out; progress is `GET /{id}`."""

    id: str
    receivers: list[str]
    topics: list[str] = Field(description="the command targets published: 'all', 'commune:…', 'receiver:…'")
    expires_at: dt.datetime
    inline: bool = Field(description="the audio travels inside the command (short audio)")
    media_url: str
    duration_s: float | None
    spoken_text: str | None = Field(description="the text as it is actually read out (None: a recording)")
    duplicate: bool = Field(default=False, description="the same request_id was seen before: nothing new sent")
    engine: str | None = Field(default=None, description=(
        "what read it: gtts, neural, offline or recorded (None: a bulletin, an announcement or an upload)"))
    engine_note: str | None = Field(default=None, description="why the engines before it in the order did not")
    event_type: str | None = None
    recorded: bool = Field(default=False, description="a pre-recorded warning of event_type is played")


class EmergencyPreview(BaseModel):
    """What a trigger would send (`preview`): the confirmation read before an emergency goes out."""

    title: str
    source: str = Field(description="text, bulletin or announcement")
    spoken_text: str | None = Field(description="the text as the loudspeakers will read it (None: a recording)")
    duration_s: float | None = Field(description="the content's audio; None for text (its audio is made on sending)")
    receivers: list[str]
    communes: list[str] = Field(description="the communes it reaches")
    engine: str | None = Field(default=None, description=(
        "what reads it, when known before sending: recorded, or an announcement's engine; for text the first "
        "engine of the order that can is chosen when the audio is made (listen to hear it)"))
    event_type: str | None = None
    recorded: bool = Field(default=False, description="the pre-recorded warning of event_type will be played, "
                                                     "then spoken_text (the communes' names, then the text)")
    warning_url: str | None = Field(default=None, description="that recording, to listen to")
    repeat: int
    volume: int
    expires_at: dt.datetime


class Totals(BaseModel):
    targeted: int
    pending: int
    received: int
    fetched: int
    playing: int
    done: int
    failed: int
    # Shown once there is something to say: an active emergency's answer never mentions cancelling.
    cancelled: int = Field(default=0, exclude_if=lambda n: n == 0)
    offline: int


class ReceiverProgress(BaseModel):
    id: str
    commune: str | None
    status: str = Field(description="pending, offline, received, fetched, playing, done, failed or cancelled")
    reason: str | None


class EmergencyPublic(BaseModel):
    id: str
    title: str
    text: str | None
    source: str = Field(description="text, bulletin, announcement, upload or cap")
    state: State
    targets: dict[str, Any]
    repeat: int
    volume: int
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    cancelled_at: dt.datetime | None = Field(default=None, exclude_if=lambda v: v is None)
    cap_identifier: str | None
    area_desc: str | None
    event_type: str | None = None
    recorded: bool = Field(default=False, description="a pre-recorded warning of event_type was played")
    engine: str | None = Field(default=None, description="what read it: gtts, neural, offline or recorded")
    media_url: str
    totals: Totals
    receivers: list[ReceiverProgress]


class EmergencySummary(BaseModel):
    id: str
    title: str
    source: str
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    cancelled_at: dt.datetime | None = Field(default=None, exclude_if=lambda v: v is None)


class EmergenciesPublic(BaseModel):
    data: list[EmergencySummary]
    count: int


@dataclass
class Prepared:
    """What `launch` needs once the audio is known, whichever way the request came."""

    title: str
    text: str | None
    spoken: str | None
    source: str
    receivers: frozenset[str]
    targets: dict[str, Any]
    repeat: int
    volume: int
    expires_at: dt.datetime
    request_id: str | None = None
    bulletin_id: int | None = None
    cap: dict[str, Any] = field(default_factory=dict)
    engine: str | None = None  # what spoke: "recorded" for a pre-recorded warning, else the TTS engine
    event_type: str | None = None
    engine_note: str | None = None  # why the engines before it did not (not stored)


# ------------------------------------------------------------------------------------------ checks


@contextmanager
def refusals_audited(ctx: Ctx, action: str, target: str | None = None) -> Iterator[None]:
    """Audit a request refused for what it asked (invalid, too many, unavailable…) as `action` refused; the
    policy's own refusals (`Forbidden`, `Hidden`) are audited by the face that answers them."""
    try:
        yield
    except Refusal:
        raise
    except DomainError as e:
        ctx.audit(action, "refused", target=target, detail=e.message)
        raise


def tracker_of(ctx: Ctx) -> Tracker:
    if ctx.tracker is None:
        raise Unavailable("The emergency tracker is not running on this controller.")
    return ctx.tracker


def check_rate(ctx: Ctx) -> None:
    limit = ctx.settings.emergency.rate_per_minute
    recent = tracker_of(ctx).recent[ctx.who.actor]
    now = time.monotonic()
    while recent and now - recent[0] > 60:
        recent.popleft()
    if len(recent) >= limit:
        raise RateLimited(f"At most {limit} emergencies a minute per token; wait a moment.")
    recent.append(now)


def expiry(ctx: Ctx, value: dt.datetime | None) -> dt.datetime:
    settings = ctx.settings.emergency
    now = utcnow()
    if value is None:
        return now + dt.timedelta(minutes=settings.expires_min)
    value = local(value).astimezone(dt.UTC)
    if value <= now:
        raise Invalid(f"'expires_at' ({local(value).isoformat()}) is already past.")
    if value - now > dt.timedelta(hours=settings.max_expires_h):
        raise Invalid(f"'expires_at' may be at most {settings.max_expires_h:g} h ahead.")
    return value


def resolve(ctx: Ctx, inv: Inventory, targets: dict[str, Any], action: str = TRIGGER, *,
            named: bool = True) -> frozenset[str]:
    """The receivers `targets` names, all within the principal's communes. `named`: the principal chose the
    targets, so for a commune-limited one each named commune, village and receiver is checked against its
    communes BEFORE anything is resolved, and one outside them is answered exactly as one that does not exist
    (`Hidden`): the answer reveals nothing of the other communes. (A CAP alert's communes come from its
    geocodes, not from the principal: those outside are refused naming them, `Forbidden`.)"""
    who = ctx.who
    if who.communes is not None and targets.get("all"):
        raise Forbidden(f"{who.kind.title()} {who.name!r} is limited to some communes: it may not send an "
                        "emergency to every receiver; name the communes.", who=who, action=action)
    wanted = {k: v for k, v in targets.items() if v}
    if named:
        _targets_within(ctx, inv, wanted, action)
    try:
        receivers = inv.resolve(wanted)
    except ScheduleError as e:
        raise Invalid(str(e)) from None
    if not receivers:
        raise Invalid("The targets name no receiver.")
    if who.communes is not None:
        outside = sorted(inv.communes_of(receivers) - who.communes)
        if outside and named:  # cannot happen after `_targets_within`; refused without naming anything
            raise Hidden("No such targets.", who=who, action=action)
        if outside:
            raise Forbidden(f"{who.kind.title()} {who.name!r} may not send emergencies to commune(s) "
                            f"{', '.join(outside)}.", who=who, action=action)
    return receivers


def reached(session: Session, row: Emergency) -> frozenset[str] | None:
    """The communes an emergency reached; None: the whole district (it was aimed at every receiver, or at a
    receiver no longer known)."""
    if row.targets.get("all"):
        return None
    codes = session.exec(select(Commune.code).select_from(EmergencyReceiver)
                         .join(Receiver, col(Receiver.id) == EmergencyReceiver.receiver_id, isouter=True)
                         .join(Commune, col(Commune.id) == Receiver.commune_id, isouter=True)
                         .where(EmergencyReceiver.emergency_id == row.id).distinct()).all()
    return None if None in codes else frozenset(c for c in codes if c is not None)


def visible_emergency(ctx: Ctx, eid: str, right: Right, action: str) -> Emergency:
    """The emergency, if every commune it reached is within the principal's (else `Hidden`)."""
    require(ctx.who, right, action)
    row = ctx.session.get(Emergency, eid)
    if row is None:
        raise NotFound(f"No emergency {eid!r}.")
    if not ctx.who.may_touch_all(reached(ctx.session, row)):
        raise Hidden(f"No emergency {eid!r}.", who=ctx.who, action=action)
    return row


def ingest_failure(e: IngestError) -> DomainError:
    """As the bulletins answer it: a file that is no audio at all is 415, anything else 422."""
    message = str(e)
    return Unsupported(message) if ("not audio" in message or "no audio track" in message) else Invalid(message)


# ------------------------------------------------------------------------------------------ trigger


def _inline(row: Emergency) -> bool:
    payload = next(iter(row.payloads.values()), None)
    return payload is not None and bool(json.loads(json.loads(payload)["body"]).get("inline_audio"))


def duplicate(ctx: Ctx, request_id: str | None) -> EmergencyTriggered | None:
    """The emergency this principal already made with `request_id`, if any."""
    if request_id is None:
        return None
    s = ctx.session
    known = s.exec(select(Emergency).where(Emergency.request_id == request_id,
                                           Emergency.created_by == ctx.who.actor)).first()
    if known is None:
        return None
    rids = s.exec(select(EmergencyReceiver.receiver_id).where(EmergencyReceiver.emergency_id == known.id)).all()
    media = s.get(MediaFile, known.media_sha256)
    return EmergencyTriggered(id=known.id, receivers=sorted(rids), topics=sorted(known.payloads),
                              expires_at=local(known.expires_at), inline=_inline(known),
                              media_url=media_url(known.media_sha256), duration_s=media.duration_s if media else None,
                              spoken_text=known.spoken_text, duplicate=True, event_type=known.event_type,
                              recorded=known.engine == RECORDED, engine=known.engine)


def read_aloud(session: Session, text: str, key_instruction: str | None = None) -> str:
    """`text` as an emergency reads it out: with the built-in and district abbreviations only. A commune's list
    is its operators' to change, and they must not change what an emergency says (the district list is the
    admin's). With `key_instruction`: "Xin nhắc lại: …" at the end."""
    return spoken_text(session, text, None, key_instruction)


def _what(ctx: Ctx, body: EmergencyCreate) -> tuple[str, str, str | None, MediaFile | None]:
    """(title, source, the text as read out or None for a recording, the audio or None while it is still to be
    made from that text) of a request, its content checked as one the principal may use."""
    if body.text is not None:
        return body.text.strip()[:80], "text", read_aloud(ctx.session, body.text, body.key_instruction), None
    if body.bulletin_id is None and body.announcement_id is None:  # an event type alone: its recording
        assert body.event_type is not None
        return f"Cảnh báo {EVENT_TYPES[body.event_type].name.lower()}", "warning", None, None
    content, media, _ = usable_content(ctx, bulletin_id=body.bulletin_id, announcement_id=body.announcement_id,
                                       action=TRIGGER, allow_draft=True)
    source = "bulletin" if body.bulletin_id is not None else "announcement"
    return content.title, source, content.normalized_text if isinstance(content, Announcement) else None, media


def warning_missing(event_type: str | None) -> Invalid:
    """An event type alone, whose recording is not (or no longer) there."""
    return Invalid(f"There is no pre-recorded warning of {event_type!r} (see /api/v1/warnings): give the text to "
                   "read.", code="warning_missing", params={"name": EVENT_TYPES[event_type].name.lower()
                                                            if event_type in EVENT_TYPES else str(event_type)})


def _recording(ctx: Ctx, body: EmergencyCreate, media: MediaFile | None) -> MediaFile | None:
    """The pre-recorded warning of the request's event type, if it has one and nothing else was chosen to be
    played (a text is replaced by it; a bulletin or an announcement never comes with an event type)."""
    if body.event_type is None or media is not None:
        return None
    return recording_for(ctx.session, ctx.require_media(), body.event_type)


def preview(ctx: Ctx, body: EmergencyCreate) -> EmergencyPreview:
    """What `trigger(ctx, body)` would send, checked as it checks it (the right, the targets, the expiry, the
    content), with nothing sent, recorded or audited: the confirmation a person reads before sending."""
    require(ctx.who, Right.EMERGENCY, TRIGGER)
    settings = ctx.settings.emergency
    inv = Inventory.load(ctx.session)
    receivers = resolve(ctx, inv, body.targets.model_dump())
    expires_at = expiry(ctx, body.expires_at)
    title, source, spoken, media = _what(ctx, body)
    warning = _recording(ctx, body, media)
    if warning is not None:
        spoken = after_recording(names_read(ctx.session, inv.communes_of(receivers), bool(body.targets.all)),
                                 spoken)
    elif media is None and spoken is None:
        raise warning_missing(body.event_type)
    return EmergencyPreview(title=body.title or title, source=source, spoken_text=spoken,
                            duration_s=media.duration_s if media else None, receivers=sorted(receivers),
                            communes=sorted(inv.communes_of(receivers)), event_type=body.event_type,
                            recorded=warning is not None,
                            warning_url=media_url(warning.sha256) if warning is not None else None,
                            engine=RECORDED if warning is not None else _content_engine(ctx, body),
                            repeat=body.repeat or settings.repeat,
                            volume=body.volume if body.volume is not None else settings.volume,
                            expires_at=local(expires_at))


def _content_engine(ctx: Ctx, body: EmergencyCreate) -> str | None:
    """The engine that read the announcement an emergency plays (None for anything else)."""
    if body.announcement_id is None:
        return None
    announcement = ctx.session.get(Announcement, body.announcement_id)
    return announcement.engine if announcement is not None else None


@dataclass(frozen=True)
class EmergencyListening:
    """An emergency's text made to be heard before sending (`listen`), not kept."""

    path: Path  # broadcast-ready MP3; the caller deletes it
    spoken_text: str
    engine: str
    voice: str
    note: str | None
    duration_s: float


def listen(ctx: Ctx, body: EmergencyCreate, directory: Path) -> EmergencyListening:
    """The audio `trigger(ctx, body)` would make of its text, as an MP3 file in `directory`, nothing stored nor
    sent: checked as `preview` checks it, read through the same engines, order and deadlines (the speech is
    cached: sending it afterwards reuses it). Text only (content and recordings have their audio already).
    Blocking (TTS, ffmpeg)."""
    preview(ctx, body)  # the same checks: the right, the targets, the expiry
    if body.text is None or body.event_type is not None and _recording(ctx, body, None) is not None:
        raise Invalid("Only a text to read is made to be heard first: this emergency plays stored audio.")
    spoken = read_aloud(ctx.session, body.text, body.key_instruction)
    with ingest_slot(ctx), tempfile.TemporaryDirectory(dir=directory, prefix=".work-") as work:
        composed = Path(work) / "emergency.wav"
        engine, voice, note = speak_emergency(ctx.settings, spoken, composed)
        fd, name = tempfile.mkstemp(dir=directory, prefix="listen-", suffix=".mp3")
        os.close(fd)
        try:
            result = ingest(composed, Path(name), speech_format(ctx.settings.audio), trim_silence=False)
        except BaseException as e:
            Path(name).unlink(missing_ok=True)
            if isinstance(e, IngestError):
                raise ingest_failure(e) from None
            raise
    return EmergencyListening(path=Path(name), spoken_text=spoken, engine=engine, voice=voice, note=note,
                              duration_s=result.duration_s)


async def trigger(ctx: Ctx, body: EmergencyCreate, idempotency_key: str | None = None) -> EmergencyTriggered:
    """An emergency from text (read by the first engine of `TT_TTS__EMERGENCIES` that can, after the chime), a
    bulletin or an announcement."""
    require(ctx.who, Right.EMERGENCY, TRIGGER)
    request_id = body.request_id or idempotency_key
    if (known := duplicate(ctx, request_id)) is not None:
        return known
    settings = ctx.settings
    with refusals_audited(ctx, TRIGGER):
        ctx.require_bridge()
        check_rate(ctx)
        inv = Inventory.load(ctx.session)
        targets = body.targets.model_dump()
        receivers = resolve(ctx, inv, targets)
        expires_at = expiry(ctx, body.expires_at)
        title, source, spoken, media = _what(ctx, body)
        warning = _recording(ctx, body, media)
        engine, note = _content_engine(ctx, body), None
        failed = None
        if warning is not None:  # the recording, then the communes' names and the text read
            names = names_read(ctx.session, inv.communes_of(receivers), bool(targets.get("all")))
            try:
                made = await asyncio.to_thread(warning_media, ctx.engine, settings, ctx.require_media(), warning,
                                               after_recording(names, spoken))
                media, spoken, engine, note = made.media, made.spoken, RECORDED, made.note
            except RecordingFailed as e:  # read instead: the title says what the recording would have
                failed, spoken = str(e), spoken or after_recording(f"{title}.", names)
        if media is None:
            if spoken is None:
                raise warning_missing(body.event_type)
            voiced = await asyncio.to_thread(voiced_media, ctx.engine, settings, ctx.require_media(), spoken)
            media, engine, note = voiced.media, voiced.engine, "; ".join(filter(None, (failed, voiced.note))) or None
    return await launch(ctx, inv, Prepared(
        title=body.title or title, text=body.text, spoken=spoken, source=source, bulletin_id=body.bulletin_id,
        engine=engine, event_type=body.event_type, engine_note=note,
        receivers=receivers, targets=targets, repeat=body.repeat or settings.emergency.repeat,
        volume=body.volume if body.volume is not None else settings.emergency.volume, expires_at=expires_at,
        request_id=request_id), media)


async def trigger_upload(ctx: Ctx, form: EmergencyUpload, receive: Callable[[Path], Path]) -> EmergencyTriggered:
    """An emergency from a recording that `receive(directory)` copies into a temporary file there (the face
    counts the bytes); it is received only once the request has passed every check."""
    require(ctx.who, Right.EMERGENCY, TRIGGER)
    if (known := duplicate(ctx, form.request_id)) is not None:
        return known
    settings, store = ctx.settings, ctx.require_media()
    with refusals_audited(ctx, TRIGGER):
        try:
            parsed = EmergencyTargets.model_validate_json(form.targets)
        except ValueError as e:
            raise Invalid(f"'targets' is not valid JSON targets: {str(e).splitlines()[0]}") from None
        ctx.require_bridge()
        check_rate(ctx)
        inv = Inventory.load(ctx.session)
        targets = parsed.model_dump()
        receivers = resolve(ctx, inv, targets)
        expires_at = expiry(ctx, form.expires_at)

        def ingest() -> MediaFile:
            path = receive(store.root)
            try:
                with Session(ctx.engine) as s:
                    try:
                        media, _ = make_media(s, store, path, broadcast_format(settings.audio), trim_silence=True)
                    except IngestError as e:
                        raise ingest_failure(e) from None
                    s.commit()
                    s.refresh(media)
                    return media
            finally:
                path.unlink(missing_ok=True)

        media = await asyncio.to_thread(ingest)
    return await launch(ctx, inv, Prepared(
        title=form.title or form.filename or "Khẩn cấp", text=None, spoken=None, source="upload",
        receivers=receivers, targets=targets, repeat=form.repeat or settings.emergency.repeat,
        volume=form.volume if form.volume is not None else settings.emergency.volume, expires_at=expires_at,
        request_id=form.request_id), media)


async def launch(ctx: Ctx, inv: Inventory, p: Prepared, media: MediaFile) -> EmergencyTriggered:
    """The fast path: sign one play command per target topic, record, publish, answer."""
    bridge, tracker, store = ctx.require_bridge(), tracker_of(ctx), ctx.require_media()
    topics = plan_topics(p.receivers, inv.receivers, inv.by_commune, set(inv.receivers))
    eid = str(uuid.uuid4())
    audio: dict[str, Any]
    if media.size_bytes <= INLINE_AUDIO_MAX:
        data = await asyncio.to_thread(store.verified_path(media.sha256).read_bytes)
        audio = {"inline_audio": base64.b64encode(data).decode(), "inline_sha256": media.sha256}
    else:
        audio = {"media": MediaRef(sha256=media.sha256, url=media_url(media.sha256), size=media.size_bytes)}
    ttl = (p.expires_at - utcnow()).total_seconds()
    gap = ctx.settings.emergency.gap_s
    commands = [bridge.number(Play.new(target, ttl, item_id=f"em-{eid}", priority="emergency", volume=p.volume,
                                       repeat=p.repeat, gap_s=gap, title=p.title[:200], **audio)) for target in topics]
    payloads = {str(c.target): bridge.signer.sign(c).decode() for c in commands}
    row = Emergency(id=eid, title=p.title[:200], text=p.text, spoken_text=p.spoken, source=p.source,
                    bulletin_id=p.bulletin_id,
                    media_sha256=media.sha256, targets=p.targets, repeat=p.repeat, volume=p.volume,
                    expires_at=p.expires_at, payloads=payloads, command_id=str(commands[0].command_id),
                    request_id=p.request_id, created_by=ctx.who.actor, engine=p.engine, event_type=p.event_type,
                    **p.cap)
    await asyncio.to_thread(store_rows, ctx.engine, row, p.receivers)
    tracker.add(Live(eid, [str(c.command_id) for c in commands], p.expires_at, payloads,
                     {rid: str(target) for target, rids in topics.items() for rid in rids},
                     {rid: inv.receivers[rid] for rid in p.receivers}, dict.fromkeys(p.receivers, ("pending", None))))
    published = sorted(map(str, topics))
    said = f"; spoken: {p.spoken!r}" if p.spoken is not None else ""
    if p.engine is not None:
        said += f"; read by {p.engine}" + (f" ({p.engine_note})" if p.engine_note else "")
    try:
        for c in commands:
            await bridge.publish_signed(c, payloads[str(c.target)].encode(), ctx.who.actor)
    except CommandNotSent as e:
        # Recorded and tracked: each receiver gets it as soon as it (or the controller) is back online.
        ctx.audit(TRIGGER, "degraded", target=eid, detail=f"broker: {e}{said}")
        raise Unavailable(f"Emergency {eid} is recorded but the broker is unreachable ({e}); it will be sent to "
                          "each receiver as it comes back online, until it expires.") from None
    ctx.audit(TRIGGER, "ok", target=eid,
              detail=f"{p.source}: {p.title[:80]!r} → {', '.join(published)[:300]} ({len(p.receivers)} receivers), "
                     f"expires {local(p.expires_at):%d/%m/%Y %H:%M}{said}")
    return EmergencyTriggered(id=eid, receivers=sorted(p.receivers), topics=published, expires_at=local(p.expires_at),
                              inline="inline_audio" in audio, media_url=media_url(media.sha256),
                              duration_s=media.duration_s, spoken_text=p.spoken, event_type=p.event_type,
                              engine=p.engine, engine_note=p.engine_note,
                              recorded=p.engine == RECORDED)


# ------------------------------------------------------------------------------------------ progress


def progress(session: Session, engine: Any, tracker: Tracker | None, row: Emergency) -> EmergencyPublic:
    """Each receiver's progress (live from the tracker, else as stored) and the totals."""
    live: Live | None = tracker.live.get(row.id) if tracker is not None else None
    if live is not None:
        statuses = dict(live.status)
        communes = live.commune
    else:
        rows = session.exec(select(EmergencyReceiver).where(EmergencyReceiver.emergency_id == row.id)).all()
        statuses = {r.receiver_id: (r.status, r.reason) for r in rows}
        communes = Inventory.load(session).receivers
    now = utcnow()
    pending = [rid for rid, (status, _) in statuses.items() if status == "pending"]
    offline = offline_among(engine, pending) if pending else set()
    receivers = [ReceiverProgress(id=rid, commune=communes.get(rid), reason=reason,
                                  status="offline" if rid in offline else status)
                 for rid, (status, reason) in sorted(statuses.items())]
    state: State = ("cancelled" if row.cancelled_at else "expired" if row.expires_at <= now
                    else "finished" if all(s in FINAL for s, _ in statuses.values()) else "active")
    return EmergencyPublic(
        id=row.id, title=row.title, text=row.text, source=row.source, state=state, targets=row.targets,
        repeat=row.repeat, volume=row.volume, created_by=row.created_by, created_at=local(row.created_at),
        expires_at=local(row.expires_at), cancelled_at=local(row.cancelled_at) if row.cancelled_at else None,
        cap_identifier=row.cap_identifier, area_desc=row.area_desc, event_type=row.event_type,
        recorded=row.engine == RECORDED, engine=row.engine, media_url=media_url(row.media_sha256),
        totals=Totals(**totals(statuses.values(), offline)), receivers=receivers)


def get_emergency(ctx: Ctx, eid: str) -> EmergencyPublic:
    row = visible_emergency(ctx, eid, Right.EMERGENCY, READ)
    return progress(ctx.session, ctx.engine, ctx.tracker, row)


def visible_ids(ctx: Ctx, *where: Any) -> list[str]:
    """The ids of the emergencies (those matching `where`) that reached only the principal's communes, newest
    first."""
    communes = ctx.who.communes
    q = (select(Emergency.id, Emergency.targets).where(*where)
         .order_by(col(Emergency.created_at).desc(), col(Emergency.id)))
    if communes is not None:
        outside = (select(EmergencyReceiver.emergency_id)
                   .join(Receiver, col(Receiver.id) == EmergencyReceiver.receiver_id, isouter=True)
                   .join(Commune, col(Commune.id) == Receiver.commune_id, isouter=True)
                   .where(or_(col(Commune.code).is_(None), col(Commune.code).not_in(communes))))
        q = q.where(col(Emergency.id).not_in(outside))
    return [eid for eid, targets in ctx.session.exec(q) if communes is None or not targets.get("all")]


def list_emergencies(ctx: Ctx, page: Page) -> EmergenciesPublic:
    """Newest first; a commune-limited principal sees those that reached only its communes."""
    require(ctx.who, Right.EMERGENCY, READ)
    s = ctx.session
    ids = visible_ids(ctx)
    shown = page.slice(ids)
    rows = {e.id: e for e in s.exec(select(Emergency).options(defer(Emergency.payloads))  # type: ignore[arg-type]
                                    .where(col(Emergency.id).in_(shown)))}
    return EmergenciesPublic(count=len(ids), data=[EmergencySummary(
        id=e.id, title=e.title, source=e.source, created_by=e.created_by, created_at=local(e.created_at),
        expires_at=local(e.expires_at), cancelled_at=local(e.cancelled_at) if e.cancelled_at else None)
        for e in (rows[i] for i in shown)])


@dataclass
class StreamEvent:
    kind: Literal["snapshot", "progress", "end", "keepalive"]
    data: Any = None


Reauthenticate = Callable[[Session], Principal]
"""The caller's principal as of now, read on the given session (e.g. its bearer token authenticated again);
raises a `Refusal` (`Unauthenticated`…) once it no longer holds (revoked, expired, owner disabled)."""


@dataclass
class Subscription:
    """An emergency's snapshot and, while it runs, its changes as they come (`events`). `close` when done.
    `allowed` is asked before every batch, keepalive and the end: None while the principal may still follow the
    emergency, else why not (the stream then ends)."""

    snapshot: EmergencyPublic
    engine: Any
    tracker: Tracker | None
    live: Live | None
    queue: asyncio.Queue[dict[str, Any]]
    allowed: Callable[[], str | None] = lambda: None

    async def events(self) -> AsyncIterator[StreamEvent]:
        """`snapshot` (as GET), then `progress` — the receivers that changed since the last one (`changes`:
        receiver, commune, status, reason) and the new `totals` — then `end`; `keepalive` when quiet. Once the
        principal may no longer follow it, `end` with the `reason` and nothing more."""
        eid, live, queue = self.snapshot.id, self.live, self.queue
        yield StreamEvent("snapshot", self.snapshot)
        if live is None:
            yield StreamEvent("end", {"id": eid})
            return
        while not live.over(utcnow()) or not queue.empty():
            try:
                first = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                if (reason := await asyncio.to_thread(self.allowed)) is not None:
                    yield StreamEvent("end", {"id": eid, "reason": reason})
                    return
                yield StreamEvent("keepalive")
                continue
            await asyncio.sleep(SSE_BATCH_S)
            changes = [first]
            while not queue.empty():
                changes.append(queue.get_nowait())
            if (reason := await asyncio.to_thread(self.allowed)) is not None:
                yield StreamEvent("end", {"id": eid, "reason": reason})
                return
            # The totals as of the last change drained: every change so far is in this batch (the tracker and
            # this stream share the event loop).
            yield StreamEvent("progress", {"changes": changes, "totals": live.totals()})
        if (reason := await asyncio.to_thread(self.allowed)) is not None:
            yield StreamEvent("end", {"id": eid, "reason": reason})
            return
        final = await asyncio.to_thread(self._final)
        yield StreamEvent("end", {"id": eid, "totals": final.totals})

    def _final(self) -> EmergencyPublic:
        with Session(self.engine) as s:
            row = s.get(Emergency, self.snapshot.id)
            assert row is not None
            return progress(s, self.engine, self.tracker, row)

    def close(self) -> None:
        if self.live is not None:
            self.live.queues.discard(self.queue)


def still_allowed(ctx: Ctx, eid: str, reauthenticate: Reauthenticate) -> Callable[[], str | None]:
    """A check for a long-lived stream: on a fresh session, the principal again (`reauthenticate`) and the
    emergency still visible to it (the right held, every commune it reached within its communes). None while
    both hold; else the reason, and the end of the stream is audited as a refused `emergency.read`."""

    def check() -> str | None:
        with Session(ctx.engine) as s:
            try:
                who = reauthenticate(s)
                visible_emergency(replace(ctx, session=s, who=who), eid, Right.EMERGENCY, READ)
            except (Refusal, NotFound) as e:
                ctx.audit(READ, "refused", target=eid, detail=f"event stream ended: {e.message}")
                return e.message
        return None

    return check


async def subscribe(ctx: Ctx, eid: str, reauthenticate: Reauthenticate) -> Subscription:
    """Checked before anything streams: the emergency must be visible to the principal; and again, with the
    principal re-authenticated by `reauthenticate`, while it streams (see `Subscription.allowed`)."""
    row = visible_emergency(ctx, eid, Right.EMERGENCY, READ)
    live = ctx.tracker.live.get(eid) if ctx.tracker is not None else None
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    if live is not None:
        live.queues.add(queue)  # before the snapshot, so no change falls between the two
    try:
        snapshot = await asyncio.to_thread(progress, ctx.session, ctx.engine, ctx.tracker, row)
    except BaseException:
        if live is not None:
            live.queues.discard(queue)
        raise
    finally:
        ctx.session.close()  # a stream may last an hour: hold no connection meanwhile
    return Subscription(snapshot, ctx.engine, ctx.tracker, live, queue, still_allowed(ctx, eid, reauthenticate))


# ------------------------------------------------------------------------------------------ cancel


async def cancel_emergency(ctx: Ctx, eid: str) -> EmergencyPublic:
    """Stop it everywhere; its receivers show `cancelled`. Cancelling twice is harmless."""
    row = visible_emergency(ctx, eid, Right.EMERGENCY, CANCEL)
    await stop(ctx, row)
    return progress(ctx.session, ctx.engine, ctx.tracker, row)


async def stop(ctx: Ctx, row: Emergency) -> None:
    """Mark `row` cancelled, then tell every target it was published to. The caller has checked the policy."""
    if row.cancelled_at is None:
        row.cancelled_at, row.cancelled_by = utcnow(), ctx.who.actor
        ctx.session.add(row)
        ctx.session.commit()
        ctx.session.refresh(row)
    eid, targets = row.id, list(row.payloads)
    if ctx.tracker is not None:
        ctx.tracker.cancel(eid)
    ttl = max(60.0, (row.expires_at - utcnow()).total_seconds())
    try:
        bridge = ctx.require_bridge()
        for target in targets:
            command = Stop.new(Target.parse(target), ttl, item_id=f"em-{eid}", priority="emergency")
            if ctx.tracker is not None:  # who acknowledges it has heard the cancel; the others get it again
                ctx.tracker.note_stop(eid, str(command.command_id))
            await bridge.send(command, ctx.who.actor)
    except (CommandNotSent, Unavailable) as e:
        ctx.audit(CANCEL, "degraded", target=eid, detail=str(e))
        raise Unavailable(f"Cancelled here, but the broker is unreachable ({e}).") from None
    ctx.audit(CANCEL, "ok", target=eid, detail=", ".join(targets)[:300])
