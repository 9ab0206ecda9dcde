"""`/api/v1/emergencies`: one authenticated call, and every targeted loudspeaker speaks at once.

`POST /api/v1/emergencies` (JSON: `text` | `bulletin_id` | `announcement_id`, `targets`, `repeat`, `volume`,
`expires_at`, `request_id`) or `POST /api/v1/emergencies/upload` (multipart with a `file`) answers 202 at
once with the id and the targeted receivers. `GET /{id}` shows each receiver's progress and totals,
`GET /{id}/events` streams it (Server-Sent Events), `POST /{id}/cancel` stops it everywhere.
The token needs `emergency:trigger`; a commune-limited token may reach only its communes; the same
`request_id` (or `Idempotency-Key` header) twice makes one emergency; a token may trigger at most
`rate_per_minute` a minute. Every trigger, cancel and refusal is audited.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import aiomqtt
from fastapi import APIRouter, Depends, File, Form, Header, HTTPException, Request, UploadFile
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field, model_validator
from sqlmodel import Session, col, select

from audio.ingest import IngestError
from controller.auth import Principal, audit, require
from controller.content import broadcast_format, ingest_error, make_media, media_url
from controller.db.models import Announcement, Bulletin, Emergency, EmergencyReceiver, MediaFile, utcnow
from controller.emergencies import FINAL, Live, offline_among, plan_topics, speech_media, store_rows, totals
from controller.scheduling import Inventory, ScheduleError
from receivers.protocol import INLINE_AUDIO_MAX, MediaRef, Play, Stop, Target

from .bulletins import receive_upload
from .programmes import local

router = APIRouter(prefix="/emergencies", tags=["emergencies"])
CanTrigger = Annotated[Principal, Depends(require("emergency:trigger"))]
CanRead = Annotated[Principal, Depends(require("receivers:read"))]
SSE_BATCH_S = 0.1


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

    @model_validator(mode="after")
    def _one_source(self) -> EmergencyCreate:
        given = [n for n in ("text", "bulletin_id", "announcement_id") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of text, bulletin_id or announcement_id")
        if self.text is not None and not self.text.strip():
            raise ValueError("text is blank")
        return self


class Trigger(BaseModel):
    """What `trigger` needs once the audio is known, whichever way the request came."""

    model_config = {"arbitrary_types_allowed": True}
    title: str
    text: str | None
    source: str
    bulletin_id: int | None = None
    receivers: set[str]
    targets: dict[str, Any]
    repeat: int
    volume: int
    expires_at: dt.datetime
    request_id: str | None = None
    cap: dict[str, Any] = Field(default_factory=dict)


def _refuse(request: Request, who: Principal, status: int, message: str, target: str | None = None) -> HTTPException:
    audit(request.app.state.engine, who.actor, "emergency.trigger", "refused", target=target, detail=message)
    return HTTPException(status, message)


def check_rate(request: Request, who: Principal) -> None:
    limit = request.app.state.settings.emergency.rate_per_minute
    recent = request.app.state.tracker.recent[who.actor]
    now = time.monotonic()
    while recent and now - recent[0] > 60:
        recent.popleft()
    if len(recent) >= limit:
        raise _refuse(request, who, 429, f"At most {limit} emergencies a minute per token; wait a moment.")
    recent.append(now)


def expiry(request: Request, who: Principal, value: dt.datetime | None) -> dt.datetime:
    settings = request.app.state.settings.emergency
    now = utcnow()
    if value is None:
        return now + dt.timedelta(minutes=settings.expires_min)
    value = local(value).astimezone(dt.UTC)
    if value <= now:
        raise _refuse(request, who, 422, f"'expires_at' ({local(value).isoformat()}) is already past.")
    if value - now > dt.timedelta(hours=settings.max_expires_h):
        raise _refuse(request, who, 422, f"'expires_at' may be at most {settings.max_expires_h:g} h ahead.")
    return value


def resolve(request: Request, who: Principal, targets: dict[str, Any]) -> set[str]:
    with Session(request.app.state.engine) as s:
        inv = Inventory.load(s)
    try:
        receivers = set(inv.resolve({k: v for k, v in targets.items() if v}))
    except ScheduleError as e:
        raise _refuse(request, who, 422, str(e)) from None
    if not receivers:
        raise _refuse(request, who, 422, "The targets name no receiver.")
    if who.communes is not None:
        outside = sorted(inv.communes_of(receivers) - who.communes)
        if outside:
            raise _refuse(request, who, 403, f"This token may not send emergencies to commune(s) {', '.join(outside)}.")
    return receivers


def duplicate(request: Request, who: Principal, request_id: str | None) -> dict[str, Any] | None:
    if request_id is None:
        return None
    with Session(request.app.state.engine) as s:
        known = s.exec(select(Emergency).where(Emergency.request_id == request_id,
                                               Emergency.created_by == who.actor)).first()
        if known is None:
            return None
        rids = list(s.exec(select(EmergencyReceiver.receiver_id).where(EmergencyReceiver.emergency_id == known.id)))
    return {"id": known.id, "receivers": sorted(rids), "expires_at": local(known.expires_at), "duplicate": True}


async def trigger(request: Request, who: Principal, t: Trigger, media: MediaFile) -> dict[str, Any]:
    """The fast path: sign one play command per target topic, record, publish, answer."""
    app = request.app
    bridge, tracker = app.state.bridge, app.state.tracker
    if bridge is None:
        raise _refuse(request, who, 503, "The MQTT bridge is not running on this controller.")
    with Session(app.state.engine) as s:
        inv = Inventory.load(s)
    topics = plan_topics(t.receivers, inv.receivers, inv.by_commune, set(inv.receivers))
    eid = str(uuid.uuid4())
    audio: dict[str, Any]
    if media.size_bytes <= INLINE_AUDIO_MAX:
        data = await asyncio.to_thread(app.state.media.verified_path(media.sha256).read_bytes)
        audio = {"inline_audio": base64.b64encode(data).decode(), "inline_sha256": media.sha256}
    else:
        audio = {"media": MediaRef(sha256=media.sha256, url=media_url(media.sha256), size=media.size_bytes)}
    ttl = (t.expires_at - utcnow()).total_seconds()
    gap = app.state.settings.emergency.gap_s
    commands = [Play.new(target, ttl, item_id=f"em-{eid}", priority="emergency", volume=t.volume, repeat=t.repeat,
                         gap_s=gap, title=t.title[:200], **audio) for target in topics]
    payloads = {str(c.target): bridge.signer.sign(c).decode() for c in commands}
    row = Emergency(id=eid, title=t.title[:200], text=t.text, source=t.source, bulletin_id=t.bulletin_id,
                    media_sha256=media.sha256, targets=t.targets, repeat=t.repeat, volume=t.volume,
                    expires_at=t.expires_at, payloads=payloads, command_id=str(commands[0].command_id),
                    request_id=t.request_id, created_by=who.actor, **t.cap)
    await asyncio.to_thread(store_rows, app.state.engine, row, t.receivers)
    tracker.add(Live(eid, [str(c.command_id) for c in commands], t.expires_at, payloads,
                     {rid: str(target) for target, rids in topics.items() for rid in rids},
                     {rid: inv.receivers[rid] for rid in t.receivers}, dict.fromkeys(t.receivers, ("pending", None))))
    try:
        for c in commands:
            await bridge.publish_signed(c, payloads[str(c.target)].encode(), who.actor)
    except aiomqtt.MqttError as e:
        # Recorded and tracked: each receiver gets it as soon as it (or the controller) is back online.
        audit(app.state.engine, who.actor, "emergency.trigger", "degraded", target=eid, detail=f"broker: {e}")
        raise HTTPException(503, f"Emergency {eid} is recorded but the broker is unreachable ({e}); it will be "
                                 "sent to each receiver as it comes back online, until it expires.") from None
    published = sorted(map(str, topics))
    audit(app.state.engine, who.actor, "emergency.trigger", "ok", target=eid,
          detail=f"{t.source}: {t.title[:80]!r} → {', '.join(published)[:300]} ({len(t.receivers)} receivers), "
                 f"expires {local(t.expires_at):%d/%m/%Y %H:%M}")
    return {"id": eid, "receivers": sorted(t.receivers), "topics": published, "expires_at": local(t.expires_at),
            "inline": "inline_audio" in audio, "media_url": media_url(media.sha256), "duration_s": media.duration_s,
            "duplicate": False}


def _stored(request: Request, model: type[Bulletin] | type[Announcement], ident: int) -> tuple[str, MediaFile]:
    with Session(request.app.state.engine) as s:
        row = s.exec(select(model.title, MediaFile).join(MediaFile, MediaFile.sha256 == model.media_sha256)  # type: ignore[arg-type]
                     .where(model.id == ident)).first()
    if row is None:
        raise HTTPException(422, f"No {model.__name__.lower()} {ident}.")
    return row[0], row[1]


@router.post("", status_code=202)
async def create_emergency(body: EmergencyCreate, request: Request, who: CanTrigger,
                           idempotency_key: Annotated[str | None, Header(max_length=100)] = None) -> dict[str, Any]:
    request_id = body.request_id or idempotency_key
    if (known := duplicate(request, who, request_id)) is not None:
        return known
    check_rate(request, who)
    receivers = resolve(request, who, body.targets.model_dump())
    expires_at = expiry(request, who, body.expires_at)
    settings = request.app.state.settings
    if body.text is not None:
        media, _ = await asyncio.to_thread(speech_media, request.app.state.engine, settings, request.app.state.media,
                                           body.text, who.actor)
        title, source = body.title or body.text.strip()[:80], "text"
    elif body.bulletin_id is not None:
        title, media = _stored(request, Bulletin, body.bulletin_id)
        title, source = body.title or title, "bulletin"
    else:
        assert body.announcement_id is not None
        title, media = _stored(request, Announcement, body.announcement_id)
        title, source = body.title or title, "announcement"
    return await trigger(request, who, Trigger(
        title=title, text=body.text, source=source, bulletin_id=body.bulletin_id, receivers=receivers,
        targets=body.targets.model_dump(), repeat=body.repeat or settings.emergency.repeat,
        volume=body.volume if body.volume is not None else settings.emergency.volume, expires_at=expires_at,
        request_id=request_id), media)


@router.post("/upload", status_code=202)
async def upload_emergency(request: Request, who: CanTrigger, file: Annotated[UploadFile, File()],
                           targets: Annotated[str, Form(description='JSON, e.g. {"communes": ["tra-kot"]}')],
                           title: Annotated[str | None, Form(max_length=200)] = None,
                           repeat: Annotated[int | None, Form(ge=1, le=10)] = None,
                           volume: Annotated[int | None, Form(ge=0, le=100)] = None,
                           expires_at: Annotated[dt.datetime | None, Form()] = None,
                           request_id: Annotated[str | None, Form(max_length=100)] = None) -> dict[str, Any]:
    if (known := duplicate(request, who, request_id)) is not None:
        return known
    try:
        parsed = EmergencyTargets.model_validate_json(targets)
    except ValueError as e:
        raise _refuse(request, who, 422, f"'targets' is not valid JSON targets: {str(e).splitlines()[0]}") from None
    check_rate(request, who)
    receivers = resolve(request, who, parsed.model_dump())
    expires = expiry(request, who, expires_at)
    settings, store = request.app.state.settings, request.app.state.media
    limit = settings.audio.max_upload_mb * 1e6

    def ingest_upload() -> MediaFile:
        path = receive_upload(file, int(limit), store.root)
        try:
            with Session(request.app.state.engine) as s:
                try:
                    media, _ = make_media(s, store, path, broadcast_format(settings.audio), trim_silence=True)
                except IngestError as e:
                    raise ingest_error(e) from None
                s.commit()
                s.refresh(media)
                return media
        finally:
            path.unlink(missing_ok=True)

    media = await asyncio.to_thread(ingest_upload)
    return await trigger(request, who, Trigger(
        title=title or (file.filename or "Khẩn cấp"), text=None, source="upload", receivers=receivers,
        targets=parsed.model_dump(), repeat=repeat or settings.emergency.repeat,
        volume=volume if volume is not None else settings.emergency.volume, expires_at=expires,
        request_id=request_id), media)


# ------------------------------------------------------------------------------------ progress


def snapshot(request: Request, eid: str) -> dict[str, Any]:
    tracker = request.app.state.tracker
    live: Live | None = tracker.live.get(eid)
    with Session(request.app.state.engine) as s:
        row = s.get(Emergency, eid)
        if row is None:
            raise HTTPException(404, f"No emergency {eid!r}.")
        if live is not None:
            statuses = dict(live.status)
            communes = live.commune
        else:
            rows = s.exec(select(EmergencyReceiver).where(EmergencyReceiver.emergency_id == eid)).all()
            statuses = {r.receiver_id: (r.status, r.reason) for r in rows}
            communes = Inventory.load(s).receivers
    now = utcnow()
    pending = [rid for rid, (status, _) in statuses.items() if status == "pending"]
    offline = offline_among(request.app.state.engine, pending) if pending else set()
    receivers = [{"id": rid, "commune": communes.get(rid), "reason": reason,
                  "status": "offline" if rid in offline else status}
                 for rid, (status, reason) in sorted(statuses.items())]
    state = ("cancelled" if row.cancelled_at else "expired" if row.expires_at <= now
             else "finished" if all(s in FINAL for s, _ in statuses.values()) else "active")
    return {"id": row.id, "title": row.title, "text": row.text, "source": row.source, "state": state,
            "targets": row.targets, "repeat": row.repeat, "volume": row.volume,
            "created_by": row.created_by, "created_at": local(row.created_at), "expires_at": local(row.expires_at),
            "cancelled_at": local(row.cancelled_at) if row.cancelled_at else None,
            "cap_identifier": row.cap_identifier, "area_desc": row.area_desc, "media_url": media_url(row.media_sha256),
            "totals": totals(statuses.values(), offline), "receivers": receivers}


@router.get("")
def list_emergencies(request: Request, who: CanRead,
                     limit: int = 50) -> dict[str, Any]:
    with Session(request.app.state.engine) as s:
        rows = s.exec(select(Emergency).order_by(col(Emergency.created_at).desc()).limit(min(limit, 500))).all()
        count = len(s.exec(select(Emergency.id)).all())
    return {"data": [{"id": e.id, "title": e.title, "source": e.source, "created_by": e.created_by,
                      "created_at": local(e.created_at), "expires_at": local(e.expires_at),
                      "cancelled_at": local(e.cancelled_at) if e.cancelled_at else None} for e in rows],
            "count": count}


@router.get("/{eid}")
def get_emergency(eid: str, request: Request,
                  who: CanRead) -> dict[str, Any]:
    return snapshot(request, eid)


def _existing(eid: str, request: Request) -> str:
    with Session(request.app.state.engine) as s:
        if s.get(Emergency, eid) is None:
            raise HTTPException(404, f"No emergency {eid!r}.")
    return eid


@router.get("/{eid}/events", response_class=EventSourceResponse)
async def emergency_events(eid: Annotated[str, Depends(_existing)], request: Request,
                           who: CanRead) -> AsyncIterator[ServerSentEvent]:
    """`snapshot` first (as GET), then `progress` events — the receivers that changed since the last one
    (`changes`: receiver, commune, status, reason) and the new `totals` — then `end`."""
    live: Live | None = request.app.state.tracker.live.get(eid)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    if live is not None:
        live.queues.add(queue)  # before the snapshot, so no change falls between the two
    try:
        yield ServerSentEvent(event="snapshot", data=await asyncio.to_thread(snapshot, request, eid))
        if live is None:
            yield ServerSentEvent(event="end", data={"id": eid})
            return
        while not live.over(utcnow()) or not queue.empty():
            try:
                first = await asyncio.wait_for(queue.get(), 10)
            except TimeoutError:
                yield ServerSentEvent(comment="still here")
                continue
            # A thousand receivers answer within a second: one event per batch of changes, not per change.
            await asyncio.sleep(SSE_BATCH_S)
            changes = [first]
            while not queue.empty():
                changes.append(queue.get_nowait())
            yield ServerSentEvent(event="progress", data={"changes": [{k: v for k, v in c.items() if k != "totals"}
                                                                      for c in changes],
                                                          "totals": changes[-1]["totals"]})
        final = await asyncio.to_thread(snapshot, request, eid)
        yield ServerSentEvent(event="end", data={"id": eid, "totals": final["totals"]})
    finally:
        if live is not None:
            live.queues.discard(queue)


@router.post("/{eid}/cancel")
async def cancel_emergency(eid: str, request: Request, who: CanTrigger) -> dict[str, Any]:
    return await cancel(request, who, eid)


async def cancel(request: Request, who: Principal, eid: str) -> dict[str, Any]:
    app = request.app
    with Session(app.state.engine) as s:
        row = s.get(Emergency, eid)
        if row is None:
            raise HTTPException(404, f"No emergency {eid!r}.")
        if row.cancelled_at is None:
            row.cancelled_at, row.cancelled_by = utcnow(), who.actor
            s.add(row)
            s.commit()
            s.refresh(row)
        targets, expires_at = list(row.payloads), row.expires_at
    app.state.tracker.cancel(eid)
    bridge = app.state.bridge
    ttl = max(60.0, (expires_at - utcnow()).total_seconds())
    try:
        for target in targets:
            await bridge.send(Stop.new(Target.parse(target), ttl, item_id=f"em-{eid}", priority="emergency"), who.actor)
    except (aiomqtt.MqttError, AttributeError) as e:
        audit(app.state.engine, who.actor, "emergency.cancel", "degraded", target=eid, detail=str(e))
        raise HTTPException(503, f"Cancelled here, but the broker is unreachable ({e}).") from None
    audit(app.state.engine, who.actor, "emergency.cancel", "ok", target=eid, detail=", ".join(targets)[:300])
    return snapshot(request, eid)
