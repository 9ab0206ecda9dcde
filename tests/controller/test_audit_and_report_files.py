"""The audit log filtered as the staff UI's Nhật ký page asks (part of an actor's name, a period), for district
admins only; the broadcast report's CSV files always start with their header row, even with nothing in them."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import Session

from controller.db.models import AuditEntry
from controller.errors import Forbidden
from controller.policy import Principal, Right
from controller.services import Ctx
from controller.services.audit import entries
from controller.services.context import Page
from controller.services.reports import BroadcastReport, broadcast_csv
from schedules import TZ
from tests.conftest import Seeded

ADMIN = Principal("user", 1, "huyen", frozenset({Right.ADMIN}), None)
BUI_ADMIN = Principal("user", 2, "bui", frozenset({Right.ADMIN}), frozenset({"tra-bui"}))
DAY = dt.datetime(2026, 12, 7, tzinfo=TZ)  # local midnight


def test_audit_entries_by_part_of_the_actor_and_by_period(seeded: Seeded) -> None:
    with Session(seeded.engine) as s:
        s.add_all([
            AuditEntry(at=DAY - dt.timedelta(minutes=1), actor="user:5:leader-nu", action="bulletin.approve",
                       outcome="ok"),
            AuditEntry(at=DAY + dt.timedelta(hours=3), actor="user:5:leader-nu", action="programme.return",
                       outcome="ok"),
            AuditEntry(at=DAY + dt.timedelta(hours=23, minutes=59), actor="user:6:viewer", action="ui.page:/nhat-ky",
                       outcome="refused"),
            AuditEntry(at=DAY + dt.timedelta(days=1), actor="user:5:leader-nu", action="bulletin.approve",
                       outcome="ok"),
        ])
        s.commit()
        ctx = Ctx(s, ADMIN, seeded.settings, seeded.engine)
        that_day = {"start": DAY, "end": DAY + dt.timedelta(days=1)}
        assert [e.action for e in entries(ctx, Page(), actor_part="leader", **that_day).data] == ["programme.return"]
        assert [e.actor for e in entries(ctx, Page(), outcome="refused", **that_day).data] == ["user:6:viewer"]
        assert entries(ctx, Page(), actor_part="leader-nu").count == 3
        assert entries(ctx, Page(), start=DAY + dt.timedelta(days=1)).count >= 1
        with pytest.raises(Forbidden):  # the log names every commune's actions: district admins only
            entries(Ctx(s, BUI_ADMIN, seeded.settings, seeded.engine), Page())


@pytest.mark.parametrize("part, first", [("summary", "commune,programme_id,title,occurrences,"),
                                         ("missed", "receiver_id,commune,programme_id,title,item_id,start,")])
def test_an_empty_report_file_still_has_its_header(part: str, first: str) -> None:
    empty = BroadcastReport(from_=DAY, to=DAY + dt.timedelta(days=31), planned_until=DAY, communes=[],
                            programmes=[], missed=[])
    table = broadcast_csv(empty, part, "2026-12")  # type: ignore[arg-type]
    assert table.text.startswith("\ufeff" + first) and len(table.text.splitlines()) == 1
    assert table.filename == f"bao-cao-phat-thanh-2026-12{'-bo-lo' if part == 'missed' else ''}.csv"
