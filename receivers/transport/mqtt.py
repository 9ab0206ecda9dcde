"""One MQTT session (the agent's, and the controller bridge's): connect with its own credentials and a last
will, reconnect with capped exponential backoff and full jitter, and hand every incoming message to a callback.

`backoff_delay` is separate and pure so its spread can be tested: a thousand receivers that lose the
broker at the same moment must not come back in lock-step.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
from collections.abc import Awaitable, Callable

import aiomqtt

log = logging.getLogger(__name__)


def backoff_delay(attempt: int, low: float, high: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(high, low * 2**attempt)], so even the first retries of a fleet that
    lost the broker together are spread out."""
    return rng.uniform(0, min(high, low * (2 ** min(attempt, 30))))


class Link:
    """One MQTT session that keeps itself up until `stop()`.

    `on_connect(client)` runs after every (re)connection — publish availability, subscribe — and
    `on_message(message)` for each message; both run on the event loop.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        tls: bool,
        client_id: str,
        username: str,
        password: str,
        keepalive: int,
        will: aiomqtt.Will,
        on_connect: Callable[[aiomqtt.Client], Awaitable[None]],
        on_message: Callable[[aiomqtt.Message], Awaitable[None]],
        backoff: tuple[float, float] = (1.0, 60.0),
        rng: random.Random | None = None,
    ) -> None:
        self._args = dict(hostname=host, port=port, identifier=client_id, username=username,
                          password=password, keepalive=keepalive, will=will, clean_session=False,
                          # Commands and acks are tiny: without this, Nagle adds ~40 ms to every round trip.
                          socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                          tls_context=ssl.create_default_context() if tls else None)
        self._on_connect = on_connect
        self._on_message = on_message
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._stopping = asyncio.Event()
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.connections = 0

    async def run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                async with aiomqtt.Client(**self._args) as client:  # type: ignore[arg-type]
                    self.client = client
                    attempt = 0
                    self.connections += 1
                    await self._on_connect(client)
                    self.connected.set()
                    await self._pump(client)
            except aiomqtt.MqttError as e:
                if self._stopping.is_set():
                    break
                log.warning("%s: MQTT link down: %s", self._args["identifier"], e)
            finally:
                self.connected.clear()
                self.client = None
            if self._stopping.is_set():
                break
            delay = backoff_delay(attempt, *self._backoff, self._rng)
            attempt += 1
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                pass

    async def _pump(self, client: aiomqtt.Client) -> None:
        messages = asyncio.ensure_future(self._read(client))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({messages, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if messages in done:
                messages.result()  # re-raise MqttError from the reader
        finally:
            for task in (messages, stopping):
                task.cancel()
            await asyncio.gather(messages, stopping, return_exceptions=True)

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                await self._on_message(message)
            except Exception:  # one bad message must never take the session down
                log.exception("%s: handler failed on %s", self._args["identifier"], message.topic)

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """QoS 1; returns once the broker has acknowledged. Raises aiomqtt.MqttError when not connected."""
        client = self.client
        if client is None:
            raise aiomqtt.MqttError("not connected")
        await client.publish(topic, payload, qos=1, retain=retain)

    def stop(self) -> None:
        self._stopping.set()
