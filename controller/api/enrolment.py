"""Enrolment over HTTP (`controller.services.receivers`): an admin makes a one-time code for a receiver; the
receiver, being installed, trades the code for its agent config.

    POST /api/v1/receivers/{rid}/enrolment   (admin, in the receiver's commune) → {receiver_id, code, expires_at}
    POST /api/v1/enrol  {"code"}             (public: the code is the credential) → the agent's config

Both are audited (`receiver.enrolment-code`, `receiver.enrol`), refusals included; the code itself is
never written anywhere but the answer.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from controller.db.enrolment import EnrolmentCodePublic
from controller.services import receivers
from receivers.protocol.enrolment import EnrolAnswer, EnrolRequest

from .deps import Admin, SessionDep, client_address, public

router = APIRouter(tags=["enrolment"])


@router.post("/receivers/{rid}/enrolment", response_model=EnrolmentCodePublic, status_code=201)
def create_enrolment_code(rid: str, ctx: Admin) -> EnrolmentCodePublic:
    """Make a one-time enrolment code for receiver `rid`, valid for TT_ENROLMENT_TTL_H hours. Give it to
    whoever installs the receiver; it replaces any unused code made before for the same receiver."""
    return receivers.create_enrolment_code(ctx, rid)


@router.post("/enrol", response_model=EnrolAnswer,
             dependencies=[Depends(public("a receiver being installed, by its one-time enrolment code"))])
def enrol_receiver(body: EnrolRequest, session: SessionDep, request: Request) -> EnrolAnswer:
    """Trade a one-time enrolment code for the receiver's agent config: its id, commune, broker URL, a new
    broker password (the old one stops working), the topic base and the controller's public key."""
    state = request.app.state
    return receivers.enrol(session, state.engine, state.settings, state.public_key, body.code,
                           client_address(request))
