"""Plays (`controller.services.plays`): `POST /api/v1/receivers/{id}/play` and `…/stop`, and the proof of
play — what each loudspeaker actually played, as its receiver reported it:
`GET /api/v1/plays?commune=&receiver=&event=&from=&to=` and `GET /api/v1/receivers/{id}/plays`; times in
ISO 8601 with an offset (`from`/`to` without one are read as Asia/Ho_Chi_Minh, as staff type them).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from controller.db.models import PlaysPublic
from controller.services import plays
from controller.services.plays import PlayRequest, PlaySent, StopRequest
from controller.services.receivers import CommandOutcome

from .deps import PageDep, ReceiversController, ReceiversReader

router = APIRouter(tags=["plays"])
From = Annotated[dt.datetime | None, Query(alias="from")]


@router.post("/receivers/{rid}/play", response_model=PlaySent, status_code=202)
async def play_now(rid: str, body: PlayRequest, ctx: ReceiversController) -> PlaySent:
    """Send a stored, approved bulletin or announcement to one receiver; answers once the receiver has it
    (progress and proof of play follow as acks and `GET /api/v1/receivers/{id}/plays`). Emergency priority
    needs the `emergency:trigger` right."""
    return await plays.play(ctx, rid, body)


@router.post("/receivers/{rid}/stop", response_model=CommandOutcome)
async def stop_playing(rid: str, body: StopRequest, ctx: ReceiversController) -> CommandOutcome:
    """Stop one item, one class, or (neither given) everything on a receiver. Stopping the emergency class,
    an emergency's item or everything needs the `emergency:trigger` right too."""
    return await plays.stop(ctx, rid, body)


@router.get("/plays", response_model=PlaysPublic)
def list_plays(ctx: ReceiversReader, page: PageDep, commune: str | None = None, receiver: str | None = None,
               event: Literal["started", "finished", "cut", "failed", "missed"] | None = None,
               from_: From = None, to: dt.datetime | None = None) -> PlaysPublic:
    return plays.list_plays(ctx, page, commune=commune, receiver=receiver, event=event, start=from_, end=to)


@router.get("/receivers/{rid}/plays", response_model=PlaysPublic)
def receiver_plays(rid: str, ctx: ReceiversReader, page: PageDep, from_: From = None,
                   to: dt.datetime | None = None) -> PlaysPublic:
    return plays.receiver_plays(ctx, page, rid, start=from_, end=to)
