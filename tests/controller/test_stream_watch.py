"""Command numbers, sequence gaps and clones as the controller judges them (`controller.stream_watch`), on the
in-memory bridge: what is numbered, what counts as a gap, what as a clone, and what does not."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlmodel import Session, select

from controller.bridge_memory import InMemoryBridge
from controller.config import LivenessSettings
from controller.db.models import AuditEntry
from receivers.protocol import Ack, Availability, Ping, SetVolume, Target, utcnow
from tests.conftest import Seeded
from tests.doubles import run_bridge

T = TypeVar("T")
RID, OTHER = "tra-bui-thon-1-1", "tra-bui-thon-1-2"  # both in Trà Bui


def run(seeded: Seeded, body: Callable[[InMemoryBridge], Awaitable[T]], grace_s: float = 0.0) -> T:
    settings = seeded.settings.model_copy(update={"liveness": LivenessSettings(resync_grace_s=grace_s)})
    return run_bridge(settings, seeded.engine, body)


def online(instance: str = "a", last_seq: dict[str, int] | None = None) -> Availability:
    return Availability(status="online", at=utcnow(), instance=instance, last_seq=last_seq or {})


def audit(seeded: Seeded, action: str) -> list[AuditEntry]:
    with Session(seeded.engine) as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action)))


def test_commands_are_numbered_per_stream(seeded: Seeded) -> None:
    async def body(bridge: InMemoryBridge) -> list[tuple[str, int | None]]:
        for target in (Target.receiver(RID), Target.commune("tra-bui"), Target.receiver(RID), Target.everyone(),
                       Target.receiver(OTHER)):
            await bridge.send(Ping.new(target, 60), "tests")
        return [(str(c.target), c.seq) for c in bridge.commands()]

    assert run(seeded, body) == [(f"receiver:{RID}", 1), ("commune:tra-bui", 1), (f"receiver:{RID}", 2),
                                 ("all", 1), (f"receiver:{OTHER}", 1)]


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not check():
            await asyncio.sleep(0.01)


def test_a_receiver_behind_is_recorded_and_sent_its_plan_one_that_caught_up_is_not(seeded: Seeded) -> None:
    async def body(bridge: InMemoryBridge) -> None:
        await bridge.deliver(RID, online())  # its first "online": the baseline
        await bridge.deliver(OTHER, online())
        await bridge.send(SetVolume.new(Target.receiver(RID), 60, volume=10), "tests")
        await bridge.send(SetVolume.new(Target.receiver(OTHER), 60, volume=10), "tests")
        # OTHER got its command (it says so); RID did not.
        await bridge.deliver(OTHER, online(last_seq={f"receiver:{OTHER}": 1}))
        await bridge.deliver(RID, online())
        await until(lambda: bridge.streams.gaps == 1)
        await until(lambda: any(c.kind == "sync-schedule" for c in bridge.commands()))
        await asyncio.sleep(0)  # let OTHER's verdict (there is none to wait for) run too
        assert [str(c.target) for c in bridge.commands("sync-schedule")] == [f"receiver:{RID}"]

    run(seeded, body)
    [row] = audit(seeded, "receiver.sequence-gap")
    assert row.target == RID and f"1 on receiver:{RID}" in (row.detail or "")


def test_the_acks_heard_during_the_grace_period_fill_the_gap(seeded: Seeded) -> None:
    async def body(bridge: InMemoryBridge) -> int:
        await bridge.deliver(RID, online())
        command = SetVolume.new(Target.receiver(RID), 60, volume=10)
        await bridge.send(command, "tests")
        await bridge.deliver(RID, online())  # published before the broker delivered the queued command
        verdict = bridge.streams._checks[RID]  # it looks behind: judged after the grace period
        await bridge.deliver(RID, Ack(command_id=command.command_id, command="set-volume", status="applied",
                                      at=utcnow()))
        async with asyncio.timeout(10):
            await verdict  # the verdict has run
        return bridge.streams.gaps

    assert run(seeded, body, grace_s=0.2) == 0
    assert audit(seeded, "receiver.sequence-gap") == []


def test_two_processes_alternating_are_a_clone_a_restart_is_not(seeded: Seeded) -> None:
    async def body(bridge: InMemoryBridge) -> tuple[int, int]:
        await bridge.deliver(RID, online("a"), online("a"), online("b"))  # reconnect, then a restart
        restarts = bridge.streams.clones
        await bridge.deliver(RID, online("a"), online("b"), online("a"))  # a and b take turns
        await until(lambda: bool(audit(seeded, "receiver.cloned")))
        return restarts, bridge.streams.clones

    assert run(seeded, body) == (0, 1)  # flagged once per window, however long they fight
    [row] = audit(seeded, "receiver.cloned")
    assert row.target == RID and "two agent processes" in (row.detail or "")
