"""`GET /api/v1/reports/broadcast?commune=&month=YYYY-MM` (or `from`/`to`): minutes broadcast per commune and
per programme, planned (approved programmes) against actually played (proof of play), and the receivers
that missed items — as JSON, or with `format=csv` the per-programme table (`part=missed`: the missed
items) as a UTF-8 CSV file with a BOM. Built by `controller.services.reports`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from controller.services import reports as service
from controller.services.reports import BroadcastReport

from .deps import ReceiversReader

router = APIRouter(tags=["reports"])

CSV_RESPONSE: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                      "description": "The report as JSON, or with `format=csv` a CSV file (UTF-8 with a BOM)."}}


@router.get("/reports/broadcast", response_model=BroadcastReport, responses=CSV_RESPONSE)
def broadcast_report(ctx: ReceiversReader, commune: str | None = None, month: str | None = None,
                     from_: Annotated[dt.datetime | None, Query(alias="from")] = None,
                     to: dt.datetime | None = None, format: Literal["json", "csv"] = "json",
                     part: Literal["summary", "missed"] = "summary") -> BroadcastReport | Response:
    report = service.broadcast_report(ctx, commune=commune, month=month, from_=from_, to=to)
    if format == "json":
        return report
    table = service.broadcast_csv(report, part, month)
    return Response(table.text, media_type=table.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{table.filename}"'})
