"""The receiver agent: one loudspeaker cluster's software, the same code on a Raspberry Pi and in the
simulated fleet.

`Agent` owns a `Link` (MQTT), a `Hardware`, a `ReplayMemory` and a `PersistentState`. Incoming commands go
through `Agent.on_message`: verify (signature, expiry, target, replay) → the handler for their kind in
`HANDLERS` → an `Ack`. Anything refused is logged with its reason and acknowledged as rejected; nothing on
the wire can crash the agent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version

import aiomqtt

from receivers.protocol import (
    Ack,
    Availability,
    Ping,
    ReceiverState,
    Rejected,
    SetVolume,
    Telemetry,
    Topics,
    Verifier,
    utcnow,
)

from .config import AgentSettings
from .hardware import Hardware
from .link import Link
from .store import PersistentState, ReplayMemory

log = logging.getLogger(__name__)

try:
    AGENT_VERSION = version("truyenthanh")
except PackageNotFoundError:  # running from a source tree
    AGENT_VERSION = "0+source"


class Agent:
    def __init__(self, settings: AgentSettings, hardware: Hardware, *,
                 clock: Callable[[], dt.datetime] = utcnow, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.hardware = hardware
        self.clock = clock
        self.rid = settings.receiver_id
        self.topics = Topics(settings.base)
        self.verifier = Verifier(settings.controller_public_key)
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.replay = ReplayMemory(settings.state_dir / "replay.sqlite")
        self.state_file = PersistentState(settings.state_dir / "state.json")
        saved = self.state_file.load()
        if isinstance(saved.get("volume"), int):
            hardware.set_volume(saved["volume"])
        self._rng = rng or random.Random()
        self._started = time.monotonic()
        self._telemetry_task: asyncio.Task[None] | None = None
        host, port, tls = settings.broker
        will = aiomqtt.Will(self.topics.receiver(self.rid, "availability"),
                            Availability(status="offline").to_bytes(), qos=1, retain=True)
        self.link = Link(host=host, port=port, tls=tls, client_id=f"rx-{self.rid}", username=settings.username,
                         password=settings.password, keepalive=settings.keepalive_s, will=will,
                         on_connect=self._on_connect, on_message=self.on_message,
                         backoff=(settings.backoff_min_s, settings.backoff_max_s), rng=self._rng)

    # ------------------------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        self._telemetry_task = asyncio.create_task(self._telemetry_loop())
        try:
            await self.link.run()
        finally:
            self._telemetry_task.cancel()
            await asyncio.gather(self._telemetry_task, return_exceptions=True)
            self.replay.close()

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

    async def _publish_availability(self, status: str) -> None:
        msg = Availability(status=status, at=self.clock(), agent_version=AGENT_VERSION,  # type: ignore[arg-type]
                           keepalive_s=self.settings.keepalive_s)
        await self.link.publish(self.topics.receiver(self.rid, "availability"), msg.to_bytes(), retain=True)

    async def publish_state(self) -> None:
        hw = self.hardware
        msg = ReceiverState(at=self.clock(), volume=hw.volume(),
                            amplifier="on" if hw.amplifier_on() else "off", playing=None)
        await self.link.publish(self.topics.receiver(self.rid, "state"), msg.to_bytes(), retain=True)

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
        if info is None or info.leaf != "cmd":
            return  # controller availability and foreign topics carry nothing to act on yet
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        try:
            command = self.verifier.open(payload, self.clock())
            if command.kind != info.command:
                raise Rejected(f"a {command.kind!r} command on the {info.command!r} topic", command)
            if not self._addressed_to_me(command.target):
                raise Rejected(f"addressed to {command.target!r}", command)
            if not self.replay.first_time(str(command.command_id), command.expires_at, self.clock()):
                raise Rejected("replayed: command already received", command)
        except Rejected as r:
            log.warning("%s: rejected command on %s: %s", self.rid, message.topic.value, r.reason)
            # Only a verified command's id is echoed: an unverified one could name a genuine pending command.
            await self._ack(r.command.command_id if r.command else None,
                            r.command.kind if r.command else info.command, "rejected", r.reason)
            return
        handler = HANDLERS[command.kind]
        reason = await handler(self, command)
        await self._ack(command.command_id, command.kind, "rejected" if reason else "applied", reason)

    def _addressed_to_me(self, target: str) -> bool:
        return target in ("all", f"receiver:{self.rid}", f"commune:{self.settings.commune}")

    async def _ack(self, command_id: object, kind: str | None, status: str, reason: str | None) -> None:
        ack = Ack(command_id=command_id, command=kind, status=status, reason=reason,  # type: ignore[arg-type]
                  at=self.clock())
        try:
            await self.link.publish(self.topics.receiver(self.rid, "ack"), ack.to_bytes())
        except aiomqtt.MqttError as e:
            log.warning("%s: ack for %s not sent: %s", self.rid, command_id, e)


# ----------------------------------------------------------------------------------------- handlers
# Each returns None when applied, or the reason it was refused.


async def handle_ping(agent: Agent, command: Ping) -> str | None:
    return None


async def handle_set_volume(agent: Agent, command: SetVolume) -> str | None:
    agent.hardware.set_volume(command.volume)
    agent.state_file.save({**agent.state_file.load(), "volume": command.volume})
    await agent.publish_state()
    return None


HANDLERS: dict[str, Callable[[Agent, object], Awaitable[str | None]]] = {
    "ping": handle_ping,  # type: ignore[dict-item]
    "set-volume": handle_set_volume,  # type: ignore[dict-item]
}
