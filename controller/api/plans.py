"""`GET /api/v1/receivers/{id}/plan`: a receiver fetches its own plan, with its own credentials.

HTTP Basic with the receiver's id and its MQTT password (checked against the stored `$7$` hash; a good
pair is remembered for a few minutes so a fleet polling together costs one PBKDF2 each). The answer is the
plan signed like a command (`{v, body, sig}`), with `ETag: "<version>"`; `If-None-Match` with the current
version answers 304 without a body, which is what most polls get over a paid link.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlmodel import Session

from controller.auth import audit
from controller.broker.passwords import verify_password
from controller.db.models import Receiver

router = APIRouter(prefix="/receivers", tags=["plans"])
_basic = HTTPBasic(auto_error=False)
REMEMBER_S = 300.0
_verified: dict[tuple[str, str], float] = {}  # (receiver id, sha256 of password) → verified at (monotonic)


def _receiver(request: Request, rid: str, creds: HTTPBasicCredentials | None) -> None:
    def refuse(message: str) -> HTTPException:
        audit(request.app.state.engine, f"receiver:{creds.username if creds else 'anonymous'}", "plan.fetch",
              "refused", target=rid, detail=message)
        return HTTPException(401, message, headers={"WWW-Authenticate": 'Basic realm="receivers"'})

    if creds is None:
        raise refuse("A receiver fetches its plan with its own id and password (HTTP Basic).")
    if not secrets.compare_digest(creds.username, rid):
        raise refuse("A receiver may fetch only its own plan.")
    key = (rid, hashlib.sha256(creds.password.encode()).hexdigest())
    if time.monotonic() - _verified.get(key, -REMEMBER_S) < REMEMBER_S:
        return
    with Session(request.app.state.engine) as s:
        row = s.get(Receiver, rid)
        stored = row.mqtt_password_hash if row else None
    if stored is None or not verify_password(creds.password, stored):
        raise refuse("Wrong receiver id or password.")
    _verified[key] = time.monotonic()


@router.get("/{rid}/plan", responses={200: {"description": "the signed plan"}, 304: {"description": "unchanged"}})
def receiver_plan(rid: str, request: Request,
                 creds: Annotated[HTTPBasicCredentials | None, Depends(_basic)]) -> Response:
    _receiver(request, rid, creds)
    runner = request.app.state.runner
    signed = runner.signed_plan(rid) if runner is not None else None
    if signed is None:
        raise HTTPException(404, f"No plan for receiver {rid!r} yet.")
    plan, body = signed
    etag = f'"{plan.version}"'
    runner.note_fetched(rid, plan.version)
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag, "Cache-Control": "no-store"})
