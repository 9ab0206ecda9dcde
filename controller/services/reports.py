"""Broadcast reports (báo cáo phát thanh): minutes broadcast per commune and per programme, planned against
actually played (proof of play), and the receivers that missed items.

- `broadcast_report(ctx, commune=, month= | from_=/to=)` → `BroadcastReport`.
- `broadcast_csv(report, part, month)` → `CsvFile`: the per-programme table (`part="missed"`: the missed
  items), UTF-8 with a BOM so spreadsheet programs read Vietnamese correctly. Every text cell that a
  spreadsheet would take for a formula (`=`, `+`, `-`, `@`, tab, CR first: a title, a receiver's reason) is
  written with a `'` before it (`spreadsheet_text`), so opening the file runs nothing.

Planned: the approved programmes as they stand (drafts are on no plan), placed for every receiver in scope
up to now (or the period's end). Played: each receiver's proof of play of plan items — a `finished` item
counts its whole length, a `cut` one up to where it was cut; played items that today's programmes no
longer plan (edited, deleted, or back to draft since) still count as played. A planned item a receiver has
no `finished` event for is listed as missed, with its last event (`missed`, `failed`, `cut`) or
`no report`. The scope is the principal's communes: naming another commune is `Hidden` (404). A programme
that plays on the principal's receivers but also reaches other communes is counted and listed, under
`SHARED_TITLE` rather than its own title (as in the schedule).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

import schedules
from controller.db.models import MediaFile, PlayRecord, Programme
from controller.errors import Invalid
from controller.policy import Right, require
from controller.scheduling import Inventory, load_programmes, local

from .context import Ctx
from .programmes import SHARED_TITLE, masked_programmes, scope, window

PLAN_ITEM = re.compile(r"^p(\d+)-")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(value: Any) -> Any:
    """A CSV cell as a spreadsheet must read it: text that would start a formula gets a `'` before it (the
    OWASP advice); numbers, dates and other text are written as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


class CommuneMinutes(BaseModel):
    commune: str
    receivers: int
    planned_minutes: float  # air time: each planned item once, however many receivers play it
    planned_receiver_minutes: float
    played_receiver_minutes: float
    receivers_missing_items: int
    completion_percent: float | None


class ProgrammeMinutes(BaseModel):
    commune: str
    programme_id: int
    title: str
    occurrences: int
    planned_minutes: float
    planned_receiver_minutes: float
    played_receiver_minutes: float
    completion_percent: float | None


class MissedItem(BaseModel):
    receiver_id: str
    commune: str
    programme_id: int
    title: str
    item_id: str
    start: dt.datetime
    outcome: str  # missed | failed | cut | no report
    reason: str | None


class BroadcastReport(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    from_: dt.datetime = Field(serialization_alias="from")
    to: dt.datetime
    planned_until: dt.datetime
    communes: list[CommuneMinutes]
    programmes: list[ProgrammeMinutes]
    missed: list[MissedItem]


@dataclass(frozen=True)
class CsvFile:
    filename: str
    text: str  # with the BOM
    media_type: str = "text/csv; charset=utf-8"


def _month(month: str) -> tuple[dt.datetime, dt.datetime]:
    try:
        first = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=schedules.TZ)
    except ValueError:
        raise Invalid(f"'month' is written YYYY-MM, e.g. 2026-11, not {month!r}.") from None
    return first, (first + dt.timedelta(days=32)).replace(day=1)


def period(month: str | None, from_: dt.datetime | None, to: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    """The month, or `from`/`to` (default: the day before now)."""
    if month:
        return _month(month)
    return window(from_, to, dt.timedelta(days=1), dt.datetime.now(dt.UTC) - dt.timedelta(days=1))


def _played(ctx: Ctx, rids: list[str], start: dt.datetime,
            end: dt.datetime) -> dict[tuple[str, str], tuple[str, float, str | None]]:
    """(receiver, plan item) → (its last event, seconds played, reason)."""
    played: dict[tuple[str, str], tuple[str, float, str | None]] = {}
    if not rids:
        return played
    q = (select(PlayRecord, MediaFile.duration_s)
         .join(MediaFile, MediaFile.sha256 == PlayRecord.media_sha256, isouter=True)  # type: ignore[arg-type]
         .where(col(PlayRecord.receiver_id).in_(rids), col(PlayRecord.item_id).startswith("p"),
                PlayRecord.at >= start - dt.timedelta(hours=1), PlayRecord.at < end + dt.timedelta(hours=6))
         .order_by(col(PlayRecord.receiver_id), col(PlayRecord.seq)))
    for rec, duration in ctx.session.exec(q):
        key = (rec.receiver_id, rec.item_id)
        _, seconds, _ = played.get(key, ("", 0.0, None))
        if rec.event == "finished":
            seconds = duration or seconds
        elif rec.event == "cut":
            seconds = max(seconds, rec.position_s)
        played[key] = (rec.event, seconds, rec.reason)
    return played


def _programme_row(code: str, pid: int, title: str) -> dict[str, Any]:
    return {"commune": code, "programme_id": pid, "title": title, "occurrences": set(), "planned_minutes": 0.0,
            "planned_receiver_minutes": 0.0, "played_receiver_minutes": 0.0}


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    planned, played = row["planned_receiver_minutes"], row["played_receiver_minutes"]
    return {"planned_minutes": round(row["planned_minutes"], 3), "planned_receiver_minutes": round(planned, 3),
            "played_receiver_minutes": round(played, 3),
            "completion_percent": round(100 * played / planned, 1) if planned else None}


def broadcast_report(ctx: Ctx, *, commune: str | None = None, month: str | None = None,
                     from_: dt.datetime | None = None, to: dt.datetime | None = None) -> BroadcastReport:
    action = "report.broadcast"
    require(ctx.who, Right.RECEIVERS_READ, action)
    now = dt.datetime.now(dt.UTC)
    start, end = period(month, from_, to)
    inv = Inventory.load(ctx.session)
    rids = scope(ctx, inv, commune, None, action)
    planned_until = min(end, now)
    programmes = load_programmes(ctx.session, inv)  # approved only: a draft plans nothing
    plans = schedules.compile_plans(programmes, rids, start, planned_until) if planned_until > start else {}
    # Drafts too: a programme played earlier may be one now (its title is shown only where it reaches).
    masked = masked_programmes(ctx.who, inv, load_programmes(ctx.session, inv, drafts=True))

    def title(pid: int, own: str) -> str:
        return SHARED_TITLE if pid in masked else own

    played = _played(ctx, rids, start, end)

    per_prog: dict[tuple[str, int], dict[str, Any]] = {}
    per_commune: dict[str, dict[str, Any]] = {}
    air: dict[tuple[str, int], set[tuple[dt.datetime, int]]] = defaultdict(set)
    missed = []
    for rid, plan in plans.items():
        code = inv.receivers[rid]
        c = per_commune.setdefault(code, {"commune": code, "receivers": 0, "planned_minutes": 0.0,
                                          "planned_receiver_minutes": 0.0, "played_receiver_minutes": 0.0,
                                          "receivers_missing_items": 0})
        c["receivers"] += 1
        missing = False
        for slot in plan.slots:
            p = per_prog.setdefault((code, slot.programme_id),
                                    _programme_row(code, slot.programme_id, title(slot.programme_id, slot.title)))
            p["occurrences"].add(slot.occurrence)
            minutes = slot.item.duration_s / 60
            if (slot.occurrence, slot.index) not in air[(code, slot.programme_id)]:
                air[(code, slot.programme_id)].add((slot.occurrence, slot.index))
                p["planned_minutes"] += minutes
                c["planned_minutes"] += minutes
            p["planned_receiver_minutes"] += minutes
            c["planned_receiver_minutes"] += minutes
            event, seconds, reason = played.pop((rid, slot.item_id), ("", 0.0, None))
            p["played_receiver_minutes"] += seconds / 60
            c["played_receiver_minutes"] += seconds / 60
            if event != "finished":
                missing = True
                missed.append(MissedItem(receiver_id=rid, commune=code, programme_id=slot.programme_id,
                                         title=title(slot.programme_id, slot.title), item_id=slot.item_id,
                                         start=local(slot.start), outcome=event or "no report", reason=reason))
        c["receivers_missing_items"] += missing
    # Played plan items that today's programmes no longer plan (edited, deleted or back to draft since) still
    # count as played.
    titles = dict(ctx.session.exec(select(Programme.id, Programme.title)).all())
    for (rid, item_id), (_event, seconds, _) in played.items():
        m = PLAN_ITEM.match(item_id)
        if not m or not seconds or rid not in inv.receivers:
            continue
        code, pid = inv.receivers[rid], int(m.group(1))
        p = per_prog.setdefault((code, pid), _programme_row(code, pid, title(pid, titles.get(pid, ""))))
        p["played_receiver_minutes"] += seconds / 60
        if code in per_commune:
            per_commune[code]["played_receiver_minutes"] += seconds / 60

    programme_rows = [ProgrammeMinutes(**{**p, "occurrences": len(p["occurrences"]), **_rounded(p)})
                      for p in sorted(per_prog.values(), key=lambda r: (r["commune"], r["programme_id"]))]
    commune_rows = [CommuneMinutes(**{**c, **_rounded(c)})
                    for c in sorted(per_commune.values(), key=lambda r: r["commune"])]
    return BroadcastReport(from_=local(start), to=local(end), planned_until=local(planned_until),
                           communes=commune_rows, programmes=programme_rows, missed=missed)


def broadcast_csv(report: BroadcastReport, part: Literal["summary", "missed"], month: str | None = None) -> CsvFile:
    """The report's per-programme table (or its missed items) as a spreadsheet reads it; the file is named
    after the month asked for, or the period's local dates."""
    rows: list[BaseModel] = list(report.programmes) if part == "summary" else list(report.missed)
    buf = io.StringIO()
    # The header even with no rows: a spreadsheet (or a script) still reads which columns the report has.
    writer = csv.DictWriter(buf, fieldnames=list((ProgrammeMinutes if part == "summary" else MissedItem).model_fields))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: v.isoformat() if isinstance(v, dt.datetime) else spreadsheet_text(v)
                         for k, v in row.model_dump().items()})
    period = month or f"{report.from_:%Y%m%d}-{report.to:%Y%m%d}"
    name = f"bao-cao-phat-thanh-{period}{'-bo-lo' if part == 'missed' else ''}.csv"
    return CsvFile(name, "\ufeff" + buf.getvalue())
