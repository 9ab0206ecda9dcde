"""Enrolment over HTTP: an admin makes a one-time code for a receiver; the receiver, being installed, trades
the code for its agent config.

    POST /api/v1/receivers/{rid}/enrolment   (scope admin)  → {receiver_id, code, expires_at}
    POST /api/v1/enrol  {"code"}             (no token: the code is the credential) → the agent's config

Both are audited (`receiver.enrolment-code`, `receiver.enrol`), refusals included; the code itself is
never written anywhere but the answer.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlmodel import Session

from controller.auth import Principal, audit, require
from controller.db.enrolment import EnrolmentCodePublic
from controller.db.models import Commune, Receiver
from controller.enrolment import BrokerFilesError, Refused, create_code, enrol
from receivers.protocol.enrolment import EnrolAnswer, EnrolRequest

from .deps import SessionDep

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["enrolment"])
IsAdmin = Annotated[Principal, Depends(require("admin"))]


@router.post("/receivers/{rid}/enrolment", response_model=EnrolmentCodePublic, status_code=201)
def create_enrolment_code(rid: str, session: SessionDep, who: IsAdmin, request: Request) -> EnrolmentCodePublic:
    """Make a one-time enrolment code for receiver `rid`, valid for TT_ENROLMENT_TTL_H hours. Give it to
    whoever installs the receiver; it replaces any unused code made before for the same receiver."""
    receiver = session.get(Receiver, rid)
    commune = session.get(Commune, receiver.commune_id) if receiver else None
    if receiver is None or commune is None or not who.may_see(commune.code):
        raise HTTPException(404, f"No receiver {rid!r}.")
    settings = request.app.state.settings
    code, expires_at = create_code(session, rid, who.actor, settings.enrolment_ttl_h)
    audit(request.app.state.engine, who.actor, "receiver.enrolment-code", "ok", target=rid,
          detail=f"valid until {expires_at:%Y-%m-%d %H:%M} UTC")
    return EnrolmentCodePublic(receiver_id=rid, code=code, expires_at=expires_at)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown address"


@router.post("/enrol", response_model=EnrolAnswer)
def enrol_receiver(body: EnrolRequest, session: SessionDep, request: Request) -> EnrolAnswer:
    """Trade a one-time enrolment code for the receiver's agent config: its id, commune, broker URL, a new
    broker password (the old one stops working), the topic base and the controller's public key."""
    engine, settings = request.app.state.engine, request.app.state.settings
    try:
        done = enrol(session, settings, request.app.state.public_key, body.code)
    except Refused as e:
        _release(session)
        audit(engine, "anonymous", "receiver.enrol", "refused", target=e.receiver_id,
              detail=f"{e}; from {_client(request)}")
        raise HTTPException(403, str(e)) from None
    except (BrokerFilesError, OSError, ValueError) as e:
        # Nothing was committed: the code still works once the operator has fixed the controller's setup.
        _release(session)
        log.error("enrolment failed: %s", e)
        audit(engine, "anonymous", "receiver.enrol", "failed", detail=f"{e}; from {_client(request)}")
        raise HTTPException(503, f"The controller cannot enrol receivers right now ({e}). The code was not "
                                 "used; tell the operator.") from None
    config = done.config
    audit(engine, f"enrolment-code:{done.created_by}", "receiver.enrol", "ok", target=config.receiver_id,
          detail="new MQTT password issued; from " + _client(request)
          + "".join(f"; warning: {w}" for w in config.warnings))
    return config


def _release(session: Session) -> None:
    """Roll back before auditing: SQLite would otherwise make the audit wait for this session's lock."""
    session.rollback()
