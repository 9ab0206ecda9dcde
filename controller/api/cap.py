"""`POST /api/v1/cap`: a Common Alerting Protocol 1.2 alert (XML) from a disaster-warning system becomes an
emergency announcement, updates the one it references (cancel it, send the new one) or cancels it. The rules
are `controller.services.cap`'s; see docs/CAP.md."""

from __future__ import annotations

from fastapi import APIRouter, Request

from controller.services import cap
from controller.services.cap import CapAnswer

from .deps import EmergencyTrigger

router = APIRouter(tags=["emergencies"])


@router.post("/cap", status_code=202, response_model=CapAnswer, openapi_extra={
    "requestBody": {"content": {"application/cap+xml": {"schema": {"type": "string"}},
                                "application/xml": {"schema": {"type": "string"}}}, "required": True}})
async def receive_cap(request: Request, ctx: EmergencyTrigger) -> CapAnswer:
    return await cap.receive_alert(ctx, await request.body())
