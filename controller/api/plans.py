"""`GET /api/v1/receivers/{id}/plan`: a receiver fetches its own plan, with its own credentials.

HTTP Basic with the receiver's id and its MQTT password (checked against the stored `$7$` hash by
`controller.services.receivers.receiver_plan`; refusals are 401, audited as `plan.fetch`). The answer is the
plan signed like a command (`{v, body, sig}`), with `ETag: "<version>"`; `If-None-Match` with the current
version answers 304 without a body, which is what most polls get over a paid link.

Failed attempts are counted (`controller.throttle.FailedAttempts`, `app.state.plan_failures`) per receiver id and client
address (`http.plan_failures`) and per address (`http.plan_failures_per_address`) over
`http.plan_window_min`: past either, 429 with `Retry-After`, the password not even checked (each check is a
PBKDF2, so guessing also costs the server). Keyed by address too, a guesser elsewhere cannot lock a receiver
out of its own plan. The per-address count takes only failures for ids that are no receiver's, and for a
receiver that already failed from that address; it applies to those alone. Receivers behind one carrier NAT
share an address: one with no failures of its own is never locked out by the others' (or a guesser's).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlalchemy import Engine
from sqlmodel import Session

from controller.db.models import Receiver
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
    engine = request.app.state.engine
    failures: FailedAttempts = request.app.state.plan_failures
    own, shared = f"rx:{rid}@{address or '?'}", f"addr:{address or '?'}"
    had_failed = failures.recent(own) > 0
    # The address limit stops a spray of made-up ids and a receiver already being guessed; receivers behind one
    # carrier NAT share an address, so one with no failures of its own is never locked out by the others'.
    wait = failures.wait_s([own])
    if wait <= 0 and (shared_wait := failures.wait_s([shared])) > 0 and (had_failed or not _known(engine, rid)):
        wait = shared_wait
    if wait > 0:
        audit.record(engine, f"receiver:{creds.username[:64] if creds else 'anonymous'}",
                     "plan.fetch", "rate-limited", target=rid, address=address)
        raise RateLimited(f"Too many failed plan fetches: try again in {int(wait) + 1} s.",
                          headers={"Retry-After": str(int(wait) + 1)})
    try:
        plan, body = receiver_plan(engine, request.app.state.runner, rid,
                                   creds.username if creds else None, creds.password if creds else None, address)
    except ReceiverUnauthenticated:
        failures.failed([own, shared] if had_failed or not _known(engine, rid) else [own])
        raise
    failures.succeeded([own])
    etag = f'"{plan.version}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag, "Cache-Control": "no-store"})


def _known(engine: Engine, rid: str) -> bool:
    with Session(engine) as s:
        return s.get(Receiver, rid) is not None
