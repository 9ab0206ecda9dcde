"""The controller's ports: what the services need from the world outside the database, as interfaces.

`CommandPort` is the command side of the transport seam: sign and send commands to receivers, wait for one
receiver's answer, and hear every acknowledgement and availability report. `controller.bridge.Bridge`
implements it over MQTT; `controller.bridge_memory.InMemoryBridge` in memory (tests, no broker).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from controller.config import Settings
from receivers.protocol import Ack, Command, PlayEvent, Signer, Target

AckListener = Callable[[str, Ack], None]  # (receiver id, ack)
AvailabilityListener = Callable[[str, str], None]  # (receiver id, "online" | "offline" | "stopped")
EventListener = Callable[[str, PlayEvent], None]  # (receiver id, proof-of-play event)


class CommandNotSent(Exception):
    """The command could not be handed to the transport (e.g. the controller is not connected to the
    broker): nothing was sent. The MQTT bridge raises a subclass that is also an `aiomqtt.MqttError`."""


class CommandPort(Protocol):
    settings: Settings
    engine: Engine
    signer: Signer  # the controller's signing key, for callers that keep the signed payload (emergencies)
    # Long-lived listeners (the emergency tracker), called on the event loop.
    ack_watchers: list[AckListener]
    availability_watchers: list[AvailabilityListener]

    @property
    def connected(self) -> bool:
        """Whether commands can be sent now (the MQTT session is up)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, command: Command, issued_by: str) -> None:
        """Sign and send (never retained), and record the command. Raises `CommandNotSent`."""
        ...

    def number(self, command: Command) -> Any:
        """`command` with the next number of its stream (`Command.seq`), for a caller that signs it itself."""
        ...

    async def publish_signed(self, command: Command, payload: bytes, issued_by: str) -> None:
        """Send `payload`, the signed `command` (signed by the caller, who keeps it), and record it.
        Raises `CommandNotSent`."""
        ...

    async def republish(self, target: Target, kind: str, payload: bytes) -> None:
        """Send an already sent and recorded signed payload again, to `target` (e.g. a receiver back online).
        Raises `CommandNotSent`."""
        ...

    async def request(self, command: Command, issued_by: str, timeout: float) -> Ack | None:
        """Send a command to one receiver and wait (bounded) for its answer; None when none came (recorded as
        `no_answer`). Raises `CommandNotSent`."""
        ...

    async def flush(self) -> None:
        """Write everything received and sent so far to the database (read your own writes after it)."""
        ...

    def watch(self, command_id: str, callback: AckListener) -> AbstractContextManager[None]:
        """Call `callback(receiver_id, ack)` for every ack of `command_id` while inside."""
        ...

    def watch_events(self, callback: EventListener) -> AbstractContextManager[None]:
        """Call `callback(receiver_id, event)` for every proof-of-play event while inside."""
        ...
