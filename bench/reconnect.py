"""Reconnect benchmark: a fleet that lost its broker comes back. How long until the controller sees every
receiver online again, and how the agents' backoff spreads their reconnections.

    .venv/bin/python bench/reconnect.py [--receivers 1000] [--down-seconds 10] [--timeout 300]

1. A testbed (`devrig.testbed.make_testbed`): Mosquitto as provisioned for production (persistence on), a
   seed with exactly `--receivers` receivers (`bench.fanout.write_seed`), the controller's real `Bridge` in
   this process writing to SQLite.
2. Every receiver as a real agent (`truyenthanh-dev fleet` in `--processes` processes, one per core by
   default; production backoff 1 s..60 s with full jitter, keepalive 30 s, state in /dev/shm), until the
   controller has all of them online.
3. The broker is killed hard (SIGKILL: no wills, nothing said to anyone) and started again on the same port
   and files after `--down-seconds`. Every agent saw its connection drop at the same moment and retried on its
   own backoff meanwhile.
4. From the broker's restart, the database is read every 0.2 s: a receiver is back once its availability is
   `online` with an `at` (the agent's own time of connecting, same clock) later than the restart. Retained
   `online`s restored from the broker's persistence carry older times and are not counted.

Printed: the time until all are back as the controller sees them; per receiver, the time of its connection
(p50, p95, max) after the restart; the connection rate (connections per second: the peak second, and the
peak over 100 ms, as a rate), and who did not come back within `--timeout`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.fanout import Child, shm_dir, wait_online, write_seed  # noqa: E402
from controller.bridge import Bridge  # noqa: E402
from controller.db.models import ReceiverStatus  # noqa: E402
from controller.provision import ensure_signing_key  # noqa: E402
from devrig.ports import wait_port  # noqa: E402
from devrig.testbed import Testbed, make_testbed  # noqa: E402
from firmware_sim.processes import default_processes  # noqa: E402

log = logging.getLogger("bench.reconnect")


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def back_since(engine: Engine, since: float) -> dict[str, float]:
    """Receivers online with an availability time after `since` (epoch s): receiver id → that time."""
    with Session(engine) as s:
        rows = s.exec(select(ReceiverStatus.receiver_id, ReceiverStatus.availability,
                             ReceiverStatus.availability_at)).all()
    out = {}
    for rid, availability, at in rows:
        if availability == "online" and at is not None:
            t = (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).timestamp()
            if t > since:
                out[rid] = t
    return out


@dataclass
class Result:
    receivers: int
    down_s: float
    first_online_s: float  # the fleet's first start, until the controller had every receiver online
    seen: dict[str, float]  # receiver → seconds after the restart when the controller had it online again
    connected: dict[str, float]  # receiver → seconds after the restart when it connected (its own clock)
    load_before: float
    processes: int = 1  # the fleet's

    def all_back_s(self) -> float | None:
        return max(self.seen.values()) if len(self.seen) == self.receivers else None

    def per_second(self) -> collections.Counter[int]:
        return collections.Counter(int(t) for t in self.connected.values())


async def measure(n: int, down_s: float, timeout: float, processes: int | None = None) -> Result:
    """Start `n` receivers (in `processes` processes, default one per core), kill the broker, start it
    again `down_s` later, and time their return."""
    processes = processes or default_processes()
    load_before = os.getloadavg()[0]
    data_dir = Path(tempfile.mkdtemp(prefix="tt-reconnect-"))
    os.chmod(data_dir, 0o755)
    state_dir = shm_dir()
    fleet: Child | None = None
    tb: Testbed | None = None
    bridge: Bridge | None = None
    try:
        seed = data_dir / "seed.toml"
        write_seed(seed, n)
        tb = await asyncio.to_thread(make_testbed, data_dir, "mosquitto", seed_file=seed, persistence=True)
        bridge = Bridge(tb.settings, tb.engine, ensure_signing_key(tb.settings)[0])
        await bridge.start()
        await bridge.wait_connected(30)
        fleet = await Child.start(f"fleet-{n}", [
            sys.executable, "-m", "devrig.cli", "fleet", "--file", str(data_dir / "fleet.json"),
            "--receivers", str(n), "--state-dir", str(state_dir), "--keepalive", "30", "--processes", str(processes)],
            data_dir)
        first_online = await wait_online(bridge, tb, n, timeout, fleet)
        log.info("all %d online in %.1f s; killing the broker", n, first_online)
        await asyncio.sleep(2)  # let the last retained 'online's reach the broker's next save

        old = tb.broker.proc
        old.send_signal(signal.SIGKILL)
        old.wait()
        await asyncio.sleep(down_s)
        with (tb.broker.directory / "broker.log").open("ab") as blog:
            tb.broker.proc = subprocess.Popen(old.args, stdout=blog, stderr=blog)
        restart_wall, restart_mono = time.time(), time.monotonic()
        await asyncio.to_thread(wait_port, tb.broker.port, 20, tb.broker.proc)

        seen: dict[str, float] = {}  # receiver → seconds after the restart when the controller had it
        connected: dict[str, float] = {}  # receiver → seconds after the restart when it connected
        while len(seen) < n and time.monotonic() - restart_mono < timeout:
            await bridge.flush()
            now = time.monotonic() - restart_mono
            for rid, at in (await asyncio.to_thread(back_since, tb.engine, restart_wall)).items():
                if rid not in seen:
                    seen[rid], connected[rid] = now, at - restart_wall
            if not fleet.alive():
                raise RuntimeError(f"the fleet exited:\n{fleet.tail()}")
            await asyncio.sleep(0.2)

        return Result(n, down_s, first_online, seen, connected, load_before, processes)
    finally:
        if fleet is not None:
            await fleet.stop()
        if bridge is not None:
            await bridge.stop()
        if tb is not None:
            tb.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)


def report(r: Result) -> None:
    n, times = r.receivers, list(r.connected.values())
    per_s = r.per_second()
    per_100ms = collections.Counter(int(t * 10) for t in times)
    print(f"\n{n} receivers, broker down {r.down_s:g} s (SIGKILL, persistence on), agents' backoff "
          f"1..60 s full jitter; load average before: {r.load_before:.1f}, cores: {os.cpu_count()}, "
          f"fleet processes: {r.processes}")
    print(f"first start: all online in {r.first_online_s:.1f} s")
    back = r.all_back_s()
    if back is not None:
        print(f"after the restart: all {n} back online (as the controller sees them) in {back:.1f} s")
    else:
        print(f"after the restart: only {len(r.seen)}/{n} back")
    if times:
        print(f"per receiver, connected after the restart: p50 {nearest_rank(times, 0.5):.1f} s, "
              f"p95 {nearest_rank(times, 0.95):.1f} s, max {max(times):.1f} s")
        peak_s, peak_n = max(per_s.items(), key=lambda kv: kv[1])
        print(f"connection rate: peak {peak_n} in one second (second {peak_s} after the restart), "
              f"peak 100 ms {max(per_100ms.values())} (= {10 * max(per_100ms.values())}/s); "
              f"if all came at once: {n} in the first second")
        print("connections per second after the restart:",
              " ".join(f"{s}:{per_s[s]}" for s in range(0, max(per_s) + 1)))


async def run(args: argparse.Namespace) -> int:
    me = asyncio.current_task()
    assert me is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, me.cancel)
    result = await measure(args.receivers, args.down_seconds, args.timeout, args.processes)
    report(result)
    return 0 if result.all_back_s() is not None else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--receivers", type=int, default=1000)
    p.add_argument("--down-seconds", type=float, default=10.0, help="how long the broker stays dead")
    p.add_argument("--timeout", type=float, default=300.0, help="for the first start and for the return")
    p.add_argument("--processes", type=int, default=default_processes(), help="processes for the fleet "
                   "(default: one per core)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("receivers").setLevel(logging.ERROR)
    logging.getLogger("controller").setLevel(logging.WARNING)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
