"""`GET /api/v1/schedule?commune=&receiver=&from=&to=`: what will play where — every occurrence of every
programme in the window, placed as the receivers will play it (priority first, ordered overlaps moved),
with how many receivers in which communes play it. Times in Asia/Ho_Chi_Minh."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from sqlmodel import SQLModel

import schedules
from controller.auth import CanReadContent
from controller.scheduling import Inventory, load_programmes

from .deps import SessionDep
from .programmes import local

router = APIRouter(tags=["programmes"])
MAX_WINDOW = dt.timedelta(days=31)


class ScheduleRow(SQLModel):
    programme_id: int
    title: str
    priority: str
    item: dict[str, Any]
    occurrence: dt.datetime
    start: dt.datetime
    end: dt.datetime
    shifted_s: float
    receivers: int
    communes: list[str]


class SchedulePublic(SQLModel):
    data: list[ScheduleRow]
    count: int
    window_from: dt.datetime
    window_to: dt.datetime


def window(from_: dt.datetime | None, to: dt.datetime | None, default: dt.timedelta,
           now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    start = local(from_) if from_ else now
    end = local(to) if to else start + default
    if end <= start:
        raise HTTPException(422, "'to' must be after 'from'.")
    if end - start > MAX_WINDOW:
        raise HTTPException(422, f"Ask for at most {MAX_WINDOW.days} days at a time.")
    return start, end


@router.get("/schedule", response_model=SchedulePublic)
def schedule(session: SessionDep, who: CanReadContent, commune: str | None = None, receiver: str | None = None,
             from_: Annotated[dt.datetime | None, Query(alias="from")] = None,
             to: dt.datetime | None = None) -> SchedulePublic:
    start, end = window(from_, to, dt.timedelta(hours=48), dt.datetime.now(dt.UTC))
    inv = Inventory.load(session)
    if commune is not None and commune not in inv.by_commune:
        raise HTTPException(404, f"No commune {commune!r}.")
    if receiver is not None and receiver not in inv.receivers:
        raise HTTPException(404, f"No receiver {receiver!r}.")
    rids = [r for r, c in inv.receivers.items()
            if (commune is None or c == commune) and (receiver is None or r == receiver) and who.may_see(c)]
    plans = schedules.compile_plans(load_programmes(session, inv), rids, start, end)
    rows: dict[tuple[int, dt.datetime, int, dt.datetime], tuple[schedules.Slot, set[str]]] = {}
    for rid, plan in plans.items():
        for slot in plan.slots:
            key = (slot.programme_id, slot.occurrence, slot.index, slot.start)
            rows.setdefault(key, (slot, set()))[1].add(rid)
    out = []
    for key in sorted(rows, key=lambda k: (k[3], k[0], k[2])):
        slot, members = rows[key]
        kind, _, ident = slot.item.key.partition(":")
        out.append(ScheduleRow(
            programme_id=slot.programme_id, title=slot.title, priority=slot.priority,
            item={"kind": kind, "id": int(ident), "title": slot.item.title, "duration_s": slot.item.duration_s},
            occurrence=local(slot.occurrence), start=local(slot.start), end=local(slot.end),
            shifted_s=slot.shifted.total_seconds(), receivers=len(members),
            communes=sorted(inv.communes_of(members))))
    return SchedulePublic(data=out, count=len(out), window_from=local(start), window_to=local(end))
