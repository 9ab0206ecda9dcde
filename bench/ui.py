"""The staff UI's figures, measured with a real browser (Debian's Chromium driven by Playwright):

    .venv/bin/python bench/ui.py [--receivers 1000] [--sessions 10] [--visits 5] [--watch 30]

One world: a real broker (Mosquitto, else the embedded amqtt), a seed with exactly N receivers, the
controller with its UI in a child process (`--serve` mode of this file: uvicorn plus an event-loop lag
sampler), N-1 simulated receivers in a fleet child process that report telemetry every 15 s, and one more
receiver (the probe) run in this process so its link can be cut and restored at will. Measured:

1. Counts shown: from `goto` of the dashboard until its total-online count reads the fleet's number, on a
   fresh browser context (empty cache) — on loopback, then throttled to Chrome's "Slow 4G" profile
   (CDP Network.emulateNetworkConditions: 562.5 ms latency, 1.44 Mbit/s down, 675 kbit/s up; Chromium does
   not throttle the websocket). Baseline in the same run: the same counts fetched as JSON from the API.
2. Bytes: what the browser received (HTTP bodies as encoded on the wire, plus websocket frames) on a first
   visit and on a repeat visit in the same context (cached static files are not fetched again).
3. A status change on screen: the probe's agent stops (it says `stopped`) or starts; time until the
   dashboard's online count changes, 10 times each way.
4. Event-loop lag of the controller while 10 browser sessions watch the dashboard and the fleet reports,
   against the lag with the fleet alone (no browser): p50 / p99 / max of a 50 ms sleep's overshoot, and the
   API's latency (GET /api/v1/communes) meanwhile.

Figures and their goals: docs/PERFORMANCE.md ("Staff web UI").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.emergency import wait_healthy, wait_online  # noqa: E402
from bench.fanout import Child, percentile, write_seed  # noqa: E402
from devrig.ports import free_port  # noqa: E402

log = logging.getLogger("bench.ui")
CHROMIUM = os.environ.get("TT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
SLOW_4G = {"offline": False, "latency": 562.5, "downloadThroughput": 1.6e6 / 8 * 0.9,
           "uploadThroughput": 750e3 / 8 * 0.9}  # Chrome DevTools' "Slow 4G" preset
PASSWORD = "bench-mat-khau-12345"
LAG_TICK_S = 0.05


# ------------------------------------------------------------------------------ the controller child


async def serve(settings_file: Path, lag_file: Path) -> None:
    """`--serve`: the controller with its UI under uvicorn, and a sampler of its event loop's lag, appended
    to `lag_file` each second as lines of "wall-time lag-seconds" (uvicorn ends the process by re-raising
    SIGTERM, so nothing is left to write at the end)."""
    import uvicorn

    from controller.app import create_app
    from controller.config import Settings

    settings = Settings(**json.loads(settings_file.read_text()))

    async def sample() -> None:
        with lag_file.open("a") as out:
            while True:
                batch = []
                for _ in range(int(1 / LAG_TICK_S)):
                    started = time.perf_counter()
                    await asyncio.sleep(LAG_TICK_S)
                    batch.append(f"{time.time():.3f} {time.perf_counter() - started - LAG_TICK_S:.6f}\n")
                out.writelines(batch)
                out.flush()

    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.port,
                                           log_level="warning"))
    sampler = asyncio.create_task(sample())
    await server.serve()
    sampler.cancel()


# ----------------------------------------------------------------------------------- measurements


def dist(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "p99": percentile(values, 99), "max": max(values), "n": len(values)}


class Traffic:
    """Bytes a page received: HTTP bodies as encoded on the wire, and websocket frames."""

    def __init__(self) -> None:
        self.http = 0
        self.ws = 0

    async def attach(self, context: Any, page: Any, throttle: dict[str, Any] | None = None) -> None:
        cdp = await context.new_cdp_session(page)
        await cdp.send("Network.enable")
        cdp.on("Network.loadingFinished", lambda e: setattr(self, "http", self.http + int(e["encodedDataLength"])))
        cdp.on("Network.webSocketFrameReceived",
               lambda e: setattr(self, "ws", self.ws + len(e["response"]["payloadData"])))
        if throttle:
            await cdp.send("Network.emulateNetworkConditions", throttle)

    @property
    def total(self) -> int:
        return self.http + self.ws


async def counts_shown(page: Any, url: str, online: int, timeout_s: float = 60) -> float:
    started = time.perf_counter()
    await page.goto(f"{url}/ui/", wait_until="commit")
    await page.wait_for_function(
        "n => { const e = document.querySelector('[data-testid=total-online]'); return e && e.innerText.trim() == n }",
        arg=str(online), timeout=timeout_s * 1000)
    return time.perf_counter() - started


async def signed_in_state(browser: Any, url: str) -> Any:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{url}/ui/dang-nhap")
    await page.fill("input[name=username]", "bench")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_selector("[data-testid=total-online]")
    state = await context.storage_state()
    await context.close()
    return state


async def visits(browser: Any, url: str, state: Any, online: int, n: int,
                 throttle: dict[str, Any] | None) -> dict[str, Any]:
    first_t, first_b, repeat_t, repeat_b = [], [], [], []
    for _ in range(n):
        context = await browser.new_context(storage_state=state)
        page = await context.new_page()
        traffic = Traffic()
        await traffic.attach(context, page, throttle)
        first_t.append(await counts_shown(page, url, online))
        await asyncio.sleep(0.5)  # the page's last requests (fonts, socket handshake) finish
        first_b.append(traffic.total)
        traffic.http = traffic.ws = 0
        repeat_t.append(await counts_shown(page, url, online))
        await asyncio.sleep(0.5)
        repeat_b.append(traffic.total)
        await context.close()
    return {"first_s": dist(first_t), "first_bytes": dist([float(b) for b in first_b]),
            "repeat_s": dist(repeat_t), "repeat_bytes": dist([float(b) for b in repeat_b])}


async def api_counts(http: httpx.AsyncClient, n: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        (await http.get("/api/v1/communes")).raise_for_status()
        times.append(time.perf_counter() - started)
    return dist(times)


async def status_changes(browser: Any, url: str, state: Any, probe: Any, online: int, rounds: int) -> dict[str, Any]:
    """Time from the probe agent's stop (or start) to the dashboard's online count changing."""
    context = await browser.new_context(storage_state=state)
    page = await context.new_page()
    await counts_shown(page, url, online)
    down: list[float] = []
    up: list[float] = []
    for _ in range(rounds):
        for target, times, action in ((online - 1, down, probe.stop), (online, up, probe.start)):
            started = time.perf_counter()
            await action()
            await page.wait_for_function(
                "n => document.querySelector('[data-testid=total-online]').innerText.trim() == n",
                arg=str(target), timeout=30_000)
            times.append(time.perf_counter() - started)
            await asyncio.sleep(0.5)
    await context.close()
    return {"offline_s": dist(down), "online_s": dist(up)}


async def watch(browser: Any, url: str, state: Any, sessions: int, seconds: float, http: httpx.AsyncClient,
                online: int) -> tuple[float, float, dict[str, float]]:
    """`sessions` dashboards open for `seconds` while the API is called every 200 ms: (from, to, API latency)."""
    contexts = []
    for _ in range(sessions):
        context = await browser.new_context(storage_state=state)
        page = await context.new_page()
        await counts_shown(page, url, online)
        contexts.append(context)
    started = time.time()
    api = []
    while time.time() - started < seconds:
        t0 = time.perf_counter()
        (await http.get("/api/v1/communes")).raise_for_status()
        api.append(time.perf_counter() - t0)
        await asyncio.sleep(0.2)
    ended = time.time()
    for context in contexts:
        await context.close()
    return started, ended, dist(api)


def lag_in(samples: list[list[float]], start: float, end: float) -> dict[str, float]:
    return dist([lag for at, lag in samples if start <= at <= end])


# ------------------------------------------------------------------------------------------ the run


class Probe:
    """One receiver run in this process, so that its link can be cut and restored."""

    def __init__(self, settings: Any) -> None:
        from firmware_sim.fleet import Fleet

        self.settings, self.fleet = settings, Fleet()

    async def start(self) -> None:
        agent = self.fleet.add(self.settings)
        await asyncio.wait_for(agent.link.connected.wait(), 30)

    async def stop(self) -> None:
        await self.fleet.stop_one(self.settings.receiver_id)


async def run(args: argparse.Namespace) -> int:
    from playwright.async_api import async_playwright
    from sqlmodel import Session

    from controller.services.accounts import UserCreate, add_user, issue_token
    from devrig.testbed import BrokerUnavailable, make_testbed
    from firmware_sim.fleet import agent_settings

    root = Path(tempfile.mkdtemp(prefix="tt-bench-ui-"))
    os.chmod(root, 0o755)
    seed = root / "seed.toml"
    write_seed(seed, args.receivers)
    port = free_port()
    try:
        tb = make_testbed(root, "mosquitto", seed_file=seed, controller_url=f"http://127.0.0.1:{port}")
    except BrokerUnavailable:
        tb = make_testbed(root, "amqtt", seed_file=seed, controller_url=f"http://127.0.0.1:{port}")
    with Session(tb.engine) as s:
        add_user(s, UserCreate(username="bench", display_name="bench", password=PASSWORD, role="district_admin"),
                 created_by="bench")
        token = issue_token(s, "bench", ["admin"], created_by="bench")[1]
    settings = {**json.loads(tb.settings.model_dump_json()), "port": port,
                "ui": {"enabled": True, "login_failures_per_address": 10_000}}
    (root / "settings.json").write_text(json.dumps(settings))
    fleet_file = root / "fleet.json"
    data = json.loads(fleet_file.read_text())
    probe_row = data["receivers"].pop()
    (root / "fleet-rest.json").write_text(json.dumps(data))
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    controller = await Child.start("controller", [sys.executable, "-m", "bench.ui", "--serve",
                                                  str(root / "settings.json"), str(root / "lag.txt")], root,
                                   env={**env, "TT_UI__ENABLED": "1"})
    fleet = None
    url = f"http://127.0.0.1:{port}"
    http = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    results: dict[str, Any] = {"receivers": args.receivers}
    try:
        await wait_healthy(http, controller, 60)
        fleet = await Child.start("fleet", [
            sys.executable, "-m", "devrig.cli", "fleet", "--file", str(root / "fleet-rest.json"),
            "--state-dir", str(root / "fleet"), "--telemetry-interval", "15", "--keepalive", "30"], root)
        probe = Probe(agent_settings({**data, "receivers": [probe_row]}, root / "probe", controller_url=url,
                                     telemetry_interval_s=15, keepalive_s=30)[0])
        await probe.start()
        await wait_online(tb.engine, args.receivers, 300, fleet)
        log.info("%d receivers online", args.receivers)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            state = await signed_in_state(browser, url)
            n = args.receivers
            results["api_counts_s"] = await api_counts(http, 20)
            results["loopback"] = await visits(browser, url, state, n, args.visits, None)
            results["slow_4g"] = await visits(browser, url, state, n, max(2, args.visits // 2), SLOW_4G)
            results["status_change"] = await status_changes(browser, url, state, probe, n, 10)
            quiet_from = time.time()
            await asyncio.sleep(args.watch)
            quiet = (quiet_from, time.time())
            busy_from, busy_to, api_busy = await watch(browser, url, state, args.sessions, args.watch, http, n)
            results["api_while_watched_s"] = api_busy
            await asyncio.sleep(2)  # the sampler has written the window's last second
            await browser.close()
    finally:
        await http.aclose()
        if fleet is not None:
            await fleet.stop()
        await controller.stop()
    samples = [[float(x) for x in line.split()] for line in (root / "lag.txt").read_text().splitlines()]
    results["lag_fleet_only"] = lag_in(samples, *quiet)
    results["lag_watched"] = lag_in(samples, busy_from, busy_to)
    report(results, args)
    tb.close()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    def ms(d: dict[str, float], k: str = "p50") -> str:
        return f"{d[k] * 1000:.0f} ms"

    def lag(d: dict[str, float]) -> str:
        return f"p50 {d['p50'] * 1000:.1f} ms  p99 {d['p99'] * 1000:.1f} ms  max {d['max'] * 1000:.1f} ms"

    lp, s4, change = r["loopback"], r["slow_4g"], r["status_change"]
    lag0, lag1 = r["lag_fleet_only"], r["lag_watched"]
    ratio = lp["first_s"]["p50"] / r["api_counts_s"]["p50"]
    lines = [
        f"Staff UI with {r['receivers']} simulated receivers reporting (telemetry every 15 s)",
        f"  counts shown, loopback      p50 {ms(lp['first_s'])}  p99 {ms(lp['first_s'], 'p99')}   (goal < 1500 ms)",
        f"    baseline: the counts as JSON from the API  p50 {ms(r['api_counts_s'])}  (ratio {ratio:.0f}x)",
        f"  counts shown, slow 4G       p50 {ms(s4['first_s'])}  max {ms(s4['first_s'], 'max')}   (goal < 4000 ms)",
        f"  bytes, first visit          {lp['first_bytes']['p50'] / 1024:.0f} KB",
        f"  bytes, repeat visit         {lp['repeat_bytes']['p50'] / 1024:.0f} KB   (goal < 200 KB); "
        f"counts shown again in {ms(lp['repeat_s'])}",
        f"  status change on screen     offline p50 {ms(change['offline_s'])} max {ms(change['offline_s'], 'max')}; "
        f"online p50 {ms(change['online_s'])} max {ms(change['online_s'], 'max')}   (goal < 2000 ms)",
        f"  event-loop lag, fleet only  {lag(lag0)}",
        f"  with {args.sessions} dashboards open   {lag(lag1)}   (goal p99 < 50 ms; "
        f"p99 ratio {lag1['p99'] / max(lag0['p99'], 1e-4):.1f}x)",
        f"  API latency meanwhile       p50 {ms(r['api_while_watched_s'])}  p99 {ms(r['api_while_watched_s'], 'p99')}",
    ]
    print("\n" + "\n".join(lines) + "\n", flush=True)
    print(json.dumps(r, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", nargs=2, metavar=("SETTINGS", "LAG_FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--receivers", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--visits", type=int, default=5)
    parser.add_argument("--watch", type=float, default=30.0, help="seconds of each lag window")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(Path(args.serve[0]), Path(args.serve[1])))
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
