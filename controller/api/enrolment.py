"""Enrolment over HTTP (`controller.services.receivers`): an admin makes a one-time code for a receiver; the
receiver, being installed, trades the code for its agent config.

    POST /api/v1/receivers/{rid}/enrolment   (admin, in the receiver's commune) → {receiver_id, code, expires_at}
    POST /api/v1/enrol  {"code"}             (public: the code is the credential) → the agent's config
    GET  /api/v1/signing-key                 the controller's key and fingerprint (the end of every code)
    POST /api/v1/signing-key/rotate {"grace_s"}  (district admin) a new key, announced to every receiver

Both are audited (`receiver.enrolment-code`, `receiver.enrol`), refusals included; the code itself is
never written anywhere but the answer. A rotation is audited as `signing-key.rotate`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from controller.db.enrolment import EnrolmentCodePublic
from controller.services import keys, receivers
from receivers.protocol.enrolment import EnrolAnswer, EnrolRequest

from .deps import Admin, ReceiversReader, SessionDep, client_address, public
from .limits import ENROL

router = APIRouter(tags=["enrolment"])


@router.post("/receivers/{rid}/enrolment", response_model=EnrolmentCodePublic, status_code=201)
def create_enrolment_code(rid: str, ctx: Admin) -> EnrolmentCodePublic:
    """Make a one-time enrolment code for receiver `rid`, valid for TT_ENROLMENT_TTL_H hours. Give it to
    whoever installs the receiver; it replaces any unused code made before for the same receiver."""
    return receivers.create_enrolment_code(ctx, rid)


@router.post("/enrol", response_model=EnrolAnswer,
             dependencies=[Depends(public("a receiver being installed, by its one-time enrolment code")),
                           Depends(ENROL)])
def enrol_receiver(body: EnrolRequest, session: SessionDep, request: Request) -> EnrolAnswer:
    """Trade a one-time enrolment code for the receiver's agent config: its id, commune, broker URL, a new
    broker password (the old one stops working), the topic base and the controller's public key."""
    state = request.app.state
    return receivers.enrol(session, state.engine, state.settings, state.signer.public_key, body.code,
                           client_address(request))


@router.get("/signing-key", response_model=keys.SigningKeyPublic)
def signing_key(ctx: ReceiversReader, request: Request) -> keys.SigningKeyPublic:
    """The key the controller signs commands and plans with, and its fingerprint (the last four groups of
    every enrolment code)."""
    return keys.signing_key(ctx, request.app.state.signer)


@router.post("/signing-key/rotate", response_model=keys.SigningKeyPublic)
async def rotate_signing_key(body: keys.RotateKeyRequest, ctx: Admin, request: Request) -> keys.SigningKeyPublic:
    """Change the controller's signing key: every receiver is told of the new key by a `rotate-key` command
    signed with the old one, and accepts the old one for `grace_s` more. A receiver away when it is sent is
    sent it again when it comes back online (after a controller restart or a later rotation too) for 7 days;
    away longer, it must be enrolled again. One rotation at a time: 409 while another is under way; 503 (and
    the key unchanged) when the broker cannot be reached."""
    answer = await keys.rotate_key(ctx, request.app.state.signer, body)
    request.app.state.public_key = answer.public_key
    return answer
