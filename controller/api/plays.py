"""Proof of play: what each loudspeaker actually played, as its receiver reported it.

`GET /api/v1/plays?commune=&receiver=&event=&from=&to=` and `GET /api/v1/receivers/{id}/plays`; times in
ISO 8601 with an offset (`from`/`to` without one are read as Asia/Ho_Chi_Minh, as staff type them).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from sqlmodel import col, func, select

from controller.auth import CanReadReceivers
from controller.db.models import Commune, PlayPublic, PlayRecord, PlaysPublic, Receiver

from .deps import SessionDep

router = APIRouter(tags=["plays"])
LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=LOCAL)


@router.get("/plays", response_model=PlaysPublic)
def list_plays(
    session: SessionDep, who: CanReadReceivers,
    commune: str | None = None, receiver: str | None = None,
    event: Literal["started", "finished", "cut", "failed", "missed"] | None = None,
    from_: Annotated[dt.datetime | None, Query(alias="from")] = None,
    to: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100, offset: Annotated[int, Query(ge=0)] = 0,
) -> PlaysPublic:
    q = (select(PlayRecord, Commune.code)
         .join(Receiver, Receiver.id == PlayRecord.receiver_id)  # type: ignore[arg-type]
         .join(Commune, Commune.id == Receiver.commune_id))  # type: ignore[arg-type]
    start, end = _aware(from_), _aware(to)
    if start and end and end < start:
        raise HTTPException(422, "'to' is before 'from'.")
    if commune:
        q = q.where(Commune.code == commune)
    if receiver:
        q = q.where(PlayRecord.receiver_id == receiver)
    if event:
        q = q.where(PlayRecord.event == event)
    if start:
        q = q.where(PlayRecord.at >= start)
    if end:
        q = q.where(PlayRecord.at <= end)
    if who.communes is not None:
        q = q.where(col(Commune.code).in_(who.communes))
    count = session.exec(select(func.count()).select_from(q.subquery())).one()
    rows = session.exec(q.order_by(col(PlayRecord.at), col(PlayRecord.receiver_id), col(PlayRecord.seq))
                        .offset(offset).limit(limit)).all()
    return PlaysPublic(data=[PlayPublic(commune=code, **r.model_dump(exclude={"received_at"})) for r, code in rows],
                       count=count)


@router.get("/receivers/{rid}/plays", response_model=PlaysPublic)
def receiver_plays(
    rid: str, session: SessionDep, who: CanReadReceivers,
    from_: Annotated[dt.datetime | None, Query(alias="from")] = None, to: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100, offset: Annotated[int, Query(ge=0)] = 0,
) -> PlaysPublic:
    receiver = session.get(Receiver, rid)
    commune = session.get(Commune, receiver.commune_id) if receiver else None
    if receiver is None or commune is None or not who.may_see(commune.code):
        raise HTTPException(404, f"No receiver {rid!r}.")
    return list_plays(session, who, receiver=rid, from_=from_, to=to, limit=limit, offset=offset)
