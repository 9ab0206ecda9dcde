"""`/api/v1/receivers`: live status of every loudspeaker cluster, and the commands staff send to one
(`controller.services.receivers`; play and stop are in `controller.api.plays`)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from controller.db.models import ReceiverPublic, ReceiversPublic
from controller.services import receivers
from controller.services.receivers import CommandOutcome, ReceiverUpdate, VolumeRequest

from .deps import PageDep, ReceiversController, ReceiversReader

router = APIRouter(prefix="/receivers", tags=["receivers"])


@router.get("", response_model=ReceiversPublic)
def list_receivers(ctx: ReceiversReader, page: PageDep, commune: str | None = None, village: str | None = None,
                   status: Literal["online", "offline"] | None = None) -> ReceiversPublic:
    return receivers.list_receivers(ctx, page, commune=commune, village=village, status=status)


@router.get("/{rid}", response_model=ReceiverPublic)
def get_receiver(rid: str, ctx: ReceiversReader) -> ReceiverPublic:
    return receivers.get_receiver(ctx, rid)


@router.patch("/{rid}", response_model=ReceiverPublic)
def update_receiver(rid: str, body: ReceiverUpdate, ctx: ReceiversController) -> ReceiverPublic:
    return receivers.update_receiver(ctx, rid, body)


@router.post("/{rid}/volume", response_model=CommandOutcome)
async def set_volume(rid: str, body: VolumeRequest, ctx: ReceiversController) -> CommandOutcome:
    """Send a signed `set-volume` and wait (bounded by TT_COMMAND_TIMEOUT_S) for the receiver's answer. While an
    emergency plays on the receiver this needs the emergency right too (as do self-test and restart)."""
    return await receivers.set_volume(ctx, rid, body)


@router.post("/{rid}/self-test", response_model=CommandOutcome)
async def self_test(rid: str, ctx: ReceiversController) -> CommandOutcome:
    """Ask the receiver to play a short quiet tone and check its amplifier and audio output."""
    return await receivers.self_test(ctx, rid)


@router.post("/{rid}/restart", response_model=CommandOutcome)
async def restart_agent(rid: str, ctx: ReceiversController) -> CommandOutcome:
    """Restart the receiver's agent (it acknowledges first, then comes back online by itself)."""
    return await receivers.restart_agent(ctx, rid)
