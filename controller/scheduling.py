"""Programmes from the database as `schedules` values, and the runner that keeps receivers' plans current.

- `Inventory`: receivers by commune, village and group; `resolve` turns targets {"all", "communes",
  "villages", "receivers", "groups"} into receiver ids (or a `ScheduleError` saying why not).
- `item_key`, `content_index`: a programme's items as `schedules.ContentItem`s (whether a principal may use
  them is `controller.services.content.usable_content`'s question).
- `load_programmes`: the approved programmes (drafts too on request) as `schedules.Programme`s, targets
  resolved, in one pass. A draft (not yet approved, duyệt tin) is on no receiver's plan, in no schedule or
  report and clashes with nothing.
- `local`: a time as staff read it (Asia/Ho_Chi_Minh).
- `Runner`: compiles every receiver's plan for the window (now − tolerance … now + 48 h), remembers the
  versions (`ReceiverPlanState`), and sends `sync-schedule` only to receivers whose plan changed — when
  programmes change (`changed()`), and as the window rolls (`refresh_s`). It serves the compiled plans to
  the plan endpoint as signed documents.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

import schedules
from controller.content import media_url
from controller.db.models import (
    Announcement,
    Bulletin,
    Commune,
    MediaFile,
    Programme,
    Receiver,
    ReceiverGroup,
    ReceiverPlanState,
    Village,
    utcnow,
)
from controller.ports import CommandNotSent
from receivers.protocol import MediaRef, Plan, PlanEntry, Signer, SyncSchedule, Target

log = logging.getLogger(__name__)
TARGET_KEYS = ("all", "communes", "villages", "receivers", "groups")
FETCHED_FLUSH_S = 2.0


class ScheduleError(ValueError):
    """A programme that cannot be scheduled as given; the text says why (HTTP 422)."""


# ------------------------------------------------------------------------------------ from the DB


@dataclass
class Inventory:
    """Receivers by commune, village and id, and the saved groups: what targets are resolved against."""

    receivers: dict[str, str]  # receiver id → commune code
    by_commune: dict[str, set[str]]
    by_village: dict[str, set[str]]  # "commune/village" → receiver ids
    village_codes: dict[str, list[str]]  # bare village code → ["commune/village", …]
    groups: dict[int, set[str]]

    @classmethod
    def load(cls, session: Session) -> Inventory:
        communes = {c.id: c.code for c in session.exec(select(Commune))}
        villages = {v.id: (communes[v.commune_id], v.code) for v in session.exec(select(Village))}
        inv = cls({}, defaultdict(set), defaultdict(set), defaultdict(list), {})
        for cv in villages.values():
            inv.village_codes[cv[1]].append("/".join(cv))
        for rid, commune_id, village_id in session.exec(select(Receiver.id, Receiver.commune_id, Receiver.village_id)):
            code = communes[commune_id]
            inv.receivers[rid] = code
            inv.by_commune[code].add(rid)
            if village_id in villages:
                inv.by_village["/".join(villages[village_id])].add(rid)
        for g in session.exec(select(ReceiverGroup)):
            assert g.id is not None
            inv.groups[g.id] = set(g.receivers)
        return inv

    def resolve(self, targets: dict[str, Any]) -> frozenset[str]:
        unknown_keys = sorted(set(targets) - set(TARGET_KEYS))
        if unknown_keys:
            raise ScheduleError(f"Unknown target kind(s) {unknown_keys}: use {', '.join(TARGET_KEYS)}.")
        if targets.get("all"):
            return frozenset(self.receivers)
        out: set[str] = set()
        for code in targets.get("communes") or []:
            if code not in self.by_commune:
                raise ScheduleError(f"No commune with code {code!r} (or it has no receivers).")
            out |= self.by_commune[code]
        for name in targets.get("villages") or []:
            key = name if "/" in name else _only(self.village_codes.get(name, []), name)
            if key not in self.by_village:
                raise ScheduleError(f"No village {name!r} with receivers: write it as 'commune-code/village-code'.")
            out |= self.by_village[key]
        for rid in targets.get("receivers") or []:
            if rid not in self.receivers:
                raise ScheduleError(f"No receiver {rid!r}.")
            out.add(rid)
        for gid in targets.get("groups") or []:
            if gid not in self.groups:
                raise ScheduleError(f"No receiver group {gid!r}.")
            out |= self.groups[gid]
        return frozenset(out)

    def communes_of(self, receivers: Iterable[str]) -> set[str]:
        return {self.receivers[r] for r in receivers if r in self.receivers}


def local(value: dt.datetime) -> dt.datetime:
    """As staff read it: Asia/Ho_Chi_Minh. A time typed without an offset is taken as local too."""
    return value.astimezone(schedules.TZ) if value.tzinfo else value.replace(tzinfo=schedules.TZ)


def _only(keys: list[str], name: str) -> str:
    if len(keys) > 1:
        raise ScheduleError(f"Village code {name!r} exists in several communes: write 'commune-code/{name}'.")
    return keys[0] if keys else name


def item_key(entry: dict[str, int]) -> str:
    """{"bulletin_id": 3} → "bulletin:3"; a malformed entry raises ScheduleError."""
    kinds = [k for k in ("bulletin_id", "announcement_id") if k in entry]
    if len(kinds) != 1 or set(entry) - {"bulletin_id", "announcement_id"} or not isinstance(entry[kinds[0]], int):
        raise ScheduleError(f"Each item is {{'bulletin_id': N}} or {{'announcement_id': N}}, not {entry!r}.")
    return f"{kinds[0].removesuffix('_id')}:{entry[kinds[0]]}"


def content_index(session: Session) -> dict[str, schedules.ContentItem]:
    """Every bulletin and announcement as a `ContentItem`, by key ("bulletin:3")."""
    out: dict[str, schedules.ContentItem] = {}
    for model in (Bulletin, Announcement):
        kind = model.__name__.lower()
        q = select(model.id, model.title, MediaFile).join(MediaFile, MediaFile.sha256 == model.media_sha256)  # type: ignore[arg-type]
        for ident, title, m in session.exec(q):
            out[f"{kind}:{ident}"] = schedules.ContentItem(f"{kind}:{ident}", m.sha256, m.duration_s, m.size_bytes,
                                                           title)
    return out


def programmes_using(session: Session, key: str) -> list[Programme]:
    """Programmes that play the content `key` ("bulletin:3"): such content may not be deleted."""
    return [p for p in session.exec(select(Programme)) if key in {item_key(i) for i in p.items}]


def to_value(row: Programme, receivers: frozenset[str],
             items: tuple[schedules.ContentItem, ...]) -> schedules.Programme:
    return schedules.Programme(
        id=row.id or 0, title=row.title, items=items, receivers=receivers, start=row.start, rrule=row.rrule,
        exdates=frozenset(dt.date.fromisoformat(d) for d in row.exdates), valid_from=row.valid_from,
        valid_until=row.valid_until, priority=row.priority,  # type: ignore[arg-type]
        order=row.play_order, paused=row.paused)  # type: ignore[arg-type]


def load_programmes(session: Session, inventory: Inventory | None = None, *,
                    drafts: bool = False) -> list[schedules.Programme]:
    """The approved programmes (with `drafts`, every one), targets and items resolved in bulk. Targets that
    no longer resolve (a receiver removed) are logged and the programme keeps what still resolves."""
    inv = inventory or Inventory.load(session)
    index = content_index(session)
    out = []
    query = select(Programme).order_by(col(Programme.id))
    if not drafts:
        query = query.where(col(Programme.approved_at).is_not(None))
    for row in session.exec(query):
        items = tuple(index[k] for k in map(item_key, row.items) if k in index)
        try:
            receivers = inv.resolve(row.targets)
        except ScheduleError as e:
            log.warning("programme %s: %s", row.id, e)
            receivers = frozenset()
        out.append(to_value(row, receivers, items))
    return out


# ---------------------------------------------------------------------------------------- runner


def plan_document(rid: str, plan: schedules.ReceiverPlan, generated_at: dt.datetime,
                  window: tuple[dt.datetime, dt.datetime]) -> Plan:
    return Plan(receiver_id=rid, version=plan.version, generated_at=generated_at, window_start=window[0],
                window_end=window[1], entries=[
                    PlanEntry(item_id=s.item_id, programme_id=s.programme_id, title=s.title[:200], priority=s.priority,
                              start_at=s.start, duration_s=s.item.duration_s,
                              media=MediaRef(sha256=s.item.sha256, url=media_url(s.item.sha256), size=s.item.size))
                    for s in plan.slots])


class Runner:
    def __init__(self, settings: Any, engine: Engine, signer: Signer, bridge: Any | None) -> None:
        self.settings, self.engine, self.signer, self.bridge = settings, engine, signer, bridge
        self.plans: dict[str, schedules.ReceiverPlan] = {}
        self.window: tuple[dt.datetime, dt.datetime] | None = None
        self.compiled_at: dt.datetime | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._lock = asyncio.Lock()
        self.notified = 0  # sync-schedule commands sent, for tests and the benchmark
        self._fetched: dict[str, tuple[str, dt.datetime]] = {}  # receiver → (version, when), not yet written

    async def start(self) -> None:
        await self.recompile()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        # The flag as well as the cancel: on Python 3.11 `asyncio.wait_for` can swallow a cancellation that
        # arrives as the awaited event is set (gh-86296), and the loop would run on while stop() waits for it
        # (seen once as an application shutdown that never ended).
        self._stopping = True
        self._changed.set()
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self.flush_fetched)

    def changed(self) -> None:
        """Programmes, content or receivers changed: recompile soon (changes close together are batched)."""
        self._changed.set()

    async def _loop(self) -> None:
        next_refresh = time.monotonic() + self.settings.schedule.refresh_s
        while not self._stopping:
            try:
                await asyncio.wait_for(self._changed.wait(), FETCHED_FLUSH_S)
                await asyncio.sleep(0.05)  # let a burst of edits land together
            except TimeoutError:
                pass
            if self._stopping:
                return
            try:
                await asyncio.to_thread(self.flush_fetched)
            except Exception:
                log.exception("runner: could not record which plans receivers fetched")
            try:
                if self._changed.is_set() or time.monotonic() >= next_refresh:
                    self._changed.clear()
                    next_refresh = time.monotonic() + self.settings.schedule.refresh_s
                    await self.recompile()
            except Exception:  # a bad row must not stop every receiver's plan from updating
                log.exception("runner: recompiling plans failed")

    def note_fetched(self, rid: str, version: str) -> None:
        """A receiver fetched its plan (written in batches: a fleet polling together costs one transaction)."""
        self._fetched[rid] = (version, utcnow())

    def flush_fetched(self) -> None:
        batch, self._fetched = self._fetched, {}
        if not batch:
            return
        table = ReceiverPlanState.__table__  # type: ignore[attr-defined]
        statement = (table.update().where(table.c.receiver_id == bindparam("rid"))
                     .values(fetched_version=bindparam("got"), fetched_at=bindparam("at")))
        with self.engine.begin() as conn:
            conn.execute(statement, [{"rid": rid, "got": v, "at": at} for rid, (v, at) in batch.items()])

    def window_at(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        s = self.settings.schedule
        return now - dt.timedelta(seconds=s.missed_tolerance_s), now + dt.timedelta(hours=s.plan_hours)

    async def recompile(self) -> list[str]:
        """Compile every receiver's plan, store versions, notify receivers whose plan changed; returns them."""
        async with self._lock:
            now = utcnow()
            window = self.window_at(now)
            plans = await asyncio.to_thread(self._compile, window)
            changed = await asyncio.to_thread(self._store_versions, plans, now)
            self.plans, self.window, self.compiled_at = plans, window, now
        if changed:
            log.info("runner: %d receiver plan(s) changed", len(changed))
            await self._notify(changed)
        return changed

    def _compile(self, window: tuple[dt.datetime, dt.datetime]) -> dict[str, schedules.ReceiverPlan]:
        with Session(self.engine) as s:
            inv = Inventory.load(s)
            programmes = load_programmes(s, inv)
        return schedules.compile_plans(programmes, inv.receivers, *window)

    def _store_versions(self, plans: dict[str, schedules.ReceiverPlan], now: dt.datetime) -> list[str]:
        with Session(self.engine) as s:
            known = {r.receiver_id: r for r in s.exec(select(ReceiverPlanState))}
            changed = []
            for rid, plan in plans.items():
                row = known.get(rid)
                # Unchanged, and its receiver was told: nothing to do. A version stored but never announced
                # (the controller died between this commit and `_notify`) is announced now.
                if row is not None and row.version == plan.version and row.notified_at is not None \
                        and row.notified_at >= row.compiled_at:
                    continue
                changed.append(rid)
                if row is not None and row.version == plan.version:
                    continue  # keep its compiled_at: it stays pending until `_notify` stamps it
                row = row or ReceiverPlanState(receiver_id=rid, version=plan.version, compiled_at=now)
                row.version, row.compiled_at = plan.version, now
                s.add(row)
            s.commit()
        return changed

    async def _notify(self, rids: list[str]) -> None:
        """One `sync-schedule` per commune whose receivers all changed, one per receiver otherwise. Once sent,
        the receivers' rows are stamped `notified_at`; until then a recompile (e.g. after a restart) sends again."""
        if self.bridge is None:  # nobody to tell: receivers poll
            self._stamp_notified(rids)
            return
        with Session(self.engine) as s:
            inv = Inventory.load(s)
        changed = set(rids)
        targets: list[tuple[Target, str | None]] = []
        for code, members in inv.by_commune.items():
            if members and members <= changed:
                targets.append((Target.commune(code), None))
                changed -= members
        targets += [(Target.receiver(rid), self.plans[rid].version) for rid in sorted(changed) if rid in self.plans]
        ttl = self.settings.schedule.sync_ttl_s
        try:
            for target, version in targets:
                await self.bridge.send(SyncSchedule.new(target, ttl, version=version), "runner")
                self.notified += 1
        except CommandNotSent as e:  # receivers poll their plan anyway; the next recompile sends again
            log.warning("runner: sync-schedule not sent (%s); receivers will catch up by polling", e)
            return
        self._stamp_notified(rids)

    def _stamp_notified(self, rids: list[str]) -> None:
        now = utcnow()
        with Session(self.engine) as s:
            for row in s.exec(select(ReceiverPlanState).where(col(ReceiverPlanState.receiver_id).in_(rids))):
                row.notified_at = now
                s.add(row)
            s.commit()

    def signed_plan(self, rid: str) -> tuple[Plan, bytes] | None:
        """The receiver's current plan, signed; None for an unknown receiver."""
        plan = self.plans.get(rid)
        if plan is None or self.window is None or self.compiled_at is None:
            return None
        doc = plan_document(rid, plan, self.compiled_at, self.window)
        return doc, self.signer.sign(doc)
