"""`/api/v1/communes`: the administrative units with their receivers' online / offline counts."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import case, func
from sqlmodel import col, select

from controller.auth import CanReadReceivers
from controller.db.models import Commune, CommunePublic, CommunesPublic, Receiver, ReceiverStatus, Village

from .deps import SessionDep

router = APIRouter(prefix="/communes", tags=["communes"])


@router.get("", response_model=CommunesPublic)
def list_communes(session: SessionDep, who: CanReadReceivers) -> CommunesPublic:
    online = func.sum(case((ReceiverStatus.availability == "online", 1), else_=0))  # type: ignore[arg-type]
    counts: dict[int, tuple[int, int]] = {
        cid: (total, on or 0)
        for cid, total, on in session.exec(
            select(Receiver.commune_id, func.count(col(Receiver.id)), online)
            .join(ReceiverStatus, ReceiverStatus.receiver_id == Receiver.id, isouter=True)  # type: ignore[arg-type]
            .group_by(Receiver.commune_id)  # type: ignore[arg-type]
        )
    }
    villages: dict[int, int] = {
        cid: n for cid, n in session.exec(
            select(Village.commune_id, func.count(col(Village.id))).group_by(Village.commune_id))  # type: ignore[arg-type]
    }
    rows = []
    for c in session.exec(select(Commune).order_by(col(Commune.id))):
        if not who.may_see(c.code):
            continue
        total, on = counts.get(c.id or 0, (0, 0))
        rows.append(CommunePublic(code=c.code, name=c.name, kind=c.kind, villages=villages.get(c.id or 0, 0),
                                  receivers_total=total, receivers_online=on, receivers_offline=total - on))
    return CommunesPublic(data=rows, count=len(rows))
