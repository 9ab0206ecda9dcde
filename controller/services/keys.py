"""The controller's signing key, as staff see and change it.

- `signing_key`: the key the controller signs with now and its fingerprint (the last four groups of every
  enrolment code; an installer can compare).
- `rotate_key`: a new key, announced to every receiver by a `rotate-key` command signed with the old one;
  receivers accept the old key for the grace given, no longer (`controller.provision.rotate_signing_key`).
  Policy: `admin` over the whole district (every receiver of the district trusts this one key). Audited as
  `signing-key.rotate`.
  One rotation at a time: a second request while one is under way is refused (`Conflict`).
- `Resends` (`resends`, made at startup from `keys/rotations/`): every unexpired rotation, oldest first, sent
  again to each receiver that comes online without having applied it, until it expires (7 days): a receiver
  away when it was sent, whose broker session was lost, still learns the new key — after a controller restart
  or a later rotation too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import weakref

from pydantic import BaseModel, Field

from controller.config import Settings
from controller.errors import Conflict, Unavailable
from controller.policy import Right, require, require_district
from controller.ports import CommandNotSent, CommandPort
from controller.provision import Rotation, load_rotations, rotate_signing_key
from receivers.protocol import Ack, Signer, Target, utcnow
from receivers.protocol.enrolment import key_fingerprint

from .context import Ctx

log = logging.getLogger(__name__)
MAX_GRACE_H = 24 * 30


class Resends:
    """The unexpired rotations (oldest first), sent again — in order, each after the previous one — to each
    receiver that says it is online and has not applied them, until they expire. Only an `applied` ack
    counts; a receiver that applied a later rotation has, in effect, applied the earlier ones too (it would
    refuse them now, signed with a key it retired). A new rotation is added; earlier ones keep being sent."""

    def __init__(self, port: CommandPort, rotations: list[Rotation]) -> None:
        self.port = port
        self.rotations = list(rotations)
        self.applied: dict[str, set[str]] = {r.command_id: set() for r in rotations}
        self._sends: set[asyncio.Task[None]] = set()
        self.lock = asyncio.Lock()  # one rotation at a time
        port.ack_watchers.append(self.on_ack)
        port.availability_watchers.append(self.on_availability)

    def add(self, rotation: Rotation) -> None:
        self.rotations.append(rotation)
        self.applied[rotation.command_id] = set()

    def on_ack(self, rid: str, ack: Ack) -> None:
        if ack.status != "applied":
            return
        ids = [r.command_id for r in self.rotations]
        if str(ack.command_id) in ids:
            for cid in ids[:ids.index(str(ack.command_id)) + 1]:
                self.applied[cid].add(rid)

    def missed(self, rid: str) -> list[Rotation]:
        now = utcnow()
        for r in [r for r in self.rotations if r.expires_at <= now]:
            self.rotations.remove(r)
            self.applied.pop(r.command_id, None)
            r.path.unlink(missing_ok=True)
        return [r for r in self.rotations if rid not in self.applied[r.command_id]]

    def on_availability(self, rid: str, status: str) -> None:
        if status != "online":
            return
        missed = self.missed(rid)
        if not missed:
            return
        task = asyncio.get_running_loop().create_task(self._send(rid, missed))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, rid: str, rotations: list[Rotation]) -> None:
        for rotation in rotations:
            try:
                await self.port.republish(Target.receiver(rid), "rotate-key", rotation.payload)
            except CommandNotSent as e:
                log.warning("key rotation %s: could not send it again to %s: %s", rotation.command_id, rid, e)
                return


# The rotations each command port (one per controller process) sends again.
_resends: weakref.WeakKeyDictionary[CommandPort, Resends] = weakref.WeakKeyDictionary()


def resends(settings: Settings, port: CommandPort, public_key: str) -> Resends:
    """The port's re-sender, made at first use from the rotations on disk (call it at startup)."""
    found = _resends.get(port)
    if found is None:
        found = _resends[port] = Resends(port, load_rotations(settings, public_key))
    return found


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
    sender = resends(ctx.settings, port, signer.public_key)
    if sender.lock.locked():
        raise Conflict("Another key rotation is under way; try again when it has finished.")
    async with sender.lock:
        try:
            command, rotation = await rotate_signing_key(ctx.settings, signer, port,
                                                         dt.timedelta(seconds=request.grace_s), ctx.who.actor)
        except CommandNotSent as e:
            ctx.audit("signing-key.rotate", "failed", target=old, detail=f"broker: {e}")
            raise Unavailable(f"The controller cannot reach the MQTT broker ({e}); the key was not changed.") \
                from None
        sender.add(rotation)
    new = key_fingerprint(command.public_key)
    ctx.audit("signing-key.rotate", target=new, detail=f"replaces {old}, accepted by receivers until "
                                                      f"{command.old_key_until:%Y-%m-%d %H:%M} UTC")
    return SigningKeyPublic(public_key=command.public_key, fingerprint=new, previous_until=command.old_key_until,
                            command_id=str(command.command_id))
