"""`/api/v1/receivers`: live status of every loudspeaker cluster, and the commands staff send to one."""

from __future__ import annotations

from typing import Annotated, Literal

import aiomqtt
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import or_
from sqlmodel import Session, col, func, select

from controller.auth import CanControlReceivers, CanReadReceivers, Principal, audit
from controller.db.models import Commune, Receiver, ReceiverPublic, ReceiversPublic, ReceiverStatus, Village
from receivers.protocol import SetVolume

from .deps import SessionDep, get_bridge

router = APIRouter(prefix="/api/v1/receivers", tags=["receivers"])


def _query():
    return (select(Receiver, Commune, Village, ReceiverStatus)
            .join(Commune, Commune.id == Receiver.commune_id)  # type: ignore[arg-type]
            .join(Village, Village.id == Receiver.village_id, isouter=True)  # type: ignore[arg-type]
            .join(ReceiverStatus, ReceiverStatus.receiver_id == Receiver.id, isouter=True))  # type: ignore[arg-type]


def _public(r: Receiver, c: Commune, v: Village | None, s: ReceiverStatus | None) -> ReceiverPublic:
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
    receiver = _one(session, rid, who)
    bridge = get_bridge(request)
    command = SetVolume.new(f"receiver:{rid}", bridge.settings.command_ttl_s, volume=body.volume)
    outcome: str
    reason: str | None
    if receiver.availability != "online":
        outcome, reason = "no_answer", f"receiver is {receiver.availability}; command not sent"
    else:
        try:
            ack = await bridge.request(command, who.actor, bridge.settings.command_timeout_s)
        except aiomqtt.MqttError as e:
            audit(bridge.engine, who.actor, "receiver.volume", "failed", target=rid, detail=f"broker: {e}")
            raise HTTPException(503, f"The controller cannot reach the MQTT broker ({e}); nothing was sent.") from None
        if ack is None:
            outcome, reason = "no_answer", f"no acknowledgement within {bridge.settings.command_timeout_s:g} s"
        else:
            outcome, reason = ack.status, ack.reason
        await bridge.flush()
    audit(bridge.engine, who.actor, "receiver.volume", outcome, target=rid,
          detail=f"volume={body.volume}" + (f"; {reason}" if reason else ""))
    session.expire_all()
    return CommandOutcome(outcome=outcome, reason=reason, command_id=str(command.command_id),  # type: ignore[arg-type]
                          receiver=_one(session, rid, who))
