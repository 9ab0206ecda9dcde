"""Every message on the wire, as pydantic models with a `kind` discriminator.

Receiver → controller: `Availability`, `ReceiverState`, `Telemetry`, `Ack` (`ReceiverMessage` is their union).
Controller → receivers: commands, each a `Command` subclass (`Ping`, `SetVolume`); `AnyCommand` is their
union and `COMMAND_KINDS` lists their names, which are also the last topic level of `…/cmd/{name}`.
Controller → all: `ControllerAvailability`.

`parse_receiver_message` and `parse_command` turn bytes into a model or raise `ProtocolError` with a
reason fit for a log line; they never raise anything else on bad input.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1


class ProtocolError(ValueError):
    """A payload that is not a valid message; the text says why."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()


# ------------------------------------------------------------------------------ receiver → controller

Availability_ = Literal["online", "offline", "stopped"]


class Availability(Message):
    """Retained. `offline` is the agent's last will; `stopped` is a clean shutdown."""

    kind: Literal["availability"] = "availability"
    status: Availability_
    at: AwareDatetime | None = None  # absent in the last will, which is composed at connect time
    agent_version: str | None = None
    # The agent publishes something at least this often while online; the controller declares it offline
    # after 1.5 × this much silence, as the broker would, without waiting for the broker's keepalive sweep.
    keepalive_s: int | None = None


class ReceiverState(Message):
    """Retained: what the receiver is doing now."""

    kind: Literal["state"] = "state"
    at: AwareDatetime
    volume: int = Field(ge=0, le=100)
    amplifier: Literal["on", "off"]
    playing: str | None = None  # item id while playing, None when idle


class Telemetry(Message):
    """Periodic health snapshot."""

    kind: Literal["telemetry"] = "telemetry"
    at: AwareDatetime
    uptime_s: float
    temperature_c: float | None = None
    signal_dbm: float | None = None
    clock_offset_ms: float | None = None
    disk_free_mb: float | None = None


class Ack(Message):
    """The outcome of one command: `applied`, or `rejected` with a reason."""

    kind: Literal["ack"] = "ack"
    command_id: uuid.UUID | None  # None when the command was too broken to read its id
    command: str | None
    status: Literal["applied", "rejected"]
    reason: str | None = None
    at: AwareDatetime


ReceiverMessage = Annotated[Availability | ReceiverState | Telemetry | Ack, Field(discriminator="kind")]
_receiver_adapter: TypeAdapter[Availability | ReceiverState | Telemetry | Ack] = TypeAdapter(ReceiverMessage)

LEAF_KIND = {"availability": "availability", "state": "state", "telemetry": "telemetry", "ack": "ack"}


def parse_receiver_message(payload: bytes, leaf: str) -> Availability | ReceiverState | Telemetry | Ack:
    """Parse a receiver message published on topic leaf `leaf`; its kind must match the leaf."""
    msg = _validate(_receiver_adapter, payload)
    if LEAF_KIND.get(leaf) != msg.kind:
        raise ProtocolError(f"a {msg.kind!r} message on the {leaf!r} topic")
    return msg


# ------------------------------------------------------------------------------ controller → receivers


class ControllerAvailability(Message):
    kind: Literal["controller-availability"] = "controller-availability"
    status: Literal["online", "offline"]
    at: AwareDatetime | None = None


class Command(Message):
    """Fields every command carries. `target` names who it is for — `receiver:{id}`, `commune:{code}` or
    `all` — and is signed with the rest, so a command cannot be re-routed to another receiver."""

    command_id: uuid.UUID
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    target: str

    @classmethod
    def new(cls, target: str, ttl_s: float, now: dt.datetime | None = None, **fields: Any) -> Any:
        issued = now or utcnow()
        return cls(command_id=uuid.uuid4(), issued_at=issued,
                   expires_at=issued + dt.timedelta(seconds=ttl_s), target=target, **fields)


class Ping(Command):
    """Answered with an `applied` ack; measures reachability and round-trip time."""

    kind: Literal["ping"] = "ping"


class SetVolume(Command):
    kind: Literal["set-volume"] = "set-volume"
    volume: int = Field(ge=0, le=100)


AnyCommand = Annotated[Ping | SetVolume, Field(discriminator="kind")]
_command_adapter: TypeAdapter[Ping | SetVolume] = TypeAdapter(AnyCommand)
COMMAND_KINDS: tuple[str, ...] = ("ping", "set-volume")


def parse_command(body: bytes) -> Ping | SetVolume:
    return _validate(_command_adapter, body)


def _validate(adapter: TypeAdapter[Any], payload: bytes) -> Any:
    try:
        return adapter.validate_json(payload)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "payload"
        raise ProtocolError(f"invalid message: {where}: {first.get('msg')}") from None
