"""MQTT fan-out benchmark: how long one command to *all* receivers takes until every receiver has answered.

    .venv/bin/python bench/fanout.py --receivers 1000 [--rounds 10] [--broker mosquitto]

Two measurements on the same broker, one after the other so that they never compete for the two CPUs:

1. Baseline: N bare aiomqtt clients (`--bare-subscribers` mode of this file, in `--processes` child processes)
   subscribed to the all-receivers ping topic; each replies on its ack topic the moment a message arrives. The
   bench publishes a token and times publish → N replies.
2. Controller path: N real `Agent`s (`truyenthanh-dev fleet --processes P`, as many processes as the
   baseline) and the controller's real `Bridge` in this process. Each round is
   `Ping.new(Target.everyone())` → `Bridge.send` (sign, publish) → every agent verifies the signature,
   records the id in its replay memory, acks → `Bridge.watch` sees N distinct acks.

The ratio of the two is the cost of our code (signing, verifying, replay memory, pydantic, ack ingest and
its database writes) over the transport itself. Each side's simulated receivers share `--processes`
processes (default one per core) and the machine's CPUs, so the round time is mostly their summed CPU time:
the CPU each process (or group of processes, summed) spent per round is reported too, and says where the
work is. The fleet's memory is measured as well: RSS with N agents, and the marginal cost per agent (RSS
with N minus RSS with a small fleet, each summed over the fleet's processes). docs/PERFORMANCE.md has the
figures.

In this file:
- `write_seed`: a seed TOML with exactly N receivers spread over the communes of the default seed.
- `Round`, `Distribution`, `timed_rounds`: one timed round; p50 / p99 / max over rounds (nearest rank) and
  the CPU time of each process involved.
- `Child`: a child process in its own session, with its log, its memory, and a bounded `stop`.
- `bare_subscribers`: the body of a `--bare-subscribers` child; `bare_processes`: their parent when there
  are several; `start_bare_subscribers`: started and all subscribed; `bare_rounds`: the baseline's rounds.
- `controller_rounds`, `wait_online`: the controller path's rounds and its readiness check.
- `run`: the whole sequence, with every resource released in `finally`; `main`: argument parsing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import psutil
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from controller.bridge import Bridge
from controller.config import DEFAULT_SEED
from controller.db.models import ReceiverStatus
from controller.inventory import load_seed
from controller.provision import ensure_signing_key
from devrig.testbed import Testbed, make_testbed
from firmware_sim.fleet import agent_settings, load_fleet_file
from firmware_sim.processes import default_processes, parse_shard, run_processes, share, watch_parent
from receivers.agent import AgentSettings
from receivers.protocol import Ack, Ping, Target, Topics

log = logging.getLogger("bench.fanout")

REPO = Path(__file__).resolve().parent.parent
MAX_CLUSTERS_PER_VILLAGE = 50  # the seed format's limit (controller.inventory.VillageSeed)
CONNECT_ATTEMPTS = 8
PAUSE_BETWEEN_ROUNDS_S = 0.5  # lets stragglers of a late round drain before the next one starts
SETTLE_S = 3.0  # after the last agent is online, before memory is read: the connect burst is over by then
MiB = 1024 * 1024


# ------------------------------------------------------------------------------------------- seed


def write_seed(path: Path, receivers: int, source: Path = DEFAULT_SEED) -> None:
    """Write a seed with the district, communes and villages of `source` but exactly `receivers` clusters.

    Clusters are dealt one at a time to villages taken round-robin across communes, so every commune gets
    its share even when `receivers` is small. More receivers than the villages hold (50 clusters each) get
    villages of their own added to every commune (`them-1`, `them-2`, …)."""
    seed = load_seed(source)
    villages = [[(v.code, v.name) for v in c.villages] for c in seed.communes]
    capacity = sum(map(len, villages)) * MAX_CLUSTERS_PER_VILLAGE
    extra = 0
    while receivers > capacity:  # a province's worth: more villages per commune, named as such
        extra += 1
        for commune_villages in villages:
            commune_villages.append((f"them-{extra}", f"Thôn thêm {extra}"))
            capacity += MAX_CLUSTERS_PER_VILLAGE
    slots = [(ci, vi) for vi in range(max(map(len, villages)))
             for ci in range(len(seed.communes)) if vi < len(villages[ci])]
    clusters: dict[tuple[int, int], int] = {}
    for k in range(receivers):
        slot = slots[k % len(slots)]
        clusters[slot] = clusters.get(slot, 0) + 1

    def q(text: str | None) -> str:  # a TOML basic string; JSON's escapes are a subset of TOML's
        return json.dumps(text, ensure_ascii=False)

    d = seed.district
    lines = ["# Written by bench/fanout.py: the default seed's places with a chosen number of receivers.",
             "", "[district]", f"code = {q(d.code)}", f"name = {q(d.name)}"]
    if d.province:
        lines.append(f"province = {q(d.province)}")
    for ci, c in enumerate(seed.communes):
        lines += ["", "[[communes]]", f"code = {q(c.code)}", f"name = {q(c.name)}", f"kind = {q(c.kind)}",
                  "villages = ["]
        lines += [f"  {{ code = {q(code)}, name = {q(name)}, clusters = {clusters[(ci, vi)]} }},"
                  for vi, (code, name) in enumerate(villages[ci]) if clusters.get((ci, vi))]
        lines.append("]")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------ rounds


@dataclass
class Round:
    """One broadcast: who has answered, and when the last answer came in."""

    expected: int
    started: float = 0.0  # perf_counter at publish
    wall_started: float = 0.0  # time.time() at publish, to compare with receivers' own timestamps
    finished: float | None = None
    last_stamp: float = 0.0  # latest wall-clock time stamped by a receiver (arrival or ack)
    answered: set[str] = field(default_factory=set)
    refused: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self.wall_started = time.time()
        self.started = time.perf_counter()

    def answer(self, rid: str, stamp: float, ok: bool = True) -> None:
        if not ok:
            self.refused += 1
            return
        if rid in self.answered:
            return
        self.answered.add(rid)
        self.last_stamp = max(self.last_stamp, stamp)
        if len(self.answered) == self.expected:
            self.finished = time.perf_counter()
            self.done.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), timeout)

    @property
    def seconds(self) -> float | None:
        return None if self.finished is None else self.finished - self.started

    @property
    def one_way(self) -> float | None:
        return None if self.finished is None else self.last_stamp - self.wall_started


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: a value that was actually observed (with 10 rounds, p99 is the maximum)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def cpu_seconds(pids: int | list[int]) -> float:
    """User + system CPU time of a process, or summed over several (a fleet's processes: `Child.pids`)."""
    total = 0.0
    for pid in [pids] if isinstance(pids, int) else pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


@dataclass
class Distribution:
    name: str
    rounds: list[Round]
    cpu_ms_per_round: dict[str, float] = field(default_factory=dict)  # process name → CPU ms per timed round

    def values(self, one_way: bool = False) -> list[float]:
        picked = (r.one_way if one_way else r.seconds for r in self.rounds)
        return [v for v in picked if v is not None]

    def summary(self, one_way: bool = False) -> dict[str, float]:
        v = self.values(one_way)
        if not v:
            return {}
        return {"p50": percentile(v, 50), "p99": percentile(v, 99), "max": max(v)}

    def incomplete(self) -> list[str]:
        return [f"round {i}: {len(r.answered)}/{r.expected}" for i, r in enumerate(self.rounds)
                if r.finished is None]

    def refused(self) -> int:
        return sum(r.refused for r in self.rounds)


async def timed_rounds(name: str, count: int, warmup: int, expected: int, timeout: float,
                       one: Callable[[Round], Awaitable[None]], between: Callable[[], Awaitable[None]],
                       processes: dict[str, int | list[int]]) -> Distribution:
    """Run `warmup + count` rounds one after the other; keep the last `count`, and the CPU time that each of
    `processes` (name → pid, or the pids of a fleet in several processes, summed) spent over them. On two
    CPUs the round time is mostly queueing for a CPU, so the CPU time is what says where the work is."""
    kept: list[Round] = []
    cpu_before: dict[str, float] = {}
    for i in range(warmup + count):
        if i == warmup:
            cpu_before = {p: cpu_seconds(pid) for p, pid in processes.items()}
        r = Round(expected)
        await one(r)
        await r.wait(timeout)
        label = "warm-up" if i < warmup else f"round {i - warmup + 1}/{count}"
        log.info("%s %s: %d/%d answers in %s", name, label, len(r.answered), expected,
                 f"{r.seconds * 1000:.1f} ms" if r.seconds is not None else f"more than {timeout} s")
        if i >= warmup:
            kept.append(r)
        await between()
    cpu = {p: (cpu_seconds(pid) - cpu_before[p]) * 1000 / count for p, pid in processes.items()}
    return Distribution(name, kept, cpu)


# ------------------------------------------------------------------------------------ child processes


@dataclass
class Child:
    name: str
    proc: asyncio.subprocess.Process
    log_path: Path

    @classmethod
    async def start(cls, name: str, args: list[str], log_dir: Path, *, pipe_stdout: bool = False,
                    env: dict[str, str] | None = None) -> Child:
        """Start `args` with this process's environment plus `env`."""
        log_path = log_dir / f"{name}.log"
        with log_path.open("ab") as out:
            # Own session: a Ctrl-C on the bench reaches only the bench, whose `finally` stops children in
            # order (the fleet must say `stopped` before the broker goes away).
            proc = await asyncio.create_subprocess_exec(
                *args, cwd=REPO, stdout=asyncio.subprocess.PIPE if pipe_stdout else out, stderr=out,
                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        return cls(name, proc, log_path)

    def alive(self) -> bool:
        return self.proc.returncode is None

    def tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def pids(self) -> list[int]:
        """This process and its descendants (a fleet in several processes: the parent and one per share)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            return [self.proc.pid, *(c.pid for c in psutil.Process(self.proc.pid).children(recursive=True))]
        return [self.proc.pid]

    def memory(self) -> dict[str, int]:
        """RSS, and on Linux its anonymous part (heap: what the agents' objects cost, without the mapped
        libraries and the SQLite `-shm` files, which are tmpfs pages in this bench); summed over `pids`."""
        out = {"rss": 0, "RssAnon": 0, "RssFile": 0, "RssShmem": 0}
        for pid in self.pids():
            with contextlib.suppress(psutil.NoSuchProcess, OSError):
                rss = int(psutil.Process(pid).memory_info().rss)
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    key, _, value = line.partition(":")
                    if key in out:
                        out[key] += int(value.split()[0]) * 1024
                out["rss"] += rss
        return out

    async def stop(self, timeout: float = 60.0) -> None:
        if not self.alive():
            return
        started = time.monotonic()
        self.proc.terminate()  # SIGTERM: agents announce `stopped` and disconnect cleanly
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            log.warning("%s did not stop within %s s; killing it", self.name, timeout)
            self.proc.kill()
            await self.proc.wait()
        log.info("%s stopped in %.1f s", self.name, time.monotonic() - started)


# ----------------------------------------------------------------------------------------- baseline


async def bare_subscribers(fleet_file: Path, count: int, concurrency: int, shard: tuple[int, int] | None = None
                           ) -> None:
    """Child process: `count` plain clients that answer every all-receivers ping with `token arrival-time`,
    the token being the payload up to its first space (what follows is padding: see `bare_rounds`). With
    `shard` (index, count), only that share of them: one of the processes of `bare_processes`, which stops
    when its parent is gone. Prints `ready K` once its K clients are subscribed.

    They log in with the receivers' own accounts (the broker's ACLs allow nothing else) under client ids
    that are not the agents' (`rx-…`), with clean sessions, so nothing of theirs outlives this process."""
    settings = agent_settings(load_fleet_file(fleet_file), Path(tempfile.gettempdir()), count)
    if shard is not None:
        settings = settings[share(len(settings), *shard)]
    count = len(settings)
    topics = Topics(settings[0].base)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if shard is not None:
        watch_parent(stop)
    gate = asyncio.Semaphore(concurrency)  # 1000 simultaneous CONNECTs overrun the 2-CPU test machine
    ready = 0

    async def connect(stack: contextlib.AsyncExitStack, s: AgentSettings) -> aiomqtt.Client:
        host, port, _ = s.broker
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                async with gate:
                    client = aiomqtt.Client(host, port, identifier=f"bench-bare-{s.receiver_id}",
                                            username=s.username, password=s.password, clean_session=True,
                                            keepalive=60, timeout=30)
                    return await stack.enter_async_context(client)
            except aiomqtt.MqttError as e:
                log.warning("%s: connect failed (%s); retrying", s.receiver_id, e)
                await asyncio.sleep(random.uniform(0.5, 2.0) * (attempt + 1))
        raise RuntimeError(f"{s.receiver_id}: could not connect in {CONNECT_ATTEMPTS} attempts")

    async def serve(s: AgentSettings) -> None:
        nonlocal ready
        reply = topics.receiver(s.receiver_id, "ack")
        async with contextlib.AsyncExitStack() as stack:
            client = await connect(stack, s)
            await client.subscribe(topics.all_cmd("ping"), qos=1)  # the agents' QoS, for a fair comparison
            ready += 1
            if ready == count:
                print(f"ready {count}", flush=True)
            async for message in client.messages:
                arrived = time.time()
                token = message.payload.partition(b" ")[0] if isinstance(message.payload, bytes) else b"?"
                await client.publish(reply, token + f" {arrived:.6f}".encode(), qos=1)

    tasks = [asyncio.create_task(serve(s)) for s in settings]
    waiter = asyncio.create_task(stop.wait())
    # A subscriber task only ever ends by failing, so the first task to finish is the stop or a failure.
    await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            log.error("bare subscriber failed: %s", t.exception())
        t.cancel()
    waiter.cancel()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)


async def bare_processes(fleet_file: Path, count: int, processes: int, concurrency: int) -> int:
    """The `--bare-subscribers` parent of several processes: `count` clients split as the fleet's receivers
    are (`firmware_sim.processes`), each child printing its `ready K` to this process's stdout."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    argvs = [[sys.executable, str(Path(__file__).resolve()), "--bare-subscribers", str(fleet_file), "--receivers",
              str(count), "--connect-concurrency", str(max(1, concurrency // processes)), "--shard", f"{i}/{processes}"]
             for i in range(processes)]
    return await run_processes(argvs, stop)


async def start_bare_subscribers(fleet_file: Path, n: int, processes: int, log_dir: Path, timeout: float) -> Child:
    """N bare subscribers in `processes` processes (as many as the fleet's), once every one is subscribed."""
    subs = await Child.start("bare-subscribers", [
        sys.executable, str(Path(__file__).resolve()), "--bare-subscribers", str(fleet_file),
        "--receivers", str(n), "--processes", str(processes)], log_dir, pipe_stdout=True)
    assert subs.proc.stdout is not None
    t0 = time.monotonic()
    ready = 0
    try:
        while ready < n:  # one `ready K` per process
            line = await asyncio.wait_for(subs.proc.stdout.readline(), max(0.1, timeout - (time.monotonic() - t0)))
            if not line.startswith(b"ready"):
                break
            ready += int(line.split()[1])
    except TimeoutError:
        pass
    if ready < n:
        await subs.stop()
        raise RuntimeError(f"{ready}/{n} bare subscribers ready after {timeout} s:\n{subs.tail()}")
    log.info("%d bare subscribers in %d processes connected in %.1f s", n, processes, time.monotonic() - t0)
    return subs


async def bare_rounds(tb: Testbed, n: int, args: argparse.Namespace, subscribers: Child, *, size: int = 0,
                      name: str = "bare") -> Distribution:
    """Publish a bare token to the ping topic as the controller's account; count replies per token. With
    `size`, the token is padded (after a space) to a message of `size` bytes, e.g. a command's size."""
    mqtt = tb.settings.mqtt
    topics = Topics(tb.settings.mqtt_base)
    ack_filter = next(f for f in topics.ingest_filters() if f.endswith("/ack"))
    current: dict[bytes, Round] = {}

    async def read(client: aiomqtt.Client) -> None:
        async for message in client.messages:
            info = topics.parse(message.topic.value)
            if info is None or info.ident is None or not isinstance(message.payload, bytes):
                continue
            token, _, arrived = message.payload.partition(b" ")
            r = current.get(token)
            if r is not None:
                r.answer(info.ident, float(arrived))

    async with aiomqtt.Client(mqtt.host, mqtt.port, identifier="bench-bare-publisher", username=mqtt.username,
                              password=mqtt.password, clean_session=True, timeout=30) as client:
        await client.subscribe(ack_filter, qos=1)
        reader = asyncio.create_task(read(client))
        serial = 0

        async def one(r: Round) -> None:
            nonlocal serial
            serial += 1
            token = f"r{serial}".encode()
            payload = token + b" " + b"x" * (size - len(token) - 1) if size > len(token) + 1 else token
            current.clear()
            current[token] = r
            r.start()
            await client.publish(topics.all_cmd("ping"), payload, qos=1)

        try:
            processes: dict[str, int | list[int]] = {"bench": os.getpid(), "subscribers": subscribers.pids(),
                                                     "broker": tb.broker.proc.pid}
            return await timed_rounds(name, args.rounds, args.warmup, n, args.timeout, one,
                                      lambda: asyncio.sleep(PAUSE_BETWEEN_ROUNDS_S), processes)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


# --------------------------------------------------------------------------------- controller path


def count_online(engine: Engine) -> int:
    with Session(engine) as s:
        query = select(func.count()).select_from(ReceiverStatus).where(col(ReceiverStatus.availability) == "online")
        return int(s.exec(query).one())


async def wait_online(bridge: Bridge, tb: Testbed, want: int, timeout: float, fleet: Child | None) -> float:
    """Wait until exactly `want` receivers are online in the database (what the controller believes)."""
    started = time.monotonic()
    last_report = 0.0
    while True:
        await bridge.flush()
        online = await asyncio.to_thread(count_online, tb.engine)
        elapsed = time.monotonic() - started
        if online == want:
            return elapsed
        if fleet is not None and not fleet.alive():
            raise RuntimeError(f"the fleet exited ({fleet.proc.returncode}):\n{fleet.tail()}")
        if elapsed > timeout:
            raise TimeoutError(f"{online} receivers online after {timeout} s, expected {want}")
        if elapsed - last_report >= 10:
            log.info("%d/%d receivers online after %.0f s", online, want, elapsed)
            last_report = elapsed
        await asyncio.sleep(0.5)


async def start_fleet(fleet_file: Path, state_dir: Path, count: int, log_dir: Path, processes: int | None = None,
                      env: dict[str, str] | None = None) -> Child:
    """`truyenthanh-dev fleet` of `count` receivers in `processes` processes (default: one per core)."""
    return await Child.start(f"fleet-{count}", [
        sys.executable, "-m", "devrig.cli", "fleet", "--file", str(fleet_file), "--receivers", str(count),
        "--state-dir", str(state_dir), "--telemetry-interval", "3600", "--keepalive", "60",
        "--processes", str(processes or default_processes())], log_dir, env=env)


async def fleet_memory(bridge: Bridge, tb: Testbed, fleet_file: Path, state_dir: Path, count: int,
                       log_dir: Path, timeout: float, processes: int) -> dict[str, int]:
    """Memory of a fleet of `count` agents once all are online (summed over its processes); the fleet is
    stopped again."""
    fleet = await start_fleet(fleet_file, state_dir, count, log_dir, processes)
    try:
        await wait_online(bridge, tb, count, timeout, fleet)
        await asyncio.sleep(SETTLE_S)
        memory = fleet.memory()
    finally:
        await fleet.stop()
    # Every agent said `stopped`; wait for the controller to know, so the next fleet is counted afresh.
    await wait_online(bridge, tb, 0, 30, None)
    return memory


async def controller_rounds(bridge: Bridge, tb: Testbed, n: int, args: argparse.Namespace, fleet: Child
                            ) -> Distribution:
    async def one(r: Round) -> None:
        command = Ping.new(Target.everyone(), 60)

        def on_ack(rid: str, ack: Ack) -> None:
            r.answer(rid, ack.at.timestamp(), ack.status == "applied")

        # The watch must outlive `send`'s return: acks may come before the broker's PUBACK to us.
        with bridge.watch(str(command.command_id), on_ack):
            r.start()
            await bridge.send(command, "bench")
            await r.wait(args.timeout)

    async def between() -> None:
        await bridge.flush()  # the round's acks reach the database before the next round is timed
        await asyncio.sleep(PAUSE_BETWEEN_ROUNDS_S)

    processes: dict[str, int | list[int]] = {"bench": os.getpid(), "fleet": fleet.pids(), "broker": tb.broker.proc.pid}
    return await timed_rounds("controller", args.rounds, args.warmup, n, args.timeout, one, between, processes)


# ---------------------------------------------------------------------------------------- reporting


def ms(stats: dict[str, float], key: str) -> str:
    return f"{stats[key] * 1000:8.1f}" if key in stats else "       –"


def report(n: int, args: argparse.Namespace, bare: Distribution, ctrl: Distribution,
           small: dict[str, int], full: dict[str, int], after: dict[str, int], online_s: float,
           load_before: float) -> None:
    b, c = bare.summary(), ctrl.summary()
    bw, cw = bare.summary(one_way=True), ctrl.summary(one_way=True)
    print(f"\nMQTT fan-out to {n} receivers, broker {args.broker}, {args.rounds} timed rounds each "
          f"(after {args.warmup} warm-up), times in ms (nearest rank); load average before: {load_before:.2f}")
    print(f"{'':52}{'p50':>8} {'p99':>8} {'max':>8}")
    rows = [("controller: Bridge.send → N agent acks watched", c),
            ("bare aiomqtt: publish → N replies", b),
            ("controller one-way: publish → last agent ack stamp", cw),
            ("bare one-way: publish → last subscriber arrival", bw)]
    for label, s in rows:
        print(f"{label:52}{ms(s, 'p50')} {ms(s, 'p99')} {ms(s, 'max')}")
    if b and c:
        print(f"{'ratio controller / bare':52}{c['p50'] / b['p50']:8.2f} {c['p99'] / b['p99']:8.2f} "
              f"{c['max'] / b['max']:8.2f}")
    for d in (ctrl, bare):
        cpu = ", ".join(f"{p} {v:.0f}" for p, v in d.cpu_ms_per_round.items())
        print(f"{d.name} CPU ms per round (incl. the {PAUSE_BETWEEN_ROUNDS_S} s pause): {cpu}")
    for d in (ctrl, bare):
        if d.incomplete():
            print(f"INCOMPLETE {d.name} rounds (timeout {args.timeout} s): {', '.join(d.incomplete())}")
        if d.refused():
            print(f"{d.name}: {d.refused()} refusals (rejected acks)")
    k = args.small_fleet
    print(f"\nfleet: all {n} agents online {online_s:.1f} s after start; the fleet and the bare subscribers in "
          f"{args.processes} processes each (memory and CPU summed over them)")
    rounds = args.warmup + args.rounds
    for label, m in ((f"fleet memory, {n} agents online", full), (f"  after the {rounds} rounds", after),
                     (f"fleet memory, {k} agents online", small)):
        parts = [f"{key} {v / MiB:.1f} MiB" for key, v in m.items()]
        print(f"{label:40}{', '.join(parts)}")
    for key in ("rss", "RssAnon"):
        if key in full and key in small:
            print(f"{key:8} per receiver: {full[key] / n / 1024:.1f} KiB average, "
                  f"{(full[key] - small[key]) / (n - k) / 1024:.1f} KiB marginal ({n} vs {k} agents)")


# ------------------------------------------------------------------------------------------ the run


def shm_dir() -> Path:
    # Each simulated receiver keeps an fsynced SQLite replay memory; on a real deployment that is one SD
    # card per receiver, here a thousand of them would share one disk and measure its fsync queue.
    if Path("/dev/shm").is_dir():
        return Path(tempfile.mkdtemp(prefix="tt-fanout-state-", dir="/dev/shm"))
    log.warning("/dev/shm missing: the agents' replay memories go to disk and their fsyncs will dominate")
    return Path(tempfile.mkdtemp(prefix="tt-fanout-state-"))


async def run(args: argparse.Namespace) -> int:
    # SIGTERM (a CI timeout, `kill`) must still stop the broker and the fleet: make it a cancellation, like
    # Ctrl-C is, so that the `finally` below runs.
    me = asyncio.current_task()
    assert me is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, me.cancel)
    n = args.receivers
    load_before = os.getloadavg()[0]  # a busy machine explains odd figures; the report shows it
    data_dir = Path(tempfile.mkdtemp(prefix="tt-fanout-"))
    os.chmod(data_dir, 0o755)  # Mosquitto drops to its own user and must still reach its files in here
    state_dir = shm_dir()
    children: list[Child] = []
    tb: Testbed | None = None
    bridge: Bridge | None = None
    try:
        seed = data_dir / "seed.toml"
        write_seed(seed, n)
        tb = await asyncio.to_thread(make_testbed, data_dir, args.broker, seed_file=seed)
        if len(tb.fleet["receivers"]) != n:
            raise RuntimeError(f"the testbed holds {len(tb.fleet['receivers'])} receivers, not {n}")
        fleet_file = data_dir / "fleet.json"  # every receiver's MQTT password: removed with data_dir
        log.info("testbed: %s on port %d, %d receivers", args.broker, tb.broker.port, n)

        # 1. Baseline, before any agent exists: nothing else is subscribed or connected.
        subs = await start_bare_subscribers(fleet_file, n, args.processes, data_dir, args.online_timeout)
        children.append(subs)
        bare = await bare_rounds(tb, n, args, subs)
        await subs.stop()

        # 2. The controller path. The bridge starts only now: it would otherwise ingest (and reject) the
        # bare replies, and spend the baseline's CPU on it.
        bridge = Bridge(tb.settings, tb.engine, ensure_signing_key(tb.settings)[0])
        await bridge.start()
        await bridge.wait_connected(30)
        small = await fleet_memory(bridge, tb, fleet_file, state_dir, args.small_fleet, data_dir,
                                   args.online_timeout, args.processes)
        fleet = await start_fleet(fleet_file, state_dir, n, data_dir, args.processes)
        children.append(fleet)
        online_s = await wait_online(bridge, tb, n, args.online_timeout, fleet)
        log.info("all %d agents online in %.1f s", n, online_s)
        await asyncio.sleep(SETTLE_S)
        full = fleet.memory()
        ctrl = await controller_rounds(bridge, tb, n, args, fleet)
        after = fleet.memory()
        await fleet.stop()

        report(n, args, bare, ctrl, small, full, after, online_s, load_before)
        return 1 if bare.incomplete() or ctrl.incomplete() else 0
    finally:
        for child in reversed(children):
            await child.stop()
        if bridge is not None:
            await bridge.stop()
        if tb is not None:
            tb.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--receivers", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=10, help="timed rounds per measurement (at least 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds before them")
    p.add_argument("--broker", choices=["mosquitto", "amqtt"], default="mosquitto")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a round may take before it counts "
                   "as incomplete")
    p.add_argument("--online-timeout", type=float, default=300.0, help="seconds for all clients to connect")
    p.add_argument("--small-fleet", type=int, default=10, help="fleet size for the marginal memory figure")
    p.add_argument("--processes", type=int, default=default_processes(), help="processes for the fleet and, "
                   "as many, for the bare subscribers (default: one per core)")
    p.add_argument("--bare-subscribers", type=Path, metavar="FLEET_FILE", help=argparse.SUPPRESS)
    p.add_argument("--connect-concurrency", type=int, default=50, help=argparse.SUPPRESS)
    p.add_argument("--shard", type=parse_shard, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("receivers").setLevel(logging.WARNING)  # the bridge's Link logs each reconnect
    if args.processes < 1:
        p.error("need --processes >= 1")
    if args.bare_subscribers is not None:
        k = min(args.processes, args.receivers)
        if args.shard is None and k > 1:
            return asyncio.run(bare_processes(args.bare_subscribers, args.receivers, k, args.connect_concurrency))
        asyncio.run(bare_subscribers(args.bare_subscribers, args.receivers, args.connect_concurrency, args.shard))
        return 0
    if args.rounds < 10 or not 0 < args.small_fleet < args.receivers:
        p.error("need --rounds >= 10 and 0 < --small-fleet < --receivers")
    try:
        return asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
