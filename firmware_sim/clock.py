"""`OffsetClock`: a receiver whose clock is wrong by a set amount (no NTP yet, a drifting RTC, a bad GPS
fix), to pass as `Agent(settings, hardware, clock=OffsetClock(...))`.

The offset can change while the agent runs (`clock.offset_s = -90`), as when NTP finally corrects it.
"""

from __future__ import annotations

import datetime as dt


class OffsetClock:
    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset_s = offset_s

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.offset_s)

    def __repr__(self) -> str:
        return f"OffsetClock(offset_s={self.offset_s!r})"
