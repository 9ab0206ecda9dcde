"""Fleet health: the alarms staff see on the dashboard, limited to their communes, and a receiver's status
history as the bridge writes it."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import Session

from controller.db.models import CommandRecord, ReceiverStatus, ReceiverStatusEvent
from controller.errors import Hidden
from controller.policy import Principal, Right
from controller.services import Ctx
from controller.services.context import Page
from controller.services.fleet_health import alarms, status_history
from tests.conftest import Seeded

NOW = dt.datetime(2026, 12, 7, 3, 0, tzinfo=dt.UTC)
DISTRICT = Principal("user", 1, "huyen", frozenset({Right.RECEIVERS_READ}), None)
BUI = Principal("user", 2, "bui", frozenset({Right.RECEIVERS_READ}), frozenset({"tra-bui"}))


def status(rid: str, availability: str, at: dt.datetime, **telemetry: float) -> ReceiverStatus:
    return ReceiverStatus(receiver_id=rid, availability=availability, availability_at=at, last_seen=at,
                          telemetry=telemetry or None)


def self_test(rid: str, outcome: str, at: dt.datetime, reason: str | None = None) -> CommandRecord:
    return CommandRecord(command_id=f"st-{rid}-{at.timestamp()}", kind="self-test", target=f"receiver:{rid}",
                         issued_at=at, expires_at=at + dt.timedelta(minutes=1), issued_by="tests", outcome=outcome,
                         reason=reason, answered_at=at)


def test_alarms_name_each_problem_once_and_only_in_the_principals_communes(seeded: Seeded) -> None:
    with Session(seeded.engine) as s:
        s.add_all([
            status("tra-bui-thon-1-1", "offline", NOW - dt.timedelta(minutes=30)),
            status("tra-bui-thon-1-2", "offline", NOW - dt.timedelta(minutes=2)),  # not long enough yet
            status("tra-bui-thon-2-1", "online", NOW, clock_offset_s_seen=-7.5, disk_free_mb=5000),
            status("tra-bui-thon-2-2", "online", NOW, clock_offset_s_seen=0.2, disk_free_mb=50),
            status("tra-nu-thon-1-1", "stopped", NOW - dt.timedelta(hours=3)),
            self_test("tra-bui-thon-3-1", "rejected", NOW - dt.timedelta(minutes=5),
                      "amplifier relay did not switch on"),
            self_test("tra-bui-thon-4-1", "rejected", NOW - dt.timedelta(minutes=9), "audio output failed"),
            self_test("tra-bui-thon-4-1", "applied", NOW - dt.timedelta(minutes=1)),  # passed since
        ])
        s.commit()
        ctx = Ctx(s, BUI, seeded.settings, seeded.engine)
        found = {(a.receiver_id, a.kind): a for a in alarms(ctx, now=NOW)
                 if a.receiver_id.startswith(("tra-bui-thon-1", "tra-bui-thon-2", "tra-bui-thon-3", "tra-bui-thon-4"))
                 and not (a.kind == "offline" and a.since is None)}
        assert set(found) == {("tra-bui-thon-1-1", "offline"), ("tra-bui-thon-2-1", "clock_drift"),
                              ("tra-bui-thon-2-2", "disk_low"), ("tra-bui-thon-3-1", "self_test_failed")}
        assert found["tra-bui-thon-2-1", "clock_drift"].value == -7.5
        assert found["tra-bui-thon-3-1", "self_test_failed"].reason == "amplifier relay did not switch on"
        every = alarms(ctx, now=NOW)
        assert {a.commune for a in every} == {"tra-bui"}
        # Receivers never heard from are offline alarms too (no time known).
        assert any(a.kind == "offline" and a.since is None for a in every)
        district = alarms(Ctx(s, DISTRICT, seeded.settings, seeded.engine), now=NOW)
        assert any(a.receiver_id == "tra-nu-thon-1-1" and a.kind == "offline" for a in district)


def test_status_history_newest_first_and_hidden_elsewhere(seeded: Seeded) -> None:
    rid = "tra-nu-thon-1-1"
    with Session(seeded.engine) as s:
        for minutes, availability in ((30, "online"), (20, "offline"), (10, "online")):
            s.add(ReceiverStatusEvent(receiver_id=rid, availability=availability,
                                      at=NOW - dt.timedelta(minutes=minutes)))
        s.commit()
        history = status_history(Ctx(s, DISTRICT, seeded.settings, seeded.engine), rid, Page(limit=2))
        assert history.count == 3 and [e.availability for e in history.data] == ["online", "offline"]
        with pytest.raises(Hidden):
            status_history(Ctx(s, BUI, seeded.settings, seeded.engine), rid, Page())
