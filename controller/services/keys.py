"""The controller's signing key, as staff see and change it.

- `signing_key`: the key the controller signs with now and its fingerprint (the last four groups of every
  enrolment code; an installer can compare).
- `rotate_key`: a new key, announced to every receiver by a `rotate-key` command signed with the old one;
  receivers accept the old key for the grace given, no longer (`controller.provision.rotate_signing_key`).
  Policy: `admin` over the whole district (every receiver of the district trusts this one key). Audited as
  `signing-key.rotate`.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from controller.errors import Unavailable
from controller.policy import Right, require, require_district
from controller.ports import CommandNotSent
from controller.provision import rotate_signing_key
from receivers.protocol import Signer
from receivers.protocol.enrolment import key_fingerprint

from .context import Ctx

MAX_GRACE_H = 24 * 30


class SigningKeyPublic(BaseModel):
    public_key: str = Field(description="base64 of the raw Ed25519 public key")
    fingerprint: str = Field(description="80 bits of its SHA-256, in Crockford's base32; ends every enrolment code")
    previous_until: dt.datetime | None = Field(default=None, description="after a rotation: receivers accept the "
                                               "previous key until then")
    command_id: str | None = Field(default=None, description="after a rotation: the rotate-key command sent")


class RotateKeyRequest(BaseModel):
    grace_s: float = Field(default=24 * 3600.0, ge=0, le=MAX_GRACE_H * 3600,
                           description="how long receivers still accept the old key (commands on their way)")


def signing_key(ctx: Ctx, signer: Signer) -> SigningKeyPublic:
    require(ctx.who, Right.RECEIVERS_READ, "signing-key.read")
    return SigningKeyPublic(public_key=signer.public_key, fingerprint=key_fingerprint(signer.public_key))


async def rotate_key(ctx: Ctx, signer: Signer, request: RotateKeyRequest) -> SigningKeyPublic:
    require_district(ctx.who, Right.ADMIN, "signing-key.rotate")
    port = ctx.require_bridge()
    old = key_fingerprint(signer.public_key)
    try:
        command = await rotate_signing_key(ctx.settings, signer, port, dt.timedelta(seconds=request.grace_s),
                                           ctx.who.actor)
    except CommandNotSent as e:
        ctx.audit("signing-key.rotate", "failed", target=old, detail=f"broker: {e}")
        raise Unavailable(f"The controller cannot reach the MQTT broker ({e}); the key was not changed.") from None
    new = key_fingerprint(command.public_key)
    ctx.audit("signing-key.rotate", target=new, detail=f"replaces {old}, accepted by receivers until "
                                                      f"{command.old_key_until:%Y-%m-%d %H:%M} UTC")
    return SigningKeyPublic(public_key=command.public_key, fingerprint=new, previous_until=command.old_key_until,
                            command_id=str(command.command_id))
