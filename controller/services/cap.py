"""CAP intake: a Common Alerting Protocol 1.2 alert (XML bytes) from a disaster-warning system becomes an
emergency, updates the one it references (cancels it, sends the new one) or cancels it.

- `receive_alert(ctx, raw) -> CapAnswer`: what `POST /api/v1/cap` does. Parsing and validation are
  `controller.cap`'s; this adds the clock (expiry), the geocode table, the signature requirement
  (`TT_EMERGENCY__CAP_REQUIRE_SIGNATURE`, trusted certificates), idempotency (the same alert twice makes one
  emergency) and the mapping of statuses: `Actual` → the alert's communes; `Test` / `Exercise` → only
  receivers marked `accepts_tests`; `System` / `Draft` → refused; `Ack` / `Error` → accepted, nothing sent.

The policy is the emergencies' (`services.emergencies`): the alert's communes must be within the principal's,
and an `Update` or `Cancel` may cancel only emergencies the principal could cancel itself. Every check —
those of the referenced emergencies and, for an `Update`, those of the new one (its audio made too) — is
passed before anything is cancelled. The text is read with the built-in and district abbreviations only (a
commune's list is its operators' to change; they must not change what a warning says). Every alert, accepted
or refused, is audited as `cap.receive`.
`list_alerts(ctx, page)`: the alerts that became emergencies (the emergencies with a CAP source), newest first,
as far as the principal sees those emergencies.
See docs/CAP.md.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field
from sqlmodel import col, select

from controller import cap as caplib
from controller.db.models import Emergency, Receiver, utcnow
from controller.emergencies import voiced_media
from controller.errors import Hidden, Invalid, NotFound, TooLarge
from controller.policy import Right, require
from controller.scheduling import Inventory, local
from controller.warnings import event_type_of

from .content import spoken_text
from .context import Ctx, Page
from .emergencies import (
    Prepared,
    check_rate,
    duplicate,
    expiry,
    launch,
    reached,
    refusals_audited,
    resolve,
    stop,
    visible_ids,
)
from .warnings import RECORDED, RecordingFailed, after_recording, names_read, recording_for, warning_media

RECEIVE = "cap.receive"


class CapAnswer(BaseModel):
    """What became of an alert; for a new emergency (created, updated, duplicate) the fields of the 202 of
    `POST /api/v1/emergencies` too."""

    action: Literal["created", "updated", "duplicate", "cancelled", "none"]
    identifier: str = Field(description="the alert's CAP identifier")
    cancelled: list[str] = Field(default_factory=list, description="the emergencies it cancelled")
    id: str | None = None
    receivers: list[str] | None = None
    topics: list[str] | None = None
    expires_at: dt.datetime | None = None
    inline: bool | None = None
    media_url: str | None = None
    duration_s: float | None = None
    spoken_text: str | None = None
    duplicate: bool | None = None
    event_type: str | None = Field(default=None, description="the event type its event maps to (see docs/CAP.md)")
    recorded: bool | None = Field(default=None, description="that type's pre-recorded warning is played")
    engine: str | None = Field(default=None, description="what reads it: gtts, neural, offline or recorded")
    engine_note: str | None = Field(default=None, description="why the engines before it in TT_TTS__CAP did not")
    unknown_geocodes: list[str] = Field(default_factory=list, description="area geocodes not mapped to a commune")
    area_desc: str | None = None


class CapAlertPublic(BaseModel):
    """An alert that became an emergency, as it is stored with it."""

    emergency_id: str
    sender: str
    identifier: str
    sent: dt.datetime | None
    status: str | None = Field(description="Actual, Test or Exercise")
    headline: str = Field(description="the alert's headline, else its event (the emergency's title)")
    area_desc: str | None
    received_at: dt.datetime
    expires_at: dt.datetime
    cancelled_at: dt.datetime | None


class CapAlertsPublic(BaseModel):
    data: list[CapAlertPublic]
    count: int


def list_alerts(ctx: Ctx, page: Page) -> CapAlertsPublic:
    """The CAP alerts that arrived and became emergencies, newest first; like the emergencies, only those
    that reached nothing but the principal's communes."""
    require(ctx.who, Right.EMERGENCY, "emergency.read")
    ids = visible_ids(ctx, col(Emergency.cap_identifier).is_not(None))
    shown = page.slice(ids)
    rows = {e.id: e for e in ctx.session.exec(select(Emergency).where(col(Emergency.id).in_(shown)))}
    return CapAlertsPublic(count=len(ids), data=[CapAlertPublic(
        emergency_id=e.id, sender=e.cap_sender or "", identifier=e.cap_identifier or "",
        sent=local(e.cap_sent) if e.cap_sent else None, status=e.cap_status, headline=e.title,
        area_desc=e.area_desc, received_at=local(e.created_at), expires_at=local(e.expires_at),
        cancelled_at=local(e.cancelled_at) if e.cancelled_at else None) for e in (rows[i] for i in shown)])


def _parse(ctx: Ctx, raw: bytes) -> caplib.CapAlert:
    settings = ctx.settings.emergency
    if len(raw) > caplib.MAX_ALERT_BYTES:
        raise TooLarge(f"too large: a CAP alert may be at most {caplib.MAX_ALERT_BYTES} bytes")
    try:
        if settings.cap_require_signature:
            caplib.verify_signature(raw, [p.read_bytes() for p in settings.cap_trusted_certs])
        return caplib.parse_alert(raw)
    except caplib.CapError as e:
        raise Invalid(f"CAP alert refused: {e}") from None


def _referenced(ctx: Ctx, alert: caplib.CapAlert) -> list[Emergency]:
    """The emergencies an `Update` / `Cancel` names, each one the principal may cancel (else the alert is
    refused whole, as if they had never been received: `Hidden`)."""
    found: list[Emergency] = []
    for ref in alert.references:
        found.extend(ctx.session.exec(select(Emergency).where(Emergency.cap_sender == ref.sender,
                                                              Emergency.cap_identifier == ref.identifier)))
    refs = ", ".join(f"{r.sender},{r.identifier}" for r in alert.references)
    message = f"CAP {alert.msg_type} refers to no alert received here: {refs}"
    if any(not ctx.who.may_touch_all(reached(ctx.session, row)) for row in found):
        raise Hidden(message, who=ctx.who, action=RECEIVE)
    if not found and alert.msg_type == "Cancel":
        raise NotFound(message)
    return found


async def receive_alert(ctx: Ctx, raw: bytes) -> CapAnswer:
    require(ctx.who, Right.EMERGENCY, RECEIVE)
    settings = ctx.settings.emergency
    with refusals_audited(ctx, RECEIVE):
        alert = _parse(ctx, raw)
    ident = f"{alert.sender} {alert.identifier}"
    with refusals_audited(ctx, RECEIVE, ident):
        if alert.status in ("System", "Draft"):
            raise Invalid(f"CAP alert refused: status {alert.status!r} is not broadcast")
        if alert.msg_type in ("Ack", "Error"):
            ctx.audit(RECEIVE, "ok", target=ident, detail=f"{alert.msg_type}: no action")
            return CapAnswer(action="none", identifier=alert.identifier)
        referenced = _referenced(ctx, alert) if alert.msg_type in ("Update", "Cancel") else []
    if alert.msg_type == "Cancel":
        for row in referenced:
            await stop(ctx, row)
        cancelled = [row.id for row in referenced]
        ctx.audit(RECEIVE, "ok", target=ident, detail=f"Cancel: {', '.join(cancelled)}")
        return CapAnswer(action="cancelled", cancelled=cancelled, identifier=alert.identifier)
    with refusals_audited(ctx, RECEIVE, ident):
        info = caplib.choose_info(alert)
        if info is None:
            raise Invalid(f"CAP alert refused: an {alert.msg_type} needs an <info> block")
        request_id = f"cap:{alert.sender}:{alert.identifier}"[:100]
        if (known := duplicate(ctx, request_id)) is not None:
            return CapAnswer(action="duplicate", identifier=alert.identifier, **known.model_dump())
        if info.expires is not None and info.expires <= utcnow():
            raise Invalid(f"CAP alert refused: it expired at {local(info.expires).isoformat()}")
        table = caplib.load_geocode_table(settings.cap_geocodes or caplib.DEFAULT_GEOCODE_TABLE)
        communes, unknown = caplib.communes_for(info, table)
        if not communes:
            raise Invalid("CAP alert refused: none of its areas maps to a commune here "
                          f"(unknown: {', '.join(unknown) or 'no geocode'})")
        ctx.require_bridge()
        check_rate(ctx)
        inv = Inventory.load(ctx.session)
        targets = {"communes": sorted(communes)}
        receivers = resolve(ctx, inv, targets, RECEIVE, named=False)  # the alert's areas, not a probe
        if alert.status in ("Test", "Exercise"):
            testers = set(ctx.session.exec(select(Receiver.id).where(col(Receiver.accepts_tests).is_(True))))
            receivers &= testers
            if not receivers:
                raise Invalid(f"CAP {alert.status} alert: no receiver in its area is marked for tests "
                              "(accepts_tests)")
        text = caplib.text_to_read(info)
        expires_at = expiry(ctx, info.expires)
        event_type = event_type_of(info)
        # A test, an exercise, an all-clear or what is past has its text read: the recording says it is real.
        real = caplib.plays_recording(alert, info)
        warning = recording_for(ctx.session, ctx.require_media(), event_type) if real else None
        spoken: str | None = spoken_text(ctx.session, text, None)  # built-in and district lists only
        media, engine, note, failed = None, None, None, None
        if warning is not None:  # its pre-recorded warning, then the names of the alert's communes and its text
            names = names_read(ctx.session, inv.communes_of(receivers), False)
            try:
                made = await asyncio.to_thread(warning_media, ctx.engine, ctx.settings, ctx.require_media(),
                                               warning, after_recording(names, spoken), "cap")
                media, spoken, engine, note = made.media, made.spoken, RECORDED, made.note
            except RecordingFailed as e:
                failed = str(e)
        if media is None:
            spoken = spoken or text
            voiced = await asyncio.to_thread(voiced_media, ctx.engine, ctx.settings, ctx.require_media(), spoken,
                                             "cap")
            media, engine, note = voiced.media, voiced.engine, "; ".join(filter(None, (failed, voiced.note))) or None
    # Everything checked and the audio made: now the update replaces what it references.
    for row in referenced:
        await stop(ctx, row)
    area_desc = "; ".join(a.area_desc for a in info.areas)[:500]
    answer = await launch(ctx, inv, Prepared(
        title=(info.headline or info.event)[:200], text=text, spoken=spoken, source="cap", receivers=receivers,
        targets=targets, repeat=settings.repeat, volume=settings.volume, expires_at=expires_at,
        request_id=request_id, engine=engine, event_type=event_type, engine_note=note,
        cap={"cap_sender": alert.sender, "cap_identifier": alert.identifier, "cap_sent": alert.sent.astimezone(dt.UTC),
             "cap_status": alert.status, "area_desc": area_desc}), media)
    ctx.audit(RECEIVE, "ok", target=ident,
              detail=f"{alert.status} {alert.msg_type} → emergency {answer.id}; areas: {area_desc[:200]}"
                     + (f"; unknown geocodes: {', '.join(unknown)}" if unknown else "")
                     + (f"; pre-recorded warning: {event_type}" if engine == RECORDED else ""))
    return CapAnswer(action="updated" if referenced else "created", identifier=alert.identifier,
                     cancelled=[row.id for row in referenced], unknown_geocodes=unknown, area_desc=area_desc,
                     **answer.model_dump())
