"""Plays: putting content on one receiver now, stopping it, and the proof of play receivers report.

- `play`: a stored bulletin or announcement to one receiver (receivers:control in its commune). The content
  must be usable (`services.content.usable_content`: another commune's is absent, a draft is a 409);
  emergency priority needs the emergency right.
- `stop`: one item, one class, or everything. Silencing an emergency needs the emergency right as well:
  stopping the emergency class, everything (`{}`), an emergency's item (`em-…`), or an item the controller
  knows to be of the emergency class (an emergency programme's, or one a receiver reported playing at that
  class). A receivers:control principal alone may stop the `normal` and `priority` classes, or other items.
- `list_plays`, `receiver_plays`: what each loudspeaker actually played, limited to the principal's communes.
  Times in ISO 8601 with an offset (`from`/`to` without one are read as Asia/Ho_Chi_Minh, as staff type them).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlmodel import col, func, select

from controller.content import media_url
from controller.db.models import Commune, PlayPublic, PlayRecord, PlaysPublic, Programme, Receiver, utcnow
from controller.errors import Forbidden, Invalid
from controller.policy import Right, require
from receivers.protocol import INLINE_AUDIO_MAX, MediaRef, Play, Stop, Target

from .content import usable_content
from .context import Ctx, Page
from .receivers import CommandOutcome, command_one, controlled_receiver, get_receiver, request

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
# An emergency's item on every receiver (`em-{uuid}`, controller.emergencies) and a one-off play at emergency
# priority (`em-{kind}-{id}-…`, below): told apart by name before any receiver has reported them.
EMERGENCY_ITEM = re.compile(r"^em-")
PROGRAMME_ITEM = re.compile(r"^p(\d+)-")  # schedules.model.Slot.item_id


class PlayRequest(BaseModel):
    bulletin_id: int | None = None
    announcement_id: int | None = None
    priority: Literal["normal", "priority", "emergency"] = "normal"
    volume: int | None = Field(default=None, ge=0, le=100)
    repeat: int = Field(default=1, ge=1, le=20)
    gap_s: float = Field(default=0.0, ge=0, le=300)
    start_at: dt.datetime | None = Field(default=None, description="ISO 8601 with offset; default now")
    resume: bool = Field(default=False, description="resume where it was cut after a higher class")
    inline: bool = Field(default=False, description="send the audio inside the command (at most 256 KB): "
                                                    "it plays without a download")


class PlaySent(BaseModel):
    command_id: str
    item_id: str
    outcome: Literal["received", "rejected", "no_answer"]
    reason: str | None = None


class StopRequest(BaseModel):
    item_id: str | None = Field(default=None, description="one item; with `priority`, only if of that class")
    priority: Literal["normal", "priority", "emergency"] | None = Field(
        default=None, description="one class; neither given: everything (which needs the emergency right)")


# ------------------------------------------------------------------------------------------- play


async def play(ctx: Ctx, rid: str, body: PlayRequest) -> PlaySent:
    """Send a stored bulletin or announcement to receiver `rid`; answers once the receiver has it (progress
    and proof of play follow as acks and plays)."""
    action = "receiver.play"
    receiver = controlled_receiver(ctx, rid, action)
    if body.priority == "emergency" and not ctx.who.has(Right.EMERGENCY):
        raise Forbidden("Playing at emergency priority needs the 'emergency:trigger' right.", who=ctx.who,
                        action=action)
    content, media, _ = usable_content(ctx, bulletin_id=body.bulletin_id, announcement_id=body.announcement_id,
                                       action=action)
    start = body.start_at
    if start is not None and start.tzinfo is None:
        raise Invalid("start_at needs a UTC offset, e.g. 2026-11-26T06:00:00+07:00.")
    audio: dict[str, object] = {"media": MediaRef(sha256=media.sha256, url=media_url(media.sha256),
                                                  size=media.size_bytes)}
    if body.inline:
        if media.size_bytes > INLINE_AUDIO_MAX:
            raise Invalid(f"This audio is {media.size_bytes / 1024:.0f} KB; at most {INLINE_AUDIO_MAX // 1024} KB "
                          "travels inside a command.")
        data = ctx.require_media().verified_path(media.sha256).read_bytes()
        audio = {"inline_audio": base64.b64encode(data).decode(), "inline_sha256": media.sha256}
    ctx.require_bridge()
    now = utcnow()
    ttl = ctx.settings.command_ttl_s + max(0.0, (start - now).total_seconds() if start else 0.0)
    kind = "bulletin" if body.bulletin_id else "announcement"
    item_id = ("em-" if body.priority == "emergency" else "") + f"{kind}-{content.id}-{uuid.uuid4().hex[:8]}"
    command = Play.new(Target.receiver(rid), ttl, now=now, item_id=item_id,
                       priority=body.priority, **audio,
                       volume=body.volume, repeat=body.repeat, gap_s=body.gap_s, start_at=start, resume=body.resume,
                       title=content.title)
    outcome: Literal["received", "rejected", "no_answer"]
    reason: str | None
    if receiver.availability != "online":
        outcome, reason = "no_answer", f"receiver is {receiver.availability}; command not sent"
    else:
        ack = await request(ctx, command, ctx.settings.command_timeout_s, action, rid)
        outcome = "no_answer" if ack is None else ("rejected" if ack.status in ("rejected", "failed") else "received")
        reason = None if ack is None else ack.reason
    ctx.audit(action, outcome, target=rid,
              detail=f"{kind} {content.id} ({body.priority})" + (f"; {reason}" if reason else ""))
    return PlaySent(command_id=str(command.command_id), item_id=command.item_id, outcome=outcome, reason=reason)


# ------------------------------------------------------------------------------------------- stop


def _silences_emergency(ctx: Ctx, rid: str, body: StopRequest) -> bool:
    """Whether this stop could cut an emergency-class item on receiver `rid`."""
    if body.priority is not None:
        return body.priority == "emergency"
    if body.item_id is None:
        return True  # everything
    item = body.item_id
    if EMERGENCY_ITEM.match(item):
        return True
    programme = PROGRAMME_ITEM.match(item)
    if programme:
        row = ctx.session.get(Programme, int(programme.group(1)))
        if row is not None and row.priority == "emergency":
            return True
    reported = ctx.session.exec(select(PlayRecord.priority).where(PlayRecord.receiver_id == rid,
                                                                  PlayRecord.item_id == item)).all()
    return "emergency" in reported


async def stop(ctx: Ctx, rid: str, body: StopRequest) -> CommandOutcome:
    """Stop one item, one class, or (neither given) everything on receiver `rid`. Sent even to a receiver
    that is not online (it may be back before the command expires)."""
    action = "receiver.stop"
    controlled_receiver(ctx, rid, action)
    if not ctx.who.has(Right.EMERGENCY) and _silences_emergency(ctx, rid, body):
        raise Forbidden("Stopping an emergency-class item, or everything, needs the 'emergency:trigger' right; "
                        "give a class (normal, priority) or another item.", who=ctx.who, action=action)
    command = Stop.new(Target.receiver(rid), ctx.settings.command_ttl_s, item_id=body.item_id,
                       priority=body.priority)
    detail = ", ".join(f"{k}={v}" for k, v in body.model_dump(exclude_none=True).items()) or "everything"
    return await command_one(ctx, rid, command, action, detail=detail, only_online=False)


# ------------------------------------------------------------------------------------ proof of play


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    # In UTC now: a moment that has none (0001-01-01T00:00+14:00) is an OverflowError here, a 422, rather than
    # inside the database driver (a 500).
    return (value if value.tzinfo else value.replace(tzinfo=LOCAL)).astimezone(dt.UTC)


def list_plays(ctx: Ctx, page: Page, *, commune: str | None = None, receiver: str | None = None,
               event: Literal["started", "finished", "cut", "failed", "missed"] | None = None,
               start: dt.datetime | None = None, end: dt.datetime | None = None) -> PlaysPublic:
    require(ctx.who, Right.RECEIVERS_READ, "play.list")
    q = (select(PlayRecord, Commune.code)
         .join(Receiver, Receiver.id == PlayRecord.receiver_id)  # type: ignore[arg-type]
         .join(Commune, Commune.id == Receiver.commune_id))  # type: ignore[arg-type]
    start, end = _aware(start), _aware(end)
    if start and end and end < start:
        raise Invalid("'to' is before 'from'.")
    if commune:
        q = q.where(Commune.code == commune)
    if receiver:
        q = q.where(PlayRecord.receiver_id == receiver)
    if event:
        q = q.where(PlayRecord.event == event)
    if start:
        q = q.where(PlayRecord.at >= start)
    if end:
        q = q.where(PlayRecord.at <= end)
    if ctx.who.communes is not None:
        q = q.where(col(Commune.code).in_(ctx.who.communes))
    count = ctx.session.exec(select(func.count()).select_from(q.subquery())).one()
    rows = ctx.session.exec(page.apply(q.order_by(col(PlayRecord.at), col(PlayRecord.receiver_id),
                                                  col(PlayRecord.seq)))).all()
    return PlaysPublic(data=[PlayPublic(commune=code, **r.model_dump(exclude={"received_at"})) for r, code in rows],
                       count=count)


def receiver_plays(ctx: Ctx, page: Page, rid: str, *, start: dt.datetime | None = None,
                   end: dt.datetime | None = None) -> PlaysPublic:
    get_receiver(ctx, rid)  # absent outside the principal's communes
    return list_plays(ctx, page, receiver=rid, start=start, end=end)
