"""`/api/v1/receiver-groups`: saved sets of receivers (e.g. "loa chợ", the market loudspeakers) that
programmes can target by id. A group a programme uses cannot be deleted."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from sqlmodel import col, select

from controller.auth import CanReadContent, CanWriteContent, audit
from controller.db.models import (
    Programme,
    Receiver,
    ReceiverGroup,
    ReceiverGroupCreate,
    ReceiverGroupPublic,
    ReceiverGroupsPublic,
)

from .deps import SessionDep

router = APIRouter(prefix="/receiver-groups", tags=["programmes"])


@router.post("", status_code=201, response_model=ReceiverGroupPublic)
def create_group(body: ReceiverGroupCreate, request: Request, session: SessionDep,
                 who: CanWriteContent) -> ReceiverGroup:
    wanted = sorted(set(body.receivers))
    known = set(session.exec(select(Receiver.id).where(col(Receiver.id).in_(wanted))))
    unknown = [r for r in wanted if r not in known]
    if unknown:
        raise HTTPException(422, f"No receiver(s) {', '.join(unknown[:10])}.")
    if session.exec(select(ReceiverGroup).where(ReceiverGroup.name == body.name)).first():
        raise HTTPException(409, f"A group named {body.name!r} exists already.")
    group = ReceiverGroup(name=body.name, receivers=wanted, created_by=who.actor)
    session.add(group)
    session.commit()
    session.refresh(group)
    audit(request.app.state.engine, who.actor, "group.create", "ok", target=str(group.id), detail=group.name)
    return group


@router.get("", response_model=ReceiverGroupsPublic)
def list_groups(session: SessionDep, who: CanReadContent) -> ReceiverGroupsPublic:
    rows = list(session.exec(select(ReceiverGroup).order_by(col(ReceiverGroup.name))))
    return ReceiverGroupsPublic(data=[ReceiverGroupPublic.model_validate(g) for g in rows], count=len(rows))


@router.delete("/{ident}", status_code=204)
def delete_group(ident: int, request: Request, session: SessionDep, who: CanWriteContent) -> Response:
    group = session.get(ReceiverGroup, ident)
    if group is None:
        raise HTTPException(404, f"No receiver group {ident}.")
    using = [p for p in session.exec(select(Programme)) if ident in (p.targets.get("groups") or [])]
    if using:
        raise HTTPException(409, "This group is used by programme(s) "
                                 + ", ".join(f'#{p.id} "{p.title}"' for p in using[:5]) + ".")
    session.delete(group)
    session.commit()
    audit(request.app.state.engine, who.actor, "group.delete", "ok", target=str(ident), detail=group.name)
    return Response(status_code=204)
