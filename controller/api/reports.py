"""`GET /api/v1/reports/broadcast?commune=&month=YYYY-MM` (or `from`/`to`): minutes broadcast per commune and
per programme, planned against actually played (proof of play), and the receivers that missed items.

Planned: the programmes as they stand, placed for every receiver in scope up to now (or the period's end).
Played: each receiver's proof of play of plan items — a `finished` item counts its whole length, a `cut`
one up to where it was cut. A planned item a receiver has no `finished` event for is listed as missed, with
its last event (`missed`, `failed`, `cut`) or `no report`. `format=csv` gives the per-programme table
(`part=missed`: the missed items), UTF-8 with a BOM so spreadsheet programs read Vietnamese correctly.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import defaultdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from sqlmodel import col, select

import schedules
from controller.auth import CanReadReceivers
from controller.db.models import MediaFile, PlayRecord
from controller.scheduling import Inventory, load_programmes

from .deps import SessionDep
from .programmes import local
from .schedule import window

router = APIRouter(tags=["reports"])
PLAN_ITEM = re.compile(r"^p(\d+)-")


def _month(month: str) -> tuple[dt.datetime, dt.datetime]:
    try:
        first = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=schedules.TZ)
    except ValueError:
        raise HTTPException(422, f"'month' is written YYYY-MM, e.g. 2026-11, not {month!r}.") from None
    return first, (first + dt.timedelta(days=32)).replace(day=1)


@router.get("/reports/broadcast", response_model=None)
def broadcast_report(session: SessionDep, who: CanReadReceivers, commune: str | None = None,
                     month: str | None = None, from_: Annotated[dt.datetime | None, Query(alias="from")] = None,
                     to: dt.datetime | None = None, format: Literal["json", "csv"] = "json",
                     part: Literal["summary", "missed"] = "summary") -> Any:
    now = dt.datetime.now(dt.UTC)
    start, end = _month(month) if month else window(from_, to, dt.timedelta(days=1), now - dt.timedelta(days=1))
    inv = Inventory.load(session)
    if commune is not None and commune not in inv.by_commune:
        raise HTTPException(404, f"No commune {commune!r}.")
    rids = [r for r, c in inv.receivers.items() if (commune is None or c == commune) and who.may_see(c)]
    planned_until = min(end, now)
    programmes = load_programmes(session, inv)
    titles = {p.id: p.title for p in programmes}
    plans = schedules.compile_plans(programmes, rids, start, planned_until) if planned_until > start else {}

    played: dict[tuple[str, str], tuple[str, float, str | None]] = {}  # (rid, item) → (last event, seconds, reason)
    if rids:
        q = (select(PlayRecord, MediaFile.duration_s)
             .join(MediaFile, MediaFile.sha256 == PlayRecord.media_sha256, isouter=True)  # type: ignore[arg-type]
             .where(col(PlayRecord.receiver_id).in_(rids), col(PlayRecord.item_id).startswith("p"),
                    PlayRecord.at >= start - dt.timedelta(hours=1), PlayRecord.at < end + dt.timedelta(hours=6))
             .order_by(col(PlayRecord.receiver_id), col(PlayRecord.seq)))
        for rec, duration in session.exec(q):
            key = (rec.receiver_id, rec.item_id)
            _, seconds, _ = played.get(key, ("", 0.0, None))
            if rec.event == "finished":
                seconds = duration or seconds
            elif rec.event == "cut":
                seconds = max(seconds, rec.position_s)
            played[key] = (rec.event, seconds, rec.reason)

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
            p = per_prog.setdefault((code, slot.programme_id), {
                "commune": code, "programme_id": slot.programme_id, "title": slot.title, "occurrences": set(),
                "planned_minutes": 0.0, "planned_receiver_minutes": 0.0, "played_receiver_minutes": 0.0})
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
                missed.append({"receiver_id": rid, "commune": code, "programme_id": slot.programme_id,
                               "title": slot.title, "item_id": slot.item_id, "start": local(slot.start),
                               "outcome": event or "no report", "reason": reason})
        c["receivers_missing_items"] += missing
    # Played plan items that today's programmes no longer plan (edited or deleted since) still count as played.
    for (rid, item_id), (_event, seconds, _) in played.items():
        m = PLAN_ITEM.match(item_id)
        if not m or not seconds or rid not in inv.receivers:
            continue
        code, pid = inv.receivers[rid], int(m.group(1))
        p = per_prog.setdefault((code, pid), {"commune": code, "programme_id": pid, "title": titles.get(pid, ""),
                                              "occurrences": set(), "planned_minutes": 0.0,
                                              "planned_receiver_minutes": 0.0, "played_receiver_minutes": 0.0})
        p["played_receiver_minutes"] += seconds / 60
        if code in per_commune:
            per_commune[code]["played_receiver_minutes"] += seconds / 60

    programmes_rows = []
    for p in sorted(per_prog.values(), key=lambda r: (r["commune"], r["programme_id"])):
        programmes_rows.append({**p, "occurrences": len(p["occurrences"]), **_rounded(p)})
    commune_rows = [{**c, **_rounded(c)} for c in sorted(per_commune.values(), key=lambda r: r["commune"])]
    if format == "csv":
        return _csv(programmes_rows if part == "summary" else missed, month or f"{start:%Y%m%d}-{end:%Y%m%d}", part)
    return {"from": local(start), "to": local(end), "planned_until": local(planned_until),
            "communes": commune_rows, "programmes": programmes_rows, "missed": missed}


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    planned, played = row["planned_receiver_minutes"], row["played_receiver_minutes"]
    return {"planned_minutes": round(row["planned_minutes"], 3), "planned_receiver_minutes": round(planned, 3),
            "played_receiver_minutes": round(played, 3),
            "completion_percent": round(100 * played / planned, 1) if planned else None}


def _csv(rows: list[dict[str, Any]], period: str, part: str) -> Response:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in row.items()})
    name = f"bao-cao-phat-thanh-{period}{'-bo-lo' if part == 'missed' else ''}.csv"
    return Response("\ufeff" + buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
