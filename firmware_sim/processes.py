"""A simulated fleet (or any set of simulated clients) spread over several processes, one event loop each.

- `default_processes()`: one per core.
- `share(count, index, shards)`: the slice of `count` receivers that process `index` of `shards` runs
  (contiguous, sizes differing by one at most).
- `run_processes(argvs, stop)`: the parent. It starts one child per command line, each with a pipe on its
  stdin; once `stop` is set it forwards SIGTERM to every child and waits until all have exited (each stops
  its agents cleanly: they announce `stopped`); a child still running `grace_s` later is killed. A child
  that exits by itself stops the others too, and the parent exits with its status.
- `watch_parent(stop)`: in a child, sets `stop` when its stdin reaches end of file: the parent is gone
  (even SIGKILLed), so no orphan keeps a share of the fleet connected.

Light on purpose: the parent imports nothing of the agent, so it adds little to the fleet's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)


def default_processes() -> int:
    return os.cpu_count() or 1


def share(count: int, index: int, shards: int) -> slice:
    if not 0 <= index < shards:
        raise ValueError(f"shard {index} of {shards}")
    return slice(index * count // shards, (index + 1) * count // shards)


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' → (2, 4): the third of four processes."""
    index, _, shards = text.partition("/")
    try:
        i, k = int(index), int(shards)
    except ValueError:
        raise ValueError(f"not INDEX/COUNT: {text!r}") from None
    if not 0 <= i < k:
        raise ValueError(f"not INDEX/COUNT with 0 <= INDEX < COUNT: {text!r}")
    return i, k


async def run_processes(argvs: list[list[str]], stop: asyncio.Event, grace_s: float = 60.0) -> int:
    """Run one child per command line until `stop` (or until one exits); return 0 if all stopped cleanly
    when told to, else the first non-zero status (1 for a child that ended by itself with 0)."""
    procs = [await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE) for argv in argvs]
    log.info("fleet: %d processes started (pids %s)", len(procs), ", ".join(str(p.pid) for p in procs))
    waits = {asyncio.create_task(p.wait()): p for p in procs}
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({stopping, *waits}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        early = [p for p in procs if p.returncode is not None] if not stop.is_set() else []
        for p in early:
            log.error("fleet: process %d exited by itself (status %s); stopping the others", p.pid, p.returncode)
        for p in procs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        _, stuck = await asyncio.wait(waits, timeout=grace_s)
        for task in stuck:
            log.warning("fleet: process %d did not stop within %g s: killed", waits[task].pid, grace_s)
            with contextlib.suppress(ProcessLookupError):
                waits[task].kill()
        await asyncio.gather(*waits)
        stopping.cancel()
        for p in procs:
            if p.stdin is not None:
                p.stdin.close()
    if early:
        return next((p.returncode for p in early if p.returncode), 1)
    return next((p.returncode for p in procs if p.returncode), 0)


def watch_parent(stop: asyncio.Event) -> None:
    """Set `stop` once stdin is at end of file (the parent, which holds its other end, has exited)."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            if not stop.is_set():
                log.warning("fleet: the parent process is gone; stopping")
                stop.set()

    loop.add_reader(fd, readable)
