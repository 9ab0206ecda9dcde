"""Doubles shared by several test modules.

- `run_bridge(settings, engine, body)`: `body(bridge)` on a started in-memory bridge, in an event loop of its
  own.
- `offline_agent(settings)`: a real agent (simulated hardware, its state on disk) that is never connected:
  what it publishes is recorded in `agent.published` instead.
- `Message(topic, payload)`: what `Agent.on_message` reads of an aiomqtt message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from controller.bridge_memory import InMemoryBridge
from controller.config import Settings
from controller.provision import ensure_signing_key
from firmware_sim.hardware import SimHardware
from firmware_sim.sink import RecordingSink
from receivers.agent import Agent, AgentSettings

T = TypeVar("T")


def run_bridge(settings: Settings, engine: Engine, body: Callable[[InMemoryBridge], Awaitable[T]],
               **options: Any) -> T:
    async def go() -> T:
        bridge = InMemoryBridge(settings, engine, ensure_signing_key(settings)[0], **options)
        await bridge.start()
        try:
            return await body(bridge)
        finally:
            await bridge.stop()

    return asyncio.run(go())


@contextmanager
def offline_agent(settings: AgentSettings, **options: Any) -> Iterator[Any]:
    hardware = SimHardware()
    agent: Any = Agent(settings, hardware, sink=RecordingSink(hardware), **options)
    agent.published = []

    async def publish(topic: str, payload: bytes, **kw: Any) -> None:
        agent.published.append((topic, payload))

    agent.link.publish = publish
    try:
        yield agent
    finally:
        agent.replay.close()
        agent.outbox.close()
        agent.player.store.close()


class Message:
    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic = type("T", (), {"value": topic})()
        self.payload = payload
