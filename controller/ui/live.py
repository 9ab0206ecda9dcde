"""The fleet as the live views see it: one snapshot of every receiver's availability and what it plays,
refreshed by one background task (in a worker thread, off the event loop) however many browsers watch.
Each page's timer reads the snapshot and redraws only when its `version` changed, so ten dashboards cost
the database no more than one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from controller.db.models import Commune, Receiver, ReceiverStatus, Village

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceiverLive:
    id: str
    name: str
    commune: str
    village: str | None
    availability: str  # online | offline | stopped | unknown
    playing: str | None
    last_seen: dt.datetime | None
    lat: float | None
    lon: float | None


@dataclass(frozen=True)
class CommuneCounts:
    code: str
    name: str
    total: int = 0
    online: int = 0
    offline: int = 0  # offline, stopped or never heard from
    playing: int = 0


@dataclass
class Snapshot:
    version: int = 0
    at: dt.datetime | None = None
    receivers: dict[str, ReceiverLive] = field(default_factory=dict)
    communes: list[CommuneCounts] = field(default_factory=list)

    def counts(self, communes: frozenset[str] | None) -> list[CommuneCounts]:
        """The per-commune counts a principal limited to `communes` (None: all) may see."""
        return [c for c in self.communes if communes is None or c.code in communes]


def read_fleet(engine: Engine) -> tuple[dict[str, ReceiverLive], list[CommuneCounts]]:
    with Session(engine) as s:
        communes = {c.id: c for c in s.exec(select(Commune).order_by(col(Commune.id)))}
        villages = {v.id: v for v in s.exec(select(Village))}
        statuses = {st.receiver_id: st for st in s.exec(select(ReceiverStatus))}
        receivers: dict[str, ReceiverLive] = {}
        for r in s.exec(select(Receiver).order_by(Receiver.id)):
            st = statuses.get(r.id)
            village = villages.get(r.village_id) if r.village_id is not None else None
            receivers[r.id] = ReceiverLive(
                r.id, r.name, communes[r.commune_id].code, village.code if village else None,
                st.availability if st else "unknown", st.playing if st else None, st.last_seen if st else None,
                r.lat if r.lat is not None else (village.lat if village else None),
                r.lon if r.lon is not None else (village.lon if village else None))
    per: dict[str, Counter[str]] = {c.code: Counter() for c in communes.values()}
    for rl in receivers.values():
        c = per[rl.commune]
        c["total"] += 1
        c["online" if rl.availability == "online" else "offline"] += 1
        if rl.playing and rl.availability == "online":
            c["playing"] += 1
    counts = [CommuneCounts(c.code, c.name, **per[c.code]) for c in communes.values()]
    return receivers, counts


class FleetView:
    def __init__(self, refresh_s: float) -> None:
        self.refresh_s = refresh_s
        self.snapshot = Snapshot()
        self._task: asyncio.Task[None] | None = None

    async def start(self, engine: Engine) -> None:
        await self.refresh(engine)
        self._task = asyncio.create_task(self._run(engine), name="ui-fleet-view")

    async def refresh(self, engine: Engine) -> None:
        receivers, counts = await asyncio.to_thread(read_fleet, engine)
        old = self.snapshot
        changed = receivers != old.receivers or counts != old.communes
        self.snapshot = Snapshot(old.version + 1 if changed else old.version, dt.datetime.now(dt.UTC),
                                 receivers, counts)

    async def _run(self, engine: Engine) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh(engine)
            except Exception:  # the database busy or gone for a moment: try again next round
                log.exception("could not refresh the fleet view")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
