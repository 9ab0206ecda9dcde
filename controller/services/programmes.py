"""Programmes (chương trình phát): what plays, on which receivers, when — and their approval (duyệt tin);
the receiver groups they can target; the schedule view of what will play where.

- Programmes: `create_programme`, `list_programmes`, `get_programme`, `edit_programme` (also
  `pause_programme` / `resume_programme`), `delete_programme`, `approve_programme`, `return_programme` (a
  draft sent back to its author with a comment; approving or editing it clears that).
- Receiver groups: `create_group`, `list_groups`, `delete_group`.
- The schedule: `schedule` (every occurrence in a window, placed as the receivers will play it), `window`.
- Before saving: `check_programme`, a dry run of a create or an edit (a clash is a `Conflict` coded
  `programme_clash`, with the values the staff UI names it by).

The policy, applied here for every face:
- A principal sees a programme only when all the communes it reaches are its own; every target it names
  (communes, villages, receivers, groups, `all`) must lie within them, else `Hidden` (404) — for such a
  principal an unknown target is answered the same way, so it cannot probe what exists elsewhere.
- Items go through `services.content.usable_content`: another commune's content is `Hidden` (404), a
  missing one `NotFound` (404), a draft a `Conflict` (409).
- The emergency class needs `emergency:trigger` to create, edit, pause or delete.
- Approval: a programme written by a principal that may approve it (`content:approve` in all its
  communes), or reaching only communes that do not require approval, is approved at once; otherwise it
  is a draft. The emergency class is approved by the emergency right itself (as emergencies are). A
  draft is on no receiver's plan, in no schedule or report, and clashes with nothing: two drafts may
  propose the same time, and approving the second is then refused with the clash. A draft is still
  checked against the approved programmes, so the operator learns of a clash when writing it. An edit
  of what or when a programme plays takes the writer's approval (an operator's edit makes it a draft
  again, an approver's re-stamps it); pausing and resuming keep it.
- What plays on a principal's receivers is shown in its schedule (and report) even when the programme
  also reaches other communes — staff must see the slot is taken — but such a programme is masked: its
  title reads `SHARED_TITLE`, its items have no id or title, and only the principal's communes are named.
  An item whose content is another commune's shows no title anywhere (it is 404 to the principal).
- A receiver group in use names, to a limited principal, only the programmes it sees (the rest counted);
  a group name taken by a group it cannot see is refused without saying so.
- Every change is audited; refusals the policy makes are audited by the face, the others (422, 409)
  here with the reason.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import SQLModel, col, select

import schedules
from controller.db.models import (
    Announcement,
    Bulletin,
    Commune,
    Programme,
    ProgrammeCreate,
    ProgrammeItemPublic,
    ProgrammePublic,
    ProgrammesPublic,
    ProgrammeUpdate,
    ReceiverGroup,
    ReceiverGroupCreate,
    ReceiverGroupPublic,
    ReceiverGroupsPublic,
    utcnow,
)
from controller.errors import Conflict, DomainError, Forbidden, Hidden, Invalid, NotFound, Refusal
from controller.policy import Principal, Right, require, require_all_in
from controller.scheduling import (
    TARGET_KEYS,
    Inventory,
    ScheduleError,
    content_index,
    item_key,
    load_programmes,
    local,
    to_value,
)

from .content import send_back, usable_content
from .context import Ctx, Page

NEXT_SHOWN = 5
MAX_WINDOW = dt.timedelta(days=31)
# Bounds of what one programme may hold: each is far above what staff write, and keeps a check cheap.
MAX_ITEMS = 100
MAX_EXDATES = 1000
MAX_TARGETS = 20_000  # names of communes, villages, receivers and groups together
MAX_START_AGE = dt.timedelta(days=10 * 366)  # a rule with COUNT is walked from its start
MAX_AHEAD = dt.timedelta(days=100 * 366)  # dates beyond: a typing mistake (and 9999-12-31 + 1 day overflows)
# How a programme reaching communes other than the principal's is named to it (the schedule, the report).
SHARED_TITLE = "Chương trình chung của huyện/xã khác"

# ------------------------------------------------------------------------------------------ helpers


def _reach(inv: Inventory, row: Programme) -> set[str]:
    """The communes a stored programme reaches (none when its targets no longer resolve)."""
    try:
        return inv.communes_of(inv.resolve(row.targets))
    except ScheduleError:
        return set()


def _sees(who: Principal, communes: set[str]) -> bool:
    return who.communes is None or (bool(communes) and communes <= who.communes)


def masked_programmes(who: Principal, inv: Inventory, programmes: list[schedules.Programme]) -> set[int]:
    """The ids of `programmes` the principal may not see whole (they reach other communes): shown to it
    only as `SHARED_TITLE`."""
    if who.communes is None:
        return set()
    return {p.id for p in programmes if not _sees(who, inv.communes_of(p.receivers))}


def hidden_content(ctx: Ctx) -> set[str]:
    """The keys ("bulletin:3") of the content of communes other than the principal's: their titles are not
    shown to it."""
    mine = ctx.who.communes
    if mine is None:
        return set()
    out: set[str] = set()
    for model in (Bulletin, Announcement):
        kind = model.__name__.lower()
        q = (select(model.id, Commune.code).join(Commune, Commune.id == model.commune_id)  # type: ignore[arg-type]
             .where(col(Commune.code).not_in(mine)))
        out |= {f"{kind}:{ident}" for ident, _ in ctx.session.exec(q)}
    return out


def _find(ctx: Ctx, inv: Inventory, ident: int, action: str) -> tuple[Programme, set[str]]:
    row = ctx.session.get(Programme, ident)
    if row is None:
        raise NotFound(f"No programme {ident}.")
    communes = _reach(inv, row)
    if not _sees(ctx.who, communes):
        raise Hidden(f"No programme {ident}.", who=ctx.who, action=action)
    return row, communes


def _public(row: Programme, value: schedules.Programme, inv: Inventory, index: dict[str, schedules.ContentItem],
            now: dt.datetime, hidden: set[str]) -> ProgrammePublic:
    assert row.id is not None
    items = []
    for entry in row.items:
        key = item_key(entry)
        known = index.get(key)
        kind, _, ident = key.partition(":")
        title = known.title if known and key not in hidden else None
        items.append(ProgrammeItemPublic(kind=kind, id=int(ident), title=title,
                                         duration_s=known.duration_s if known else None))
    upcoming = schedules.occurrences(value, now, now + dt.timedelta(days=400))[:NEXT_SHOWN]
    return ProgrammePublic(
        id=row.id, title=row.title, items=items, targets=row.targets, receivers=len(value.receivers),
        communes=sorted(inv.communes_of(value.receivers)), start=local(row.start), rrule=row.rrule,
        exdates=row.exdates, valid_from=row.valid_from, valid_until=row.valid_until, priority=row.priority,
        order=row.play_order, paused=row.paused, duration_s=value.duration.total_seconds(),
        next=[local(t) for t in upcoming], created_by=row.created_by, created_at=local(row.created_at),
        updated_by=row.updated_by, updated_at=local(row.updated_at) if row.updated_at else None,
        approved=row.approved_at is not None, approved_by=row.approved_by,
        approved_at=local(row.approved_at) if row.approved_at else None, returned_by=row.returned_by,
        returned_at=local(row.returned_at) if row.returned_at else None, returned_comment=row.returned_comment)


def _one(ctx: Ctx, row: Programme) -> ProgrammePublic:
    inv = Inventory.load(ctx.session)
    value = next(p for p in load_programmes(ctx.session, inv, drafts=True) if p.id == row.id)
    return _public(row, value, inv, content_index(ctx.session), utcnow(), hidden_content(ctx))


def _apply(row: Programme, data: dict[str, Any]) -> None:
    for key, value in data.items():
        if key == "targets":
            row.targets = {k: v for k, v in value.items() if v}
        elif key == "start":
            try:
                row.start = local(value).astimezone(dt.UTC)
            except OverflowError:  # the year 1 in Asia/Ho_Chi_Minh is the year 0 in UTC
                raise Invalid("The start is outside the years a programme can use.") from None
        elif key == "exdates":
            row.exdates = sorted({d.isoformat() for d in value})
        elif key == "order":
            row.play_order = value
        elif key == "rrule":
            row.rrule = value.strip() or None if value else None
        else:
            setattr(row, key, value)


def _targets_within(ctx: Ctx, inv: Inventory, targets: dict[str, Any], action: str) -> None:
    """Every target named lies within the principal's communes (`Hidden` otherwise; for a principal limited
    to some communes an unknown target is hidden alike)."""
    who = ctx.who
    if who.communes is None:
        return
    mine = who.communes

    def hidden(what: str) -> Hidden:
        return Hidden(f"No {what}.", who=who, action=action)

    if set(targets) - set(TARGET_KEYS):
        return  # refused by the resolution, naming the kinds
    if targets.get("all"):
        raise Hidden("No target 'all' for a principal limited to some communes: name the communes.",
                     who=who, action=action)
    for code in targets.get("communes") or []:
        if code not in mine:
            raise hidden(f"commune {code!r}")
    for name in targets.get("villages") or []:
        keys = [name] if "/" in str(name) else inv.village_codes.get(name, [])
        if len(keys) > 1:
            continue  # a bare code several communes use: the resolution asks for 'commune-code/village-code'
        if not keys or keys[0].split("/", 1)[0] not in mine:
            raise hidden(f"village {name!r}")
    for rid in targets.get("receivers") or []:
        if inv.receivers.get(rid) not in mine:
            raise hidden(f"receiver {rid!r}")
    for gid in targets.get("groups") or []:
        if not _sees(who, inv.communes_of(inv.groups.get(gid, ()))):
            raise hidden(f"receiver group {gid!r}")


def _items(ctx: Ctx, entries: list[dict[str, int]], action: str) -> tuple[schedules.ContentItem, ...]:
    """The programme's items as `ContentItem`s, each one content the principal may put on air."""
    if not entries:
        raise Invalid("A programme needs at least one item (bulletin_id or announcement_id).")
    out = []
    for entry in entries:
        key = item_key(entry)
        kind, _, ident = key.partition(":")
        if kind == "bulletin":
            content, media, _ = usable_content(ctx, bulletin_id=int(ident), action=action)
        else:
            content, media, _ = usable_content(ctx, announcement_id=int(ident), action=action)
        out.append(schedules.ContentItem(key, media.sha256, media.duration_s, media.size_bytes, content.title))
    return tuple(out)


def _check(ctx: Ctx, row: Programme, action: str) -> tuple[schedules.Programme, set[str]]:
    """`row` as it would be stored: (its value, the communes it reaches), or the domain error staff should
    see. What the policy refuses is audited by the face; the rest (422, 404, 409) is audited here."""
    try:
        return _checked(ctx, row, action)
    except DomainError as e:
        if not isinstance(e, Refusal):
            ctx.audit(action, "refused", target=str(row.id or row.title), detail=e.message)
        raise


def _checked(ctx: Ctx, row: Programme, action: str) -> tuple[schedules.Programme, set[str]]:
    who, settings = ctx.who, ctx.settings
    _bounded(row)
    if row.priority == "emergency" and not who.has(Right.EMERGENCY):
        raise Forbidden("An emergency-class programme needs the 'emergency:trigger' right.", who=who, action=action)
    inv = Inventory.load(ctx.session)
    _targets_within(ctx, inv, row.targets, action)
    try:
        items = _items(ctx, row.items, action)
        receivers = inv.resolve(row.targets)
        if not receivers:
            raise ScheduleError("The targets name no receiver.")
        if row.rrule:
            schedules.check_rrule(row.rrule, row.start)
    except (ScheduleError, schedules.RecurrenceError) as e:
        raise Invalid(str(e)) from None
    if row.valid_from and row.valid_until and row.valid_until < row.valid_from:
        raise Invalid("'valid_until' is before 'valid_from'.", code="programme_valid_order")
    communes = inv.communes_of(receivers)
    if not who.may_touch_all(frozenset(communes)):  # what the targets resolved to, as well as what they name
        raise Hidden("No such targets.", who=who, action=action)
    value = to_value(row, receivers, items)
    now = utcnow()
    horizon = now + dt.timedelta(days=settings.schedule.conflict_horizon_days)
    if not row.paused and not schedules.occurrences(value, now, horizon):
        raise Invalid("This programme would never play again: its start (and every recurrence) is in the past "
                      "or outside its validity period.", code="programme_never_plays")
    # Only approved programmes are on air, so only they can clash (drafts are proposals).
    clash = schedules.find_clash(value, [p for p in load_programmes(ctx.session, inv) if p.id != row.id], now, horizon)
    if clash is not None:
        raise _clash_error(ctx, inv, clash)
    return value, communes


def _bounded(row: Programme) -> None:
    """Refuse, before any of it is looked up or expanded, a programme larger than anybody writes."""
    if len(row.items) > MAX_ITEMS:
        raise Invalid(f"A programme plays at most {MAX_ITEMS} items; this one has {len(row.items)}.")
    if len(row.exdates) > MAX_EXDATES:
        raise Invalid(f"At most {MAX_EXDATES} skipped dates; give a validity period instead.")
    named = sum(len(v) for v in row.targets.values() if isinstance(v, list))
    if named > MAX_TARGETS:
        raise Invalid(f"The targets name {named} receivers, villages, communes and groups; at most {MAX_TARGETS}.")
    start = row.start if row.start.tzinfo else row.start.replace(tzinfo=dt.UTC)  # as SQLite gives it back
    now = utcnow()
    if start < now - MAX_START_AGE:
        raise Invalid(f"The start is more than {MAX_START_AGE.days // 366} years ago: give the date it starts "
                      "from now (the same time of day keeps the same times).")
    latest = (now + MAX_AHEAD).date()
    dates = [start.date(), row.valid_from, row.valid_until, *(dt.date.fromisoformat(d) for d in row.exdates)]
    if any(d is not None and d > latest for d in dates):
        raise Invalid(f"A date is more than {MAX_AHEAD.days // 366} years ahead: check the start, the validity "
                      "period and the skipped dates.")


def _clash_error(ctx: Ctx, inv: Inventory, clash: schedules.Clash) -> Conflict:
    """The clash as the API says it (naming the other programme, the receivers and the times) and, for the
    staff UI, as code `programme_clash` with the values it names: the other programme (`SHARED_TITLE` when
    the principal may not see it whole), its first overlapping occurrence (local), the receivers shared."""
    other = clash.other
    masked = bool(masked_programmes(ctx.who, inv, [other]))
    at = clash.other_at.astimezone(schedules.TZ)
    communes = sorted(inv.communes_of(clash.receivers))
    names = dict(ctx.session.exec(select(Commune.code, Commune.name).where(col(Commune.code).in_(communes))).all())
    return Conflict(clash.describe(), code="programme_clash", params={
        "other": SHARED_TITLE if masked else other.title, "other_id": None if masked else other.id,
        "time": f"{at:%H:%M}", "end": f"{at + clash.other_duration:%H:%M}", "date": f"{at:%d/%m/%Y}",
        "weekday": at.weekday(), "at": at.isoformat(), "receivers": len(clash.receivers),
        "communes": ", ".join(names.get(c, c) for c in communes)})


def _approves(ctx: Ctx, row: Programme, communes: set[str]) -> bool:
    """Whether `row`, as written by `ctx.who`, is approved at once (see the module's docstring)."""
    who = ctx.who
    if row.priority == "emergency":  # the emergency right, checked already, is the approval
        return True
    if who.has(Right.CONTENT_APPROVE) and who.may_touch_all(frozenset(communes)):
        return True
    held = ctx.session.exec(select(Commune.code).where(col(Commune.code).in_(communes),
                                                       col(Commune.approval_required).is_(True))).first()
    return held is None


def _stamp(row: Programme, who: Principal | None) -> None:
    """Approved by `who`, or a draft (None) awaiting approval; either way a new judgement: any earlier
    sending back is cleared."""
    row.approved_by, row.approved_at = (who.actor, utcnow()) if who else (None, None)
    row.returned_by = row.returned_at = row.returned_comment = None


# --------------------------------------------------------------------------------------- programmes


def create_programme(ctx: Ctx, body: ProgrammeCreate) -> ProgrammePublic:
    action = "programme.create"
    require(ctx.who, Right.CONTENT_WRITE, action)
    row = Programme(title=body.title, items=[], targets={}, start=utcnow(), created_by=ctx.who.actor)
    _apply(row, body.model_dump(exclude_unset=False))
    _, communes = _check(ctx, row, action)
    approved = _approves(ctx, row, communes)
    _stamp(row, ctx.who if approved else None)
    ctx.session.add(row)
    ctx.session.commit()
    ctx.session.refresh(row)
    ctx.audit(action, target=str(row.id), detail=row.title + ("" if approved else " (draft: awaits approval)"))
    if approved:
        ctx.plans_changed()
    return _one(ctx, row)


def check_programme(ctx: Ctx, body: ProgrammeCreate | ProgrammeUpdate, ident: int | None = None) -> None:
    """A dry run of `create_programme` (with `ident`, of `edit_programme`): raises what saving `body` would
    raise — a clash as the `Conflict` coded `programme_clash` — and saves and audits nothing. The staff UI
    shows a clash with it before anything is saved."""
    action = "programme.create" if ident is None else "programme.edit"
    require(ctx.who, Right.CONTENT_WRITE, action)
    if ident is None:
        if not isinstance(body, ProgrammeCreate):
            raise Invalid("A new programme needs every field of ProgrammeCreate.")
        candidate = Programme(title=body.title, items=[], targets={}, start=utcnow(), created_by=ctx.who.actor)
    else:
        row, _ = _find(ctx, Inventory.load(ctx.session), ident, action)
        candidate = Programme.model_validate(row.model_dump())
    _apply(candidate, body.model_dump(exclude_unset=isinstance(body, ProgrammeUpdate)))
    _checked(ctx, candidate, action)


def list_programmes(ctx: Ctx, page: Page, *, commune: str | None = None, paused: bool | None = None,
                    approved: bool | None = None) -> ProgrammesPublic:
    """The programmes the principal sees, by start; `approved=False` lists the drafts awaiting approval."""
    require(ctx.who, Right.CONTENT_READ, "programme.list")
    inv = Inventory.load(ctx.session)
    values = {p.id: p for p in load_programmes(ctx.session, inv, drafts=True)}
    found = []
    for row in ctx.session.exec(select(Programme).order_by(col(Programme.start))):
        value = values[row.id or 0]
        communes = inv.communes_of(value.receivers)
        if commune is not None and commune not in communes:
            continue
        if not _sees(ctx.who, communes):
            continue
        if paused is not None and row.paused != paused:
            continue
        if approved is not None and (row.approved_at is not None) != approved:
            continue
        found.append((row, value))
    index, now, hidden = content_index(ctx.session), utcnow(), hidden_content(ctx)
    return ProgrammesPublic(data=[_public(r, v, inv, index, now, hidden) for r, v in page.slice(found)],
                            count=len(found))


def get_programme(ctx: Ctx, ident: int) -> ProgrammePublic:
    require(ctx.who, Right.CONTENT_READ, "programme.read")
    row, _ = _find(ctx, Inventory.load(ctx.session), ident, "programme.read")
    return _one(ctx, row)


def edit_programme(ctx: Ctx, ident: int, body: ProgrammeUpdate, action: str = "programme.edit") -> ProgrammePublic:
    require(ctx.who, Right.CONTENT_WRITE, action)
    row, _ = _find(ctx, Inventory.load(ctx.session), ident, action)
    if row.priority == "emergency" and not ctx.who.has(Right.EMERGENCY):
        raise Forbidden("An emergency-class programme needs the 'emergency:trigger' right.", who=ctx.who,
                        action=action)
    changes = body.model_dump(exclude_unset=True)
    # Checked on a copy: the stored row stays untouched (and unflushed) until the edit is accepted.
    candidate = Programme.model_validate(row.model_dump())
    _apply(candidate, changes)
    candidate.updated_by, candidate.updated_at = ctx.who.actor, utcnow()
    _, communes = _check(ctx, candidate, action)
    was_on_air = row.approved_at is not None
    if set(changes) - {"paused"}:  # what, where or when it plays changed: it carries the writer's approval
        _stamp(candidate, ctx.who if _approves(ctx, candidate, communes) else None)
    for key, value in candidate.model_dump(exclude={"id"}).items():
        setattr(row, key, value)
    ctx.session.add(row)
    ctx.session.commit()
    ctx.session.refresh(row)
    detail = ", ".join(sorted(changes))
    if was_on_air and row.approved_at is None:
        detail += " (back to draft: awaits approval)"
    ctx.audit(action, target=str(row.id), detail=detail)
    if was_on_air or row.approved_at is not None:
        ctx.plans_changed()
    return _one(ctx, row)


def pause_programme(ctx: Ctx, ident: int) -> ProgrammePublic:
    return edit_programme(ctx, ident, ProgrammeUpdate(paused=True), "programme.pause")


def resume_programme(ctx: Ctx, ident: int) -> ProgrammePublic:
    return edit_programme(ctx, ident, ProgrammeUpdate(paused=False), "programme.resume")


def delete_programme(ctx: Ctx, ident: int) -> None:
    action = "programme.delete"
    require(ctx.who, Right.CONTENT_WRITE, action)
    row, _ = _find(ctx, Inventory.load(ctx.session), ident, action)
    if row.priority == "emergency":  # taking an emergency-class programme off air is the emergency right's
        require(ctx.who, Right.EMERGENCY, action)
    was_on_air = row.approved_at is not None
    ctx.session.delete(row)
    ctx.session.commit()
    ctx.audit(action, target=str(ident), detail=row.title)
    if was_on_air:
        ctx.plans_changed()


def approve_programme(ctx: Ctx, ident: int) -> ProgrammePublic:
    """Put a draft on air: the approver must hold `content:approve` in every commune the programme reaches;
    the programme is checked again as it stands (its content usable, no clash with what is on air)."""
    action = "programme.approve"
    inv = Inventory.load(ctx.session)
    row, communes = _find(ctx, inv, ident, action)
    require_all_in(ctx.who, Right.CONTENT_APPROVE, communes, action, f"programme {ident}")
    if row.approved_at is not None:
        return _one(ctx, row)  # approved already: nothing to do
    _check(ctx, row, action)
    _stamp(row, ctx.who)
    ctx.session.add(row)
    ctx.session.commit()
    ctx.session.refresh(row)
    ctx.audit(action, target=str(ident), detail=row.title)
    ctx.plans_changed()
    return _one(ctx, row)


def return_programme(ctx: Ctx, ident: int, comment: str) -> ProgrammePublic:
    """Send a draft back to its author with a comment (who may: whoever may approve it). It stays a draft;
    an edit or an approval clears the comment."""
    action = "programme.return"
    inv = Inventory.load(ctx.session)
    row, communes = _find(ctx, inv, ident, action)
    require_all_in(ctx.who, Right.CONTENT_APPROVE, communes, action, f"programme {ident}")
    send_back(ctx, row, f"programme {ident}", action, comment, row.title)
    return _one(ctx, row)


# ----------------------------------------------------------------------------------- receiver groups


def _group_public(g: ReceiverGroup) -> ReceiverGroupPublic:
    return ReceiverGroupPublic.model_validate(g)


def create_group(ctx: Ctx, body: ReceiverGroupCreate) -> ReceiverGroupPublic:
    """A saved set of receivers, all within the principal's communes (others, and for a limited principal
    unknown ones, are `Hidden`)."""
    action = "group.create"
    require(ctx.who, Right.CONTENT_WRITE, action)
    inv = Inventory.load(ctx.session)
    wanted = sorted(set(body.receivers))
    if ctx.who.communes is not None:
        outside = [r for r in wanted if inv.receivers.get(r) not in ctx.who.communes]
        if outside:
            raise Hidden(f"No receiver(s) {', '.join(outside[:10])}.", who=ctx.who, action=action)
    unknown = [r for r in wanted if r not in inv.receivers]
    if unknown:
        raise Invalid(f"No receiver(s) {', '.join(unknown[:10])}.")
    taken = ctx.session.exec(select(ReceiverGroup).where(ReceiverGroup.name == body.name)).first()
    if taken is not None:
        if _sees(ctx.who, inv.communes_of(taken.receivers)):
            raise Conflict(f"A group named {body.name!r} exists already.")
        # Names are unique in the district; that another commune uses this one is not confirmed.
        message = f"The name {body.name!r} cannot be used for a new group: choose another."
        ctx.audit(action, "refused", detail=f"{message} (group {taken.id} of another commune)")
        raise Conflict(message)
    group = ReceiverGroup(name=body.name, receivers=wanted, created_by=ctx.who.actor)
    ctx.session.add(group)
    ctx.session.commit()
    ctx.session.refresh(group)
    ctx.audit(action, target=str(group.id), detail=group.name)
    return _group_public(group)


def list_groups(ctx: Ctx, page: Page) -> ReceiverGroupsPublic:
    """The groups whose receivers all lie within the principal's communes, by name."""
    require(ctx.who, Right.CONTENT_READ, "group.list")
    inv = Inventory.load(ctx.session)
    rows = [g for g in ctx.session.exec(select(ReceiverGroup).order_by(col(ReceiverGroup.name)))
            if _sees(ctx.who, inv.communes_of(g.receivers))]
    return ReceiverGroupsPublic(data=[_group_public(g) for g in page.slice(rows)], count=len(rows))


def delete_group(ctx: Ctx, ident: int) -> None:
    """A group no programme uses, all of whose receivers lie within the principal's communes."""
    action = "group.delete"
    require(ctx.who, Right.CONTENT_WRITE, action)
    group = ctx.session.get(ReceiverGroup, ident)
    if group is None:
        raise NotFound(f"No receiver group {ident}.")
    inv = Inventory.load(ctx.session)
    if not _sees(ctx.who, inv.communes_of(group.receivers)):
        raise Hidden(f"No receiver group {ident}.", who=ctx.who, action=action)
    using = [p for p in ctx.session.exec(select(Programme)) if ident in (p.targets.get("groups") or [])]
    if using:
        message = f"This group is used by {_naming(ctx.who, inv, using)}: remove it from them (or delete them) first."
        ctx.audit(action, "refused", target=str(ident), detail=message)
        raise Conflict(message)
    ctx.session.delete(group)
    ctx.session.commit()
    ctx.audit(action, target=str(ident), detail=group.name)


def _naming(who: Principal, inv: Inventory, programmes: list[Programme]) -> str:
    """`programmes` as a limited principal may be told of them: those it sees by id and title, the others
    (reaching other communes) only counted."""
    shown = [p for p in programmes if _sees(who, _reach(inv, p))]
    others = len(programmes) - len(shown)
    parts = []
    if shown:
        parts.append("programme(s) " + ", ".join(f'#{p.id} "{p.title}"' for p in shown[:5])
                     + (" …" if len(shown) > 5 else ""))
    if others:
        parts.append(f"{others} programme{'s' if others > 1 else ''} of another commune")
    return " and ".join(parts)


# -------------------------------------------------------------------------------------- the schedule


class ScheduleRow(SQLModel):
    programme_id: int
    title: str
    priority: str
    item: dict[str, Any]
    occurrence: dt.datetime
    start: dt.datetime
    end: dt.datetime
    shifted_s: float
    receivers: int
    communes: list[str]


class SchedulePublic(SQLModel):
    data: list[ScheduleRow]
    count: int
    window_from: dt.datetime
    window_to: dt.datetime


def window(from_: dt.datetime | None, to: dt.datetime | None, default: dt.timedelta,
           now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The period asked for (local times; `to` defaults to `from` + `default`), at most `MAX_WINDOW`."""
    start = local(from_) if from_ else now
    end = local(to) if to else start + default
    if end <= start:
        raise Invalid("'to' must be after 'from'.")
    if end - start > MAX_WINDOW:
        raise Invalid(f"Ask for at most {MAX_WINDOW.days} days at a time.")
    return start, end


def scope(ctx: Ctx, inv: Inventory, commune: str | None, receiver: str | None, action: str) -> list[str]:
    """The receivers a schedule or report covers: those of `commune` / `receiver` if given, within the
    principal's communes (naming another commune's is `Hidden`)."""
    who = ctx.who
    if commune is not None:
        if not who.may_see(commune):
            raise Hidden(f"No commune {commune!r}.", who=who, action=action)
        if commune not in inv.by_commune:
            raise NotFound(f"No commune {commune!r}.")
    if receiver is not None:
        if receiver not in inv.receivers:
            raise NotFound(f"No receiver {receiver!r}.")
        if not who.may_see(inv.receivers[receiver]):
            raise Hidden(f"No receiver {receiver!r}.", who=who, action=action)
    return [r for r, c in inv.receivers.items()
            if (commune is None or c == commune) and (receiver is None or r == receiver) and who.may_see(c)]


def schedule(ctx: Ctx, page: Page, *, commune: str | None = None, receiver: str | None = None,
             from_: dt.datetime | None = None, to: dt.datetime | None = None) -> SchedulePublic:
    """Every occurrence of every approved programme in the window (48 h by default) on the principal's
    receivers, placed as they will play it (priority first, ordered overlaps moved)."""
    action = "schedule.read"
    require(ctx.who, Right.CONTENT_READ, action)
    start, end = window(from_, to, dt.timedelta(hours=48), dt.datetime.now(dt.UTC))
    inv = Inventory.load(ctx.session)
    rids = scope(ctx, inv, commune, receiver, action)
    programmes = load_programmes(ctx.session, inv)
    plans = schedules.compile_plans(programmes, rids, start, end)
    masked, hidden = masked_programmes(ctx.who, inv, programmes), hidden_content(ctx)
    rows: dict[tuple[int, dt.datetime, int, dt.datetime], tuple[schedules.Slot, set[str]]] = {}
    for rid, plan in plans.items():
        for slot in plan.slots:
            key = (slot.programme_id, slot.occurrence, slot.index, slot.start)
            rows.setdefault(key, (slot, set()))[1].add(rid)
    out = []
    for key in sorted(rows, key=lambda k: (k[3], k[0], k[2])):
        slot, members = rows[key]
        kind, _, ident = slot.item.key.partition(":")
        shared = slot.programme_id in masked  # it plays here, but is another's: the slot shown, not what fills it
        item = {"kind": kind, "id": None if shared else int(ident),
                "title": None if shared or slot.item.key in hidden else slot.item.title,
                "duration_s": slot.item.duration_s}
        out.append(ScheduleRow(
            programme_id=slot.programme_id, title=SHARED_TITLE if shared else slot.title, priority=slot.priority,
            item=item,
            occurrence=local(slot.occurrence), start=local(slot.start), end=local(slot.end),
            shifted_s=slot.shifted.total_seconds(), receivers=len(members),
            communes=sorted(inv.communes_of(members))))
    return SchedulePublic(data=page.slice(out), count=len(out), window_from=local(start), window_to=local(end))
