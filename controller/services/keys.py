"""The controller's signing key, as staff see and change it.

- `signing_key`: the key the controller signs with now and its fingerprint (the last four groups of every
  enrolment code; an installer can compare).
- `rotate_key`: a new key, announced to every receiver by a `rotate-key` command signed with the old one;
  receivers accept the old key for the grace given, no longer (`controller.provision.rotate_signing_key`).
  Policy: `admin` over the whole district (every receiver of the district trusts this one key). Audited as
  `signing-key.rotate`.
- `Announcement`: the rotation sent again to each receiver that comes online without having applied it,
  until the command expires (7 days): a receiver away when it was sent, whose broker session was lost, still
  learns the new key. Held in memory: a controller restarted meanwhile no longer sends it again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import weakref

from pydantic import BaseModel, Field

from controller.errors import Unavailable
from controller.policy import Right, require, require_district
from controller.ports import CommandNotSent, CommandPort
from controller.provision import rotate_signing_key
from receivers.protocol import Ack, RotateKey, Signer, Target, utcnow
from receivers.protocol.enrolment import key_fingerprint

from .context import Ctx

log = logging.getLogger(__name__)
MAX_GRACE_H = 24 * 30


class Announcement:
    """Sends `payload` (the signed `command`) again to each receiver that says it is online and has not
    applied it yet, until it expires. A receiver that had applied it answers `replayed`, which counts too."""

    def __init__(self, port: CommandPort, command: RotateKey, payload: bytes) -> None:
        self.port, self.command, self.payload = port, command, payload
        self.applied: set[str] = set()
        self._sends: set[asyncio.Task[None]] = set()
        port.ack_watchers.append(self.on_ack)
        port.availability_watchers.append(self.on_availability)

    def on_ack(self, rid: str, ack: Ack) -> None:
        if ack.command_id == self.command.command_id and (
                ack.status == "applied" or (ack.reason or "").startswith("replayed")):
            self.applied.add(rid)

    def on_availability(self, rid: str, status: str) -> None:
        if status != "online" or rid in self.applied:
            return
        if utcnow() >= self.command.expires_at:
            self.close()
            return
        task = asyncio.get_running_loop().create_task(self._send(rid))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, rid: str) -> None:
        try:
            await self.port.republish(Target.receiver(rid), "rotate-key", self.payload)
        except CommandNotSent as e:
            log.warning("key rotation: could not send it again to %s: %s", rid, e)

    def close(self) -> None:
        for watchers, watcher in ((self.port.ack_watchers, self.on_ack),
                                  (self.port.availability_watchers, self.on_availability)):
            if watcher in watchers:
                watchers.remove(watcher)  # type: ignore[arg-type]


# The latest rotation of each command port (one per controller process).
_announcements: weakref.WeakKeyDictionary[CommandPort, Announcement] = weakref.WeakKeyDictionary()


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
        command, payload = await rotate_signing_key(ctx.settings, signer, port,
                                                    dt.timedelta(seconds=request.grace_s), ctx.who.actor)
    except CommandNotSent as e:
        ctx.audit("signing-key.rotate", "failed", target=old, detail=f"broker: {e}")
        raise Unavailable(f"The controller cannot reach the MQTT broker ({e}); the key was not changed.") from None
    previous = _announcements.pop(port, None)
    if previous is not None:
        previous.close()
    _announcements[port] = Announcement(port, command, payload)
    new = key_fingerprint(command.public_key)
    ctx.audit("signing-key.rotate", target=new, detail=f"replaces {old}, accepted by receivers until "
                                                      f"{command.old_key_until:%Y-%m-%d %H:%M} UTC")
    return SigningKeyPublic(public_key=command.public_key, fingerprint=new, previous_until=command.old_key_until,
                            command_id=str(command.command_id))
