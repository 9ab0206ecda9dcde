"""Receivers (cụm loa): their live status, the commands staff send to one, and how a new one is enrolled.

- `list_receivers`, `get_receiver`, `update_receiver`: status rows (`ReceiverPublic`), limited to the
  principal's communes — a receiver elsewhere is left out of lists and answered as absent (`Hidden`).
- `set_volume`, `self_test`, `restart_agent`: one signed command to one receiver, answered by its
  acknowledgement (`CommandOutcome`); `command_one` is the shared path, also used by `plays.stop`. While an
  emergency plays (or is still to play) on the receiver (`Tracker.in_emergency`), each of the three would
  silence or cut it — a volume of 0, a tone over it, an agent restarting — so they need the emergency right
  then (`Forbidden` otherwise).
- `controlled_receiver`: the receiver a command may go to (receivers:control in its commune).
- `create_enrolment_code` (admin, in the receiver's commune), `enrol` (no principal: the one-time code is the
  credential) and `receiver_plan` (no principal: the receiver's own id and broker password; a verified pair is
  remembered for a few minutes, forgotten at once when the receiver is enrolled with a new password).
  Their refusals are not the access policy's: they are audited here, naming the receiver, and raised as
  `CredentialRefused` so the API's refusal handler does not write them twice.

Every command goes through the bridge port (`ctx.require_bridge()`); a broker that cannot be reached is
`Unavailable` (503) with nothing sent.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from controller.broker.passwords import verify_password
from controller.config import Settings
from controller.db.enrolment import EnrolmentCodePublic
from controller.db.models import Commune, Receiver, ReceiverPublic, ReceiversPublic, ReceiverStatus, Village
from controller.enrolment import BrokerFilesError, Refused, create_code
from controller.enrolment import enrol as use_code
from controller.errors import DomainError, Forbidden, NotFound, Unavailable
from controller.policy import Right, require, require_in
from controller.ports import CommandNotSent
from controller.provision import current_public_key
from receivers.protocol import Ack, Command, Plan, RestartAgent, SelfTest, SetVolume, Target
from receivers.protocol.enrolment import EnrolAnswer

from . import audit as audit_log
from .context import Ctx, Page

if TYPE_CHECKING:
    from controller.scheduling import Runner

log = logging.getLogger(__name__)
CLOCK_DRIFT_S = 2.0


class ReceiverUpdate(BaseModel):
    accepts_tests: bool | None = Field(default=None, description="plays CAP alerts of status Test / Exercise")


class VolumeRequest(BaseModel):
    volume: int = Field(ge=0, le=100, description="0 (silent) to 100 (maximum)")


class CommandOutcome(BaseModel):
    outcome: Literal["applied", "rejected", "no_answer"]
    reason: str | None = None
    command_id: str
    receiver: ReceiverPublic


class CredentialRefused(DomainError):
    """A receiver's own credential (an enrolment code) did not work. Already audited, with the receiver."""

    status = 403


class ReceiverUnauthenticated(CredentialRefused):
    """A receiver's id and broker password did not match. Already audited, with the receiver."""

    status = 401


# ------------------------------------------------------------------------------------------- status


def _query() -> Any:
    return (select(Receiver, Commune, Village, ReceiverStatus)
            .join(Commune, Commune.id == Receiver.commune_id)  # type: ignore[arg-type]
            .join(Village, Village.id == Receiver.village_id, isouter=True)  # type: ignore[arg-type]
            .join(ReceiverStatus, ReceiverStatus.receiver_id == Receiver.id, isouter=True))  # type: ignore[arg-type]


def _public(r: Receiver, c: Commune, v: Village | None, s: ReceiverStatus | None) -> ReceiverPublic:
    offset = (s.telemetry or {}).get("clock_offset_s_seen") if s else None
    return ReceiverPublic(
        id=r.id, name=r.name, commune=c.code, commune_name=c.name,
        village=v.code if v else None, village_name=v.name if v else None,
        availability=s.availability if s else "unknown", last_seen=s.last_seen if s else None,
        volume=s.volume if s else None,
        state={"amplifier": s.amplifier if s else None,
               "playing": s.playing if s else None,
               "activity": ("playing" if s and s.playing else "idle"),
               "at": s.state_at if s else None},
        telemetry=s.telemetry if s else None,
        clock_offset_s=offset,
        clock_drift=offset is not None and abs(offset) > CLOCK_DRIFT_S,
        accepts_tests=r.accepts_tests,
    )


def _row(ctx: Ctx, rid: str) -> Any:
    row = ctx.session.exec(_query().where(Receiver.id == rid)).first()
    if row is None:
        raise NotFound(f"No receiver {rid!r}.")
    return row


def _receiver(ctx: Ctx, rid: str, right: Right, action: str) -> ReceiverPublic:
    """The receiver `rid` if `ctx.who` holds `right` in its commune; `NotFound` / `Hidden` (both 404) else."""
    row = _row(ctx, rid)
    require_in(ctx.who, right, row[1].code, action, f"receiver {rid!r}", change=right != Right.RECEIVERS_READ)
    return _public(*row)


def controlled_receiver(ctx: Ctx, rid: str, action: str) -> ReceiverPublic:
    return _receiver(ctx, rid, Right.RECEIVERS_CONTROL, action)


def list_receivers(ctx: Ctx, page: Page, *, commune: str | None = None, village: str | None = None,
                   status: Literal["online", "offline"] | None = None) -> ReceiversPublic:
    require(ctx.who, Right.RECEIVERS_READ, "receiver.list")
    q = _query()
    if commune:
        q = q.where(Commune.code == commune)
    if village:
        q = q.where(Village.code == village)
    if ctx.who.communes is not None:
        q = q.where(col(Commune.code).in_(ctx.who.communes))
    if status == "online":
        q = q.where(ReceiverStatus.availability == "online")
    elif status == "offline":
        q = q.where(or_(col(ReceiverStatus.availability).is_(None), col(ReceiverStatus.availability) != "online"))
    count = ctx.session.exec(select(func.count()).select_from(q.subquery())).one()
    rows = ctx.session.exec(page.apply(q.order_by(col(Commune.id), col(Receiver.id)))).all()
    return ReceiversPublic(data=[_public(*r) for r in rows], count=count)


def get_receiver(ctx: Ctx, rid: str) -> ReceiverPublic:
    return _receiver(ctx, rid, Right.RECEIVERS_READ, "receiver.read")


def update_receiver(ctx: Ctx, rid: str, body: ReceiverUpdate) -> ReceiverPublic:
    controlled_receiver(ctx, rid, "receiver.update")
    receiver = ctx.session.get(Receiver, rid)
    assert receiver is not None
    if body.accepts_tests is not None:
        receiver.accepts_tests = body.accepts_tests
    ctx.session.add(receiver)
    ctx.session.commit()
    ctx.audit("receiver.update", target=rid,
              detail=", ".join(f"{k}={v}" for k, v in body.model_dump(exclude_none=True).items()))
    return _public(*_row(ctx, rid))


# ----------------------------------------------------------------------------------------- commands


async def set_volume(ctx: Ctx, rid: str, body: VolumeRequest) -> CommandOutcome:
    """A signed `set-volume`, answered (within TT_COMMAND_TIMEOUT_S) by the receiver's acknowledgement."""
    controlled_receiver(ctx, rid, "receiver.volume")  # 404 for an unknown id before it is made a target
    command = SetVolume.new(Target.receiver(rid), ctx.settings.command_ttl_s, volume=body.volume)
    return await command_one(ctx, rid, command, "receiver.volume", detail=f"volume={body.volume}",
                             during_emergency="changing its volume")


async def self_test(ctx: Ctx, rid: str) -> CommandOutcome:
    controlled_receiver(ctx, rid, "receiver.self-test")
    command = SelfTest.new(Target.receiver(rid), ctx.settings.command_ttl_s)
    return await command_one(ctx, rid, command, "receiver.self-test", timeout=ctx.settings.command_timeout_s + 5,
                             during_emergency="a self-test (a tone over it)")


async def restart_agent(ctx: Ctx, rid: str) -> CommandOutcome:
    controlled_receiver(ctx, rid, "receiver.restart-agent")
    command = RestartAgent.new(Target.receiver(rid), ctx.settings.command_ttl_s)
    return await command_one(ctx, rid, command, "receiver.restart-agent",
                             during_emergency="restarting its agent (which cuts it)")


def refuse_during_emergency(ctx: Ctx, rid: str, action: str, what: str) -> None:
    """`Forbidden` if an emergency plays (or is still to play) on receiver `rid` and `ctx.who` lacks the
    emergency right: `what` (a volume change, a self-test, a restart) would silence or cut it."""
    if ctx.tracker is not None and ctx.tracker.in_emergency(rid) and not ctx.who.has(Right.EMERGENCY):
        raise Forbidden(f"Receiver {rid!r} is playing an emergency; {what} now needs the '{Right.EMERGENCY}' "
                        "right.", who=ctx.who, action=action)


async def command_one(ctx: Ctx, rid: str, command: Command, action: str, *, detail: str = "",
                      timeout: float | None = None, only_online: bool = True,
                      during_emergency: str | None = None) -> CommandOutcome:
    """Send `command` to receiver `rid` (receivers:control in its commune) and wait for its answer. With
    `only_online`, a receiver not online is not sent anything (`no_answer`, saying why). With
    `during_emergency` (what the command does, for the refusal), an emergency playing there needs the emergency
    right as well (`refuse_during_emergency`)."""
    receiver = controlled_receiver(ctx, rid, action)
    if during_emergency is not None:
        refuse_during_emergency(ctx, rid, action, during_emergency)
    bridge = ctx.require_bridge()
    wait = timeout or ctx.settings.command_timeout_s
    outcome: str
    reason: str | None
    if only_online and receiver.availability != "online":
        outcome, reason = "no_answer", f"receiver is {receiver.availability}; command not sent"
    else:
        ack = await request(ctx, command, wait, action, rid)
        if ack is None:
            outcome, reason = "no_answer", f"no acknowledgement within {wait:g} s"
        else:
            outcome, reason = ack.status, ack.reason
        await bridge.flush()
    ctx.audit(action, outcome, target=rid, detail="; ".join(x for x in (detail, reason) if x) or None)
    ctx.session.expire_all()  # the receiver as it answered (its status was flushed above)
    return CommandOutcome(outcome=outcome, reason=reason, command_id=str(command.command_id),  # type: ignore[arg-type]
                          receiver=_public(*_row(ctx, rid)))


async def request(ctx: Ctx, command: Command, wait: float, action: str, rid: str) -> Ack | None:
    """`bridge.request` of `command` to receiver `rid` (receivers:control in its commune, checked again here:
    callers check first, with their own refusals), with a broker that cannot be reached (`CommandNotSent`)
    made `Unavailable` (audited as failed)."""
    if command.target != Target.receiver(rid):
        raise ValueError(f"command for {command.target}, not for receiver {rid!r}")
    controlled_receiver(ctx, rid, action)
    try:
        return await ctx.require_bridge().request(command, ctx.who.actor, wait)
    except CommandNotSent as e:
        ctx.audit(action, "failed", target=rid, detail=f"broker: {e}")
        raise Unavailable(f"The controller cannot reach the MQTT broker ({e}); nothing was sent.") from None


# ---------------------------------------------------------------------------------------- enrolment


def create_enrolment_code(ctx: Ctx, rid: str) -> EnrolmentCodePublic:
    """A one-time code for receiver `rid`, valid for TT_ENROLMENT_TTL_H hours; it replaces any unused one.

    Policy: `admin` in the receiver's commune. The issue suggests receivers:control; admin is what the route
    needed before and is the stricter of the two (an enrolled box gets a new broker password), so it stays."""
    _receiver(ctx, rid, Right.ADMIN, "receiver.enrolment-code")
    # The code ends with the fingerprint of the key the controller signs with: the agent checks it.
    code, expires_at = create_code(ctx.session, rid, ctx.who.actor, ctx.settings.enrolment_ttl_h,
                                   current_public_key(ctx.settings))
    ctx.audit("receiver.enrolment-code", target=rid, detail=f"valid until {expires_at:%Y-%m-%d %H:%M} UTC")
    return EnrolmentCodePublic(receiver_id=rid, code=code, expires_at=expires_at)


def enrol(session: Session, engine: Engine, settings: Settings, public_key: str, code: str,
          address: str | None) -> EnrolAnswer:
    """Trade a one-time code for the receiver's agent config (a new broker password included). A code that
    does not work is `CredentialRefused` (403); a controller that cannot write the broker's files is
    `Unavailable` (503) with the code left unused. Both audited as `receiver.enrol`, from `address`."""
    where = f"from {address or 'unknown address'}"
    try:
        done = use_code(session, settings, public_key, code)
    except Refused as e:
        session.rollback()  # before auditing: SQLite would otherwise make the audit wait for this session's lock
        audit_log.record(engine, "anonymous", "receiver.enrol", "refused", target=e.receiver_id,
                         detail=f"{e}; {where}", address=address)
        raise CredentialRefused(str(e)) from None
    except (BrokerFilesError, OSError, ValueError) as e:
        # Nothing was committed: the code still works once the operator has fixed the controller's setup.
        session.rollback()
        log.error("enrolment failed: %s", e)
        audit_log.record(engine, "anonymous", "receiver.enrol", "failed", detail=f"{e}; {where}", address=address)
        raise Unavailable(f"The controller cannot enrol receivers right now ({e}). The code was not used; tell "
                          "the operator.") from None
    config = done.config
    forget_verified(config.receiver_id)  # the old password must not fetch the plan any more
    audit_log.record(engine, f"enrolment-code:{done.created_by}", "receiver.enrol", "ok", target=config.receiver_id,
                     detail=f"new MQTT password issued; {where}" + "".join(f"; warning: {w}" for w in config.warnings),
                     address=address)
    return config


REMEMBER_S = 300.0
# (receiver id, sha256 of password) → (the stored hash it was verified against, verified at (monotonic))
_verified: dict[tuple[str, str], tuple[str, float]] = {}


def forget_verified(rid: str) -> None:
    """Forget every remembered password of receiver `rid` (it has just been given a new one)."""
    for key in [k for k in _verified if k[0] == rid]:
        _verified.pop(key, None)


def check_receiver_credentials(engine: Engine, rid: str, username: str | None, password: str | None,
                               address: str | None = None) -> None:
    """Receiver `rid` itself, by its id and broker password (HTTP Basic), or `ReceiverUnauthenticated` (401,
    audited as `plan.fetch`). A good pair is remembered for a few minutes, so a fleet polling together costs
    one PBKDF2 each — but only while the receiver's stored password is the one it was verified against:
    a new password (enrolment here, forgotten at once; `provision` from the command line) ends it."""

    def refuse(message: str) -> ReceiverUnauthenticated:
        audit_log.record(engine, f"receiver:{username if username is not None else 'anonymous'}", "plan.fetch",
                         "refused", target=rid, detail=message, address=address)
        return ReceiverUnauthenticated(message, headers={"WWW-Authenticate": 'Basic realm="receivers"'})

    if username is None or password is None:
        raise refuse("A receiver fetches its plan with its own id and password (HTTP Basic).")
    if not secrets.compare_digest(username, rid):
        raise refuse("A receiver may fetch only its own plan.")
    with Session(engine) as s:
        row = s.get(Receiver, rid)
        stored = row.mqtt_password_hash if row else None
    if stored is None:
        raise refuse("Wrong receiver id or password.")
    key = (rid, hashlib.sha256(password.encode()).hexdigest())
    remembered = _verified.get(key)
    if remembered is not None and remembered[0] == stored and time.monotonic() - remembered[1] < REMEMBER_S:
        return
    if not verify_password(password, stored):
        raise refuse("Wrong receiver id or password.")
    _verified[key] = (stored, time.monotonic())


def receiver_plan(engine: Engine, runner: Runner | None, rid: str, username: str | None, password: str | None,
                  address: str | None = None) -> tuple[Plan, bytes]:
    """Receiver `rid`'s current plan and its signed form, for the receiver itself; `NotFound` before the runner
    has one."""
    check_receiver_credentials(engine, rid, username, password, address)
    signed = runner.signed_plan(rid) if runner is not None else None
    if signed is None:
        raise NotFound(f"No plan for receiver {rid!r} yet.")
    runner.note_fetched(rid, signed[0].version)  # type: ignore[union-attr]  # signed implies a runner
    return signed
