"""The communes (xã) a principal may see, with their receivers' online / offline counts, and the one setting
kept per commune: whether its content waits for approval (duyệt tin) before it can go on air.

- `list_communes(ctx, page)`: the principal's communes (every one for a district principal).
- `update_commune(ctx, code, body)`: district admins turn approval on or off (audited).
"""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import case
from sqlmodel import col, func, select

from controller.db.models import Commune, CommunePublic, CommunesPublic, Receiver, ReceiverStatus, Village
from controller.errors import Hidden, Invalid, NotFound
from controller.policy import Right, require, require_district

from .context import Ctx, Page


class CommuneUpdate(BaseModel):
    approval_required: bool


def _rows(ctx: Ctx, communes: list[Commune]) -> list[CommunePublic]:
    ids = [c.id for c in communes]
    online = func.sum(case((ReceiverStatus.availability == "online", 1), else_=0))  # type: ignore[arg-type]
    counts: dict[int, tuple[int, int]] = {
        cid: (total, on or 0)
        for cid, total, on in ctx.session.exec(
            select(Receiver.commune_id, func.count(col(Receiver.id)), online)
            .join(ReceiverStatus, ReceiverStatus.receiver_id == Receiver.id, isouter=True)  # type: ignore[arg-type]
            .where(col(Receiver.commune_id).in_(ids))
            .group_by(Receiver.commune_id)  # type: ignore[arg-type]
        )
    }
    villages: dict[int, int] = {
        cid: n for cid, n in ctx.session.exec(
            select(Village.commune_id, func.count(col(Village.id))).where(col(Village.commune_id).in_(ids))
            .group_by(Village.commune_id))  # type: ignore[arg-type]
    }
    out = []
    for c in communes:
        total, on = counts.get(c.id or 0, (0, 0))
        out.append(CommunePublic(code=c.code, name=c.name, kind=c.kind, villages=villages.get(c.id or 0, 0),
                                 receivers_total=total, receivers_online=on, receivers_offline=total - on,
                                 approval_required=c.approval_required))
    return out


def list_communes(ctx: Ctx, page: Page) -> CommunesPublic:
    require(ctx.who, Right.RECEIVERS_READ, "commune.list")
    q = select(Commune)
    if ctx.who.communes is not None:
        q = q.where(col(Commune.code).in_(ctx.who.communes))
    count = ctx.session.exec(select(func.count()).select_from(q.subquery())).one()
    communes = list(ctx.session.exec(page.apply(q.order_by(col(Commune.id)))))
    return CommunesPublic(data=_rows(ctx, communes), count=count)


def update_commune(ctx: Ctx, code: str, body: CommuneUpdate) -> CommunePublic:
    action = "commune.update"
    require_district(ctx.who, Right.ADMIN, action)  # a district setting, as the README says
    commune = ctx.session.exec(select(Commune).where(Commune.code == code)).first()
    if commune is None:
        raise NotFound(f"No commune {code!r}.")
    before = commune.approval_required
    commune.approval_required = body.approval_required
    ctx.session.add(commune)
    ctx.session.commit()
    ctx.session.refresh(commune)
    ctx.audit(action, target=code, detail=f"approval_required: {before} → {commune.approval_required}")
    return _rows(ctx, [commune])[0]


def commune_named(ctx: Ctx, code: str | None, action: str) -> Commune | None:
    """The commune `code` names (None: the district). Outside the principal's communes it is `Hidden` (404),
    known or not, so a limited principal learns nothing about the others; unknown, `Invalid` (422)."""
    if code is None:
        return None
    if not ctx.who.may_see(code):
        raise Hidden(f"No commune {code!r}.", who=ctx.who, action=action)
    commune = ctx.session.exec(select(Commune).where(Commune.code == code)).first()
    if commune is None:
        raise Invalid(f"No commune with code {code!r}.")
    return commune
