"""The fleet as the live views see it: one snapshot of every receiver's availability and what it plays,
refreshed from the database by one background task (in a worker thread, off the event loop) however many
browsers watch, and changed at once, in memory, when the bridge hears a receiver's availability change
(`on_availability`, one of the command port's availability watchers) — a receiver going offline is on
screen within a page's poll (`poll_s`), not after the next database round. Each page's timer reads the
snapshot and redraws only when its `version` changed, so ten dashboards cost the database no more than one.
While no page has read the snapshot for `IDLE_AFTER_S`, the database rounds slow down to one per
`IDLE_REFRESH_S` (a province's controller reading ten thousand rows every two seconds for nobody); the
next read brings them back to `refresh_s`, and the availability changes heard meanwhile are in the snapshot
already, so the page a person opens then is at most that old for a moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from controller.db.models import Commune, Receiver, ReceiverStatus, Village

log = logging.getLogger(__name__)
IDLE_AFTER_S = 30.0
IDLE_REFRESH_S = 30.0


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
    """Plain columns in one query, no ORM objects: ten thousand receivers every few seconds."""
    with Session(engine) as s:
        communes = [(code, name) for code, name in s.exec(select(Commune.code, Commune.name).order_by(col(Commune.id)))]
        columns: list[Any] = [Receiver.id, Receiver.name, Commune.code, Village.code, ReceiverStatus.availability,
                              ReceiverStatus.playing, ReceiverStatus.last_seen, Receiver.lat, Receiver.lon,
                              Village.lat, Village.lon]
        rows = s.execute(  # SQLModel's `select` takes at most four columns
            sa_select(*columns)
            .join(Commune, col(Commune.id) == Receiver.commune_id)
            .join(Village, col(Village.id) == Receiver.village_id, isouter=True)
            .join(ReceiverStatus, col(ReceiverStatus.receiver_id) == Receiver.id, isouter=True)
            .order_by(col(Receiver.id))).all()
    receivers = {
        rid: ReceiverLive(rid, name, commune, village, availability or "unknown", playing, last_seen,
                          lat if lat is not None else vlat, lon if lon is not None else vlon)
        for rid, name, commune, village, availability, playing, last_seen, lat, lon, vlat, vlon in rows}
    return receivers, count(receivers, communes)


def count(receivers: dict[str, ReceiverLive], communes: list[tuple[str, str]]) -> list[CommuneCounts]:
    """Per commune (code, name; in this order): receivers, online, offline, playing."""
    per: dict[str, Counter[str]] = {code: Counter() for code, _ in communes}
    for rl in receivers.values():
        c = per[rl.commune]
        c["total"] += 1
        c["online" if rl.availability == "online" else "offline"] += 1
        if rl.playing and rl.availability == "online":
            c["playing"] += 1
    return [CommuneCounts(code, name, **per[code]) for code, name in communes]


class FleetView:
    def __init__(self, refresh_s: float) -> None:
        self.refresh_s = refresh_s
        self.poll_s = min(0.5, refresh_s)  # how often a page looks at the snapshot (a version check)
        self._snapshot = Snapshot()
        self._read_at = time.monotonic()  # when a page last read the snapshot
        self._refreshed_at = 0.0  # when the last database round began
        self._task: asyncio.Task[None] | None = None
        self._heard: dict[str, tuple[str, float]] = {}  # receiver → availability heard, and when (monotonic)

    @property
    def snapshot(self) -> Snapshot:
        self._read_at = time.monotonic()
        return self._snapshot

    @snapshot.setter
    def snapshot(self, value: Snapshot) -> None:
        self._snapshot = value

    def on_availability(self, rid: str, availability: str) -> None:
        """The bridge heard `rid`'s availability (on the event loop): into the snapshot now."""
        self._heard[rid] = (availability, time.monotonic())
        snap = self._snapshot
        old = snap.receivers.get(rid)
        if old is None or old.availability == availability:
            return
        receivers = dict(snap.receivers)
        receivers[rid] = replace(old, availability=availability, playing=old.playing if availability == "online"
                                 else None)
        self._snapshot = Snapshot(snap.version + 1, dt.datetime.now(dt.UTC), receivers,
                                 count(receivers, [(c.code, c.name) for c in snap.communes]))

    async def start(self, engine: Engine) -> None:
        await self.refresh(engine)
        self._task = asyncio.create_task(self._run(engine), name="ui-fleet-view")

    async def refresh(self, engine: Engine) -> None:
        started = self._refreshed_at = time.monotonic()
        receivers, counts = await asyncio.to_thread(read_fleet, engine)
        # What the bridge heard while the database was read (or not yet written by its flush) stands.
        newer = {rid: a for rid, (a, at) in self._heard.items() if at >= started - 2.0 and rid in receivers}
        for rid, availability in newer.items():
            if receivers[rid].availability != availability:
                receivers[rid] = replace(receivers[rid], availability=availability)
        if newer:
            counts = count(receivers, [(c.code, c.name) for c in counts])
        self._heard = {rid: v for rid, v in self._heard.items() if v[1] >= started - 2.0}
        old = self._snapshot
        changed = receivers != old.receivers or counts != old.communes
        self._snapshot = Snapshot(old.version + 1 if changed else old.version, dt.datetime.now(dt.UTC),
                                 receivers, counts)

    async def _run(self, engine: Engine) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            while (time.monotonic() - self._read_at > IDLE_AFTER_S
                   and time.monotonic() - self._refreshed_at < IDLE_REFRESH_S):  # nobody watching: fewer rounds
                await asyncio.sleep(self.poll_s)
            try:
                await self.refresh(engine)
            except Exception:  # the database busy or gone for a moment: try again next round
                log.exception("could not refresh the fleet view")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
