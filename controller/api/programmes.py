"""`/api/v1/programmes`: recurring or one-off programmes — what plays, on which receivers, when.

Create, list, read, edit (PATCH), pause/resume and delete. Every write is checked (content exists, targets
resolve to receivers the token may reach, the RRULE is usable, the emergency class needs
`emergency:trigger`) and refused with 409 when it clashes with a same-class programme on a shared receiver
(the message names the other programme, the receivers and the times) unless it states an `order`.
Times are entered and shown in Asia/Ho_Chi_Minh and stored in UTC. Every change makes the runner
recompile the affected receivers' plans.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlmodel import Session, col, select

import schedules
from controller.auth import CanReadContent, CanWriteContent, Principal, audit
from controller.db.models import (
    Programme,
    ProgrammeCreate,
    ProgrammeItemPublic,
    ProgrammePublic,
    ProgrammesPublic,
    ProgrammeUpdate,
    utcnow,
)
from controller.policy import Right
from controller.scheduling import (
    Inventory,
    ScheduleError,
    content_index,
    content_items,
    item_key,
    load_programmes,
    to_value,
)

from .deps import SessionDep

router = APIRouter(prefix="/programmes", tags=["programmes"])
NEXT_SHOWN = 5


def local(value: dt.datetime) -> dt.datetime:
    """As staff read it: Asia/Ho_Chi_Minh. A time typed without an offset is taken as local too."""
    return value.astimezone(schedules.TZ) if value.tzinfo else value.replace(tzinfo=schedules.TZ)


def _public(row: Programme, value: schedules.Programme, inv: Inventory,
            index: dict[str, schedules.ContentItem], now: dt.datetime) -> ProgrammePublic:
    assert row.id is not None
    items = []
    for entry in row.items:
        key = item_key(entry)
        known = index.get(key)
        kind, _, ident = key.partition(":")
        items.append(ProgrammeItemPublic(kind=kind, id=int(ident), title=known.title if known else None,
                                         duration_s=known.duration_s if known else None))
    upcoming = schedules.occurrences(value, now, now + dt.timedelta(days=400))[:NEXT_SHOWN]
    return ProgrammePublic(
        id=row.id, title=row.title, items=items, targets=row.targets, receivers=len(value.receivers),
        communes=sorted(inv.communes_of(value.receivers)), start=local(row.start), rrule=row.rrule,
        exdates=row.exdates, valid_from=row.valid_from, valid_until=row.valid_until, priority=row.priority,
        order=row.play_order, paused=row.paused, duration_s=value.duration.total_seconds(),
        next=[local(t) for t in upcoming], created_by=row.created_by, created_at=local(row.created_at),
        updated_by=row.updated_by, updated_at=local(row.updated_at) if row.updated_at else None)


def _check(request: Request, session: Session, who: Principal, row: Programme, action: str) -> schedules.Programme:
    """Validate `row` as it would be stored; raise the HTTP error staff should see (and audit refusals)."""
    engine = request.app.state.engine
    settings = request.app.state.settings

    def refuse(status: int, message: str) -> HTTPException:
        audit(engine, who.actor, action, "refused", target=str(row.id or row.title), detail=message)
        return HTTPException(status, message)

    if row.priority == "emergency" and not who.has(Right.EMERGENCY):
        raise refuse(403, "An emergency-class programme needs a token with the 'emergency:trigger' scope.")
    inv = Inventory.load(session)
    try:
        items = content_items(session, row.items)
        receivers = inv.resolve(row.targets)
        if not receivers:
            raise ScheduleError("The targets name no receiver.")
        if row.rrule:
            schedules.check_rrule(row.rrule, row.start)
    except (ScheduleError, schedules.RecurrenceError) as e:
        raise refuse(422, str(e)) from None
    if row.valid_from and row.valid_until and row.valid_until < row.valid_from:
        raise refuse(422, "'valid_until' is before 'valid_from'.")
    if who.communes is not None:
        outside = sorted(inv.communes_of(receivers) - who.communes)
        if outside:
            raise refuse(403, f"This token may not schedule programmes in commune(s) {', '.join(outside)}.")
    value = to_value(row, receivers, items)
    now = utcnow()
    if not schedules.occurrences(value, now, now + dt.timedelta(days=settings.schedule.conflict_horizon_days)) \
            and not row.paused:
        raise refuse(422, "This programme would never play again: its start (and every recurrence) is in the past "
                          "or outside its validity period.")
    existing = [p for p in load_programmes(session, inv) if p.id != row.id]
    clash = schedules.find_clash(value, existing, now,
                                 now + dt.timedelta(days=settings.schedule.conflict_horizon_days))
    if clash is not None:
        raise refuse(409, clash.describe())
    return value


def _apply(row: Programme, data: dict[str, Any]) -> None:
    for key, value in data.items():
        if key == "targets":
            row.targets = {k: v for k, v in value.items() if v}
        elif key == "start":
            row.start = local(value).astimezone(dt.UTC)
        elif key == "exdates":
            row.exdates = sorted({d.isoformat() for d in value})
        elif key == "order":
            row.play_order = value
        elif key == "rrule":
            row.rrule = value.strip() or None if value else None
        else:
            setattr(row, key, value)


def _changed(request: Request) -> None:
    runner = request.app.state.runner
    if runner is not None:
        runner.changed()


def _find(session: Session, who: Principal, ident: int) -> Programme:
    row = session.get(Programme, ident)
    if row is None:
        raise HTTPException(404, f"No programme {ident}.")
    if who.communes is not None:
        inv = Inventory.load(session)
        try:
            communes = inv.communes_of(inv.resolve(row.targets))
        except ScheduleError:
            communes = set()
        if not communes or not communes <= who.communes:
            raise HTTPException(404, f"No programme {ident}.")
    return row


def _one(session: Session, row: Programme) -> ProgrammePublic:
    inv = Inventory.load(session)
    index = content_index(session)
    value = next(p for p in load_programmes(session, inv) if p.id == row.id)
    return _public(row, value, inv, index, utcnow())


@router.post("", status_code=201, response_model=ProgrammePublic)
def create_programme(body: ProgrammeCreate, request: Request, session: SessionDep,
                     who: CanWriteContent) -> ProgrammePublic:
    row = Programme(title=body.title, items=[], targets={}, start=utcnow(), created_by=who.actor)
    _apply(row, body.model_dump(exclude_unset=False))
    _check(request, session, who, row, "programme.create")
    session.add(row)
    session.commit()
    session.refresh(row)
    audit(request.app.state.engine, who.actor, "programme.create", "ok", target=str(row.id), detail=row.title)
    _changed(request)
    return _one(session, row)


@router.get("", response_model=ProgrammesPublic)
def list_programmes(session: SessionDep, who: CanReadContent, commune: str | None = None,
                    paused: bool | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                    offset: Annotated[int, Query(ge=0)] = 0) -> ProgrammesPublic:
    inv = Inventory.load(session)
    index = content_index(session)
    values = {p.id: p for p in load_programmes(session, inv)}
    now = utcnow()
    rows = []
    for row in session.exec(select(Programme).order_by(col(Programme.start))):
        value = values[row.id or 0]
        communes = inv.communes_of(value.receivers)
        if commune is not None and commune not in communes:
            continue
        if who.communes is not None and not (communes and communes <= who.communes):
            continue
        if paused is not None and row.paused != paused:
            continue
        rows.append((row, value))
    page = rows[offset:offset + limit]
    return ProgrammesPublic(data=[_public(r, v, inv, index, now) for r, v in page], count=len(rows))


@router.get("/{ident}", response_model=ProgrammePublic)
def get_programme(ident: int, session: SessionDep, who: CanReadContent) -> ProgrammePublic:
    return _one(session, _find(session, who, ident))


@router.patch("/{ident}", response_model=ProgrammePublic)
def edit_programme(ident: int, body: ProgrammeUpdate, request: Request, session: SessionDep,
                   who: CanWriteContent) -> ProgrammePublic:
    row = _find(session, who, ident)
    # Checked on a copy: the stored row stays untouched (and unflushed) until the edit is accepted.
    candidate = Programme.model_validate(row.model_dump())
    _apply(candidate, body.model_dump(exclude_unset=True))
    candidate.updated_by, candidate.updated_at = who.actor, utcnow()
    _check(request, session, who, candidate, "programme.edit")
    for key, value in candidate.model_dump(exclude={"id"}).items():
        setattr(row, key, value)
    session.add(row)
    session.commit()
    session.refresh(row)
    audit(request.app.state.engine, who.actor, "programme.edit", "ok", target=str(row.id),
          detail=", ".join(sorted(body.model_dump(exclude_unset=True))))
    _changed(request)
    return _one(session, row)


@router.post("/{ident}/pause", response_model=ProgrammePublic)
def pause_programme(ident: int, request: Request, session: SessionDep, who: CanWriteContent) -> ProgrammePublic:
    return edit_programme(ident, ProgrammeUpdate(paused=True), request, session, who)


@router.post("/{ident}/resume", response_model=ProgrammePublic)
def resume_programme(ident: int, request: Request, session: SessionDep, who: CanWriteContent) -> ProgrammePublic:
    return edit_programme(ident, ProgrammeUpdate(paused=False), request, session, who)


@router.delete("/{ident}", status_code=204)
def delete_programme(ident: int, request: Request, session: SessionDep, who: CanWriteContent) -> Response:
    row = _find(session, who, ident)
    session.delete(row)
    session.commit()
    audit(request.app.state.engine, who.actor, "programme.delete", "ok", target=str(ident), detail=row.title)
    _changed(request)
    return Response(status_code=204)

