"""`/api/v1/receivers`: live status of every loudspeaker cluster, and the commands staff send to one."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Annotated, Literal

import aiomqtt
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import or_
from sqlmodel import Session, col, func, select

from controller.auth import CanControlReceivers, CanReadReceivers, Principal, audit
from controller.content import media_url
from controller.db.models import (
    Announcement,
    Bulletin,
    Commune,
    MediaFile,
    Receiver,
    ReceiverPublic,
    ReceiversPublic,
    ReceiverStatus,
    Village,
    utcnow,
)
from controller.policy import Right
from receivers.protocol import INLINE_AUDIO_MAX, MediaRef, Play, RestartAgent, SelfTest, SetVolume, Stop, Target

from .deps import SessionDep, get_bridge

router = APIRouter(prefix="/receivers", tags=["receivers"])
CLOCK_DRIFT_S = 2.0


def _query():
    return (select(Receiver, Commune, Village, ReceiverStatus)
            .join(Commune, Commune.id == Receiver.commune_id)  # type: ignore[arg-type]
            .join(Village, Village.id == Receiver.village_id, isouter=True)  # type: ignore[arg-type]
            .join(ReceiverStatus, ReceiverStatus.receiver_id == Receiver.id, isouter=True))  # type: ignore[arg-type]


def _public(r: Receiver, c: Commune, v: Village | None, s: ReceiverStatus | None) -> ReceiverPublic:
    offset = (s.telemetry or {}).get("clock_offset_s_seen") if s else None
    return ReceiverPublic(
        id=r.id, name=r.name, commune=c.code, commune_name=c.name,
        village=v.code if v else None, village_name=v.name if v else None,
        availability=s.availability if s else "unknown", last_seen=s.last_seen if s else None,
        volume=s.volume if s else None,
        state={"amplifier": s.amplifier if s else None,
               "playing": s.playing if s else None,
               "activity": ("playing" if s and s.playing else "idle"),
               "at": s.state_at if s else None},
        telemetry=s.telemetry if s else None,
        clock_offset_s=offset,
        clock_drift=offset is not None and abs(offset) > CLOCK_DRIFT_S,
        accepts_tests=r.accepts_tests,
    )


def _one(session: Session, rid: str, who: Principal) -> ReceiverPublic:
    row = session.exec(_query().where(Receiver.id == rid)).first()
    if row is None or not who.may_see(row[1].code):
        raise HTTPException(404, f"No receiver {rid!r}.")
    return _public(*row)


@router.get("", response_model=ReceiversPublic)
def list_receivers(
    session: SessionDep, who: CanReadReceivers,
    commune: str | None = None, village: str | None = None,
    status: Literal["online", "offline"] | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 100, offset: Annotated[int, Query(ge=0)] = 0,
) -> ReceiversPublic:
    q = _query()
    if commune:
        q = q.where(Commune.code == commune)
    if village:
        q = q.where(Village.code == village)
    if who.communes is not None:
        q = q.where(col(Commune.code).in_(who.communes))
    if status == "online":
        q = q.where(ReceiverStatus.availability == "online")
    elif status == "offline":
        q = q.where(or_(col(ReceiverStatus.availability).is_(None), col(ReceiverStatus.availability) != "online"))
    count = session.exec(select(func.count()).select_from(q.subquery())).one()
    rows = session.exec(q.order_by(col(Commune.id), col(Receiver.id)).offset(offset).limit(limit)).all()
    return ReceiversPublic(data=[_public(*r) for r in rows], count=count)


@router.get("/{rid}", response_model=ReceiverPublic)
def get_receiver(rid: str, session: SessionDep, who: CanReadReceivers) -> ReceiverPublic:
    return _one(session, rid, who)


class ReceiverUpdate(BaseModel):
    accepts_tests: bool | None = Field(default=None, description="plays CAP alerts of status Test / Exercise")


@router.patch("/{rid}", response_model=ReceiverPublic)
def update_receiver(rid: str, body: ReceiverUpdate, who: CanControlReceivers, session: SessionDep,
                    request: Request) -> ReceiverPublic:
    _one(session, rid, who)
    receiver = session.get(Receiver, rid)
    assert receiver is not None
    if body.accepts_tests is not None:
        receiver.accepts_tests = body.accepts_tests
    session.add(receiver)
    session.commit()
    audit(request.app.state.engine, who.actor, "receiver.update", "ok", target=rid,
          detail=", ".join(f"{k}={v}" for k, v in body.model_dump(exclude_none=True).items()))
    return _one(session, rid, who)


class VolumeRequest(BaseModel):
    volume: int = Field(ge=0, le=100, description="0 (silent) to 100 (maximum)")


class CommandOutcome(BaseModel):
    outcome: Literal["applied", "rejected", "no_answer"]
    reason: str | None = None
    command_id: str
    receiver: ReceiverPublic


@router.post("/{rid}/volume", response_model=CommandOutcome)
async def set_volume(rid: str, body: VolumeRequest, who: CanControlReceivers, session: SessionDep,
                     request: Request) -> CommandOutcome:
    """Send a signed `set-volume` and wait (bounded by TT_COMMAND_TIMEOUT_S) for the receiver's answer."""
    ttl = request.app.state.settings.command_ttl_s
    return await _command(rid, SetVolume.new(Target.receiver(rid), ttl, volume=body.volume),
                          who, session, request, detail=f"volume={body.volume}")


@router.post("/{rid}/self-test", response_model=CommandOutcome)
async def self_test(rid: str, who: CanControlReceivers, session: SessionDep, request: Request) -> CommandOutcome:
    """Ask the receiver to play a short quiet tone and check its amplifier and audio output."""
    settings = request.app.state.settings
    return await _command(rid, SelfTest.new(Target.receiver(rid), settings.command_ttl_s), who, session, request,
                          timeout=settings.command_timeout_s + 5)


@router.post("/{rid}/restart", response_model=CommandOutcome)
async def restart_agent(rid: str, who: CanControlReceivers, session: SessionDep, request: Request) -> CommandOutcome:
    """Restart the receiver's agent (it acknowledges first, then comes back online by itself)."""
    ttl = request.app.state.settings.command_ttl_s
    return await _command(rid, RestartAgent.new(Target.receiver(rid), ttl), who, session, request)


async def _command(rid: str, command: SetVolume | SelfTest | RestartAgent, who: Principal, session: Session,
                   request: Request, *, detail: str = "", timeout: float | None = None) -> CommandOutcome:
    receiver = _one(session, rid, who)
    bridge = get_bridge(request)
    action = {"set-volume": "receiver.volume"}.get(command.kind, f"receiver.{command.kind}")
    wait = timeout or bridge.settings.command_timeout_s
    outcome: str
    reason: str | None
    if receiver.availability != "online":
        outcome, reason = "no_answer", f"receiver is {receiver.availability}; command not sent"
    else:
        try:
            ack = await bridge.request(command, who.actor, wait)
        except aiomqtt.MqttError as e:
            audit(bridge.engine, who.actor, action, "failed", target=rid, detail=f"broker: {e}")
            raise HTTPException(503, f"The controller cannot reach the MQTT broker ({e}); nothing was sent.") from None
        if ack is None:
            outcome, reason = "no_answer", f"no acknowledgement within {wait:g} s"
        else:
            outcome, reason = ack.status, ack.reason
        await bridge.flush()
    audit(bridge.engine, who.actor, action, outcome, target=rid,
          detail="; ".join(x for x in (detail, reason) if x))
    session.expire_all()
    return CommandOutcome(outcome=outcome, reason=reason, command_id=str(command.command_id),  # type: ignore[arg-type]
                          receiver=_one(session, rid, who))


class PlayRequest(BaseModel):
    bulletin_id: int | None = None
    announcement_id: int | None = None
    priority: Literal["normal", "priority", "emergency"] = "normal"
    volume: int | None = Field(default=None, ge=0, le=100)
    repeat: int = Field(default=1, ge=1, le=20)
    gap_s: float = Field(default=0.0, ge=0, le=300)
    start_at: dt.datetime | None = Field(default=None, description="ISO 8601 with offset; default now")
    resume: bool = Field(default=False, description="resume where it was cut after a higher class")
    inline: bool = Field(default=False, description="send the audio inside the command (at most 256 KB): "
                                                    "it plays without a download")


class PlaySent(BaseModel):
    command_id: str
    item_id: str
    outcome: Literal["received", "rejected", "no_answer"]
    reason: str | None = None


@router.post("/{rid}/play", response_model=PlaySent, status_code=202)
async def play_now(rid: str, body: PlayRequest, who: CanControlReceivers, session: SessionDep,
                   request: Request) -> PlaySent:
    """Send a stored bulletin or announcement to one receiver; answers once the receiver has it (progress
    and proof of play follow as acks and `GET /api/v1/receivers/{id}/plays`)."""
    receiver = _one(session, rid, who)
    if body.priority == "emergency" and not who.has(Right.EMERGENCY):
        audit(request.app.state.engine, who.actor, "receiver.play", "refused", target=rid,
              detail="emergency priority without the emergency:trigger scope")
        raise HTTPException(403, "Playing at emergency priority needs the 'emergency:trigger' scope.")
    if (body.bulletin_id is None) == (body.announcement_id is None):
        raise HTTPException(422, "Give exactly one of bulletin_id or announcement_id.")
    content: Bulletin | Announcement | None = (session.get(Bulletin, body.bulletin_id) if body.bulletin_id
                                               else session.get(Announcement, body.announcement_id))
    if content is None:
        raise HTTPException(404, "No such bulletin or announcement.")
    media = session.get(MediaFile, content.media_sha256)
    assert media is not None
    bridge = get_bridge(request)
    start = body.start_at
    if start is not None and start.tzinfo is None:
        raise HTTPException(422, "start_at needs a UTC offset, e.g. 2026-11-26T06:00:00+07:00.")
    now = utcnow()
    ttl = bridge.settings.command_ttl_s + max(0.0, (start - now).total_seconds() if start else 0.0)
    kind = "bulletin" if body.bulletin_id else "announcement"
    audio: dict[str, object] = {"media": MediaRef(sha256=media.sha256, url=media_url(media.sha256),
                                                  size=media.size_bytes)}
    if body.inline:
        if media.size_bytes > INLINE_AUDIO_MAX:
            raise HTTPException(422, f"This audio is {media.size_bytes / 1024:.0f} KB; at most "
                                     f"{INLINE_AUDIO_MAX // 1024} KB travels inside a command.")
        data = request.app.state.media.verified_path(media.sha256).read_bytes()
        audio = {"inline_audio": base64.b64encode(data).decode(), "inline_sha256": media.sha256}
    command = Play.new(Target.receiver(rid), ttl, now=now, item_id=f"{kind}-{content.id}-{uuid.uuid4().hex[:8]}",
                       priority=body.priority, **audio,
                       volume=body.volume, repeat=body.repeat, gap_s=body.gap_s, start_at=start, resume=body.resume,
                       title=content.title)
    reason: str | None
    if receiver.availability != "online":
        outcome, reason = "no_answer", f"receiver is {receiver.availability}; command not sent"
    else:
        try:
            ack = await bridge.request(command, who.actor, bridge.settings.command_timeout_s)
        except aiomqtt.MqttError as e:
            raise HTTPException(503, f"The controller cannot reach the MQTT broker ({e}); nothing was sent.") from None
        outcome = "no_answer" if ack is None else ("rejected" if ack.status in ("rejected", "failed") else "received")
        reason = None if ack is None else ack.reason
    audit(bridge.engine, who.actor, "receiver.play", outcome, target=rid,
          detail=f"{kind} {content.id} ({body.priority})" + (f"; {reason}" if reason else ""))
    return PlaySent(command_id=str(command.command_id), item_id=command.item_id, outcome=outcome,  # type: ignore[arg-type]
                    reason=reason)


class StopRequest(BaseModel):
    item_id: str | None = None
    priority: Literal["normal", "priority", "emergency"] | None = None


@router.post("/{rid}/stop", response_model=CommandOutcome)
async def stop_playing(rid: str, body: StopRequest, who: CanControlReceivers, session: SessionDep,
                       request: Request) -> CommandOutcome:
    """Stop one item, one class, or (neither given) everything on a receiver."""
    _one(session, rid, who)
    bridge = get_bridge(request)
    command = Stop.new(Target.receiver(rid), bridge.settings.command_ttl_s, item_id=body.item_id,
                       priority=body.priority)
    try:
        ack = await bridge.request(command, who.actor, bridge.settings.command_timeout_s)
    except aiomqtt.MqttError as e:
        raise HTTPException(503, f"The controller cannot reach the MQTT broker ({e}); nothing was sent.") from None
    outcome, reason = ("no_answer", "no acknowledgement") if ack is None else (ack.status, ack.reason)
    audit(bridge.engine, who.actor, "receiver.stop", outcome, target=rid, detail=reason)
    await bridge.flush()
    session.expire_all()
    return CommandOutcome(outcome=outcome, reason=reason, command_id=str(command.command_id),  # type: ignore[arg-type]
                          receiver=_one(session, rid, who))
