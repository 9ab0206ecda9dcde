"""The controller's MQTT bridge: signs and publishes commands, ingests what receivers report.

`BridgeBase` is the part that does not depend on the transport — command records, ingest of receiver
reports into the database, listeners, request/answer matching. `Bridge` adds the MQTT session;
`controller.bridge_memory.InMemoryBridge` delivers in memory instead (tests without a broker). Both
implement `controller.ports.CommandPort`.

Ingest is two-stage so that a thousand receivers reporting at once cost one database transaction, not a
thousand: `on_message` validates each message and folds it into `_pending` (latest value per receiver and
field) on the event loop; `_flush_loop` writes the batch every `status_flush_s` in a worker thread.
Acknowledgements also resolve the waiter of the request that sent the command (`request`).

Bad input (unknown topic, malformed JSON, unknown kind, a kind on the wrong topic, an unknown receiver) is
logged and counted in `rejected`, and ingest goes on.

Commands are numbered per stream (`controller.stream_watch`); a receiver back online behind those numbers is
resynchronised (`resync`), and one answered for by two agent processes is flagged as cloned.

Every change of a receiver's availability (online / offline / stopped) is also written as a
`ReceiverStatusEvent` — its status history — in the same transaction as the status rows: the flush already
reads the availability it is about to change, so the history costs one more bulk INSERT per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import aiomqtt
import sqlalchemy.exc
from sqlalchemy import bindparam, func, insert, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from controller.config import Settings
from controller.db.models import CommandRecord, PlayRecord, Receiver, ReceiverStatus, ReceiverStatusEvent
from receivers.protocol import (
    PROTOCOL_VERSION,
    Ack,
    Availability,
    Command,
    ControllerAvailability,
    PlayEvent,
    ProtocolError,
    ReceiverState,
    Signer,
    SyncSchedule,
    Target,
    Telemetry,
    Topics,
    parse_receiver_message,
    utcnow,
)
from receivers.transport import Link

from .ports import AckListener, AvailabilityListener, CommandNotSent, EventListener
from .stream_watch import StreamWatch

log = logging.getLogger(__name__)
FINAL_ACKS = ("applied", "rejected", "done", "failed")  # a command's outcome; play steps are progress
STATE_CLOCK_SLACK = dt.timedelta(seconds=5)  # see `BridgeBase._newer_state`
SILENCE_CHECK_S = 0.5  # how often the liveness check runs: its verdicts may come this much late
ReceiverReport: TypeAlias = Availability | ReceiverState | Telemetry | Ack | PlayEvent


class BrokerUnreachable(CommandNotSent, aiomqtt.MqttError):
    """Not connected to the broker: nothing was sent. Catch `CommandNotSent` (the port's error); being an
    `aiomqtt.MqttError` too keeps callers that catch that working."""


@dataclass
class _Pending:
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)  # rid -> column -> value
    acks: list[tuple[str, Ack]] = field(default_factory=list)
    commands: list[CommandRecord] = field(default_factory=list)
    plays: list[dict[str, Any]] = field(default_factory=list)

    def update(self, rid: str, **values: Any) -> None:
        self.fields.setdefault(rid, {}).update(values)

    def __bool__(self) -> bool:
        return bool(self.fields or self.acks or self.commands or self.plays)


class BridgeBase:
    """A `CommandPort` without its transport. A subclass delivers signed payloads (`_publish`), says whether
    it can (`connected`), and hands every valid report of a known receiver to `_accept`."""

    def __init__(self, settings: Settings, engine: Engine, signer: Signer) -> None:
        self.settings = settings
        self.engine = engine
        self.signer = signer
        self.topics = Topics(settings.mqtt_base)
        self.rejected = 0
        self.ingested = 0
        self._pending = _Pending()
        self._watchers: dict[str, list[AckListener]] = {}
        self._event_watchers: list[EventListener] = []
        # Long-lived listeners (the emergency tracker): every ack, and every availability report.
        self.ack_watchers: list[AckListener] = []
        self.availability_watchers: list[AvailabilityListener] = []
        self._known: set[str] = set()
        # Per receiver, the time and item of the latest state known (a `state` report, or protocol 2's proof
        # of play): an older report — a retained state replayed on subscribing — does not overwrite it.
        self._state: dict[str, tuple[dt.datetime, str | None]] = {}
        self.protocols: dict[str, int] = {}  # receiver → the report protocol its last "online" named
        self._tasks: list[asyncio.Task[None]] = []
        self._flush_lock = asyncio.Lock()
        self.streams = StreamWatch(settings, engine)
        self.streams.gap_listeners.append(self.resync)

    @property
    def connected(self) -> bool:
        raise NotImplementedError

    async def _publish(self, target: Target, kind: str, payload: bytes) -> None:
        """Deliver a signed payload to `target`; raise `CommandNotSent` when it cannot be."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._known = await asyncio.to_thread(self._load_known)
        self._state = await asyncio.to_thread(self._load_states)
        await asyncio.to_thread(self.streams.load)
        self._tasks.append(asyncio.create_task(self._flush_loop()))

    async def stop(self) -> None:
        await self.streams.stop()
        await self.flush()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def _load_known(self) -> set[str]:
        with Session(self.engine) as s:
            return set(s.exec(select(Receiver.id)))

    def _load_states(self) -> dict[str, tuple[dt.datetime, str | None]]:
        with Session(self.engine) as s:
            states = s.exec(select(ReceiverStatus.receiver_id, ReceiverStatus.state_at, ReceiverStatus.playing)
                            .where(col(ReceiverStatus.state_at).is_not(None))).all()
        latest = utcnow() + STATE_CLOCK_SLACK
        return {rid: (min(_aware(at), latest), playing) for rid, at, playing in states if at is not None}

    def _newer_state(self, rid: str, at: dt.datetime, playing: str | None) -> bool:
        """Record `playing` as of `at` for `rid` unless a later state is known; whether it was. `at` is the
        receiver's clock: one ahead of ours counts as now (a clock set back later, or a forged far-future
        time, must not freeze what the controller shows)."""
        at = min(at, utcnow() + STATE_CLOCK_SLACK)
        known = self._state.get(rid)
        if known is not None and known[0] > at:
            return False
        self._state[rid] = (at, playing)
        return True

    # ------------------------------------------------------------------------------------- ingest

    def _accept(self, rid: str, msg: ReceiverReport, *, retain: bool = False) -> None:
        """Fold one valid report of a known receiver into the pending batch, and tell the listeners."""
        now = utcnow()
        self.ingested += 1
        p = self._pending
        if not retain or (isinstance(msg, Availability) and msg.status == "online"):
            # A retained message replayed on (re)subscribing is old news, not a sign of life — except a
            # retained "online": the broker replaces it with the last will the moment the session dies,
            # so it vouches that the receiver is connected now.
            p.update(rid, last_seen=now)
        match msg:
            case Availability(status=status):
                p.update(rid, availability=status, availability_at=msg.at or now)
                if status == "online":
                    self.streams.on_online(rid, msg, retain=retain)
                    self._check_protocol(rid, msg.protocol or 1, retain)
                    if not retain:  # the agent publishes its whole state next: that is the one to believe
                        self._state.pop(rid, None)
                for availability_watcher in self.availability_watchers:
                    availability_watcher(rid, status)
                if msg.agent_version:
                    p.update(rid, agent_version=msg.agent_version)
                if msg.keepalive_s:
                    p.update(rid, keepalive_s=msg.keepalive_s)
            case ReceiverState():
                if self._newer_state(rid, msg.at, msg.playing):
                    p.update(rid, volume=msg.volume, amplifier=msg.amplifier, playing=msg.playing, state_at=msg.at)
            case Telemetry():
                telemetry = msg.model_dump(mode="json", exclude={"kind"})
                if not retain:
                    # How far the receiver's clock is from ours (transport takes milliseconds): receivers play
                    # by their own clocks, so a drifting one is flagged to staff.
                    telemetry["clock_offset_s_seen"] = round((msg.at - now).total_seconds(), 3)
                p.update(rid, telemetry=telemetry, telemetry_at=msg.at)
            case Ack():
                self._ack(rid, msg)
            case PlayEvent():
                p.plays.append({"event_id": str(msg.event_id), "receiver_id": rid, "seq": msg.seq,
                                "event": msg.event, "at": msg.at, "item_id": msg.item_id,
                                "command_id": str(msg.command_id) if msg.command_id else None,
                                "priority": msg.priority, "media_sha256": msg.media_sha256,
                                "position_s": msg.position_s, "repeat_index": msg.repeat_index,
                                "volume": msg.volume, "reason": msg.reason, "received_at": now})
                for event_watcher in self._event_watchers:
                    event_watcher(rid, msg)
                if msg.outcome is not None or msg.answers is not None:
                    self._answered_by(rid, msg)

    def _ack(self, rid: str, msg: Ack) -> None:
        self._pending.acks.append((rid, msg))
        self.streams.on_ack(rid, msg)
        for watcher in self._watchers.get(str(msg.command_id), ()):
            watcher(rid, msg)
        for ack_watcher in self.ack_watchers:
            ack_watcher(rid, msg)

    def _answered_by(self, rid: str, event: PlayEvent) -> None:
        """Protocol 2: a proof-of-play event stands for the acks it replaces — its play command's step or
        outcome, the stop that caused it — and for the state it implies (what plays, the amplifier on)."""
        if event.outcome is not None and event.command_id is not None:
            reason = event.reason
            if event.event == "cut" and reason is not None:
                reason = f"cut at {event.position_s:.1f} s: {reason}"
            # `model_construct`: every field comes from the event, validated already.
            self._ack(rid, Ack.model_construct(command_id=event.command_id, command="play", status=event.outcome,
                                               reason=reason, item_id=event.item_id, at=event.at))
            known = self._state.get(rid)
            if event.outcome == "playing":
                if self._newer_state(rid, event.at, event.item_id):
                    self._pending.update(rid, playing=event.item_id, amplifier="on", state_at=event.at)
            elif known is not None and known[1] == event.item_id and self._newer_state(rid, event.at, None):
                self._pending.update(rid, playing=None, state_at=event.at)
        if event.answers is not None:
            self._ack(rid, Ack.model_construct(command_id=event.answers, command="stop", status="applied", reason=None,
                                               item_id=event.item_id, at=event.at))

    def _check_protocol(self, rid: str, protocol: int, retain: bool) -> None:
        if self.protocols.get(rid) != protocol and protocol > PROTOCOL_VERSION and not retain:
            log.warning("bridge: receiver %s speaks report protocol %d, newer than this controller's %d: upgrade "
                        "the controller", rid, protocol, PROTOCOL_VERSION)
        self.protocols[rid] = protocol

    async def _flush_loop(self) -> None:
        next_check = 0.0
        while True:
            await asyncio.sleep(self.settings.status_flush_s)
            try:
                await self.flush()
                if self.settings.liveness.silence_rule and time.monotonic() >= next_check:
                    next_check = time.monotonic() + SILENCE_CHECK_S
                    await asyncio.to_thread(self._mark_silent_offline)
            except Exception:
                log.exception("bridge: status flush failed; will retry")

    async def flush(self) -> None:
        """Write everything ingested so far. Await it to read your own writes (e.g. after an ack)."""
        async with self._flush_lock:
            batch, self._pending = self._pending, _Pending()
            if batch:
                try:
                    await asyncio.to_thread(self._write, batch)
                except Exception as e:
                    if not _transient(e):
                        # Something in the batch the database refuses: write it receiver by receiver, so
                        # one receiver's report cannot hold back everybody's at every retry.
                        batch = await asyncio.to_thread(self._write_apart, batch)
                        if not batch:
                            return
                    self._requeue(batch)
                    raise

    def _requeue(self, batch: _Pending) -> None:
        """Keep what could not be written; newer values for the same field win on merge."""
        for rid, values in batch.fields.items():
            self._pending.fields[rid] = {**values, **self._pending.fields.get(rid, {})}
        self._pending.acks[:0] = batch.acks
        self._pending.commands[:0] = batch.commands
        self._pending.plays[:0] = batch.plays

    def _write_apart(self, batch: _Pending) -> _Pending:
        """Write `batch` in parts: the controller's own command records, then each receiver's reports. A part
        the database refuses is dropped, logged and counted in `rejected`; a transient failure (the database
        locked or gone) stops there. Returns what is left to write again later (empty when all is done)."""
        parts = [("the controller's command records", _Pending(commands=batch.commands))] if batch.commands else []
        rids = dict.fromkeys([*batch.fields, *(rid for rid, _ in batch.acks), *(p["receiver_id"] for p in batch.plays)])
        parts += [(f"receiver {rid}", _Pending(fields={rid: batch.fields[rid]} if rid in batch.fields else {},
                                              acks=[a for a in batch.acks if a[0] == rid],
                                              plays=[p for p in batch.plays if p["receiver_id"] == rid]))
                  for rid in rids]
        for i, (whose, part) in enumerate(parts):
            try:
                self._write(part)
            except Exception as e:
                if _transient(e):
                    left = _Pending()
                    for _, rest in parts[i:]:
                        left.fields.update(rest.fields)
                        left.acks += rest.acks
                        left.commands += rest.commands
                        left.plays += rest.plays
                    return left
                self.rejected += 1
                log.error("bridge: dropped what the database refused of %s: %s", whose, str(e).splitlines()[0][:300])
        return _Pending()

    def _write(self, batch: _Pending) -> None:
        """One transaction, a handful of statements, whatever the batch's size: rows are read as plain
        columns and written with bulk INSERT/UPDATE, never one ORM object at a time."""
        with Session(self.engine) as s:
            for cmd in batch.commands:
                s.merge(cmd)
            if batch.fields:
                current: dict[str, str] = dict(s.exec(
                    select(ReceiverStatus.receiver_id, ReceiverStatus.availability)
                    .where(col(ReceiverStatus.receiver_id).in_(list(batch.fields)))).all())
                inserts: list[dict[str, Any]] = []
                updates: list[dict[str, Any]] = []
                changes: list[dict[str, Any]] = []
                for rid, values in batch.fields.items():
                    row = {"receiver_id": rid, **values}
                    if "availability" not in values and "last_seen" in values and current.get(rid) == "offline":
                        # Heard from after the silence check gave up on it: the link was slow, not down.
                        # (After a last will, a receiver is only heard from again once it said "online".)
                        row.update(availability="online", availability_at=values["last_seen"])
                    (updates if rid in current else inserts).append(row)
                    if "availability" in row and row["availability"] != current.get(rid):
                        changes.append({"receiver_id": rid, "availability": row["availability"],
                                        "at": row.get("availability_at") or utcnow()})
                if inserts:
                    s.exec(insert(ReceiverStatus), params=inserts)
                if updates:
                    update_statuses(s, updates)
                if changes:
                    s.exec(insert(ReceiverStatusEvent), params=changes)
            if batch.plays:
                # A receiver re-sends an event whose broker acknowledgement it did not see: count it once.
                s.exec(insert_ignoring_duplicates(self.engine, PlayRecord), params=batch.plays)
            answers: dict[str, tuple[str, Ack]] = {}
            for rid, ack in batch.acks:
                # A refused duplicate (QoS 1 redelivery) says nothing about the command's outcome.
                duplicate = ack.status == "rejected" and (ack.reason or "").startswith("replayed")
                if ack.command_id and ack.status in FINAL_ACKS and not duplicate:
                    answers.setdefault(str(ack.command_id), (rid, ack))  # the first answer wins
            if answers:
                for rec in s.exec(select(CommandRecord).where(col(CommandRecord.command_id).in_(list(answers)))):
                    rid, ack = answers[rec.command_id]
                    # The outcome of a one-receiver command; a late answer replaces "no_answer".
                    if rec.target == str(Target.receiver(rid)) and rec.outcome in (None, "no_answer"):
                        rec.outcome, rec.reason, rec.answered_at = ack.status, ack.reason, ack.at
                        s.add(rec)
            s.commit()

    def _mark_silent_offline(self) -> None:
        """Receivers silent for 1.5 × their declared keepalive are offline — the broker's own rule, applied
        here because brokers sweep keepalives coarsely (Mosquitto 2.0 every few seconds). A declared keepalive
        counts up to `liveness.max_keepalive_s` only: a receiver (or a stolen receiver's account) declaring an
        hour must not hide an outage. Works from the database, so every controller replica reaches the same
        verdict. Off with `TT_LIVENESS__SILENCE_RULE=false` (the broker's last will alone then decides)."""
        now = utcnow()
        cap = self.settings.liveness.max_keepalive_s
        online = (ReceiverStatus.availability == "online", col(ReceiverStatus.keepalive_s).is_not(None))
        with Session(self.engine) as s:
            # Only receivers silent longer than the shortest keepalive can be due: an aggregate, then those
            # few rows, rather than every online receiver twice a second.
            shortest = s.exec(select(func.min(ReceiverStatus.keepalive_s)).where(*online)).one()
            if shortest is None:
                return
            cutoff = now - dt.timedelta(seconds=1.5 * min(shortest, cap))
            rows = s.exec(select(ReceiverStatus.receiver_id, ReceiverStatus.last_seen, ReceiverStatus.keepalive_s)
                          .where(*online, or_(col(ReceiverStatus.last_seen).is_(None),
                                              col(ReceiverStatus.last_seen) < cutoff))).all()
            silent = [rid for rid, seen, keepalive in rows
                      if seen is None or now - seen > dt.timedelta(seconds=1.5 * min(keepalive or 0, cap))]
            if silent:
                s.exec(update(ReceiverStatus).where(col(ReceiverStatus.receiver_id).in_(silent))
                       .values(availability="offline", availability_at=now))
                s.exec(insert(ReceiverStatusEvent),
                       params=[{"receiver_id": rid, "availability": "offline", "at": now} for rid in silent])
                s.commit()
                log.info("bridge: silent for 1.5 × keepalive, now offline: %s", ", ".join(silent[:20]))

    # ----------------------------------------------------------------------------------- commands

    async def send(self, command: Command, issued_by: str) -> None:
        """Number, sign and publish (QoS 1, never retained), and record the command."""
        command = self.number(command)
        await self.publish_signed(command, self.signer.sign(command), issued_by)

    def number(self, command: Command) -> Any:
        """`command` with the next number of its stream, for a caller that signs it itself (`publish_signed`)."""
        return self.streams.number(command)

    async def resync(self, rid: str, missing: dict[str, int]) -> None:
        """Receiver `rid` came back behind (`missing`: stream → commands): have it fetch its plan now. The
        emergency tracker has already sent it again, on its "online", every emergency play or stop it lacks."""
        try:
            await self.send(SyncSchedule.new(Target.receiver(rid), self.settings.schedule.sync_ttl_s), "resync")
        except CommandNotSent as e:
            log.warning("bridge: could not resynchronise %s: %s", rid, e)

    async def publish_signed(self, command: Command, payload: bytes, issued_by: str) -> None:
        """Publish `payload`, the signed `command` (signed by the caller, who keeps it), and record it."""
        kind = command.kind  # type: ignore[attr-defined]
        self._pending.commands.append(CommandRecord(
            command_id=str(command.command_id), kind=kind, target=str(command.target), issued_at=command.issued_at,
            expires_at=command.expires_at, issued_by=issued_by))
        await self._publish(command.target, kind, payload)

    async def republish(self, target: Target, kind: str, payload: bytes) -> None:
        """Send an already sent and recorded signed payload again (to a receiver back online)."""
        await self._publish(target, kind, payload)

    @contextlib.contextmanager
    def watch(self, command_id: str, callback: AckListener) -> Iterator[None]:
        """Call `callback(receiver_id, ack)` on the event loop for every ack of `command_id` while inside."""
        self._watchers.setdefault(command_id, []).append(callback)
        try:
            yield
        finally:
            rest = [w for w in self._watchers.pop(command_id, []) if w is not callback]
            if rest:
                self._watchers[command_id] = rest

    @contextlib.contextmanager
    def watch_events(self, callback: EventListener) -> Iterator[None]:
        """Call `callback(receiver_id, event)` on the event loop for every proof-of-play event while inside."""
        self._event_watchers.append(callback)
        try:
            yield
        finally:
            self._event_watchers.remove(callback)

    async def request(self, command: Command, issued_by: str, timeout: float) -> Ack | None:
        """Send a command to one receiver and wait (bounded) for its ack; None when none came.
        Raises `CommandNotSent` when it cannot be sent (not connected to the broker)."""
        key = str(command.command_id)
        waiter: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()

        def answered(rid: str, ack: Ack) -> None:
            if command.target == Target.receiver(rid) and not waiter.done():
                waiter.set_result(ack)

        try:
            with self.watch(key, answered):
                await self.send(command, issued_by)
                return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            self._pending.commands.append(CommandRecord(
                command_id=key, kind=command.kind, target=str(command.target),  # type: ignore[attr-defined]
                issued_at=command.issued_at, expires_at=command.expires_at, issued_by=issued_by,
                outcome="no_answer", answered_at=utcnow()))
            return None


class Bridge(BridgeBase):
    """The `CommandPort` over MQTT: one session to the broker (`receivers.transport.Link`) that publishes
    commands (QoS 1, never retained) and subscribes to every receiver's reports."""

    def __init__(self, settings: Settings, engine: Engine, signer: Signer) -> None:
        super().__init__(settings, engine, signer)
        mqtt = settings.mqtt
        will = aiomqtt.Will(self.topics.controller_availability(),
                            ControllerAvailability(status="offline", protocol=PROTOCOL_VERSION).to_bytes(), qos=1,
                            retain=True)
        # Both brokers bind the client id to the account (the user name), so that is the id to send.
        self.link = Link(host=mqtt.host, port=mqtt.port, tls=mqtt.tls,
                         client_id=mqtt.username or settings.mqtt_client_id,
                         username=mqtt.username or "", password=mqtt.password or "", keepalive=30, will=will,
                         on_connect=self._on_connect, on_message=self.on_message, backoff=(0.5, 15.0))

    @property
    def connected(self) -> bool:
        return self.link.connected.is_set()

    async def _publish(self, target: Target, kind: str, payload: bytes) -> None:
        try:
            await self.link.publish(target.topic(self.topics, kind), payload)
        except aiomqtt.MqttError as e:
            raise BrokerUnreachable(str(e)) from e

    # ---------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await super().start()
        self._tasks.append(asyncio.create_task(self.link.run()))

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self.link.connected.wait(), timeout)

    async def stop(self) -> None:
        if self.link.client is not None:
            try:
                await self.link.publish(self.topics.controller_availability(),
                                        ControllerAvailability(status="offline", at=utcnow(),
                                                               protocol=PROTOCOL_VERSION).to_bytes(),
                                        retain=True)
            except aiomqtt.MqttError:
                pass
        self.link.stop()
        await super().stop()

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        for f in self.topics.ingest_filters():
            await client.subscribe(f, qos=1)
        await client.publish(self.topics.controller_availability(),
                             ControllerAvailability(status="online", at=utcnow(), protocol=PROTOCOL_VERSION).to_bytes(),
                             qos=1, retain=True)
        log.info("bridge: connected to the broker")

    # ------------------------------------------------------------------------------------- ingest

    async def on_message(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        info = self.topics.parse(topic)
        if info is None or info.scope != "receiver" or info.leaf == "cmd" or info.ident is None:
            return self._reject(topic, "not a receiver report topic")
        rid = info.ident
        if rid not in self._known:
            return self._reject(topic, f"unknown receiver {rid!r}")
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        try:
            msg = parse_receiver_message(payload, info.leaf)
        except ProtocolError as e:
            return self._reject(topic, str(e))
        self._accept(rid, msg, retain=message.retain)

    def _reject(self, topic: str, reason: str) -> None:
        self.rejected += 1
        log.warning("bridge: ignored message on %s: %s", topic, reason)


def update_statuses(s: Session, rows: list[dict[str, Any]]) -> None:
    """UPDATE receiver_status by receiver id, one executemany per set of columns (a batch has a handful: what
    events, states, telemetry change): SQLAlchemy Core, no ORM bookkeeping per row."""
    table = ReceiverStatus.__table__  # type: ignore[attr-defined]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(k for k in row if k != "receiver_id")), []).append(row)
    for columns, group in groups.items():
        statement = (table.update().where(table.c.receiver_id == bindparam("b_receiver_id"))
                     .values({c: bindparam(f"b_{c}") for c in columns}))
        s.connection().execute(statement, [{f"b_{k}": v for k, v in row.items()} for row in group])


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def _transient(e: BaseException) -> bool:
    """A failure that writing again later may cure (the database locked, unreachable or full), as opposed to
    rows it refuses (a constraint, a value out of range), which would fail at every retry."""
    return isinstance(e, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError))


def insert_ignoring_duplicates(engine: Engine, table: type[SQLModel]) -> Any:
    """INSERT … ON CONFLICT DO NOTHING, in the dialect of `engine` (SQLite or PostgreSQL)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()
