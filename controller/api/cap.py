"""`POST /api/v1/cap`: a Common Alerting Protocol 1.2 alert (XML) from a disaster-warning system becomes an
emergency announcement, updates the one it references (cancel it, send the new one) or cancels it.

Parsing and validation are `controller.cap`'s; this route adds the clock (expiry), the geocode table,
the signature requirement (`TT_EMERGENCY__CAP_REQUIRE_SIGNATURE`, trusted certificates), idempotency (the
same alert twice makes one emergency) and the mapping of statuses: `Actual` → the alert's communes;
`Test` / `Exercise` → only receivers marked `accepts_tests`; `System` / `Draft` → refused; `Ack` / `Error`
→ accepted, nothing sent. See docs/CAP.md.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from sqlmodel import Session, col, select

from controller import cap as caplib
from controller.auth import Principal, audit
from controller.db.models import Emergency, Receiver, utcnow
from controller.emergencies import speech_media

from .emergencies import CanTrigger, Trigger, cancel, check_rate, duplicate, expiry, resolve, trigger
from .programmes import local

router = APIRouter(tags=["emergencies"])


def _refuse(request: Request, who: Principal, status: int, message: str, target: str | None = None) -> HTTPException:
    audit(request.app.state.engine, who.actor, "cap.receive", "refused", target=target, detail=message)
    return HTTPException(status, message)


def _referenced(request: Request, alert: caplib.CapAlert) -> list[str]:
    found = []
    with Session(request.app.state.engine) as s:
        for ref in alert.references:
            for e in s.exec(select(Emergency).where(Emergency.cap_sender == ref.sender,
                                                    Emergency.cap_identifier == ref.identifier)):
                found.append(e.id)
    return found


@router.post("/cap", status_code=202, openapi_extra={
    "requestBody": {"content": {"application/cap+xml": {"schema": {"type": "string"}},
                                "application/xml": {"schema": {"type": "string"}}}, "required": True}})
async def receive_cap(request: Request, who: CanTrigger) -> dict[str, Any]:
    settings = request.app.state.settings.emergency
    raw = await request.body()
    if len(raw) > caplib.MAX_ALERT_BYTES:
        raise _refuse(request, who, 413, f"too large: a CAP alert may be at most {caplib.MAX_ALERT_BYTES} bytes")
    try:
        if settings.cap_require_signature:
            caplib.verify_signature(raw, [p.read_bytes() for p in settings.cap_trusted_certs])
        alert = caplib.parse_alert(raw)
    except caplib.CapError as e:
        raise _refuse(request, who, 422, f"CAP alert refused: {e}") from None
    ident = f"{alert.sender} {alert.identifier}"
    if alert.status in ("System", "Draft"):
        raise _refuse(request, who, 422, f"CAP alert refused: status {alert.status!r} is not broadcast", ident)
    if alert.msg_type in ("Ack", "Error"):
        audit(request.app.state.engine, who.actor, "cap.receive", "ok", target=ident,
              detail=f"{alert.msg_type}: no action")
        return {"action": "none", "identifier": alert.identifier}
    cancelled = []
    if alert.msg_type in ("Update", "Cancel"):
        cancelled = _referenced(request, alert)
        if not cancelled and alert.msg_type == "Cancel":
            raise _refuse(request, who, 404, "CAP Cancel refers to no alert received here: "
                          + ", ".join(f"{r.sender},{r.identifier}" for r in alert.references), ident)
        for eid in cancelled:
            await cancel(request, who, eid)
        if alert.msg_type == "Cancel":
            audit(request.app.state.engine, who.actor, "cap.receive", "ok", target=ident,
                  detail=f"Cancel: {', '.join(cancelled)}")
            return {"action": "cancelled", "cancelled": cancelled, "identifier": alert.identifier}
    info = caplib.choose_info(alert)
    if info is None:
        raise _refuse(request, who, 422, f"CAP alert refused: an {alert.msg_type} needs an <info> block", ident)
    request_id = f"cap:{alert.sender}:{alert.identifier}"[:100]
    if (known := duplicate(request, who, request_id)) is not None:
        return {**known, "action": "duplicate"}
    if info.expires is not None and info.expires <= utcnow():
        raise _refuse(request, who, 422, f"CAP alert refused: it expired at {local(info.expires).isoformat()}", ident)
    table = caplib.load_geocode_table(settings.cap_geocodes or caplib.DEFAULT_GEOCODE_TABLE)
    communes, unknown = caplib.communes_for(info, table)
    if not communes:
        raise _refuse(request, who, 422, "CAP alert refused: none of its areas maps to a commune here "
                      f"(unknown: {', '.join(unknown) or 'no geocode'})", ident)
    check_rate(request, who)
    receivers = resolve(request, who, {"communes": sorted(communes)})
    if alert.status in ("Test", "Exercise"):
        with Session(request.app.state.engine) as s:
            testers = set(s.exec(select(Receiver.id).where(col(Receiver.accepts_tests).is_(True))))
        receivers &= testers
        if not receivers:
            raise _refuse(request, who, 422, f"CAP {alert.status} alert: no receiver in its area is marked for "
                                             "tests (accepts_tests)", ident)
    text = caplib.text_to_read(info)
    expires_at = expiry(request, who, info.expires) if info.expires else expiry(request, who, None)
    media, _ = await asyncio.to_thread(speech_media, request.app.state.engine, request.app.state.settings,
                                       request.app.state.media, text, who.actor)
    area_desc = "; ".join(a.area_desc for a in info.areas)[:500]
    answer = await trigger(request, who, Trigger(
        title=(info.headline or info.event)[:200], text=text, source="cap", receivers=receivers,
        targets={"communes": sorted(communes)}, repeat=settings.repeat, volume=settings.volume,
        expires_at=expires_at, request_id=request_id,
        cap={"cap_sender": alert.sender, "cap_identifier": alert.identifier, "cap_sent": alert.sent.astimezone(dt.UTC),
             "cap_status": alert.status, "area_desc": area_desc}), media)
    audit(request.app.state.engine, who.actor, "cap.receive", "ok", target=ident,
          detail=f"{alert.status} {alert.msg_type} → emergency {answer['id']}; areas: {area_desc[:200]}"
                 + (f"; unknown geocodes: {', '.join(unknown)}" if unknown else ""))
    return {**answer, "action": "updated" if cancelled else "created", "cancelled": cancelled,
            "unknown_geocodes": unknown, "area_desc": area_desc}
