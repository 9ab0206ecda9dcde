"""Emergency benchmark (issue 6): one API call until every receiver's loudspeaker is playing.

    .venv/bin/python bench/emergency.py --receivers 1000 [--rounds 10] [--broker mosquitto]

On one testbed (`devrig.testbed`: Mosquitto with the production ACLs, a seeded SQLite database with
exactly N receivers spread over the communes, see `fanout.write_seed`), in this order:

1. First call. The real controller (`truyenthanh serve`, i.e. `create_app(settings)` under uvicorn, a child
   process) with no receiver connected yet gets `POST /api/v1/emergencies` with a short Vietnamese text:
   its answer time is text-to-speech, ingest and signing with nothing cached — its own figure. The
   emergency is cancelled and the controller stopped, so that its bridge is not ingesting during (2).
2. Raw broker fan-out (`fanout.bare_rounds`): a bare publisher → N bare aiomqtt subscribers, each replying
   at once; once with fanout.py's short token and once with a message the size of the emergency's signed
   play command (read from the database after (1)). This has to come before any agent connects: the
   agents' sessions are persistent, and the broker would queue every baseline message for them.
3. The emergency path. The controller again, and N real agents (`truyenthanh-dev fleet`, in `--processes`
   child processes, one per core by default, as many as the bare subscribers of (2);
   `TT_AGENT_AMP_WARMUP_S=0`: the amplifier's warm-up is a hardware delay, not our software path). Each
   round: `POST /api/v1/emergencies` {the same text, all receivers, repeat 1, a new request_id} over
   HTTP, then the emergency's Server-Sent Events (`GET /{id}/events`); the round ends at the first event
   whose totals show every receiver `playing` (or already `done`). Then `POST /{id}/cancel`, and a wait
   until every receiver has logged the item's end (`cut` or `finished` proof-of-play events in the
   database): only then is every player free for the next emergency (an equal class would queue behind).

A round's time runs from just before the POST is sent to the SSE event that completes the totals. Its
one-way part ends at the latest `started` proof-of-play stamp of the round (each receiver stamps it, by its
own clock — the same machine's — as the sound begins, just before it acks `playing`): what is left is the
controller catching up with the acks. The controller runs with `TT_EMERGENCY__RATE_PER_MINUTE` raised: the
bench triggers more than the default 10 emergencies a minute.

The goal of the issue is the whole path within 1.5× the raw broker fan-out; the report compares with both
baselines and says whether it is met. CPU per round and process says where the time goes.

In this file:
- `start_controller`, `wait_healthy`, `wait_online`: the controller child and the readiness checks.
- `Api`: the HTTP client with an admin token (trigger, watch by SSE, cancel).
- `EmergencyRounds`: one round (`one`) and what happens between rounds (`between`), for `timed_rounds`.
- `first_call`, `baselines`: steps 1 and 2; `run`: the whole sequence with every process stopped in
  `finally`; `report`; `main`.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# `bench` lives in the repository, not in the installed distribution.
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
from sqlalchemy import func  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import Session, col, select  # noqa: E402

from bench.fanout import (  # noqa: E402
    Child,
    Distribution,
    Round,
    bare_rounds,
    count_online,
    ms,
    percentile,
    shm_dir,
    start_bare_subscribers,
    start_fleet,
    timed_rounds,
    write_seed,
)
from controller.db.models import Emergency, PlayRecord  # noqa: E402
from controller.services.accounts import issue_token  # noqa: E402
from devrig.ports import free_port  # noqa: E402
from devrig.testbed import Testbed, make_testbed  # noqa: E402
from firmware_sim.processes import default_processes  # noqa: E402

log = logging.getLogger("bench.emergency")

TEXT = "Cảnh báo lũ quét, sơ tán ngay."
REACHED = ("playing", "done")  # a receiver whose loudspeaker has sounded
ENDED = ("finished", "cut", "failed", "missed")  # proof-of-play events that end an item on a receiver
PAUSE_BETWEEN_ROUNDS_S = 0.5
SETTLE_S = 3.0  # after the last agent is online: the connect burst (state, availability) is over by then
RATE_PER_MINUTE = 10_000  # TT_EMERGENCY__RATE_PER_MINUTE: the bench triggers far more than 10 a minute


# ------------------------------------------------------------------------------------- controller


async def start_controller(tb: Testbed, port: int, log_dir: Path, name: str) -> Child:
    """`truyenthanh serve` on the testbed: `create_app(Settings())` under uvicorn, configured by environment."""
    s = tb.settings
    assert s.mqtt_url is not None
    env = {"TT_DEMO": "1", "TT_DATA_DIR": str(s.data_dir), "TT_SEED_FILE": str(s.seed_file),
           "TT_MQTT_URL": s.mqtt_url, "TT_MQTT_BASE": s.mqtt_base, "TT_HOST": "127.0.0.1", "TT_PORT": str(port),
           "TT_EMERGENCY__RATE_PER_MINUTE": str(RATE_PER_MINUTE)}
    return await Child.start(name, [sys.executable, "-m", "controller.cli", "serve"], log_dir, env=env)


async def wait_healthy(http: httpx.AsyncClient, controller: Child, timeout: float) -> float:
    """Until `/healthz` says the controller's bridge is connected to the broker."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if (await http.get("/healthz")).json().get("mqtt") == "connected":
                return time.monotonic() - started
        if not controller.alive():
            raise RuntimeError(f"the controller exited ({controller.proc.returncode}):\n{controller.tail()}")
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"the controller was not connected to the broker after {timeout} s")
        await asyncio.sleep(0.2)


async def wait_online(engine: Engine, want: int, timeout: float, fleet: Child) -> float:
    """Until the database (written by the controller's bridge) shows `want` receivers online."""
    started = time.monotonic()
    last_report = 0.0
    while True:
        online = await asyncio.to_thread(count_online, engine)
        elapsed = time.monotonic() - started
        if online == want:
            return elapsed
        if not fleet.alive():
            raise RuntimeError(f"the fleet exited ({fleet.proc.returncode}):\n{fleet.tail()}")
        if elapsed > timeout:
            raise TimeoutError(f"{online} receivers online after {timeout} s, expected {want}")
        if elapsed - last_report >= 10:
            log.info("%d/%d receivers online after %.0f s", online, want, elapsed)
            last_report = elapsed
        await asyncio.sleep(0.5)


# ------------------------------------------------------------------------------------------- API


class Api:
    """The operator's side: an admin token over HTTP."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                      timeout=httpx.Timeout(120.0))

    async def trigger(self, request_id: str) -> dict[str, Any]:
        body = {"text": TEXT, "targets": {"all": True}, "repeat": 1, "request_id": request_id}
        resp = await self.http.post("/api/v1/emergencies", json=body)
        if resp.status_code != 202:
            raise RuntimeError(f"POST /api/v1/emergencies: {resp.status_code} {resp.text[:500]}")
        answer: dict[str, Any] = resp.json()
        return answer

    async def cancel(self, eid: str) -> dict[str, Any]:
        resp = await self.http.post(f"/api/v1/emergencies/{eid}/cancel")
        if resp.status_code != 200:
            raise RuntimeError(f"cancel {eid}: {resp.status_code} {resp.text[:500]}")
        answer: dict[str, Any] = resp.json()
        return answer

    async def events(self, eid: str) -> AsyncIterator[tuple[str, Any]]:
        """The emergency's Server-Sent Events as (event, data) pairs, data decoded from JSON."""
        async with self.http.stream("GET", f"/api/v1/emergencies/{eid}/events") as resp:
            if resp.status_code != 200:
                raise RuntimeError(f"events of {eid}: {resp.status_code} {(await resp.aread())[:500]!r}")
            event, data = "", []
            async for line in resp.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif not line:
                    if data:
                        yield event, json.loads("\n".join(data))
                    event, data = "", []

    async def close(self) -> None:
        await self.http.aclose()


# ----------------------------------------------------------------------------------------- rounds


def item_events(engine: Engine, item_id: str) -> tuple[int, int, dt.datetime | None, dt.datetime | None]:
    """Receivers that logged the end of `item_id`, receivers that logged its start, the latest start and the
    latest end."""
    with Session(engine) as s:
        ended, last_end = s.exec(select(func.count(func.distinct(PlayRecord.receiver_id)), func.max(PlayRecord.at))
                                 .where(PlayRecord.item_id == item_id, col(PlayRecord.event).in_(ENDED))).one()
        started, last = s.exec(select(func.count(func.distinct(PlayRecord.receiver_id)), func.max(PlayRecord.at))
                               .where(PlayRecord.item_id == item_id, PlayRecord.event == "started")).one()
    return int(ended), int(started), last, last_end


def written(pid: int | None) -> int:
    """Bytes process `pid` has passed to write/send so far (`/proc/PID/io` wchar): for Mosquitto, which
    persists nothing here, what it sent to its clients."""
    if pid is None:
        return 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def stamp(at: dt.datetime) -> float:
    return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).timestamp()


@dataclass
class EmergencyRound:
    round: Round
    eid: str | None = None
    accepted_s: float | None = None  # POST → 202
    sounded_s: float | None = None  # POST → the last receiver's `started` stamp (its own clock)
    started: int = 0  # receivers that logged `started`
    unseen: int = 0  # receivers whose `playing` came in no SSE event, though the totals counted it
    failed: int = 0
    settle_s: float | None = None  # cancel → every receiver logged the item's end
    silent_s: float | None = None  # cancel sent → the last receiver's `cut` stamp (its own clock): all silent
    egress: int | None = None  # bytes the broker wrote to its sockets from the POST to the last end logged
    wchar0: int = 0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)


class EmergencyRounds:
    """`one` and `between` for `timed_rounds`: trigger and watch; cancel and wait until the fleet is idle."""

    def __init__(self, api: Api, engine: Engine, n: int, settle_timeout: float, broker_pid: int | None = None) -> None:
        self.api, self.engine, self.n, self.settle_timeout = api, engine, n, settle_timeout
        self.broker_pid = broker_pid
        self.rounds: list[EmergencyRound] = []
        self.run_id = uuid.uuid4().hex[:8]

    async def one(self, r: Round) -> None:
        rec = EmergencyRound(r)
        self.rounds.append(rec)
        rec.wchar0 = written(self.broker_pid)
        r.start()
        answer = await self.api.trigger(f"bench-{self.run_id}-{len(self.rounds)}")
        rec.accepted_s = time.perf_counter() - r.started
        rec.eid = answer["id"]
        if len(answer["receivers"]) != self.n:
            raise RuntimeError(f"the emergency targets {len(answer['receivers'])} receivers, not {self.n}")
        rec.watcher = asyncio.create_task(self.watch(rec))

    async def watch(self, rec: EmergencyRound) -> None:
        r = rec.round
        assert rec.eid is not None
        async for event, data in self.api.events(rec.eid):
            if event == "snapshot":
                for receiver in data["receivers"]:
                    if receiver["status"] in REACHED:
                        r.answer(receiver["id"], 0.0)
            elif event == "progress":  # a batch of changes (at most every 0.1 s) and the totals after them
                for change in data["changes"]:
                    if change["status"] in REACHED:
                        r.answer(change["receiver"], 0.0)
            else:
                if event == "end":
                    return
                continue
            totals = data["totals"]
            rec.failed = totals["failed"]
            if totals["playing"] + totals["done"] >= self.n and r.finished is None:
                # Every event carries the totals: they are what an operator's screen shows.
                r.finished = time.perf_counter()
                r.done.set()
            if r.finished is not None:
                rec.unseen = self.n - len(r.answered)
                return

    async def between(self) -> None:
        rec = self.rounds[-1]
        if rec.watcher is not None:
            rec.watcher.cancel()
            results = await asyncio.gather(rec.watcher, return_exceptions=True)
            if isinstance(results[0], Exception):
                log.warning("watching %s failed: %r", rec.eid, results[0])
        if rec.eid is None:
            return
        cancelled_at = time.time()
        await self.api.cancel(rec.eid)
        started = time.monotonic()
        item = f"em-{rec.eid}"
        while True:
            ended, rec.started, last, last_end = await asyncio.to_thread(item_events, self.engine, item)
            if ended >= self.n:
                rec.settle_s = time.monotonic() - started
                if self.broker_pid is not None:
                    rec.egress = written(self.broker_pid) - rec.wchar0
                break
            if time.monotonic() - started > self.settle_timeout:
                log.warning("%s: only %d/%d receivers logged its end %.0f s after the cancel", item, ended, self.n,
                            self.settle_timeout)
                break
            await asyncio.sleep(0.2)
        if last is not None and rec.started == self.n:
            rec.sounded_s = stamp(last) - rec.round.wall_started
        if last_end is not None and ended >= self.n:
            rec.silent_s = stamp(last_end) - cancelled_at
        log.info("%s: cancelled; every receiver idle %.1f s later", item, rec.settle_s or float("nan"))
        await asyncio.sleep(PAUSE_BETWEEN_ROUNDS_S)


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values)} if values else {}


# --------------------------------------------------------------------------------- steps 1 and 2


@dataclass
class FirstCall:
    accepted_s: float
    answer: dict[str, Any]
    payload_bytes: int


async def first_call(api: Api, engine: Engine) -> FirstCall:
    """POST with nothing cached (no audio for the text yet), no receiver connected; then cancel."""
    t0 = time.perf_counter()
    answer = await api.trigger(f"bench-first-{uuid.uuid4().hex[:8]}")
    accepted = time.perf_counter() - t0
    await api.cancel(answer["id"])
    with Session(engine) as s:
        row = s.get(Emergency, answer["id"])
        assert row is not None
        size = max(len(p.encode()) for p in row.payloads.values())  # published byte for byte
    return FirstCall(accepted, answer, size)


async def baselines(tb: Testbed, n: int, args: argparse.Namespace, fleet_file: Path, log_dir: Path,
                    size: int) -> tuple[Distribution, Distribution]:
    """fanout.py's raw fan-out, with its short token and with a message of the play command's size; the
    bare subscribers in as many processes as the fleet (`--processes`), so that the ratio stays fair."""
    subs = await start_bare_subscribers(fleet_file, n, args.processes, log_dir, args.online_timeout)
    try:
        token = await bare_rounds(tb, n, args, subs)
        sized = await bare_rounds(tb, n, args, subs, size=size, name=f"bare-{size}B")
        return token, sized
    finally:
        await subs.stop()


# ---------------------------------------------------------------------------------------- report


def report(n: int, args: argparse.Namespace, first: FirstCall, cold: EmergencyRound, rounds: list[EmergencyRound],
           em: Distribution, bare: Distribution, sized: Distribution, load_before: float) -> None:
    e, b, z = em.summary(), bare.summary(), sized.summary()
    accepted = summary([r.accepted_s for r in rounds if r.accepted_s is not None])
    sounded = summary([r.sounded_s for r in rounds if r.sounded_s is not None])
    answer = first.answer
    print(f"\nEmergency to {n} receivers (controller over HTTP → {n} real agents), broker {args.broker}, "
          f"{args.rounds} timed rounds (after {args.warmup} warm-up), times in ms (nearest rank); "
          f"load average before: {load_before:.2f}")
    print(f"audio: {answer['duration_s']:.2f} s, {'inline' if answer['inline'] else 'by URL'}; signed play command "
          f"{first.payload_bytes} bytes, one publish to {', '.join(answer['topics'])}; agents' amp_warmup_s = 0")
    print(f"{'':60}{'p50':>8} {'p99':>8} {'max':>8}")
    rows = [("emergency: POST → SSE totals show N playing", e),
            ("  of which POST → 202 Accepted", accepted),
            ("  one-way: POST → last receiver's `started` stamp", sounded),
            (f"bare aiomqtt, {first.payload_bytes} B message: publish → N replies", z),
            ("bare aiomqtt, short token (fanout.py): publish → N replies", b),
            (f"  one-way, {first.payload_bytes} B: publish → last arrival", sized.summary(one_way=True)),
            ("  one-way, token: publish → last arrival", bare.summary(one_way=True))]
    for label, s in rows:
        print(f"{label:60}{ms(s, 'p50')} {ms(s, 'p99')} {ms(s, 'max')}")
    verdicts = []
    for label, base in ((f"{first.payload_bytes} B message", z), ("short token", b)):
        if e and base:
            ratio = {k: e[k] / base[k] for k in ("p50", "p99", "max")}
            print(f"{'ratio emergency / bare, ' + label:60}{ratio['p50']:8.2f} {ratio['p99']:8.2f} {ratio['max']:8.2f}")
            met = ratio["p50"] <= 1.5 and ratio["p99"] <= 1.5
            verdicts.append(f"against the {label}: {'met' if met else 'NOT met'} "
                            f"({ratio['p50']:.2f}× / {ratio['p99']:.2f}× at p50 / p99)")
    zw = sized.summary(one_way=True)
    if sounded and zw:
        label = f"ratio one-way emergency / bare, {first.payload_bytes} B"
        print(f"{label:60}" + " ".join(f"{sounded[k] / zw[k]:8.2f}" for k in ("p50", "p99", "max")))
    print("goal, whole path within 1.5× the raw broker fan-out — " + "; ".join(verdicts))
    for d in (em, sized, bare):
        cpu = ", ".join(f"{p} {v:.0f}" for p, v in d.cpu_ms_per_round.items())
        extra = (" (incl. cancel, wait until idle, pause)" if d is em
                 else f" (incl. the {PAUSE_BETWEEN_ROUNDS_S} s pause)")
        print(f"{d.name} CPU ms per round{extra}: {cpu}")
    print(f"\nfirst call, nothing cached (TTS + ingest + sign + publish): POST → 202 in "
          f"{first.accepted_s * 1000:.0f} ms")
    if cold.round.seconds is not None:
        print(f"first round with the fleet (audio cached on the controller, not yet on the receivers): "
              f"{cold.round.seconds * 1000:.0f} ms to N playing (POST → 202 {(cold.accepted_s or 0) * 1000:.0f} ms)")
    settle = [r.settle_s for r in rounds if r.settle_s is not None]
    if settle:
        line = (f"cancel → every receiver idle (its end logged in the database): p50 "
                f"{percentile(settle, 50) * 1000:.0f} ms, max {max(settle) * 1000:.0f} ms")
        if b:
            line += (f"; ratio to the bare fan-out of a short token {percentile(settle, 50) / b['p50']:.2f} "
                     f"at p50, {max(settle) / b['max']:.2f} at max")
        print(line)
    silent = [r.silent_s for r in rounds if r.silent_s is not None]
    if silent:
        line = (f"one-way cancel: POST cancel → the last receiver's `cut` stamp (all silent): p50 "
                f"{percentile(silent, 50) * 1000:.0f} ms, max {max(silent) * 1000:.0f} ms")
        bw = bare.summary(one_way=True)  # a stop is a short message: the token's fan-out is its baseline
        if bw:
            line += (f"; ratio to the bare one-way fan-out of a short token "
                     f"{percentile(silent, 50) / bw['p50']:.2f} at p50, {max(silent) / bw['max']:.2f} at max")
        print(line)
    ctl = em.cpu_ms_per_round.get("controller")
    if ctl is not None:
        print(f"controller CPU per receiver per emergency (trigger, progress, cancel, ends): {ctl / n:.3f} ms")
    fleet_cpu = sum(v for k, v in em.cpu_ms_per_round.items() if k.startswith("fleet"))
    print(f"fleet CPU per receiver per emergency (all agents' work, incl. the simulated sound card): "
          f"{fleet_cpu / n:.3f} ms")
    egress = [r.egress for r in rounds if r.egress is not None]
    if egress:
        per = percentile([float(e) for e in egress], 50) / n
        print(f"broker egress per emergency (POST → every end logged, cancel included): p50 "
              f"{percentile([float(e) for e in egress], 50) / 1e6:.2f} MB, {per / 1024:.1f} KiB per receiver; "
              f"for 10,000 receivers ≈ {per * 10_000 / 1e6:.0f} MB")
    unseen = sum(r.unseen for r in rounds)
    print(f"SSE: {unseen} receivers' `playing` came in no event of their own (only in later events' totals)")
    for d in (em, sized, bare):
        if d.incomplete():
            print(f"INCOMPLETE {d.name} rounds (timeout {args.timeout} s): {', '.join(d.incomplete())}")
    if any(r.failed for r in rounds):
        print(f"failed receivers: {', '.join(f'round {i}: {r.failed}' for i, r in enumerate(rounds) if r.failed)}")
    short = [i for i, r in enumerate(rounds) if r.started != n]
    if short:
        print(f"rounds where not every receiver logged `started`: {short}")


# ------------------------------------------------------------------------------------------ the run


async def run(args: argparse.Namespace) -> int:
    me = asyncio.current_task()
    assert me is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, me.cancel)  # so that `finally` runs
    n = args.receivers
    load_before = os.getloadavg()[0]
    data_dir = Path(tempfile.mkdtemp(prefix="tt-emergency-"))
    os.chmod(data_dir, 0o755)  # Mosquitto drops to its own user and must still reach its files in here
    state_dir = shm_dir()
    children: list[Child] = []
    tb: Testbed | None = None
    api: Api | None = None
    try:
        seed = data_dir / "seed.toml"
        write_seed(seed, n)
        tb = await asyncio.to_thread(make_testbed, data_dir, args.broker, seed_file=seed)
        if len(tb.fleet["receivers"]) != n:
            raise RuntimeError(f"the testbed holds {len(tb.fleet['receivers'])} receivers, not {n}")
        fleet_file = data_dir / "fleet.json"
        with Session(tb.engine) as s:
            token = issue_token(s, "bench-emergency", ["admin"])[1]
        port = free_port()
        api = Api(f"http://127.0.0.1:{port}", token)
        log.info("testbed: %s on port %d, %d receivers; controller on port %d", args.broker, tb.broker.port, n, port)

        # 1. The first call, nothing cached, no receiver connected.
        controller = await start_controller(tb, port, data_dir, "controller-first")
        children.append(controller)
        await wait_healthy(api.http, controller, 60)
        first = await first_call(api, tb.engine)
        log.info("first call: 202 in %.0f ms; signed command %d bytes", first.accepted_s * 1000, first.payload_bytes)
        await controller.stop()

        # 2. The raw broker fan-out, before any agent has a session on the broker.
        bare, sized = await baselines(tb, n, args, fleet_file, data_dir, first.payload_bytes)

        # 3. The emergency path.
        controller = await start_controller(tb, port, data_dir, "controller")
        children.append(controller)
        await wait_healthy(api.http, controller, 60)
        fleet = await start_fleet(fleet_file, state_dir, n, data_dir, args.processes,
                                  env={"TT_AGENT_AMP_WARMUP_S": "0"})
        children.append(fleet)
        online_s = await wait_online(tb.engine, n, args.online_timeout, fleet)
        log.info("all %d agents online in %.1f s", n, online_s)
        await asyncio.sleep(SETTLE_S)
        rounds = EmergencyRounds(api, tb.engine, n, args.settle_timeout, tb.broker.proc.pid)
        processes: dict[str, int | list[int]] = {"bench": os.getpid(), "controller": controller.proc.pid,
                                                 "fleet": fleet.pids(), "broker": tb.broker.proc.pid}
        em = await timed_rounds("emergency", args.rounds, args.warmup, n, args.timeout, rounds.one, rounds.between,
                                processes)
        await fleet.stop()

        timed = rounds.rounds[args.warmup:]
        report(n, args, first, rounds.rounds[0], timed, em, bare, sized, load_before)
        print(f"the fleet and the bare subscribers in {args.processes} processes each (CPU summed over them)")
        return 1 if em.incomplete() or bare.incomplete() or sized.incomplete() else 0
    finally:
        if api is not None:
            await api.close()
        for child in reversed(children):  # the fleet says `stopped` before the controller and broker go
            await child.stop()
        if tb is not None:
            tb.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--receivers", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=10, help="timed rounds per measurement (at least 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds before them (at least 1: the first "
                   "round with the fleet finds the receivers' caches cold)")
    p.add_argument("--broker", choices=["mosquitto", "amqtt"], default="mosquitto")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a round may take before it counts "
                   "as incomplete")
    p.add_argument("--settle-timeout", type=float, default=60.0, help="seconds for every receiver to be idle "
                   "after a cancel")
    p.add_argument("--online-timeout", type=float, default=300.0, help="seconds for all clients to connect")
    p.add_argument("--processes", type=int, default=default_processes(), help="processes for the fleet and, as "
                   "many, for the bare subscribers (default: one per core)")
    args = p.parse_args(argv)
    if args.rounds < 10 or args.warmup < 1 or args.receivers < 1 or args.processes < 1:
        p.error("need --rounds >= 10, --warmup >= 1, --receivers >= 1 and --processes >= 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("receivers").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    try:
        return asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
