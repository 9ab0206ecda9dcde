"""Ingest flood benchmark (issue 12): how fast `/healthz` and the emergency route answer while uploads flood
the controller, compared with the same probes on an idle controller.

    .venv/bin/python bench/ingest_flood.py [--uploads 40] [--kind crafted|heavy|both] [--idle-s 10]

On one testbed (`devrig.testbed`: Mosquitto, a seeded SQLite database), the real controller (`truyenthanh
serve` as a child process, `bench.emergency.start_controller`) gets:

1. Idle: for `--idle-s` seconds, `GET /healthz` every 0.1 s and `POST /api/v1/emergencies` (a stored
   bulletin to every receiver: no text-to-speech) every second.
2. For each kind of flood, `--uploads` uploads to `POST /api/v1/bulletins` at once, with the same probes
   running until the last upload is answered:
   - `crafted`: an ffconcat playlist (`.wav` name) naming a stored bulletin 10,000 times (before issue 12:
     8 hours of decoding each, and the API stalled);
   - `heavy`: genuine 3-minute WAV recordings, which pass every check and need real ffmpeg work (the ingest
     gate runs `TT_AUDIO__MAX_CONCURRENT_INGESTS` at a time, queues a few, answers 503 to the rest).

It prints, per phase, each probe's median, 95th percentile and maximum latency, the ratio to idle, the
uploads' answers by status and how long the flood lasted. No receiver is connected (the emergency route's
answer does not wait for receivers).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # `bench` lives in the repository, not in the installed distribution

import argparse  # noqa: E402
import asyncio  # noqa: E402
import collections  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
from sqlmodel import Session  # noqa: E402

from bench.emergency import start_controller, wait_healthy  # noqa: E402
from controller.services.accounts import issue_token  # noqa: E402
from devrig.ports import free_port  # noqa: E402
from devrig.testbed import make_testbed  # noqa: E402
from tests.samples import make  # noqa: E402

REPEATS = 10_000


class Probes:
    """`/healthz` every 0.1 s and an emergency every second, until stopped; latencies in seconds."""

    def __init__(self, http: httpx.AsyncClient, bulletin_id: int) -> None:
        self.http, self.bulletin_id = http, bulletin_id
        self.latency: dict[str, list[float]] = {"healthz": [], "emergency": []}
        self.failures: list[str] = []

    async def _timed(self, name: str, call: Any, expected: int) -> None:
        started = time.perf_counter()
        try:
            r = await call
            if r.status_code != expected:
                self.failures.append(f"{name}: {r.status_code} {r.text[:200]}")
        except httpx.HTTPError as e:
            self.failures.append(f"{name}: {e!r}")
        self.latency[name].append(time.perf_counter() - started)

    async def health(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._timed("healthz", self.http.get("/healthz"), 200)
            await asyncio.sleep(0.1)

    async def emergencies(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            body = {"bulletin_id": self.bulletin_id, "targets": {"all": True}, "repeat": 1}
            await self._timed("emergency", self.http.post("/api/v1/emergencies", json=body), 202)
            await asyncio.sleep(1.0)

    async def during(self, work: Any) -> Any:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(self.health(stop)), asyncio.create_task(self.emergencies(stop))]
        try:
            return await work
        finally:
            stop.set()
            await asyncio.gather(*tasks)


def figures(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return statistics.median(ordered), p95, ordered[-1]


async def flood(url: str, headers: dict[str, str], files: list[tuple[str, bytes]]) -> tuple[dict[int, int], float]:
    """Every upload at once, each on its own connection; (answers by status, seconds until the last)."""
    started = time.perf_counter()

    async def one(i: int, name: str, data: bytes) -> int:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=httpx.Timeout(600.0)) as client:
            try:
                r = await client.post("/api/v1/bulletins", data={"title": f"Tin {i}"},
                                      files={"file": (name, data, "application/octet-stream")})
                return r.status_code
            except httpx.HTTPError:
                return 0  # no answer

    codes = await asyncio.gather(*(one(i, name, data) for i, (name, data) in enumerate(files)))
    return dict(collections.Counter(codes)), time.perf_counter() - started


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="tt-flood-") as tmp:
        data_dir = Path(tmp)
        os.chmod(data_dir, 0o755)  # Mosquitto drops to its own user and must read its files
        tb = make_testbed(data_dir / "bed", "mosquitto")
        port = free_port()
        controller = await start_controller(tb, port, data_dir, "controller")
        try:
            with Session(tb.engine) as s:
                token = issue_token(s, "bench-admin", ["admin"], created_by="bench")[1]
            headers = {"Authorization": f"Bearer {token}"}
            url = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=httpx.Timeout(120.0)) as http:
                await wait_healthy(http, controller, 60)
                real = make(data_dir / "real.mp3", seconds=5)
                r = await http.post("/api/v1/bulletins", data={"title": "Cảnh báo"},
                                    files={"file": ("real.mp3", real.read_bytes())})
                r.raise_for_status()
                sha = r.json()["sha256"]
                target = f"{sha[:2]}/{sha[2:4]}/{sha}.mp3"  # as audio.store lays it out, from the media root
                crafted = ("ffconcat version 1.0\n" + f"file '{target}'\n" * REPEATS).encode()
                heavy = make(data_dir / "heavy.wav", seconds=180).read_bytes() if args.kind != "crafted" else b""

                rows: list[tuple[str, Probes, str]] = []
                idle = Probes(http, r.json()["id"])
                await idle.during(asyncio.sleep(args.idle_s))
                rows.append(("idle", idle, ""))
                kinds = ["crafted", "heavy"] if args.kind == "both" else [args.kind]
                for kind in kinds:
                    files = [(f"ban-tin-{i}.wav", crafted if kind == "crafted" else heavy) for i in range(args.uploads)]
                    probes = Probes(http, r.json()["id"])
                    codes, took = await probes.during(flood(url, headers, files))
                    rows.append((f"{args.uploads} {kind}", probes, f"{took:.1f} s; answers {codes}"))
        finally:
            await controller.stop()
            tb.close()
    report(rows)


def report(rows: list[tuple[str, Probes, str]]) -> None:
    idle = {name: figures(samples) for name, samples in rows[0][1].latency.items()}
    print("| phase | probe | n | median ms | p95 ms | max ms | median / idle | p95 / idle | flood |")
    print("|---|---|---|---|---|---|---|---|---|")
    for phase, probes, note in rows:
        for name, samples in probes.latency.items():
            if not samples:
                continue
            med, p95, top = figures(samples)
            print(f"| {phase} | {name} | {len(samples)} | {med * 1000:.0f} | {p95 * 1000:.0f} | {top * 1000:.0f} | "
                  f"{med / idle[name][0]:.1f}× | {p95 / idle[name][1]:.1f}× | {note if name == 'healthz' else ''} |")
        for failure in probes.failures[:5]:
            print(f"  {phase}: {failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=40)
    parser.add_argument("--kind", choices=["crafted", "heavy", "both"], default="both")
    parser.add_argument("--idle-s", type=float, default=10.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
