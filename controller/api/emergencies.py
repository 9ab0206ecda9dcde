"""`/api/v1/emergencies`: one authenticated call, and every targeted loudspeaker speaks at once.

`POST /api/v1/emergencies` (JSON: `text` | `bulletin_id` | `announcement_id`, `targets`, `repeat`, `volume`,
`expires_at`, `request_id`) or `POST /api/v1/emergencies/upload` (multipart with a `file`) answers 202 at
once with the id, the targeted receivers and the text as it is read out. `GET /{id}` shows each receiver's
progress and totals, `GET /{id}/events` streams it (Server-Sent Events), `POST /{id}/cancel` stops it
everywhere. Every route needs `emergency:trigger`; a commune-limited principal reaches, sees and cancels only
emergencies within its communes. The rules are `controller.services.emergencies`'; this module translates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Header, Request, UploadFile
from fastapi.security.utils import get_authorization_scheme_param
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlmodel import Session

from controller.policy import Principal
from controller.services import emergencies
from controller.services.accounts import principal_for_token
from controller.services.emergencies import (
    EmergenciesPublic,
    EmergencyCreate,
    EmergencyPublic,
    EmergencyTriggered,
    EmergencyUpload,
    Subscription,
)

from .bulletins import receive_upload
from .deps import EmergencyTrigger, PageDep, client_address
from .limits import UPLOAD

router = APIRouter(prefix="/emergencies", tags=["emergencies"])


@router.post("", status_code=202, response_model=EmergencyTriggered)
async def create_emergency(body: EmergencyCreate, ctx: EmergencyTrigger,
                           idempotency_key: Annotated[str | None, Header(max_length=100)] = None) -> EmergencyTriggered:
    return await emergencies.trigger(ctx, body, idempotency_key)


@router.post("/upload", status_code=202, response_model=EmergencyTriggered, dependencies=[Depends(UPLOAD)])
async def upload_emergency(ctx: EmergencyTrigger, file: Annotated[UploadFile, File()],
                           targets: Annotated[str, Form(description='JSON, e.g. {"communes": ["tra-kot"]}')],
                           title: Annotated[str | None, Form(max_length=200)] = None,
                           repeat: Annotated[int | None, Form(ge=1, le=10)] = None,
                           volume: Annotated[int | None, Form(ge=0, le=100)] = None,
                           expires_at: Annotated[dt.datetime | None, Form()] = None,
                           request_id: Annotated[str | None, Form(max_length=100)] = None) -> EmergencyTriggered:
    """An emergency from a recording (MP3, WAV, …), made broadcast-ready like a bulletin."""
    form = EmergencyUpload(targets=targets, title=title, filename=file.filename, repeat=repeat, volume=volume,
                           expires_at=expires_at, request_id=request_id)
    limit = int(ctx.settings.audio.max_upload_mb * 1e6)
    return await emergencies.trigger_upload(ctx, form, lambda directory: receive_upload(file, limit, directory))


@router.get("", response_model=EmergenciesPublic)
def list_emergencies(ctx: EmergencyTrigger, page: PageDep) -> EmergenciesPublic:
    """Newest first."""
    return emergencies.list_emergencies(ctx, page)


@router.get("/{eid}", response_model=EmergencyPublic)
def get_emergency(eid: str, ctx: EmergencyTrigger) -> EmergencyPublic:
    return emergencies.get_emergency(ctx, eid)


async def subscription(eid: str, ctx: EmergencyTrigger, request: Request) -> AsyncIterator[Subscription]:
    """Checked and subscribed before the stream starts, so a refusal is still an HTTP status. While it
    streams, the same bearer token is authenticated again at every batch and keepalive (a revoked or expired
    token, a disabled owner or a narrower role ends the stream). One token holds at most
    `http.streams_per_token` streams open at once (`limits.StreamSlots`): one more is 429."""
    _, token = get_authorization_scheme_param(request.headers.get("Authorization"))
    address = client_address(request)

    def reauthenticate(session: Session) -> Principal:
        return principal_for_token(session, token, address)

    release = request.app.state.streams.take(ctx.who.actor)
    try:
        sub = await emergencies.subscribe(ctx, eid, reauthenticate)
    except BaseException:
        release()
        raise
    try:
        yield sub
    finally:
        sub.close()
        release()


@router.get("/{eid}/events", response_class=EventSourceResponse,
            responses={200: {"description": "Server-sent events: snapshot, progress…, end",
                             "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
async def emergency_events(sub: Annotated[Subscription, Depends(subscription)]) -> AsyncIterator[ServerSentEvent]:
    """`snapshot` first (as GET), then `progress` events — the receivers that changed since the last one
    (`changes`: receiver, commune, status, reason) and the new `totals` — then `end`. If the token stops
    being valid, or may no longer see this emergency, `end` comes at once with a `reason`."""
    try:
        async for event in sub.events():
            if event.kind == "keepalive":
                yield ServerSentEvent(comment="still here")
            else:
                yield ServerSentEvent(event=event.kind, data=event.data)
    finally:
        sub.close()


@router.post("/{eid}/cancel", response_model=EmergencyPublic)
async def cancel_emergency(eid: str, ctx: EmergencyTrigger) -> EmergencyPublic:
    """Stop it on every receiver; answers its progress, every receiver `cancelled`."""
    return await emergencies.cancel_emergency(ctx, eid)
