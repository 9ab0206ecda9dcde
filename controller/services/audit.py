"""The audit log: every broadcast-affecting action and every refusal, with who, what, from where and the
outcome. `record` writes one row in its own transaction; `entries` lists them for district admins (filtered by
action, outcome, actor and period)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, func, select

from controller.db.models import AuditEntry

if TYPE_CHECKING:
    from .context import Ctx, Page


def record(engine: Engine, actor: str, action: str, outcome: str, *, target: str | None = None,
           detail: str | None = None, address: str | None = None) -> None:
    with Session(engine) as s:
        s.add(AuditEntry(actor=actor, action=action, target=target, outcome=outcome,
                         detail=detail[:2000] if detail else None, address=address))
        s.commit()


class AuditEntryPublic(SQLModel):
    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str | None
    outcome: str
    detail: str | None
    address: str | None


class AuditEntriesPublic(SQLModel):
    data: list[AuditEntryPublic]
    count: int


def entries(ctx: Ctx, page: Page, *, action: str | None = None, outcome: str | None = None,
            actor: str | None = None, actor_part: str | None = None, start: dt.datetime | None = None,
            end: dt.datetime | None = None) -> AuditEntriesPublic:
    """Newest first. District admins only: the log names every commune's actions. `action` matches from its
    start ("programme." for every programme action), `actor` exactly, `actor_part` anywhere in the actor
    (a username, say); `start` ≤ at < `end`."""
    from controller.policy import Right, require_district

    require_district(ctx.who, Right.ADMIN, "audit.read")
    q = select(AuditEntry)
    if action:
        q = q.where(col(AuditEntry.action).startswith(action))
    if outcome:
        q = q.where(AuditEntry.outcome == outcome)
    if actor:
        q = q.where(AuditEntry.actor == actor)
    if actor_part:
        q = q.where(col(AuditEntry.actor).contains(actor_part))
    if start is not None:
        q = q.where(AuditEntry.at >= start.astimezone(dt.UTC))
    if end is not None:
        q = q.where(AuditEntry.at < end.astimezone(dt.UTC))
    count = ctx.session.exec(select(func.count()).select_from(q.subquery())).one()
    rows = ctx.session.exec(page.apply(q.order_by(col(AuditEntry.id).desc()))).all()
    return AuditEntriesPublic(data=[AuditEntryPublic.model_validate(r, from_attributes=True) for r in rows],
                              count=count)
