"""The audit log: every broadcast-affecting action and every refusal, with who, what, from where and the
outcome. `record` writes one row in its own transaction; `entries` lists them for district admins (filtered by
action, outcome, actor and period).

Refusals (outcome `refused` or `rate-limited`) of callers who did not authenticate — no or a bad token, a
wrong password, a made-up receiver — cannot fill the disk: `RefusalBudget` writes at most so many a minute
per client address (an IPv6 address counts by its /64) and so many from all addresses together; the rest
are counted, and one row (`audit.suppressed`) per address and minute says how many were not written (with
the first row written after that minute, or at shutdown). A refusal of a principal that did authenticate
(the policy's 403 or 404) is always written: it names a token or a person, who can be disabled.
`limit_refusals(engine, …)` sets an engine's budget (`create_app`: `http.refusal_audits_…`); `flush(engine)`
writes the counts still pending (at shutdown). Every other row is always written.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, func, select

from controller.db.models import AuditEntry

if TYPE_CHECKING:
    from .context import Ctx, Page


REFUSALS = frozenset({"refused", "rate-limited"})
WINDOW_S = 60.0
SUPPRESSED = "audit.suppressed"


def _source(address: str | None) -> str:
    """Whom a refusal is counted against: the address, an IPv6 one by its /64 (one line holds a /64)."""
    if address is None:
        return "?"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass
class _Window:
    start: float
    written: int = 0
    suppressed: int = 0
    address: str | None = None
    everyone: bool = False  # the window of all addresses together


@dataclass
class RefusalBudget:
    """Refusal rows written per source (see `_source`) and in all, per minute (see the module's docstring)."""

    per_source: int = 30
    total: int = 600
    _windows: dict[str, _Window] = field(default_factory=dict)
    _all: _Window = field(default_factory=lambda: _Window(time.monotonic(), everyone=True))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, address: str | None) -> tuple[bool, list[_Window]]:
        """Whether to write this refusal's row; and the counts of windows that have ended, to be written."""
        now = time.monotonic()
        with self._lock:
            ended = self._ended(now)
            if self._all.written >= self.total:
                self._all.suppressed += 1
                return False, ended
            key = _source(address)
            w = self._windows.setdefault(key, _Window(now, address=key if address is not None else None))
            if w.written >= self.per_source:
                w.suppressed += 1
                return False, ended
            w.written += 1
            self._all.written += 1
            return True, ended

    def _ended(self, now: float, everything: bool = False) -> list[_Window]:
        done = [k for k, w in self._windows.items() if everything or now - w.start >= WINDOW_S]
        ended = [w for w in (self._windows.pop(k) for k in done) if w.suppressed]
        if everything or now - self._all.start >= WINDOW_S:
            if self._all.suppressed:
                ended.append(self._all)
            self._all = _Window(now, everyone=True)
        return ended

    def ended(self) -> list[_Window]:
        """The windows that have ended with refusals not written (their counts are then due)."""
        with self._lock:
            return self._ended(time.monotonic())

    def drain(self) -> list[_Window]:
        with self._lock:
            return self._ended(time.monotonic(), everything=True)


_budgets: weakref.WeakKeyDictionary[Engine, RefusalBudget] = weakref.WeakKeyDictionary()
_budgets_lock = threading.Lock()


def _budget(engine: Engine) -> RefusalBudget:
    with _budgets_lock:
        budget = _budgets.get(engine)
        if budget is None:
            budget = _budgets[engine] = RefusalBudget()
        return budget


def limit_refusals(engine: Engine, per_address: int, total: int) -> None:
    with _budgets_lock:
        _budgets[engine] = RefusalBudget(per_address, total)


def _write(engine: Engine, rows: list[AuditEntry]) -> None:
    with Session(engine) as s:
        s.add_all(rows)
        s.commit()


def _summaries(budget: RefusalBudget, windows: list[_Window]) -> list[AuditEntry]:
    rows = []
    for w in windows:
        if w.everyone:
            detail = (f"{w.suppressed} more refusals from any address were not written one by one (more than "
                      f"{budget.total} a minute)")
            address = None
        else:
            detail = (f"{w.suppressed} more refusals from this address (or network) were not written one by one "
                      f"(more than {budget.per_source} a minute)")
            address = w.address
        rows.append(AuditEntry(actor="system", action=SUPPRESSED, outcome="suppressed", detail=detail,
                               address=address, target=f"{w.suppressed}"))
    return rows


def flush(engine: Engine) -> None:
    """Write the counts of refusals not written one by one, whatever their minute (the app's shutdown)."""
    budget = _budgets.get(engine)
    if budget is not None and (windows := budget.drain()):
        _write(engine, _summaries(budget, windows))


def _budgeted(actor: str, action: str, outcome: str) -> bool:
    """A refusal of a caller who did not authenticate (`Unauthenticated` is always `auth.refused`)."""
    return outcome in REFUSALS and (action == "auth.refused" or not actor.startswith(("token:", "user:")))


def record(engine: Engine, actor: str, action: str, outcome: str, *, target: str | None = None,
           detail: str | None = None, address: str | None = None) -> None:
    rows = []
    if _budgeted(actor, action, outcome):
        budget = _budget(engine)
        write, ended = budget.admit(address)
        rows = _summaries(budget, ended)
        if not write and not rows:
            return
    else:
        write = True
        pending = _budgets.get(engine)
        if pending is not None:  # any row written also writes the counts now due
            rows = _summaries(pending, pending.ended())
    if write:
        rows.append(AuditEntry(actor=actor, action=action, target=target[:500] if target else None, outcome=outcome,
                               detail=detail[:2000] if detail else None, address=address))
    _write(engine, rows)


class AuditEntryPublic(SQLModel):
    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str | None
    outcome: str
    detail: str | None
    address: str | None


class AuditEntriesPublic(SQLModel):
    data: list[AuditEntryPublic]
    count: int


def entries(ctx: Ctx, page: Page, *, action: str | None = None, outcome: str | None = None,
            actor: str | None = None, actor_part: str | None = None, start: dt.datetime | None = None,
            end: dt.datetime | None = None) -> AuditEntriesPublic:
    """Newest first. District admins only: the log names every commune's actions. `action` matches from its
    start ("programme." for every programme action), `actor` exactly, `actor_part` anywhere in the actor
    (a username, say); `start` ≤ at < `end`."""
    from controller.policy import Right, require_district

    require_district(ctx.who, Right.ADMIN, "audit.read")
    q = select(AuditEntry)
    if action:
        q = q.where(col(AuditEntry.action).startswith(action))
    if outcome:
        q = q.where(AuditEntry.outcome == outcome)
    if actor:
        q = q.where(AuditEntry.actor == actor)
    if actor_part:
        q = q.where(col(AuditEntry.actor).contains(actor_part))
    if start is not None:
        q = q.where(AuditEntry.at >= start.astimezone(dt.UTC))
    if end is not None:
        q = q.where(AuditEntry.at < end.astimezone(dt.UTC))
    count = ctx.session.exec(select(func.count()).select_from(q.subquery())).one()
    rows = ctx.session.exec(page.apply(q.order_by(col(AuditEntry.id).desc()))).all()
    return AuditEntriesPublic(data=[AuditEntryPublic.model_validate(r, from_attributes=True) for r in rows],
                              count=count)
