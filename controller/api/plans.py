"""`GET /api/v1/receivers/{id}/plan`: a receiver fetches its own plan, with its own credentials.

HTTP Basic with the receiver's id and its MQTT password (checked against the stored `$7$` hash by
`controller.services.receivers.receiver_plan`; refusals are 401, audited as `plan.fetch`). The answer is the
plan signed like a command (`{v, body, sig}`), with `ETag: "<version>"`; `If-None-Match` with the current
version answers 304 without a body, which is what most polls get over a paid link.

Failed attempts are counted (`controller.throttle.FailedAttempts`, `app.state.plan_failures`) per receiver id and client
address (`http.plan_failures`) and per address (`http.plan_failures_per_address`) over
`http.plan_window_min`: past either, 429 with `Retry-After`, the password not even checked (each check is a
PBKDF2, so guessing also costs the server). Keyed by address too, a guesser elsewhere cannot lock a receiver
out of its own plan.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from controller.errors import RateLimited
from controller.services import audit
from controller.services.receivers import ReceiverUnauthenticated, receiver_plan
from controller.throttle import FailedAttempts

from .deps import client_address, public

router = APIRouter(prefix="/receivers", tags=["plans"])
_basic = HTTPBasic(auto_error=False, description="the receiver's own id and MQTT password")


SIGNED_PLAN = {"description": "the plan signed like a command: `{v, body, sig}` (docs/PROTOCOL.md)",
               "content": {"application/json": {"schema": {
                   "type": "object", "required": ["v", "body", "sig"],
                   "properties": {"v": {"type": "integer"}, "body": {"type": "string"}, "sig": {"type": "string"}}}}}}


@router.get("/{rid}/plan", responses={200: SIGNED_PLAN, 304: {"description": "unchanged"}},
            dependencies=[Depends(public("a receiver, by its own id and broker password (HTTP Basic)"))])
def get_plan(rid: str, request: Request, creds: Annotated[HTTPBasicCredentials | None, Depends(_basic)]) -> Response:
    address = client_address(request)
    failures: FailedAttempts = request.app.state.plan_failures
    keys = [f"rx:{rid}@{address or '?'}", f"addr:{address or '?'}"]
    wait = failures.wait_s(keys)
    if wait > 0:
        audit.record(request.app.state.engine, f"receiver:{creds.username[:64] if creds else 'anonymous'}",
                     "plan.fetch", "rate-limited", target=rid, address=address)
        raise RateLimited(f"Too many failed plan fetches: try again in {int(wait) + 1} s.",
                          headers={"Retry-After": str(int(wait) + 1)})
    try:
        plan, body = receiver_plan(request.app.state.engine, request.app.state.runner, rid,
                                   creds.username if creds else None, creds.password if creds else None, address)
    except ReceiverUnauthenticated:
        failures.failed(keys)
        raise
    failures.succeeded(keys[:1])
    etag = f'"{plan.version}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag, "Cache-Control": "no-store"})
