"""Scheduling benchmark: compiling every receiver's 48-hour plan, and how precisely receivers start on time.

    .venv/bin/python bench/schedule.py compile [--receivers 10000 --programmes 200 --rounds 5]
    .venv/bin/python bench/schedule.py accuracy [--receivers 500 --rounds 3]

`compile`: a district of `--receivers` receivers (100 per commune, 10 per village) and `--programmes`
programmes of every kind (commune-wide daily bulletins at 06:00 and 17:00, weekday village relays,
weekly priority notices, single-receiver programmes), with their recurrences starting months ago.
1. The pure compile (`schedules.compile_plans`, one core) — median of `--rounds`;
2. the baseline in the same run: the same plans compiled receiver by receiver, without sharing the
   placement between receivers that the same programmes target (what a naive compiler does);
3. the controller's whole recompile (`Runner._compile` + `_store_versions`: inventory, programmes and
   content from SQLite, compile, version rows) on a database holding that district.

`accuracy` (issue 5's second figure): a testbed (Mosquitto, a seed of exactly `--receivers` receivers), the
real controller (`truyenthanh serve`, a child process, as bench/emergency.py runs it) and every receiver as a
real agent (`truyenthanh-dev fleet` in `--processes` processes, one per core by default, state in /dev/shm,
`controller_url` in its fleet file so that agents pull their plans and audio; `amp_warmup_s` 1 s, their
default, and `amp_idle_off_s` short enough that the amplifier is off again before each start, as between
programmes hours apart). One announcement (offline TTS) through the API; then each round a one-off
programme for all receivers, `--lead` seconds ahead on a whole second, and, after its end, the `started`
proof-of-play events of its item from `GET /api/v1/plays`: |at − scheduled start| per receiver (`at` is the
agent's own clock at the first sound), and who did not start. Also per round: POST → every receiver's new
plan served (the controller's `ReceiverPlanState.fetched_at`, read from its database), and the amplifiers
already on before the warm-up. Baseline, in the same run after each round: one fresh event loop in this
process sleeping as many tasks as the largest share of the fleet's processes holds (N / processes) until
one wall-clock instant the way the player does (`call_at`), |wake − target| — the timer floor of a loop on
this machine, against which the agents' figure shows what their own work in one shared loop adds.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# `bench` lives in the repository, not in the installed distribution.
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import datetime as dt  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

import httpx  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

import schedules  # noqa: E402
from bench.emergency import stamp, start_controller, wait_healthy, wait_online  # noqa: E402
from bench.fanout import Child, percentile, shm_dir, start_fleet, write_seed  # noqa: E402
from controller.db.models import ReceiverPlanState, ReceiverStatus  # noqa: E402
from controller.provision import write_private  # noqa: E402
from controller.services.accounts import issue_token  # noqa: E402
from devrig.ports import free_port  # noqa: E402
from devrig.testbed import Testbed, make_testbed  # noqa: E402
from firmware_sim.processes import default_processes  # noqa: E402
from schedules import ContentItem, Programme  # noqa: E402

log = logging.getLogger("bench.schedule")
TZ = schedules.TZ
PER_COMMUNE, PER_VILLAGE = 100, 10
T = TypeVar("T")


def district(receivers: int) -> dict[str, list[str]]:
    """commune code → receiver ids (villages are ids' middle part)."""
    out: dict[str, list[str]] = {}
    for k in range(receivers):
        c, v, r = k // PER_COMMUNE, (k % PER_COMMUNE) // PER_VILLAGE, k % PER_VILLAGE
        out.setdefault(f"xa-{c}", []).append(f"xa-{c}-thon-{v}-{r}")
    return out


def synthetic_programmes(communes: dict[str, list[str]], count: int, now: dt.datetime) -> list[Programme]:
    """`count` programmes of the kinds a district really has, targets spread over its communes."""
    codes = sorted(communes)
    item = [ContentItem(f"bulletin:{i}", hashlib.sha256(str(i).encode()).hexdigest(), 300.0 + 30 * (i % 5), 2_400_000,
                        f"Bản tin {i}") for i in range(20)]
    since = (now - dt.timedelta(days=120)).astimezone(TZ).replace(hour=6, minute=0, second=0, microsecond=0)
    out = []
    for i in range(count):
        kind = i % 4
        code = codes[i % len(codes)]
        members = communes[code]
        if kind == 0:  # commune bulletin, morning and evening
            p = Programme(i + 1, f"Bản tin sáng chiều {code}", (item[i % 20], item[(i + 1) % 20]), frozenset(members),
                          since, "FREQ=DAILY;BYHOUR=6,17;BYMINUTE=0")
        elif kind == 1:  # weekday relay for one village
            village = frozenset(m for m in members if f"-thon-{i % 10}-" in m)
            p = Programme(i + 1, f"Tiếp sóng {code}", (item[(i + 2) % 20],), village,
                          since.replace(hour=11, minute=30), "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR")
        elif kind == 2:  # priority notice into the morning programme's time
            p = Programme(i + 1, f"Thông báo {code}", (item[(i + 3) % 20],), frozenset(members),
                          since.replace(hour=6, minute=5), "FREQ=WEEKLY;BYDAY=MO,TH", priority="priority")
        else:  # one receiver's programme (the market loudspeaker)
            p = Programme(i + 1, f"Loa chợ {code}", (item[(i + 4) % 20],), frozenset(members[:1]),
                          since.replace(hour=7, minute=(i * 7) % 60), "FREQ=DAILY")
        out.append(p)
    return out


def naive(programmes: list[Programme], receivers: list[str], start: dt.datetime, end: dt.datetime) -> int:
    """The baseline: each receiver's programmes placed for that receiver alone."""
    slots = 0
    for rid in receivers:
        mine = [p for p in programmes if rid in p.receivers]
        slots += len(schedules.place(mine, start, end))
    return slots


def timed(fn: Callable[[], T], rounds: int) -> tuple[float, T]:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def bench_compile(args: argparse.Namespace) -> None:
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=2), now + dt.timedelta(hours=48)
    communes = district(args.receivers)
    receivers = [r for rs in communes.values() for r in rs]
    programmes = synthetic_programmes(communes, args.programmes, now)
    pure, plans = timed(lambda: schedules.compile_plans(programmes, receivers, start, end), args.rounds)
    slots = sum(len(p.slots) for p in plans.values())
    distinct = len({id(p) for p in plans.values()})
    base, base_slots = timed(lambda: naive(programmes, receivers, start, end), max(1, args.rounds // 2))
    assert base_slots == slots, f"baseline placed {base_slots} slots, compile {slots}"
    print(f"compile: {len(receivers)} receivers, {len(programmes)} programmes, window 48 h: "
          f"{slots} plan entries, {distinct} distinct placements")
    print(f"  schedules.compile_plans (one core, median of {args.rounds}): {pure * 1000:.0f} ms   (goal < 2000 ms)")
    print(f"  baseline, each receiver placed alone:       {base * 1000:.0f} ms   ratio {pure / base:.3f}")
    whole = controller_recompile(communes, programmes, args.rounds)
    print(f"  controller recompile from SQLite (inventory, programmes, compile, versions): {whole * 1000:.0f} ms")


def controller_recompile(communes: dict[str, list[str]], programmes: list[Programme], rounds: int) -> float:
    """The runner's compile and version bookkeeping on a real database holding the same district."""
    from controller.config import Settings
    from controller.db import make_engine, migrate
    from controller.db.models import Bulletin, Commune, MediaFile, Receiver, Village
    from controller.db.models import Programme as ProgrammeRow
    from controller.scheduling import Runner

    with tempfile.TemporaryDirectory(prefix="tt-bench-schedule-") as tmp:
        settings = Settings(demo=True, data_dir=Path(tmp))
        engine = make_engine(settings.db_url)
        migrate(engine)
        with Session(engine) as s:
            village_ids: dict[str, int] = {}
            for code, members in communes.items():
                commune = Commune(code=code, name=code)
                s.add(commune)
                s.flush()
                assert commune.id is not None
                for rid in members:
                    vcode = "-".join(rid.split("-")[2:4])
                    if f"{code}/{vcode}" not in village_ids:
                        v = Village(commune_id=commune.id, code=vcode, name=vcode)
                        s.add(v)
                        s.flush()
                        assert v.id is not None
                        village_ids[f"{code}/{vcode}"] = v.id
                    s.add(Receiver(id=rid, name=rid, commune_id=commune.id, village_id=village_ids[f"{code}/{vcode}"]))
            items = {i.key: i for p in programmes for i in p.items}
            for key, i in items.items():
                s.add(MediaFile(sha256=i.sha256, size_bytes=i.size, duration_s=i.duration_s, loudness_lufs=-16,
                                true_peak_dbtp=-2))
                s.flush()
                s.add(Bulletin(id=int(key.split(":")[1]) + 1, title=i.title, media_sha256=i.sha256,
                               source_filename="x.mp3", source_format="mp3", loudness_before=-20, loudness_after=-16,
                               created_by="bench"))
            for p in programmes:
                s.add(ProgrammeRow(id=p.id, title=p.title, items=[{"bulletin_id": int(i.key.split(":")[1]) + 1}
                                                                  for i in p.items],
                                   targets={"receivers": sorted(p.receivers)}, start=p.start.astimezone(dt.UTC),
                                   rrule=p.rrule, priority=p.priority, created_by="bench",
                                   approved_by="bench", approved_at=dt.datetime.now(dt.UTC)))  # drafts plan nothing
            s.commit()
        runner = Runner(settings, engine, None, None)  # type: ignore[arg-type]
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            window = runner.window_at(dt.datetime.now(dt.UTC))
            plans = runner._compile(window)
            runner._store_versions(plans, dt.datetime.now(dt.UTC))
            times.append(time.perf_counter() - t0)
        engine.dispose()
        return statistics.median(times)


# ------------------------------------------------------------------------------------------ accuracy

TEXT = "Thông báo: chiều nay họp thôn lúc ba giờ tại nhà văn hoá."
MARGIN_S = 2.0  # after a programme's end: the fleet writes its proof of play, the controller ingests it
EVENTS_TIMEOUT_S = 30.0  # then at most this long for the last `started` events to come in
LATE_S = 0.1  # a start this late is counted apart: no loop's timer is that far off, something waited


@dataclass
class AccuracyRound:
    programme_id: int
    start: dt.datetime  # the scheduled start (UTC, a whole second)
    posted_s: float  # POST /programmes → 201
    offsets: dict[str, float] = field(default_factory=dict)  # receiver → `started` at − scheduled start (s)
    not_started: list[str] = field(default_factory=list)
    other_events: Counter[str] = field(default_factory=Counter)  # missed / failed for the item: why not
    plan_fetch_s: list[float] | None = None  # per receiver: POST sent → its new plan served (fetched_at)
    floor: list[float] = field(default_factory=list)  # the baseline's wake − target, this round
    amps_on: int | None = None  # amplifiers on (as the controller last heard) just before the warm-up


def timer_floor(n: int, lead_s: float = 1.0) -> list[float]:
    """The baseline: `n` tasks in one fresh event loop each sleep until the same wall-clock instant the way the
    player does (`Player._until`: wall clock → loop clock, `loop.call_at`) and stamp the wall clock when they
    wake. Returns wake − target per task: what one core's loop costs before any agent code runs."""
    async def body() -> list[float]:
        loop = asyncio.get_running_loop()
        target = float(math.ceil(time.time() + lead_s))
        stamps: list[float] = []

        async def one() -> None:
            woken = loop.create_future()
            loop.call_at(loop.time() + (target - time.time()), woken.set_result, None)
            await woken
            stamps.append(time.time())

        await asyncio.gather(*(one() for _ in range(n)))
        return [t - target for t in stamps]

    return asyncio.run(body())


def plan_states(engine: Engine) -> dict[str, tuple[str, str | None, dt.datetime | None]]:
    """receiver → (plan version it should hold, version it last fetched, when), as the controller wrote them."""
    with Session(engine) as s:
        return {r.receiver_id: (r.version, r.fetched_version, r.fetched_at) for r in s.exec(select(ReceiverPlanState))}


async def watch_plans(engine: Engine, before: dict[str, str], sent: float, until: float) -> list[float] | None:
    """Until every receiver has fetched a plan newer than `before` (the controller stamps `fetched_at` as it
    serves one): each one's fetched_at − `sent`. None if not all had by `until` (wall clock)."""
    while time.time() < until:
        fetched = {rid: stamp(at) - sent for rid, (version, got, at) in (await asyncio.to_thread(plan_states, engine))
                   .items() if version != before.get(rid) and got == version and at is not None}
        if len(fetched) >= len(before):
            return list(fetched.values())
        await asyncio.sleep(0.1)
    return None


async def wait_plans_held(engine: Engine, n: int, timeout: float) -> float:
    """Each agent pulls its (still empty) plan after connecting: wait until all `n` hold the current one."""
    started = time.monotonic()
    while True:
        held = sum(1 for version, got, _ in (await asyncio.to_thread(plan_states, engine)).values() if got == version)
        if held >= n:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{held}/{n} receivers hold their plan after {timeout} s")
        await asyncio.sleep(0.5)


def amplifiers_on(engine: Engine) -> int:
    with Session(engine) as s:
        return len(s.exec(select(ReceiverStatus.receiver_id).where(ReceiverStatus.amplifier == "on")).all())


def when(text: str) -> dt.datetime:
    at = dt.datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)  # the database gives back UTC without its offset


class Operator:
    """The API with an admin token: the announcement, the programmes, the proof of play."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                      timeout=httpx.Timeout(120.0))

    async def call(self, method: str, path: str, want: int, **kw: Any) -> Any:
        r = await self.http.request(method, path, **kw)
        if r.status_code != want:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r.json()

    async def plays(self, event: str, start: dt.datetime, prefix: str) -> list[dict[str, Any]]:
        window = {"from": (start - dt.timedelta(minutes=5)).isoformat(),
                  "to": (start + dt.timedelta(minutes=5)).isoformat()}
        events: list[dict[str, Any]] = []
        while True:  # the API's pages hold at most 1,000
            page = await self.call("GET", "/api/v1/plays", 200,
                                   params={"event": event, "limit": 1000, "offset": len(events), **window})
            events += page["data"]
            if not page["data"] or len(events) >= page["count"]:
                break
        return [e for e in events if e["item_id"].startswith(prefix)]


async def accuracy_round(api: Operator, engine: Engine, k: int, announcement: dict[str, Any],
                         receivers: list[str], lead: float, warmup: float) -> AccuracyRound:
    """One programme for every receiver, `lead` seconds ahead; its proof of play read back."""
    duration = float(announcement["duration_s"])
    before = {rid: v for rid, (v, _, _) in (await asyncio.to_thread(plan_states, engine)).items()}
    start = dt.datetime.fromtimestamp(math.ceil(time.time() + lead), dt.UTC)
    body = {"title": f"Bench: start-time accuracy {k}", "items": [{"announcement_id": announcement["id"]}],
            "targets": {"all": True}, "start": start.astimezone(TZ).isoformat(), "priority": "normal"}
    sent = time.time()
    programme = await api.call("POST", "/api/v1/programmes", 201, json=body)
    rec = AccuracyRound(programme["id"], start, time.time() - sent)
    if programme["receivers"] != len(receivers) or when(programme["next"][0]) != start:
        raise RuntimeError(f"programme {rec.programme_id}: {programme['receivers']} receivers, next "
                           f"{programme['next'][:1]}; expected {len(receivers)} at {start.isoformat()}")
    rec.plan_fetch_s = await watch_plans(engine, before, sent, start.timestamp())
    await asyncio.sleep(max(0.0, start.timestamp() - warmup - 1.5 - time.time()))  # before the amps go on
    rec.amps_on = await asyncio.to_thread(amplifiers_on, engine)
    await asyncio.sleep(max(0.0, start.timestamp() + duration + MARGIN_S - time.time()))
    prefix = f"p{rec.programme_id}-"
    deadline = time.monotonic() + EVENTS_TIMEOUT_S
    while True:
        for e in await api.plays("started", start, prefix):
            rec.offsets.setdefault(e["receiver_id"], (when(e["at"]) - start).total_seconds())  # the first sound
        if len(rec.offsets) >= len(receivers) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    rec.not_started = sorted(set(receivers) - set(rec.offsets))
    if rec.not_started:
        for event in ("missed", "failed", "cut"):
            rec.other_events[event] = len(await api.plays(event, start, prefix))
    return rec


def row(label: str, values: list[float]) -> str:
    if not values:
        return f"{label:58}{'–':>9}"
    return f"{label:58}" + "".join(f"{v * 1000:9.1f}" for v in (percentile(values, 50), percentile(values, 99),
                                                                 max(values)))


def spread_and_gap(r: AccuracyRound) -> tuple[float | None, float]:
    """A steady cost per receiver in the fleet's one loop spreads the starts evenly; a stall (a garbage
    collection, the CPU taken by another process) shows as one large gap."""
    at = sorted(r.offsets.values())
    return (at[-1] - at[0] if at else None), max((b - a for a, b in zip(at, at[1:], strict=False)), default=0.0)


def accuracy_report(args: argparse.Namespace, n: int, announcement: dict[str, Any], rounds: list[AccuracyRound],
                    load_before: float, online_s: float) -> None:
    errors = [abs(v) for r in rounds for v in r.offsets.values()]
    floor = [abs(v) for r in rounds for v in r.floor]
    print(f"\nStart-time accuracy: one-off programme for all {n} receivers (controller child over HTTP → {n} real "
          f"agents in {args.processes} fleet processes), {len(rounds)} rounds, created {args.lead:.0f} s ahead; "
          f"agents' "
          f"amp_warmup_s = {args.amp_warmup}, amp_idle_off_s = {args.amp_idle_off} (the amplifier is off again "
          f"before each start); load average before: {load_before:.2f}")
    print(f"announcement: {announcement['duration_s']:.2f} s, offline TTS; every agent online {online_s:.1f} s after "
          f"the fleet started; times in ms (nearest rank)")
    print(f"{'':58}{'p50':>9}{'p99':>9}{'max':>9}")
    print(row(f"|`started` at − scheduled start|, {len(errors)} starts", errors))
    for i, r in enumerate(rounds, 1):
        print(row(f"  round {i} (programme {r.programme_id}, {len(r.offsets)}/{n} started)",
                  [abs(v) for v in r.offsets.values()]))
    print(row(f"baseline: one loop, {-(-n // args.processes)} call_at to one instant, {len(floor)} wake-ups", floor))
    if errors and floor:
        ratios = [(percentile(errors, p) / percentile(floor, p)) if percentile(floor, p) else math.inf
                  for p in (50, 99)] + [max(errors) / max(floor) if max(floor) else math.inf]
        print(f"{'ratio agents / baseline':58}" + "".join(f"{x:9.2f}" for x in ratios))
    if errors:
        p99 = percentile(errors, 99)
        print(f"goal p99 < 50 ms: {'met' if p99 < 0.050 else 'NOT met'} ({p99 * 1000:.1f} ms)")
    signed = [v for r in rounds for v in r.offsets.values()]
    if signed:
        print(f"signed (at − scheduled): earliest {min(signed) * 1000:+.1f} ms, latest {max(signed) * 1000:+.1f} ms")
        print("per round, spread of the starts (last − first) / largest gap between two consecutive starts: "
              + ", ".join(f"{spread * 1000:.1f} / {gap * 1000:.1f}" for spread, gap in map(spread_and_gap, rounds)
                          if spread is not None) + " ms")
    late = [sum(1 for v in r.offsets.values() if v > LATE_S) for r in rounds]
    print(f"starts more than {LATE_S * 1000:.0f} ms late: {sum(late)} (per round {late})")
    missing = [len(r.not_started) for r in rounds]
    print(f"receivers that did not start: {sum(missing)} (per round {missing})")
    for i, r in enumerate(rounds, 1):
        if r.not_started:
            print(f"  round {i}: {', '.join(r.not_started[:10])}{' …' if len(r.not_started) > 10 else ''}; item "
                  f"events for it: {dict(r.other_events)}")
    print(f"amplifiers already on {args.amp_warmup + 1.5:.1f} s before the start (controller's view): "
          f"{[r.amps_on for r in rounds]} per round")
    posted = [r.posted_s for r in rounds]
    print(f"POST /api/v1/programmes → 201: {', '.join(f'{v * 1000:.0f}' for v in posted)} ms")
    held = [r.plan_fetch_s for r in rounds]
    print("programme POST sent → every receiver fetched its new plan (controller's ReceiverPlanState.fetched_at; "
          "the agent stores and applies it a moment later):")
    for i, f in enumerate(held, 1):
        print(f"  round {i}: " + (f"p50 {percentile(f, 50) * 1000:.0f} ms, last {max(f) * 1000:.0f} ms"
                                  if f else "NOT every receiver before the start"))


async def accuracy(args: argparse.Namespace) -> int:
    """Testbed, controller child, fleet child; the rounds; the report. Every child is stopped in `finally`."""
    me = asyncio.current_task()
    assert me is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, me.cancel)  # so that `finally` runs
    n = args.receivers
    load_before = os.getloadavg()[0]
    data_dir = Path(tempfile.mkdtemp(prefix="tt-schedule-"))
    os.chmod(data_dir, 0o755)  # Mosquitto drops to its own user and must still reach its files in here
    state_dir = shm_dir()  # the agents' fsynced stores: tmpfs, not one shared disk for N "SD cards"
    children: list[Child] = []
    tb: Testbed | None = None
    api: Operator | None = None
    try:
        seed = data_dir / "seed.toml"
        write_seed(seed, n)
        tb = await asyncio.to_thread(make_testbed, data_dir, "mosquitto", seed_file=seed)
        receivers = sorted(r["receiver_id"] for r in tb.fleet["receivers"])
        if len(receivers) != n:
            raise RuntimeError(f"the testbed holds {len(receivers)} receivers, not {n}")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        fleet_file = data_dir / "fleet.json"  # receivers' passwords: removed with data_dir
        write_private(fleet_file, json.dumps({**tb.fleet, "controller_url": url}).encode())
        with Session(tb.engine) as s:
            token = issue_token(s, "bench-schedule", ["admin"])[1]
        api = Operator(url, token)
        controller = await start_controller(tb, port, data_dir, "controller")
        children.append(controller)
        await wait_healthy(api.http, controller, 60)
        announcement = await api.call("POST", "/api/v1/announcements", 201, json={"text": TEXT, "engine": "offline"})

        fleet = await start_fleet(fleet_file, state_dir, n, data_dir, args.processes, env={
            "TT_AGENT_AMP_WARMUP_S": str(args.amp_warmup), "TT_AGENT_AMP_IDLE_OFF_S": str(args.amp_idle_off)})
        children.append(fleet)
        online_s = await wait_online(tb.engine, n, args.online_timeout, fleet)
        held_s = await wait_plans_held(tb.engine, n, args.online_timeout)
        log.info("all %d agents online in %.1f s, holding their plans %.1f s later", n, online_s, held_s)

        rounds = []
        for k in range(1, args.rounds + 1):
            rec = await accuracy_round(api, tb.engine, k, announcement, receivers, args.lead, args.amp_warmup)
            # The fleet is idle again by now; one loop holds the largest share of the fleet's processes.
            rec.floor = await asyncio.to_thread(timer_floor, -(-n // args.processes))
            errors = [abs(v) for v in rec.offsets.values()]
            log.info("round %d: %d/%d started, max |error| %.1f ms; baseline max %.1f ms", k, len(rec.offsets), n,
                     max(errors, default=math.nan) * 1000, max(map(abs, rec.floor)) * 1000)
            rounds.append(rec)
        accuracy_report(args, n, announcement, rounds, load_before, online_s)
        return 0 if all(not r.not_started for r in rounds) else 1
    finally:
        if api is not None:
            await api.http.aclose()
        for child in reversed(children):  # the fleet says `stopped` before the controller and broker go
            await child.stop()
        if tb is not None:
            tb.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("compile")
    c.add_argument("--receivers", type=int, default=10_000)
    c.add_argument("--programmes", type=int, default=200)
    c.add_argument("--rounds", type=int, default=5)
    a = sub.add_parser("accuracy")
    a.add_argument("--receivers", type=int, default=500)
    a.add_argument("--rounds", type=int, default=3)
    a.add_argument("--lead", type=float, default=20.0, help="seconds between creating a programme and its start")
    a.add_argument("--amp-warmup", type=float, default=1.0, help="the agents' amp_warmup_s (their default)")
    a.add_argument("--amp-idle-off", type=float, default=5.0, help="the agents' amp_idle_off_s: shorter than the "
                   "time between rounds, so that every start finds the amplifier off (programmes hours apart)")
    a.add_argument("--online-timeout", type=float, default=300.0, help="seconds for every agent to connect")
    a.add_argument("--processes", type=int, default=default_processes(), help="processes for the fleet "
                   "(default: one per core)")
    args = ap.parse_args(argv)
    if args.what == "compile":
        logging.basicConfig(level=logging.WARNING)
        bench_compile(args)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "receivers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return asyncio.run(accuracy(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
