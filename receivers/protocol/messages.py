"""Every message on the wire, as pydantic models with a `kind` discriminator.

Receiver → controller: `Availability`, `ReceiverState`, `Telemetry`, `Ack`, `PlayEvent` (proof of play);
`ReceiverMessage` is their union.
Controller → receivers: commands, each a `Command` subclass (`Ping`, `SetVolume`, `Play`, `Stop`,
`SelfTest`, `RestartAgent`, `SyncSchedule`, `RotateKey`); `AnyCommand` is their union and `COMMAND_KINDS` lists their
names, which are also the last topic level of `…/cmd/{name}`.
Controller → all: `ControllerAvailability`.
Controller → one agent over HTTP: `Plan`, the receiver's schedule for the next hours (signed like a command).

`parse_receiver_message` and `parse_command` turn bytes into a model or raise `ProtocolError` with a
reason fit for a log line; they never raise anything else on bad input.

Every text a receiver sends is bounded (`Text`: reasons 500 characters, ids 100): a message built by the
agent is cut to the bound (an ffmpeg error can be long), one parsed from the wire by the controller
(`parse_receiver_message`) that exceeds it is refused, so one receiver account cannot fill the database.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from .target import Target, TargetField

# The version of the report protocol (docs/PROTOCOL.md, "Versions"). Each side says which it speaks: the
# controller in its retained availability, an agent in its "online". Version 2: a play command is answered by
# its proof-of-play events (`PlayEvent.outcome`, `PlayEvent.answers`) instead of separate step acks, which an
# agent sends only when the start is delayed. An agent uses version 2 only with a controller that says it
# speaks it; a controller hears version-1 agents as before.
PROTOCOL_VERSION = 2


class ProtocolError(ValueError):
    """A payload that is not a valid message; the text says why."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


MAX_REASON = 500  # characters of a reason (ack, proof of play) a receiver may send
MAX_ID = 100  # characters of an item id or a command name


def _bounded(limit: int) -> BeforeValidator:
    def check(value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and len(value) > limit:
            if info.context and info.context.get("wire"):
                raise ValueError(f"longer than {limit} characters ({len(value)})")
            return value[:limit - 1] + "…"
        return value
    return BeforeValidator(check)


Reason = Annotated[str, _bounded(MAX_REASON)]
Ident = Annotated[str, _bounded(MAX_ID)]
# A count a receiver reports: stored in 64-bit columns, so larger is refused (it failed the controller's batch).
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]


def _in_utc(value: dt.datetime) -> dt.datetime:
    try:
        value.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00, 9999-12-31T23:59-14:00
        raise ValueError("not a moment in UTC's calendar") from None
    return value


# When a receiver says something happened: any time zone, but a moment that exists in UTC (the controller
# stores it so; one that does not failed its batch).
Moment = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class Message(BaseModel):
    # No NaN or Infinity (Python's JSON reads them, JSON has none): a NaN stored as NULL in a NOT NULL column
    # failed the controller's whole batch of reports, every receiver's, again at each retry.
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()


# ------------------------------------------------------------------------------ receiver → controller

Availability_ = Literal["online", "offline", "stopped"]


class Availability(Message):
    """Retained. `offline` is the agent's last will; `stopped` is a clean shutdown."""

    kind: Literal["availability"] = "availability"
    status: Availability_
    at: Moment | None = None  # absent in the last will, which is composed at connect time
    agent_version: Ident | None = None
    # The agent publishes something at least this often while online; the controller declares it offline
    # after 1.5 × this much silence, as the broker would, without waiting for the broker's keepalive sweep.
    keepalive_s: Count | None = None
    # A random id per agent process: two processes answering for one receiver (a cloned SD card, stolen
    # credentials) show as online availabilities alternating between two ids.
    instance: str | None = Field(default=None, max_length=64)
    # The highest command `seq` the agent has received per stream ("receiver:{id}", "commune:{code}", "all"),
    # in its "online": the controller compares them with what it sent and resynchronises a receiver behind.
    last_seq: dict[str, Count] | None = Field(default=None, max_length=3)
    # The report protocol the agent speaks (`PROTOCOL_VERSION`); absent: version 1.
    protocol: Count | None = None


class ReceiverState(Message):
    """Retained: what the receiver is doing now."""

    kind: Literal["state"] = "state"
    at: Moment
    volume: int = Field(ge=0, le=100)
    amplifier: Literal["on", "off"]
    playing: Ident | None = None  # item id while playing, None when idle


class Telemetry(Message):
    """Periodic health snapshot."""

    kind: Literal["telemetry"] = "telemetry"
    at: Moment
    uptime_s: float
    temperature_c: float | None = None
    signal_dbm: float | None = None
    clock_offset_ms: float | None = None
    disk_free_mb: float | None = None


AckStatus = Literal["applied", "rejected", "received", "fetched", "playing", "done", "failed"]
PLAY_STEPS: tuple[str, ...] = ("received", "fetched", "playing", "done")


class Ack(Message):
    """The outcome of one command: `applied`, or `rejected` with a reason. A `play` command is acknowledged
    at each step instead — `received`, `fetched`, `playing`, `done` — or `failed` with a reason."""

    kind: Literal["ack"] = "ack"
    command_id: uuid.UUID | None  # None when the command was too broken to read its id
    command: Ident | None
    status: AckStatus
    reason: Reason | None = None
    item_id: Ident | None = None
    at: Moment


PlayEventKind = Literal["started", "finished", "cut", "failed", "missed"]


class PlayEvent(Message):
    """Proof of play. Written to the receiver's outbox before it is published and deleted only once the
    broker has it, so none is lost; `event_id` lets the controller count a re-sent one once."""

    kind: Literal["play-event"] = "play-event"
    event_id: uuid.UUID
    seq: Count = Field(description="per-receiver order of events")
    event: PlayEventKind
    at: Moment
    item_id: Ident
    command_id: uuid.UUID | None = None
    priority: Literal["emergency", "priority", "normal"] = "normal"
    media_sha256: Ident | None = None
    position_s: float = 0.0  # where in the item (for `cut`: where it was cut)
    repeat_index: Count = 0
    volume: int | None = Field(default=None, ge=0, le=100)
    reason: Reason | None = None
    # Protocol 2: the play command's step or outcome this event also reports — `playing` on `started`,
    # `done` on `finished`, `failed` on a final `cut`, `failed` or `missed` — in place of an `Ack`. None for
    # the items of the receiver's own plan, and for a cut the item resumes from.
    outcome: Literal["playing", "done", "failed"] | None = None
    # Protocol 2: the id of the `stop` command that caused this event, answered by it (`applied`) in place
    # of an `Ack`.
    answers: uuid.UUID | None = None


ReceiverMessage = Annotated[Availability | ReceiverState | Telemetry | Ack | PlayEvent, Field(discriminator="kind")]
_receiver_adapter: TypeAdapter[Availability | ReceiverState | Telemetry | Ack | PlayEvent] = TypeAdapter(
    ReceiverMessage)

LEAF_KIND = {"availability": "availability", "state": "state", "telemetry": "telemetry", "ack": "ack",
             "event": "play-event"}


def parse_receiver_message(payload: bytes, leaf: str) -> Availability | ReceiverState | Telemetry | Ack | PlayEvent:
    """Parse a receiver message published on topic leaf `leaf`; its kind must match the leaf."""
    msg = _validate(_receiver_adapter, payload, wire=True)
    if LEAF_KIND.get(leaf) != msg.kind:
        raise ProtocolError(f"a {msg.kind!r} message on the {leaf!r} topic")
    return msg


# ------------------------------------------------------------------------------ controller → receivers


class ControllerAvailability(Message):
    kind: Literal["controller-availability"] = "controller-availability"
    status: Literal["online", "offline"]
    at: AwareDatetime | None = None
    # The report protocol the controller speaks (`PROTOCOL_VERSION`); absent: version 1.
    protocol: int | None = None


class Command(Message):
    """Fields every command carries. `target` names who it is for — `receiver:{id}`, `commune:{code}` or
    `all` — and is signed with the rest, so a command cannot be re-routed to another receiver."""

    command_id: uuid.UUID
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    target: TargetField
    # The command's number in its stream (its target), counted by the controller: a receiver that reports
    # a lower last number than the controller's has missed commands (see `Availability.last_seq`).
    seq: int | None = Field(default=None, ge=1)

    @classmethod
    def new(cls, target: Target, ttl_s: float, now: dt.datetime | None = None, **fields: Any) -> Any:
        issued = now or utcnow()
        return cls(command_id=uuid.uuid4(), issued_at=issued,
                   expires_at=issued + dt.timedelta(seconds=ttl_s), target=target, **fields)


class Ping(Command):
    """Answered with an `applied` ack; measures reachability and round-trip time."""

    kind: Literal["ping"] = "ping"


class SetVolume(Command):
    kind: Literal["set-volume"] = "set-volume"
    volume: int = Field(ge=0, le=100)


Priority = Literal["emergency", "priority", "normal"]
PRIORITY_RANK: dict[str, int] = {"emergency": 3, "priority": 2, "normal": 1}
INLINE_AUDIO_MAX = 256 * 1024  # bytes of MP3 that may travel inside a command


class MediaRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    url: str = Field(description="absolute, or relative to the agent's controller_url")
    size: int = Field(ge=1)


class Play(Command):
    """Play one item: audio by reference (fetched over HTTP, verified) or inline (base64, short audio)."""

    kind: Literal["play"] = "play"
    item_id: str = Field(min_length=1, max_length=100)
    priority: Priority = "normal"
    media: MediaRef | None = None
    inline_audio: str | None = Field(default=None, max_length=INLINE_AUDIO_MAX * 4 // 3 + 4)
    inline_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    volume: int | None = Field(default=None, ge=0, le=100)
    repeat: int = Field(default=1, ge=1, le=20)
    gap_s: float = Field(default=0.0, ge=0, le=300)
    start_at: AwareDatetime | None = None  # None: now
    resume: bool = False  # after being cut by a higher class, play on from where it was cut
    title: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _audio(self) -> Play:
        if (self.media is None) == (self.inline_audio is None):
            raise ValueError("give exactly one of media or inline_audio")
        if self.inline_audio is not None and self.inline_sha256 is None:
            raise ValueError("inline_audio needs inline_sha256")
        return self


class Stop(Command):
    """Stop one item, everything of one class, or everything (neither given)."""

    kind: Literal["stop"] = "stop"
    item_id: str | None = None
    priority: Priority | None = None


class SelfTest(Command):
    """Play a short quiet tone, check the amplifier and audio output, report in the ack's reason."""

    kind: Literal["self-test"] = "self-test"


class RestartAgent(Command):
    kind: Literal["restart-agent"] = "restart-agent"


class SyncSchedule(Command):
    """The receiver's plan changed: fetch it now (`GET /api/v1/receivers/{id}/plan`). `version` is the plan
    the controller holds; an agent that already has it acknowledges without fetching."""

    kind: Literal["sync-schedule"] = "sync-schedule"
    version: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class RotateKey(Command):
    """The controller signs with a new key: trust `public_key` from now on, and the key that signed this
    command only until `old_key_until` (the grace: commands already on their way still work). Accepted only
    when signed with a key in full trust (not one in its grace), and kept on the receiver's disk."""

    kind: Literal["rotate-key"] = "rotate-key"
    public_key: str = Field(pattern=r"^[A-Za-z0-9+/]{43}=$", description="base64 of the raw Ed25519 key")
    valid_from: AwareDatetime = Field(description="when the controller started signing with it")
    old_key_until: AwareDatetime = Field(description="the end of the old key's grace")


AnyCommandT = Ping | SetVolume | Play | Stop | SelfTest | RestartAgent | SyncSchedule | RotateKey
AnyCommand = Annotated[AnyCommandT, Field(discriminator="kind")]
_command_adapter: TypeAdapter[AnyCommandT] = TypeAdapter(AnyCommand)
COMMAND_KINDS: tuple[str, ...] = ("ping", "set-volume", "play", "stop", "self-test", "restart-agent",
                                  "sync-schedule", "rotate-key")


# ------------------------------------------------------------------------------------- the plan


class PlanEntry(BaseModel):
    """One item to play at an absolute time. `item_id` names this occurrence of this item of this programme
    and changes whenever anything about it changes (time, audio), so an agent can tell old from new."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    item_id: str = Field(min_length=1, max_length=100)
    programme_id: int
    title: str | None = Field(default=None, max_length=200)
    priority: Priority = "normal"
    start_at: AwareDatetime
    duration_s: float = Field(ge=0)
    media: MediaRef


class Plan(Message):
    """A receiver's plan for a window of time (default 48 h), compiled by the controller. `version` is the
    SHA-256 of its entries: equal versions mean equal plans. Delivered over HTTP in the same signed envelope
    as commands; the agent keeps it on disk and plays from it while its link is down."""

    kind: Literal["plan"] = "plan"
    receiver_id: str
    version: str = Field(pattern=r"^[0-9a-f]{64}$")
    generated_at: AwareDatetime
    window_start: AwareDatetime
    window_end: AwareDatetime
    entries: list[PlanEntry]


def parse_command(body: bytes) -> AnyCommandT:
    return _validate(_command_adapter, body)


def _validate(adapter: TypeAdapter[Any], payload: bytes, *, wire: bool = False) -> Any:
    try:
        return adapter.validate_json(payload, context={"wire": True} if wire else None)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "payload"
        raise ProtocolError(log_line(f"invalid message: {where}: {first.get('msg')}")) from None


def log_line(text: str, limit: int = 300) -> str:
    """`text` fit for one log line: pydantic's messages quote the input, so a payload could otherwise write
    lines of its own into the log (or megabytes into one)."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit + 1])
    return text if len(text) <= limit else text[:limit - 1] + "…"
