"""`truyenthanh-agent status`: what an agent's state directory says, read without disturbing a running
agent (SQLite opened read-only, nothing created).

- `read_status(settings, now)`: the `AgentStatus` of the state directory — the stored plan (re-verified
  with the keys the agent trusts, `keys.json`; a damaged file is reported), the items waiting to play,
  the outbox, the saved volume.
- `format_status(status)`: a short summary for a person at the Pi's console, one fact per line.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from receivers.protocol import Plan, Rejected, TrustedKey, Verifier

from .config import AgentSettings
from .statedb import FILE_NAME as STATE_DB
from .store import KeyStore, KeysUnreadable


@dataclass(frozen=True)
class AgentStatus:
    receiver_id: str
    commune: str
    broker: str
    username: str
    controller_url: str | None
    state_dir: Path
    plan: Plan | None
    plan_problem: str | None  # why a stored plan was not usable
    plan_to_come: int  # entries that start after now
    items_queued: int | None  # None: no item store yet
    item_playing: str | None
    outbox: int | None  # None: no outbox yet
    volume: int | None
    keys_problem: str | None = None  # keys.json damaged: the agent will not start


def _count(db: Path, sql: str) -> list[tuple[object, ...]] | None:
    if not db.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        return list(conn.execute(sql))
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def read_status(settings: AgentSettings, now: dt.datetime) -> AgentStatus:
    state = settings.state_dir
    plan: Plan | None = None
    problem: str | None = None
    keys_problem: str | None = None
    try:  # the keys the agent trusts (a rotation since enrolment), not the config's alone
        trusted = KeyStore(state / "keys.json", settings.controller_public_key).load()
    except KeysUnreadable as e:
        keys_problem, trusted = str(e), [TrustedKey(settings.controller_public_key)]
    try:
        stored = Verifier(trusted).open_plan((state / "plan.json").read_bytes())
        if stored.receiver_id == settings.receiver_id:
            plan = stored
        else:
            problem = f"stored plan is for {stored.receiver_id}"
    except FileNotFoundError:
        pass
    except OSError as e:
        problem = f"stored plan unreadable: {e}"
    except Rejected as r:
        problem = f"stored plan not valid: {r.reason}"
    one = state / STATE_DB  # else the earlier layout, of an agent not started since its upgrade
    items = _count(one if one.exists() else state / "items.sqlite", "SELECT item_id, playing FROM items")
    outbox = _count(one if one.exists() else state / "outbox.sqlite", "SELECT COUNT(*) FROM events")
    try:
        saved = json.loads((state / "state.json").read_text())
    except (OSError, ValueError):
        saved = {}
    volume = saved.get("volume") if isinstance(saved, dict) else None
    return AgentStatus(
        receiver_id=settings.receiver_id, commune=settings.commune, broker=settings.mqtt_url,
        username=settings.username, controller_url=settings.controller_url, state_dir=state, plan=plan,
        plan_problem=problem, plan_to_come=sum(1 for e in plan.entries if e.start_at > now) if plan else 0,
        items_queued=None if items is None else len(items),
        item_playing=next((str(i) for i, playing in items if playing), None) if items else None,
        outbox=None if outbox is None else int(outbox[0][0]),  # type: ignore[call-overload]
        volume=volume if isinstance(volume, int) else None, keys_problem=keys_problem)


def format_status(s: AgentStatus) -> list[str]:
    if s.plan is not None:
        plan = (f"version {s.plan.version[:12]}, generated {s.plan.generated_at:%Y-%m-%d %H:%M %Z}, "
                f"{len(s.plan.entries)} entries ({s.plan_to_come} still to come)")
    else:
        plan = s.plan_problem or "none stored yet (the agent pulls one once it reaches the controller)"
    if s.items_queued is None:
        items = "no item store yet (the agent has not run)"
    else:
        items = f"{s.items_queued} queued" + (f" ({s.item_playing} was playing)" if s.item_playing else "")
    outbox = ("no outbox yet" if s.outbox is None
              else f"{s.outbox} event(s) waiting for the broker" if s.outbox else "empty (all events delivered)")
    return [
        f"receiver    {s.receiver_id} (commune {s.commune})",
        f"broker      {s.broker} as {s.username}",
        f"controller  {s.controller_url or '-'}",
        f"state dir   {s.state_dir}",
        f"plan        {plan}",
        f"items       {items}",
        f"outbox      {outbox}",
        f"volume      {s.volume if s.volume is not None else 'not set (default)'}",
    ] + ([f"keys        DAMAGED, the agent will not start: {s.keys_problem}"] if s.keys_problem else [])
