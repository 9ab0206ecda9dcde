"""The receiver agent: one loudspeaker cluster's software, the same code on a Raspberry Pi and in the
simulated fleet.

`Agent` owns a `Link` (MQTT), a `Hardware`, a `ReplayMemory`, a `PersistentState`, the `Player` and the
`PlanKeeper` (its schedule, pulled over HTTP and played from disk). Incoming commands go through
`Agent.on_message`: verify (signature, expiry, target, replay) → the handler for their kind in `HANDLERS`
→ an `Ack`. Anything refused is logged with its reason and acknowledged as rejected; nothing on the wire
can crash the agent. Handlers that wait on the network (`BACKGROUND`) run beside the link, so an
emergency is never queued behind a plan download.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import aiomqtt

from receivers.protocol import (
    PROTOCOL_VERSION,
    Ack,
    Availability,
    ControllerAvailability,
    Ping,
    Play,
    PlayEvent,
    ReceiverState,
    Rejected,
    RestartAgent,
    RotateKey,
    SelfTest,
    SetVolume,
    Stop,
    SyncSchedule,
    Target,
    Telemetry,
    Topics,
    Verifier,
    utcnow,
)
from receivers.transport import Link

from .cache import MediaCache
from .config import AgentSettings
from .fetch import Fetcher
from .hardware import Hardware
from .outbox import Outbox
from .plan import CONNECT_SPREAD_S, PlanKeeper
from .player import Player, disk_call
from .selftest import self_test
from .sink import AlsaSink, AudioSink
from .store import ItemStore, KeyStore, PersistentState, ReplayMemory

log = logging.getLogger(__name__)

def _agent_version() -> str:
    for dist in ("truyenthanh-agent", "truyenthanh"):  # the Pi's distribution, or the full install
        try:
            return version(dist)
        except PackageNotFoundError:
            pass
    return "0+source"  # running from a source tree


AGENT_VERSION = _agent_version()
# Protocol 2: a change of the receiver's state (amplifier, what plays) is published this long after it came,
# together with any that follow, and only if the controller does not know it already from proof of play.
STATE_SETTLE_S = 2.0
SEQ_SAVE_AFTER_S = 5.0  # command numbers are written this long after they came, with any that follow
ANSWERED = "answered by its proof of play"  # a handler's result: no ack to send (protocol 2)


class Agent:
    def __init__(self, settings: AgentSettings, hardware: Hardware, *, sink: AudioSink | None = None,
                 clock: Callable[[], dt.datetime] = utcnow, rng: random.Random | None = None,
                 on_restart: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.hardware = hardware
        self.clock = clock
        self.rid = settings.receiver_id
        self.topics = Topics(settings.base)
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        tolerance = dt.timedelta(seconds=settings.issued_tolerance_s)
        self.keys = KeyStore(settings.state_dir / "keys.json", settings.controller_public_key)
        self.verifier = Verifier(self.keys.load(), tolerance)
        self.replay = ReplayMemory(settings.state_dir / "replay.sqlite", tolerance)
        self.state_file = PersistentState(settings.state_dir / "state.json")
        saved = self.state_file.load()
        if isinstance(saved.get("volume"), int):
            hardware.set_volume(saved["volume"])
        # This process's id, in its "online": another process with the same credentials has another one.
        self.instance = secrets.token_hex(8)
        # The highest command number received per stream (see `Command.seq`), kept across restarts.
        self.last_seq: dict[str, int] = {k: v for k, v in (saved.get("last_seq") or {}).items() if isinstance(v, int)}
        self._rng = rng or random.Random()
        self._started = time.monotonic()
        self._telemetry_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._handling: set[asyncio.Task[None]] = set()  # BACKGROUND handlers at work
        self.on_restart = on_restart
        self.outbox = Outbox(settings.state_dir / "outbox.sqlite")
        self._queued = len(self.outbox)  # events on disk not yet taken by the broker (see `Player.backlog`)
        self._outbox_ready = asyncio.Event()
        self._unsaved: list[PlayEvent] = []
        self._told: tuple[int, str, str | None] | None = None  # the state the controller knows (see STATE_SETTLE_S)
        self._state_task: asyncio.Task[None] | None = None
        self._seq_task: asyncio.Task[None] | None = None
        self.cache = MediaCache(settings.state_dir / "cache", int(settings.cache_budget_mb * 1e6))
        self.fetcher = Fetcher(self.cache, settings.controller_url, rng=self._rng)
        self.sink: AudioSink = sink or AlsaSink(settings.alsa_device)
        self.player = Player(sink=self.sink, hardware=hardware, fetcher=self.fetcher, cache=self.cache,
                             store=ItemStore(settings.state_dir / "items.sqlite"), record=self.record,
                             ack=self._ack_play, on_change=self._state_changed, clock=clock,
                             warmup_s=settings.amp_warmup_s, idle_off_s=settings.amp_idle_off_s,
                             missed_tolerance_s=settings.missed_tolerance_s, disk=disk_call(settings.disk_in_thread))
        self.player.backlog = lambda: self._queued > 0 or bool(self._unsaved)
        self.plan_keeper = PlanKeeper(
            receiver_id=self.rid, controller_url=settings.controller_url, username=settings.username,
            password=settings.password, verifier=self.verifier, player=self.player, memory=self.replay,
            path=settings.state_dir / "plan.json", clock=clock, rng=self._rng, poll_s=settings.plan_poll_s,
            missed_tolerance_s=settings.missed_tolerance_s)
        host, port, tls = settings.broker
        will = aiomqtt.Will(self.topics.receiver(self.rid, "availability"),
                            Availability(status="offline").to_bytes(), qos=1, retain=True)
        self.link = Link(host=host, port=port, tls=tls, client_id=settings.username, username=settings.username,
                         password=settings.password, keepalive=settings.keepalive_s, will=will,
                         on_connect=self._on_connect, on_message=self.on_message,
                         backoff=(settings.backoff_min_s, settings.backoff_max_s), rng=self._rng)

    # ------------------------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        self._tasks = [asyncio.create_task(self._telemetry_loop()), asyncio.create_task(self._drain_outbox()),
                       asyncio.create_task(self.player.run()), asyncio.create_task(self.plan_keeper.run())]
        try:
            await self.link.run()
        finally:
            if self._seq_task is not None and not self._seq_task.done():
                self._seq_task.cancel()
                self.save_seq()  # a clean stop loses no command number
            for task in (*self._tasks, *self._handling):
                task.cancel()
            await asyncio.gather(*self._tasks, *self._handling, return_exceptions=True)
            await self.plan_keeper.close()
            await self.player.close()
            await self.fetcher.close()
            self.replay.close()
            self.outbox.close()
            self.player.store.close()

    async def restart(self) -> None:
        """Stop cleanly and hand over to whoever restarts the agent (systemd on the Pi, the fleet in the
        simulator); with nobody to do it, the process exits and systemd's Restart=always brings it back."""
        await self.stop()
        if self.on_restart is not None:
            self.on_restart()

    async def stop(self) -> None:
        """Clean shutdown: say `stopped` (retained), then disconnect so the last will is not sent."""
        if self.link.client is not None:
            try:
                await asyncio.wait_for(self._publish_availability("stopped"), 5)
            except (aiomqtt.MqttError, TimeoutError) as e:
                log.warning("%s: could not announce stop: %s", self.rid, e)
        self.link.stop()

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        for topic_filter in self.topics.agent_filters(self.rid, self.settings.commune):
            await client.subscribe(topic_filter, qos=1)
        await self._publish_availability("online")
        await self.publish_state()
        log.info("%s: online (connection %d)", self.rid, self.link.connections)
        self.plan_keeper.pull_soon()  # a sync-schedule may have been missed while away

    def streams(self) -> list[str]:
        """The command streams this receiver listens to, as `Command.target` names them."""
        return [str(Target.receiver(self.rid)), str(Target.commune(self.settings.commune)), str(Target.everyone())]

    def _note_seq(self, stream: str, seq: int | None) -> None:
        if seq is None or seq <= self.last_seq.get(stream, 0):
            return
        self.last_seq[stream] = seq
        if self._seq_task is None or self._seq_task.done():  # written after the sound, with any that follow
            self._seq_task = asyncio.create_task(self._save_seq())

    async def _save_seq(self) -> None:
        await asyncio.sleep(SEQ_SAVE_AFTER_S)
        self.save_seq()

    def save_seq(self) -> None:
        try:
            self.state_file.save({**self.state_file.load(), "last_seq": self.last_seq})
        except OSError as e:  # a full SD card: the controller sees a gap after a restart and resends
            log.warning("%s: command numbers not saved: %s", self.rid, e)

    async def _publish_availability(self, status: str) -> None:
        online = status == "online"
        msg = Availability(status=status, at=self.clock(), agent_version=AGENT_VERSION,  # type: ignore[arg-type]
                           keepalive_s=self.settings.keepalive_s, instance=self.instance,
                           last_seq={k: self.last_seq.get(k, 0) for k in self.streams()} if online else None,
                           protocol=PROTOCOL_VERSION)
        await self.link.publish(self.topics.receiver(self.rid, "availability"), msg.to_bytes(), retain=True)

    async def publish_state(self) -> None:
        hw = self.hardware
        current = self.player.current
        msg = ReceiverState(at=self.clock(), volume=hw.volume(), amplifier="on" if hw.amplifier_on() else "off",
                            playing=current.cmd.item_id if current else None)
        told = (msg.volume, msg.amplifier, msg.playing if current and current.announced else None)
        before = self._told
        await self.link.publish(self.topics.receiver(self.rid, "state"), msg.to_bytes(), retain=True)
        if self._told == before:  # unless an event told the controller more meanwhile
            self._told = told

    def _state_now(self) -> tuple[int, str, str | None]:
        """What the controller should know of the receiver's state: the volume (while an item plays, the one
        it was told: an item's own volume is the item's, not a change), the amplifier, the item playing."""
        current = self.player.current
        volume = self._told[0] if current is not None and self._told is not None else self.hardware.volume()
        return (volume, "on" if self.hardware.amplifier_on() else "off",
                current.cmd.item_id if current and current.announced else None)

    def telemetry(self) -> Telemetry:
        hw = self.hardware
        return Telemetry(at=self.clock(), uptime_s=round(time.monotonic() - self._started, 1),
                         temperature_c=hw.temperature_c(), signal_dbm=hw.signal_dbm(),
                         disk_free_mb=hw.disk_free_mb(self.settings.state_dir))

    async def _telemetry_loop(self) -> None:
        # Telemetry doubles as the heartbeat the controller's liveness check relies on (see Availability).
        interval = min(self.settings.telemetry_interval_s, self.settings.keepalive_s)
        # A random first delay spreads a fleet's telemetry over the interval instead of one burst.
        await asyncio.sleep(self._rng.uniform(0, interval))
        while True:
            await self.link.connected.wait()
            try:
                await self.link.publish(self.topics.receiver(self.rid, "telemetry"), self.telemetry().to_bytes())
            except aiomqtt.MqttError as e:
                log.debug("%s: telemetry not sent: %s", self.rid, e)
            await asyncio.sleep(interval)

    # ------------------------------------------------------------------------------------- commands

    async def on_message(self, message: aiomqtt.Message) -> None:
        info = self.topics.parse(message.topic.value)
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        if info is not None and info.scope == "controller":
            self._controller_said(payload)
            return
        if info is None or info.leaf != "cmd":
            return  # foreign topics carry nothing to act on
        try:
            try:
                high_water = self.replay.high_water()
            except sqlite3.Error as e:  # as below: a failing SD card must not silence an emergency
                log.error("%s: high-water mark unavailable (%s)", self.rid, e)
                high_water = None
            command, key = self.verifier.open_with_key(payload, self.clock(), high_water)
            if command.kind != info.command:
                raise Rejected(f"a {command.kind!r} command on the {info.command!r} topic", command)
            if not self._addressed_to_me(command.target):
                raise Rejected(f"addressed to {str(command.target)!r}", command)
            if command.kind == "rotate-key" and command.public_key in self._current_keys():
                # Applied before (a re-send; its signer is in its grace now): say so, or it is sent forever.
                await self._ack(command.command_id, command.kind, "applied", None)
                return
            if command.kind == "rotate-key" and key.until is not None:
                raise Rejected("a key rotation must be signed with the controller's current key, not one in "
                               "its grace", command)
            self._note_seq(str(command.target), command.seq)
            try:
                first = self.replay.first_time(str(command.command_id), command.expires_at, self.clock(),
                                               issued_at=command.issued_at)
            except sqlite3.Error as e:  # a full or failing SD card must not silence an emergency
                log.error("%s: replay memory unavailable (%s); accepting %s", self.rid, e, command.command_id)
                first = True
            if not first:
                raise Rejected("replayed: command already received", command)
        except Rejected as r:
            log.warning("%s: rejected command on %s: %s", self.rid, message.topic.value, r.reason)
            # Only a verified command's id is echoed: an unverified one could name a genuine pending command.
            await self._ack(r.command.command_id if r.command else None,
                            r.command.kind if r.command else info.command, "rejected", r.reason)
            return
        if command.kind in BACKGROUND:
            task = asyncio.create_task(self._handle(command))
            self._handling.add(task)
            task.add_done_callback(self._handling.discard)
        else:
            await self._handle(command)

    def _controller_said(self, payload: bytes) -> None:
        """The controller's availability (retained): the report protocol it speaks decides ours."""
        try:
            said = ControllerAvailability.model_validate_json(payload)
        except ValueError as e:
            log.warning("%s: unreadable controller availability: %s", self.rid, str(e).splitlines()[0][:200])
            return
        compact = (said.protocol or 1) >= 2
        if compact != self.player.compact:
            log.info("%s: the controller speaks report protocol %s", self.rid, said.protocol or 1)
        self.player.compact = compact

    async def _handle(self, command: Any) -> None:
        """Run the command's handler and acknowledge the outcome."""
        try:
            reason = await HANDLERS[command.kind](self, command)
        except Exception as e:  # nothing on the wire may crash the agent, and the controller hears why
            log.exception("%s: %s failed", self.rid, command.kind)
            reason = f"{command.kind} failed on the receiver: {type(e).__name__}: {e}"
        if (command.kind == "play" and reason is None) or reason == ANSWERED:
            return  # a play command is acknowledged step by step by the player; ANSWERED: by its events
        await self._ack(command.command_id, command.kind, "rejected" if reason else "applied", reason)
        if command.kind == "restart-agent" and reason is None:
            await self.restart()

    # ----------------------------------------------------------------------------- proof of play

    def record(self, event: PlayEvent) -> None:
        """Write a proof-of-play event to the outbox (on disk first), then let the drain task send it.
        If the disk is full the event waits in memory and is written as soon as there is room."""
        self._unsaved.append(event)
        self._save_unsaved()
        self._outbox_ready.set()
        if event.outcome == "playing" and self._told is not None:  # the controller knows from the event
            self._told = (self._told[0], "on", event.item_id)
        elif event.outcome is not None and self._told is not None and self._told[2] == event.item_id:
            self._told = (self._told[0], self._told[1], None)

    def _save_unsaved(self) -> None:
        while self._unsaved:
            try:
                stored = self.outbox.append(self._unsaved[0])
                self._queued += 1
            except sqlite3.OperationalError as e:
                log.error("%s: outbox cannot write (%s); %d event(s) kept in memory", self.rid, e, len(self._unsaved))
                return
            self._unsaved.pop(0)
            log.info("%s: %s %s at %.1f s%s", self.rid, stored.event, stored.item_id, stored.position_s,
                     f" ({stored.reason})" if stored.reason else "")

    async def _drain_outbox(self) -> None:
        while True:
            await self.link.connected.wait()
            self._save_unsaved()
            self._outbox_ready.clear()  # before reading, so an event appended meanwhile wakes us again
            pending = await self.player.disk(self.outbox.pending)
            if not pending:
                waiter = asyncio.ensure_future(self._outbox_ready.wait())
                await asyncio.wait([waiter], timeout=5)  # also re-checks after a reconnect
                waiter.cancel()
                continue
            for seq, payload in pending:
                try:
                    await self.link.publish(self.topics.receiver(self.rid, "event"), payload)
                    await self.player.disk(self.outbox.remove, seq)
                    self._queued = max(0, self._queued - 1)
                except aiomqtt.MqttError:
                    await asyncio.sleep(0.5)  # link down: wait for the reconnect, keep the event
                    break
                except sqlite3.Error as e:  # could not delete: it is sent again later, counted once
                    log.error("%s: outbox: %s", self.rid, e)
                    await asyncio.sleep(5)
                    break

    async def _ack_play(self, command: Play, status: str, reason: str | None) -> None:
        # The player does not wait on the link: on a silent link a PUBACK takes the client's 10 s timeout, and
        # every ack would hold the next item back that long. Each publish is queued as its task starts, so
        # the acks still leave in order.
        task = asyncio.create_task(self._ack(command.command_id, "play", status, reason, item_id=command.item_id))
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def _state_changed(self) -> None:
        if self.player.compact:
            if self._state_task is None or self._state_task.done():
                self._state_task = asyncio.create_task(self._publish_state_settled())
                self._handling.add(self._state_task)
                self._state_task.add_done_callback(self._handling.discard)
            return
        task = asyncio.create_task(self._publish_state_quietly())  # as _ack_play: the player never waits
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def _publish_state_settled(self) -> None:
        await asyncio.sleep(STATE_SETTLE_S)
        for _ in range(5):  # an item whose `started` is still to be recorded (a busy loop) will tell it
            current = self.player.current
            if current is None or not self.player.reports(current) or (self._told or (0, "", None))[2] == \
                    current.cmd.item_id:
                break
            await asyncio.sleep(STATE_SETTLE_S)
        for _ in range(3):  # a change while the publish was on its way is published too
            if self._state_now() == self._told:
                return
            await self._publish_state_quietly()

    async def _publish_state_quietly(self) -> None:
        try:
            await self.publish_state()
        except aiomqtt.MqttError:
            pass  # retained state is published again on reconnect

    def _current_keys(self) -> set[str]:
        return {k.public_key for k in self.verifier.keys if k.until is None}

    def _addressed_to_me(self, target: Target) -> bool:
        return target.reaches(self.rid, self.settings.commune)

    async def _ack(self, command_id: object, kind: str | None, status: str, reason: str | None,
                   item_id: str | None = None) -> None:
        ack = Ack(command_id=command_id, command=kind, status=status, reason=reason,  # type: ignore[arg-type]
                  item_id=item_id, at=self.clock())
        try:
            await self.link.publish(self.topics.receiver(self.rid, "ack"), ack.to_bytes())
        except aiomqtt.MqttError as e:
            log.warning("%s: ack for %s not sent: %s", self.rid, command_id, e)


# ----------------------------------------------------------------------------------------- handlers
# Each returns None when applied (for `play`: accepted), or the reason it was refused.


async def handle_ping(agent: Agent, command: Ping) -> str | None:
    return None


async def handle_set_volume(agent: Agent, command: SetVolume) -> str | None:
    agent.player.set_volume(command.volume)  # during an emergency: kept for after it
    agent.state_file.save({**agent.state_file.load(), "volume": command.volume})
    await agent.publish_state()
    return None


async def handle_play(agent: Agent, command: Play) -> str | None:
    try:
        stopped = agent.replay.seen(stopped_key(command.item_id))
    except sqlite3.Error as e:  # a failing SD card must not refuse an emergency
        log.error("%s: replay memory unavailable (%s); playing %s", agent.rid, e, command.item_id)
        stopped = False
    if stopped:
        # Its stop came first (a cancel re-sent on reconnect, the play replayed or redelivered after it).
        return f"item {command.item_id!r} was stopped by the controller"
    return await agent.player.submit(command)


def stopped_key(item_id: str) -> str:
    """The replay memory's key that remembers a stop of `item_id` until the stop expires."""
    return f"stopped:{item_id}"


async def handle_stop(agent: Agent, command: Stop) -> str | None:
    compact = agent.player.compact and not agent.player.backlog()
    # Silence first: a failing SD card must not keep it playing.
    reason = await agent.player.stop(command, answers=command.command_id if compact else None)
    if command.item_id is not None:
        try:
            agent.replay.first_time(stopped_key(command.item_id), command.expires_at, agent.clock())
        except sqlite3.Error as e:  # stopped all the same; only a later replay of its play is not refused
            log.error("%s: replay memory unavailable (%s); stop of %s not remembered", agent.rid, e,
                      command.item_id)
    return ANSWERED if compact and reason is None else reason


async def handle_self_test(agent: Agent, command: SelfTest) -> str | None:
    return await self_test(agent)


async def handle_restart(agent: Agent, command: RestartAgent) -> str | None:
    return None  # acknowledged first; Agent.on_message then restarts


async def handle_sync_schedule(agent: Agent, command: SyncSchedule) -> str | None:
    if command.version is not None and command.version == agent.plan_keeper.version:
        return None  # already holds it: no download
    if command.target != Target.receiver(agent.rid):  # told together with a commune: not all in one instant
        await asyncio.sleep(agent._rng.uniform(0, CONNECT_SPREAD_S))
    return await agent.plan_keeper.pull()


async def handle_rotate_key(agent: Agent, command: RotateKey) -> str | None:
    """Trust the new key from now on, the old one until the end of its grace (on disk before it is used)."""
    try:
        keys = await asyncio.to_thread(agent.keys.rotate, command.public_key, command.old_key_until)
    except BaseException:
        # Not applied: forget its id, so a re-send is applied then rather than answered "replayed".
        with contextlib.suppress(sqlite3.Error):
            agent.replay.forget(str(command.command_id))
        raise
    agent.verifier.trust(keys)
    log.warning("%s: controller key rotated: new key %s…, the old one accepted until %s", agent.rid,
                command.public_key[:12], command.old_key_until.isoformat())
    return None


HANDLERS: dict[str, Callable[[Agent, Any], Awaitable[str | None]]] = {
    "ping": handle_ping,
    "set-volume": handle_set_volume,
    "play": handle_play,
    "stop": handle_stop,
    "self-test": handle_self_test,
    "restart-agent": handle_restart,
    "sync-schedule": handle_sync_schedule,
    "rotate-key": handle_rotate_key,
}
# Handled beside the link (their ack comes when they are done), not in the queue of incoming commands.
BACKGROUND = frozenset({"sync-schedule"})
