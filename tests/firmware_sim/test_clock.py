"""`OffsetClock`: a receiver clock wrong by a settable offset."""

from __future__ import annotations

import datetime as dt

from firmware_sim.clock import OffsetClock


def test_offset_clock_is_aware_utc_and_off_by_its_offset() -> None:
    clock = OffsetClock(3600)
    now = dt.datetime.now(dt.UTC)
    t = clock()
    assert t.tzinfo is dt.UTC
    assert abs((t - now) - dt.timedelta(hours=1)) < dt.timedelta(seconds=1)


def test_offset_can_change_while_running() -> None:
    clock = OffsetClock()
    assert abs(clock() - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=1)
    clock.offset_s = -90.5
    assert abs((dt.datetime.now(dt.UTC) - clock()) - dt.timedelta(seconds=90.5)) < dt.timedelta(seconds=1)
