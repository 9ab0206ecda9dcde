"""Fleet health: what on the receivers needs a staff member's attention, and one receiver's status history.

- `alarms`: the receivers (of the principal's communes) that are offline for long (`OFFLINE_ALARM`), whose
  clock drifts (`receivers.CLOCK_DRIFT_S`, as `ReceiverPublic.clock_drift`), whose disk is nearly full
  (`DISK_LOW_MB`, from their telemetry), whose last self-test did not pass (its acknowledgement, kept in
  the command records), or that two agent processes answered for lately (`cloned`: the bridge's
  `receiver.cloned` audit rows of the last `CLONE_ALARM`). One `Alarm` per receiver and kind, the
  longest-standing first.
- `status_history`: a receiver's availability changes (online / offline / stopped), newest first, as the
  bridge writes them (`ReceiverStatusEvent`); absent outside the principal's communes, as the receiver is.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel
from sqlmodel import col, func, select

from controller.db.models import (
    AuditEntry,
    CommandRecord,
    Commune,
    Receiver,
    ReceiverStatus,
    ReceiverStatusEvent,
    utcnow,
)
from controller.policy import Right, require
from controller.stream_watch import CLONED
from receivers.protocol import Target

from .context import Ctx, Page
from .receivers import CLOCK_DRIFT_S, get_receiver

OFFLINE_ALARM = dt.timedelta(minutes=10)
DISK_LOW_MB = 200.0  # below this a receiver may fail to keep the media of its plan
CLONE_ALARM = dt.timedelta(hours=24)  # a cloned receiver stays an alarm this long after it was last seen
AlarmKind = Literal["offline", "clock_drift", "disk_low", "self_test_failed", "cloned"]


class Alarm(BaseModel):
    receiver_id: str
    receiver_name: str
    commune: str
    commune_name: str
    kind: AlarmKind
    since: dt.datetime | None = None  # offline since (None: never heard from); when the self-test failed;
    # when two processes were last seen answering for it
    value: float | None = None  # the clock's offset (s) or the free disk (MB)
    reason: str | None = None  # why the self-test failed, as the receiver said; what the clone check saw


class StatusEventPublic(BaseModel):
    availability: str
    at: dt.datetime


class StatusEventsPublic(BaseModel):
    data: list[StatusEventPublic]
    count: int


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


def alarms(ctx: Ctx, *, now: dt.datetime | None = None) -> list[Alarm]:
    """Every alarm on the receivers `ctx.who` may see."""
    require(ctx.who, Right.RECEIVERS_READ, "receiver.alarms")
    now = now or utcnow()
    q = (select(Receiver, Commune, ReceiverStatus)
         .join(Commune, Commune.id == Receiver.commune_id)  # type: ignore[arg-type]
         .join(ReceiverStatus, ReceiverStatus.receiver_id == Receiver.id, isouter=True))  # type: ignore[arg-type]
    if ctx.who.communes is not None:
        q = q.where(col(Commune.code).in_(ctx.who.communes))
    rows = ctx.session.exec(q.order_by(col(Commune.id), col(Receiver.id))).all()
    found: list[Alarm] = []
    names: dict[str, tuple[str, str, str]] = {}
    for receiver, commune, st in rows:
        rid, name, code, commune_name = receiver.id, receiver.name, commune.code, commune.name
        names[rid] = (name, code, commune_name)
        availability = st.availability if st else "unknown"
        since = _aware(st.availability_at) if st else None
        if availability != "online" and (since is None or now - since >= OFFLINE_ALARM):
            found.append(Alarm(receiver_id=rid, receiver_name=name, commune=code, commune_name=commune_name,
                               kind="offline", since=since))
        telemetry = (st.telemetry or {}) if st else {}
        offset = telemetry.get("clock_offset_s_seen")
        if offset is not None and abs(offset) > CLOCK_DRIFT_S:
            found.append(Alarm(receiver_id=rid, receiver_name=name, commune=code, commune_name=commune_name,
                               kind="clock_drift", value=offset))
        disk = telemetry.get("disk_free_mb")
        if disk is not None and disk < DISK_LOW_MB:
            found.append(Alarm(receiver_id=rid, receiver_name=name, commune=code, commune_name=commune_name,
                               kind="disk_low", value=disk))
    for rid, (outcome, reason, at) in _last_self_tests(ctx, list(names)).items():
        if outcome in ("rejected", "failed"):
            name, code, commune_name = names[rid]
            found.append(Alarm(receiver_id=rid, receiver_name=name, commune=code, commune_name=commune_name,
                               kind="self_test_failed", since=_aware(at), reason=reason))
    for rid, (at, detail) in _clones(ctx, now).items():
        if rid in names:
            name, code, commune_name = names[rid]
            found.append(Alarm(receiver_id=rid, receiver_name=name, commune=code, commune_name=commune_name,
                               kind="cloned", since=_aware(at), reason=detail))
    oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
    found.sort(key=lambda a: (a.since or oldest, a.commune, a.receiver_id))
    return found


def _last_self_tests(ctx: Ctx, rids: list[str]) -> dict[str, tuple[str | None, str | None, dt.datetime | None]]:
    """Receiver id → the outcome, reason and time of its latest answered self-test."""
    targets = {str(Target.receiver(rid)): rid for rid in rids}
    last = (select(CommandRecord.target, func.max(CommandRecord.issued_at).label("at"))
            .where(CommandRecord.kind == "self-test", col(CommandRecord.outcome).is_not(None))
            .group_by(col(CommandRecord.target)).subquery())
    rows = ctx.session.exec(
        select(CommandRecord.target, CommandRecord.outcome, CommandRecord.reason, CommandRecord.answered_at)
        .join(last, (last.c.target == CommandRecord.target) & (last.c.at == CommandRecord.issued_at))
        .where(CommandRecord.kind == "self-test")).all()
    return {targets[target]: (outcome, reason, at) for target, outcome, reason, at in rows if target in targets}


def _clones(ctx: Ctx, now: dt.datetime) -> dict[str, tuple[dt.datetime, str | None]]:
    """Receiver id → when and what the clone check last said of it, within `CLONE_ALARM`."""
    rows = ctx.session.exec(select(AuditEntry.target, AuditEntry.at, AuditEntry.detail)
                            .where(AuditEntry.action == CLONED, AuditEntry.at >= now - CLONE_ALARM)
                            .order_by(col(AuditEntry.at))).all()
    return {target: (at, detail) for target, at, detail in rows if target}


def status_history(ctx: Ctx, rid: str, page: Page) -> StatusEventsPublic:
    """Receiver `rid`'s availability changes, newest first."""
    get_receiver(ctx, rid)  # absent outside the principal's communes
    q = select(ReceiverStatusEvent).where(ReceiverStatusEvent.receiver_id == rid)
    count = ctx.session.exec(select(func.count()).select_from(q.subquery())).one()
    rows = ctx.session.exec(page.apply(q.order_by(col(ReceiverStatusEvent.at).desc(),
                                                  col(ReceiverStatusEvent.id).desc()))).all()
    return StatusEventsPublic(data=[StatusEventPublic(availability=e.availability, at=_aware(e.at) or e.at)
                                    for e in rows], count=count)
