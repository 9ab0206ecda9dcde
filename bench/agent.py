"""Receiver agent benchmark: one agent's memory and CPU, idle and playing; the bytes a day of repeated
bulletins costs its link; and the memory per simulated receiver in a fleet of 1000.

    .venv/bin/python bench/agent.py [--receivers 1000] [--idle-seconds 60] [--play-seconds 60]

What the issue asks, and its goals: the agent's resident memory and CPU while idle and while playing (the
Pi Zero 2 W has 512 MB: under 60 MB and under 2 % idle CPU here); fleet memory per simulated receiver at
1000 receivers; bytes fetched per receiver over a day that repeats the same bulletins (each file once).

Everything runs on 127.0.0.1 on a temporary testbed (`devrig.testbed.make_testbed`: Mosquitto with
the production ACLs, a migrated SQLite database, a seed with exactly `--receivers` receivers), removed at
the end, also after Ctrl-C or SIGTERM.

1. The controller runs under uvicorn in a thread of this process (its lifespan starts the MQTT bridge); the
   bench talks to its HTTP API with an admin token, as an operator would. A `LinkProxy` sits in front of
   its HTTP port, and the agent's `controller_url` points at the proxy, so every media byte that reaches
   the agent is counted (`LinkProxy.bytes_down`, HTTP headers included).
2. Bulletins are uploaded (`POST /api/v1/bulletins`): one of `--play-seconds` for the playing measurement,
   three short ones for the day. The audio is the test suite's synthetic voice (`SPEECHLIKE`, copied).
3. One agent runs in its own process, as on the Pi: `truyenthanh-dev sim-agent --config FILE` (so its
   loudspeaker is `firmware_sim.sink.RecordingSink`, logging to
   `played.jsonl`), production timings otherwise (telemetry and keepalive 30 s). Its state is on disk (the
   temp directory), as on an SD card. Once it is online and has settled, psutil watches it for
   `--idle-seconds`; then while it fetches and plays the long bulletin. RSS is sampled, USS (its private
   pages) about once a second, VmHWM (peak RSS) read at the end; CPU is user + system time over wall time.
   The ffmpeg child that `RecordingSink` runs to decode is watched separately (its VmHWM while it lives,
   its CPU from the agent's reaped-children times). On a Pi, `AlsaSink` also runs ffmpeg as a child, for
   the whole play, decoding to ALSA: the bench runs that very command line on ALSA's `null` device, reading
   the same file at real speed (`-re`) for up to `ALSA_SECONDS`, and reports its memory and CPU.
4. A simulated day: `--day-repeats` programmes (morning and evening), each plays the three short
   bulletins in turn on the same agent, at real speed (the CLI's `RecordingSink` has speed 1). The bytes
   the proxy carried are compared with the sum of the distinct files' sizes (goal: ratio 1.0).
5. Fleet memory: `truyenthanh-dev fleet` with `--small-fleet` receivers, then with all `--receivers`, state on
   /dev/shm (`bench.fanout.start_fleet`: telemetry 3600 s, keepalive 60 s); RSS once all are online.
   Marginal per receiver: (RSS(N) - RSS(small)) / (N - small).

In this file:
- `SPEECHLIKE`, `make_audio`: the bulletins' source audio.
- `ControllerThread`: the controller under uvicorn in a thread; `Api`: its HTTP API with a token.
- `Watch`, `Window`: psutil sampling of one process (and its short-lived children) over a stretch of time.
- `start_agent`, `wait_played`: the agent in its own process and what its loudspeaker logged.
- `Decode`, `alsa_like_decode`: the ffmpeg command `AlsaSink` runs, on ALSA's null device.
- `measure_agent`, `simulated_day`, `fleet_memory`: the three measurements; `report`: the table.
- `run`: the whole sequence, with every resource released in `finally`; `main`: argument parsing.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# `tests` and `bench` live in the repository, not in the installed distribution.
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import psutil  # noqa: E402
import uvicorn  # noqa: E402
from sqlmodel import Session  # noqa: E402

from audio.ffmpeg import ffmpeg_exe  # noqa: E402
from bench.fanout import SETTLE_S, Child, count_online, start_fleet, write_seed  # noqa: E402
from controller.app import create_app  # noqa: E402
from controller.services.accounts import issue_token  # noqa: E402
from devrig.ports import free_port  # noqa: E402
from devrig.testbed import Testbed, make_testbed  # noqa: E402
from firmware_sim.fleet import agent_settings  # noqa: E402
from firmware_sim.netproxy import LinkProxy  # noqa: E402

log = logging.getLogger("bench.agent")

MiB = 1024 * 1024
MB = 1_000_000
GOAL_RSS = 60 * MB
GOAL_IDLE_CPU_PCT = 2.0
DAY_BULLETIN_S = (5.0, 6.0, 8.0)  # three distinct short bulletins, so a day takes minutes, not hours
AGENT_SETTLE_S = 5.0  # after the agent is online: its start-up (imports, connect, state) is over by then
ALSA_SECONDS = 15.0  # AlsaSink's ffmpeg is watched for this much audio, at real speed
FAST_SAMPLE_S = 0.02  # while playing: RecordingSink's decoding ffmpeg lives well under a second

# A voice-like signal (copied from tests/samples.py): a 150 Hz buzz with harmonics, amplitude-modulated at
# syllable rate, in pauses.
SPEECHLIKE = ("aevalsrc='(0.5*sin(2*PI*150*t)+0.3*sin(2*PI*300*t)+0.2*sin(2*PI*450*t)+0.1*sin(2*PI*1200*t))"
              "*(0.55+0.45*sin(2*PI*3.5*t))*gt(mod(t,2.2),0.35)':s=22050:d={d}")


def make_audio(path: Path, seconds: float, gain_db: float) -> Path:
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i", SPEECHLIKE.format(d=seconds),
                    "-af", f"volume={gain_db}dB", "-c:a", "pcm_s16le", str(path)], check=True)
    return path


# ------------------------------------------------------------------------------------- controller


class ControllerThread:
    """The controller under a real uvicorn on a free port, in a thread of this process."""

    def __init__(self, tb: Testbed) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(tb.settings), host="127.0.0.1", port=self.port,
                                                    log_level="warning", ws="none", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="controller", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)

    async def wait_connected(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await self.http.get("/healthz")).json().get("mqtt") == "connected":
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the controller was not connected to the broker within {timeout} s")
            await asyncio.sleep(0.1)

    async def upload(self, path: Path, title: str) -> dict[str, Any]:
        with path.open("rb") as f:
            r = await self.http.post("/api/v1/bulletins", data={"title": title, "trim_silence": "false"},
                                     files={"file": (path.name, f.read())})
        if r.status_code != 201:
            raise RuntimeError(f"upload of {path.name} failed: {r.status_code} {r.text[:300]}")
        bulletin = dict(r.json())
        bulletin["size"] = len((await self.http.get(bulletin["media_url"])).content)  # direct, not via the proxy
        return bulletin

    async def play(self, rid: str, bulletin_id: int) -> str:
        r = await self.http.post(f"/api/v1/receivers/{rid}/play", json={"bulletin_id": bulletin_id})
        body = r.json()
        if r.status_code != 202 or body.get("outcome") != "received":
            raise RuntimeError(f"play of bulletin {bulletin_id} on {rid}: {r.status_code} {body}")
        return str(body["item_id"])

    async def availability(self, rid: str) -> str:
        return str((await self.http.get(f"/api/v1/receivers/{rid}")).json().get("availability"))

    async def finished(self, rid: str) -> int:
        r = await self.http.get(f"/api/v1/receivers/{rid}/plays", params={"limit": 10000})
        return sum(1 for p in r.json()["data"] if p["event"] == "finished")


# -------------------------------------------------------------------------------------- sampling


def status_bytes(pid: int, key: str) -> int:
    """A `kB` line of /proc/PID/status (VmHWM, VmRSS, RssAnon…) in bytes; 0 when the process is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == key:
                return int(value.split()[0]) * 1024
    return 0


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def private_bytes(pid: int) -> int:
    """USS: the process's private pages (/proc/PID/smaps_rollup); 0 when it is gone."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = {line.split(":")[0]: int(line.split()[1])
              for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]}
        return (kb["Private_Clean"] + kb["Private_Dirty"]) * 1024
    return 0


@dataclass
class Window:
    """What one process did over a stretch of time."""

    wall_s: float = 0.0
    cpu_s: float = 0.0  # the process itself, user + system
    children_cpu_s: float = 0.0  # children it reaped meanwhile (the sink's ffmpeg)
    rss: list[int] = field(default_factory=list)
    uss: list[int] = field(default_factory=list)
    hwm: int = 0  # VmHWM at the end: the peak RSS since the process started
    children: dict[int, int] = field(default_factory=dict)  # child pid → its largest VmHWM seen

    @property
    def cpu_pct(self) -> float:
        return 100 * self.cpu_s / self.wall_s if self.wall_s else 0.0


class Watch:
    """Sample a process every `interval` s (RSS; USS about once a second) and spot its new children.

    New children are found by listing /proc and reading the parent of pids not seen before: cheap enough
    to do every 20 ms, where psutil's `children()` reads every process's stat each time."""

    def __init__(self, pid: int, interval: float) -> None:
        self.proc = psutil.Process(pid)
        self.name = comm(pid)
        self.interval = interval
        self.window = Window()
        self._seen: set[int] = set(psutil.pids())
        self._task: asyncio.Task[None] | None = None
        self._t0 = 0.0
        self._times0: Any = None

    async def __aenter__(self) -> Window:
        self._t0, self._times0 = time.monotonic(), self.proc.cpu_times()
        self._task = asyncio.create_task(self._sample())
        return self.window

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        times, w = self.proc.cpu_times(), self.window
        w.wall_s = time.monotonic() - self._t0
        w.cpu_s = times.user + times.system - self._times0.user - self._times0.system
        w.children_cpu_s = (times.children_user + times.children_system
                            - self._times0.children_user - self._times0.children_system)
        w.hwm = status_bytes(self.proc.pid, "VmHWM")

    async def _sample(self) -> None:
        w = self.window
        next_uss = 0.0
        while True:
            with contextlib.suppress(psutil.Error):
                w.rss.append(int(self.proc.memory_info().rss))
                if time.monotonic() >= next_uss:
                    w.uss.append(int(self.proc.memory_full_info().uss))
                    next_uss = time.monotonic() + 1.0
            fresh = set(psutil.pids()) - self._seen
            self._seen |= fresh
            for pid in fresh:
                with contextlib.suppress(psutil.Error):
                    if psutil.Process(pid).ppid() == self.proc.pid:
                        w.children[pid] = 0
            for pid in w.children:
                if comm(pid) not in ("", self.name):  # before its exec, a child still shows the parent's memory
                    w.children[pid] = max(w.children[pid], status_bytes(pid, "VmHWM"))
            await asyncio.sleep(self.interval)


# ------------------------------------------------------------------------------------------ agent


def write_agent_config(tb: Testbed, state_root: Path, controller_url: str) -> tuple[str, Path, Path]:
    """The first receiver's agent config (TOML, mode 0600): returns its id, the file and its state dir."""
    [s] = agent_settings(tb.fleet, state_root, 1, controller_url=controller_url)
    values = s.model_dump(mode="json", exclude_none=True)
    config = state_root / f"{s.receiver_id}.toml"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    return s.receiver_id, config, s.state_dir


async def start_agent(api: Api, rid: str, config: Path, log_dir: Path, timeout: float = 60) -> Child:
    agent = await Child.start("agent", [sys.executable, "-m", "devrig.cli", "sim-agent", "--config", str(config)],
                              log_dir)
    deadline = time.monotonic() + timeout
    while await api.availability(rid) != "online":
        if not agent.alive():
            raise RuntimeError(f"the agent exited ({agent.proc.returncode}):\n{agent.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the agent was not online within {timeout} s:\n{agent.tail()}")
        await asyncio.sleep(0.2)
    return agent


def played(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / "played.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def wait_played(state_dir: Path, item_ids: list[str], timeout: float, agent: Child) -> None:
    """Until the simulated loudspeaker has logged every item as played to the end."""
    deadline = time.monotonic() + timeout
    while True:
        done = {p["item_id"] for p in played(state_dir) if p["completed"]}
        if set(item_ids) <= done:
            return
        if not agent.alive():
            raise RuntimeError(f"the agent exited ({agent.proc.returncode}):\n{agent.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(set(item_ids) & done)}/{len(item_ids)} items played after {timeout} s")
        await asyncio.sleep(0.1)


@dataclass
class Decode:
    """One ffmpeg run as `AlsaSink` makes it."""

    seconds: float = 0.0  # of audio
    rss: int = 0  # peak (VmHWM), bytes
    uss: int = 0  # largest sample
    cpu_s: float = 0.0
    wall_s: float = 0.0


def alsa_like_decode(path: Path, seconds: float) -> Decode:
    """`AlsaSink`'s ffmpeg command line on ALSA's `null` device, reading at real speed (`-re`, as the sound
    card would pace it) for the first `seconds` of `path`. Memory is sampled from /proc once ffmpeg has
    replaced the spawned process; its CPU comes from wait4, so it is that one process's."""
    args = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-t", f"{seconds:.3f}",
            "-ss", "0.000", "-i", str(path), "-f", "alsa", "null"]
    out = Decode(seconds)
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        t0 = time.monotonic()
        pid = os.posix_spawn(args[0], args, dict(os.environ), file_actions=[
            (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)])
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                break
            if comm(pid) == "ffmpeg":
                out.rss = max(out.rss, status_bytes(pid, "VmHWM"))
                out.uss = max(out.uss, private_bytes(pid))
            time.sleep(0.05)
        out.wall_s = time.monotonic() - t0
    finally:
        os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"ffmpeg could not play {path} to ALSA's null device")
    out.cpu_s = usage.ru_utime + usage.ru_stime
    return out


def import_cost(modules: str) -> tuple[int, int]:
    """RSS and USS of a fresh interpreter that has only imported `modules`."""
    code = (f"import {modules}\n"
            "from pathlib import Path\n"
            "kb = {l.split(':')[0]: int(l.split()[1]) for l in Path('/proc/self/smaps_rollup').read_text()"
            ".splitlines()[1:]}\n"
            "print(kb['Rss'] * 1024, (kb['Private_Clean'] + kb['Private_Dirty']) * 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    rss, uss = out.stdout.split()
    return int(rss), int(uss)


# ----------------------------------------------------------------------------------- measurements


@dataclass
class AgentFigures:
    imports_agent: tuple[int, int] = (0, 0)
    imports_cli: tuple[int, int] = (0, 0)
    idle: Window = field(default_factory=Window)
    playing: Window = field(default_factory=Window)
    play_seconds: float = 0.0
    sink_ffmpeg_cpu_s: float = 0.0
    alsa_ffmpeg: Decode = field(default_factory=Decode)
    ffmpeg: str = ""


@dataclass
class DayFigures:
    plays: int = 0
    proven: int = 0  # `finished` events the controller holds for the agent, all of the run
    bytes_down: int = 0
    connections: int = 0
    distinct_bytes: int = 0
    run_bytes_down: int = 0
    run_distinct_bytes: int = 0
    run_connections: int = 0
    window: Window = field(default_factory=Window)


async def measure_agent(api: Api, agent: Child, rid: str, state_dir: Path, long: dict[str, Any],
                        args: argparse.Namespace) -> AgentFigures:
    figures = AgentFigures(ffmpeg=ffmpeg_exe())
    figures.imports_agent = await asyncio.to_thread(
        import_cost, "receivers.agent, firmware_sim.sink, firmware_sim.hardware")
    figures.imports_cli = await asyncio.to_thread(import_cost, "devrig.cli, receivers.agent, firmware_sim.sink, "
                                                  "firmware_sim.hardware")
    await asyncio.sleep(AGENT_SETTLE_S)
    log.info("idle: watching the agent for %.0f s", args.idle_seconds)
    async with Watch(agent.proc.pid, 0.5) as figures.idle:
        await asyncio.sleep(args.idle_seconds)
    log.info("playing: a %.0f s bulletin (fetched through the proxy first)", long["duration_s"])
    async with Watch(agent.proc.pid, FAST_SAMPLE_S) as figures.playing:
        item = await api.play(rid, long["id"])
        await wait_played(state_dir, [item], long["duration_s"] + 90, agent)
    figures.play_seconds = long["duration_s"]
    figures.sink_ffmpeg_cpu_s = figures.playing.children_cpu_s
    cached = state_dir / "cache" / f"{long['sha256']}.mp3"
    figures.alsa_ffmpeg = await asyncio.to_thread(alsa_like_decode, cached, min(ALSA_SECONDS, long["duration_s"]))
    return figures


async def simulated_day(api: Api, proxy: LinkProxy, agent: Child, rid: str, state_dir: Path,
                        day: list[dict[str, Any]], all_bulletins: list[dict[str, Any]],
                        args: argparse.Namespace) -> DayFigures:
    figures = DayFigures()
    bytes0, connections0 = proxy.bytes_down, proxy.connections
    programme_s = sum(b["duration_s"] for b in day)
    async with Watch(agent.proc.pid, 0.5) as figures.window:
        for n in range(args.day_repeats):
            when = "morning" if n < (args.day_repeats + 1) // 2 else "evening"
            log.info("day: %s programme %d/%d (%d bulletins, %.0f s)", when, n + 1, args.day_repeats, len(day),
                     programme_s)
            items = [await api.play(rid, b["id"]) for b in day]  # equal class: they play in turn
            await wait_played(state_dir, items, programme_s * 2 + 60, agent)
            figures.plays += len(items)
    figures.bytes_down = proxy.bytes_down - bytes0
    figures.connections = proxy.connections - connections0
    figures.distinct_bytes = sum(b["size"] for b in day)
    figures.run_bytes_down, figures.run_connections = proxy.bytes_down, proxy.connections
    figures.run_distinct_bytes = sum(b["size"] for b in all_bulletins)
    expected = figures.plays + 1  # and the long bulletin
    deadline = time.monotonic() + 30  # proof of play comes from the agent's outbox, a little after the sound
    while (proven := await api.finished(rid)) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    figures.proven = proven
    return figures


async def wait_online(tb: Testbed, want: int, timeout: float, fleet: Child | None) -> float:
    started = time.monotonic()
    while (online := await asyncio.to_thread(count_online, tb.engine)) != want:
        if fleet is not None and not fleet.alive():
            raise RuntimeError(f"the fleet exited ({fleet.proc.returncode}):\n{fleet.tail()}")
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{online} receivers online after {timeout} s, expected {want}")
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def fleet_memory(tb: Testbed, fleet_file: Path, state_dir: Path, count: int, log_dir: Path,
                       timeout: float) -> tuple[dict[str, int], float]:
    """Memory of a fleet of `count` agents once all are online (and the time that took); then stopped."""
    fleet = await start_fleet(fleet_file, state_dir, count, log_dir)
    try:
        online_s = await wait_online(tb, count, timeout, fleet)
        log.info("fleet of %d online in %.1f s", count, online_s)
        await asyncio.sleep(SETTLE_S)
        memory = fleet.memory()
        with contextlib.suppress(psutil.Error):  # summed over the fleet's processes, as `memory` is
            memory["uss"] = sum(int(psutil.Process(pid).memory_full_info().uss) for pid in fleet.pids())
    finally:
        await fleet.stop()
    await wait_online(tb, 0, 60, None)  # every agent said `stopped`: the next fleet is counted afresh
    return memory, online_s


# ------------------------------------------------------------------------------------------ report


def mib(b: float) -> str:
    return f"{b / MiB:.1f} MiB"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def report(args: argparse.Namespace, a: AgentFigures, d: DayFigures, small: dict[str, int],
           full: dict[str, int], online_s: float, loads: tuple[float, float]) -> None:
    idle, play = a.idle, a.playing
    idle_rss = max(idle.rss) if idle.rss else 0
    play_rss = max(play.rss) if play.rss else 0
    sink_ffmpeg = max(play.children.values(), default=0)
    alsa = a.alsa_ffmpeg
    cli_extra = a.imports_cli[0] - a.imports_agent[0]
    ratio = d.bytes_down / d.distinct_bytes if d.distinct_bytes else float("nan")
    run_ratio = d.run_bytes_down / d.run_distinct_bytes if d.run_distinct_bytes else float("nan")
    n, k = args.receivers, args.small_fleet
    goal_mib = f"< 60 MB ({GOAL_RSS / MiB:.1f} MiB)"
    rows: list[tuple[str, str, str, str]] = [
        ("interpreter + agent imports only (RSS / USS)", f"{mib(a.imports_agent[0])} / {mib(a.imports_agent[1])}",
         "", ""),
        ("  + devrig.cli imports, as `truyenthanh-dev sim-agent`",
         f"{mib(a.imports_cli[0])} / {mib(a.imports_cli[1])}", "", ""),
        (f"agent idle RSS, median / max over {idle.wall_s:.0f} s",
         f"{mib(statistics.median(idle.rss))} / {mib(idle_rss)}", goal_mib, verdict(idle_rss < GOAL_RSS)),
        ("agent idle USS, max", mib(max(idle.uss, default=0)), "", ""),
        ("  estimate without devrig.cli's imports: idle RSS max - their cost", mib(idle_rss - cli_extra),
         goal_mib, verdict(idle_rss - cli_extra < GOAL_RSS)),
        ("agent idle CPU (% of one core)", f"{idle.cpu_pct:.2f} %", f"< {GOAL_IDLE_CPU_PCT:.0f} %",
         verdict(idle.cpu_pct < GOAL_IDLE_CPU_PCT)),
        (f"agent playing {a.play_seconds:.0f} s: RSS max / VmHWM", f"{mib(play_rss)} / {mib(play.hwm)}", goal_mib,
         verdict(play.hwm < GOAL_RSS)),
        ("agent playing: USS max", mib(max(play.uss, default=0)), "", ""),
        ("agent playing: CPU, agent alone (fetch, verify, decode I/O)", f"{play.cpu_pct:.2f} %", "", ""),
        (f"sink's ffmpeg (decode to PCM, {len(play.children)} child): peak RSS / CPU",
         f"{mib(sink_ffmpeg)} / {a.sink_ffmpeg_cpu_s:.2f} s", "", ""),
        (f"AlsaSink's ffmpeg (ALSA null device, {alsa.seconds:.0f} s at real speed): RSS / USS",
         f"{mib(alsa.rss)} / {mib(alsa.uss)}", "", ""),
        ("AlsaSink's ffmpeg: CPU (% of one core while playing)", f"{100 * alsa.cpu_s / alsa.wall_s:.2f} %", "", ""),
        (f"day: {d.plays} plays of {len(DAY_BULLETIN_S)} bulletins; proof of play (run)",
         f"{d.proven} finished", f"{d.plays + 1}", verdict(d.proven == d.plays + 1)),
        ("day: bytes over the link / distinct files' bytes",
         f"{d.bytes_down} / {d.distinct_bytes} B", "", ""),
        ("day: ratio (HTTP headers included); downloads", f"{ratio:.4f}; {d.connections}", "1.0; 3",
         verdict(ratio < 1.01 and d.connections == len(DAY_BULLETIN_S))),
        ("whole run (long bulletin too): ratio; downloads", f"{run_ratio:.4f}; {d.run_connections}",
         f"1.0; {len(DAY_BULLETIN_S) + 1}", verdict(run_ratio < 1.01 and d.run_connections == len(DAY_BULLETIN_S) + 1)),
        ("day: agent CPU / RSS max", f"{d.window.cpu_pct:.2f} % / {mib(max(d.window.rss, default=0))}", "", ""),
        (f"fleet RSS, {k} / {n} agents online", f"{mib(small['rss'])} / {mib(full['rss'])}", "", ""),
        (f"fleet RssAnon, {k} / {n} agents", f"{mib(small.get('RssAnon', 0))} / {mib(full.get('RssAnon', 0))}",
         "", ""),
        (f"fleet per receiver: RSS / {n}", f"{full['rss'] / n / 1024:.0f} KiB", "", ""),
        (f"fleet per receiver, marginal ({n} vs {k}): RSS / RssAnon / RssShmem",
         " / ".join(f"{(full.get(key, 0) - small.get(key, 0)) / (n - k) / 1024:.0f} KiB"
                    for key in ("rss", "RssAnon", "RssShmem")), "", ""),
    ]
    print(f"\nReceiver agent: 1 `truyenthanh-dev sim-agent` process, then fleets of {k} and {n}; "
          f"load average {loads[0]:.2f} before, {loads[1]:.2f} after; {os.cpu_count()} CPUs")
    width = max(len(r[0]) for r in rows) + 2
    print(f"{'':{width}}{'measured':>32}  {'goal':>24}  ")
    for label, value, goal, ok in rows:
        print(f"{label:{width}}{value:>32}  {goal:>24}  {ok}")
    print(f"ffmpeg: {a.ffmpeg}; AlsaSink-like run: {alsa.wall_s:.1f} s wall, {alsa.cpu_s:.2f} s CPU; "
          f"all {n} fleet agents online {online_s:.1f} s after start")


# ------------------------------------------------------------------------------------------- run


def shm_dir() -> Path:
    # A thousand simulated receivers' fsynced SQLite files on one disk would measure its fsync queue.
    root = "/dev/shm" if Path("/dev/shm").is_dir() else None
    return Path(tempfile.mkdtemp(prefix="tt-agent-fleet-", dir=root))


async def run(args: argparse.Namespace) -> int:
    me = asyncio.current_task()
    assert me is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, me.cancel)  # so that `finally` runs
    load_before = os.getloadavg()[0]
    data_dir = Path(tempfile.mkdtemp(prefix="tt-agent-"))
    os.chmod(data_dir, 0o755)  # Mosquitto drops to its own user and must still reach its files in here
    fleet_state = shm_dir()
    tb: Testbed | None = None
    controller: ControllerThread | None = None
    api: Api | None = None
    proxy: LinkProxy | None = None
    agent: Child | None = None
    try:
        seed = data_dir / "seed.toml"
        write_seed(seed, args.receivers)
        tb = await asyncio.to_thread(make_testbed, data_dir, "mosquitto", seed_file=seed)
        with Session(tb.engine) as s:
            token = issue_token(s, "bench-admin", ["admin"])[1]
        controller = ControllerThread(tb)
        api = Api(controller.url, token)
        await api.wait_connected(60)
        proxy = LinkProxy("127.0.0.1", controller.port)
        await proxy.start()
        log.info("controller at %s, media through the proxy on port %d", controller.url, proxy.port)

        audio_dir = data_dir / "audio"
        audio_dir.mkdir()
        long = await api.upload(await asyncio.to_thread(make_audio, audio_dir / "long.wav", args.play_seconds, -20),
                                "Bản tin dài")
        day = [await api.upload(await asyncio.to_thread(make_audio, audio_dir / f"day{i}.wav", s, -20 - 2 * i),
                                f"Bản tin {i + 1}") for i, s in enumerate(DAY_BULLETIN_S)]
        log.info("uploaded %d bulletins: %s bytes", 1 + len(day), [b["size"] for b in [long, *day]])

        agent_root = data_dir / "agent"
        agent_root.mkdir()
        rid, config, state_dir = write_agent_config(tb, agent_root, f"http://127.0.0.1:{proxy.port}")
        agent = await start_agent(api, rid, config, data_dir)
        log.info("agent %s online (pid %d)", rid, agent.proc.pid)
        figures = await measure_agent(api, agent, rid, state_dir, long, args)
        day_figures = await simulated_day(api, proxy, agent, rid, state_dir, day, [long, *day], args)
        await agent.stop()
        await wait_online(tb, 0, 30, None)

        fleet_file = data_dir / "fleet.json"
        small, _ = await fleet_memory(tb, fleet_file, fleet_state, args.small_fleet, data_dir, args.online_timeout)
        full, online_s = await fleet_memory(tb, fleet_file, fleet_state, args.receivers, data_dir,
                                            args.online_timeout)
        report(args, figures, day_figures, small, full, online_s, (load_before, os.getloadavg()[0]))
        return 0
    finally:
        if agent is not None:
            await agent.stop()
        if proxy is not None:
            await proxy.close()
        if api is not None:
            await api.http.aclose()
        if controller is not None:
            await asyncio.to_thread(controller.stop)
        if tb is not None:
            tb.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(fleet_state, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--receivers", type=int, default=1000, help="the large fleet (and the testbed's receivers)")
    p.add_argument("--small-fleet", type=int, default=10, help="fleet size for the marginal memory figure")
    p.add_argument("--idle-seconds", type=float, default=60.0, help="how long the idle agent is watched")
    p.add_argument("--play-seconds", type=float, default=60.0, help="the bulletin played while watched")
    p.add_argument("--day-repeats", type=int, default=6, help="programmes in the simulated day (each plays "
                   f"the {len(DAY_BULLETIN_S)} short bulletins once)")
    p.add_argument("--online-timeout", type=float, default=300.0, help="seconds for a fleet to come online")
    args = p.parse_args(argv)
    if not 0 < args.small_fleet < args.receivers or args.idle_seconds <= 0 or args.day_repeats < 1:
        p.error("need 0 < --small-fleet < --receivers, --idle-seconds > 0 and --day-repeats >= 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("receivers", "httpx", "controller"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
