"""The agent's own cost of an emergency (issue 14): CPU per agent for one emergency played and cancelled, and
on one agent alone the time from the play command's arrival to its first sound.

    .venv/bin/python bench/agent_emergency.py [--receivers 200] [--rounds 10] [--profile FILE]

No controller: the bench itself speaks as the controller (the testbed's tools account, with the controller's
rights), so that only the agents' work is measured. On a testbed (`devrig.testbed`: Mosquitto with the
production ACLs), `--receivers` real `Agent`s run in this process and event loop (`firmware_sim.fleet.Fleet`,
state under /dev/shm, amplifier warm-up 0), after the retained controller availability has said report
protocol 2. Each round: a play of the emergency's size (inline audio of `--audio-kib` KiB, signed with the
controller's key, to everyone), wait until every agent's sound has begun (`Player.current` announced), a
stop to everyone, wait until every agent is idle and its events are out of the outbox. The CPU this process
spent over the timed rounds (`time.process_time`, the Python threads included) divided by rounds and agents
is the figure; the bench's own publishing is a few hundred microseconds per round, not per agent. Then one
agent alone: arrival (the agent's `on_message` entered) → first sound (the sink's `on_start`), `--rounds`
times. `--profile FILE` writes a cProfile of the timed rounds (pstats format).

The simulated sound card (`RecordingSink`) is part of the figure: it hashes the file it is given and, when
cut, the PCM it played (a real Pi's ALSA output costs the agent nothing of the kind, but an ffmpeg process).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import base64  # noqa: E402
import cProfile  # noqa: E402
import hashlib  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from typing import Any  # noqa: E402

import aiomqtt  # noqa: E402

from bench.fanout import shm_dir, write_seed  # noqa: E402
from controller.provision import ensure_signing_key  # noqa: E402
from devrig.testbed import make_testbed  # noqa: E402
from firmware_sim.fleet import Fleet, agent_settings  # noqa: E402
from receivers.agent import Agent  # noqa: E402
from receivers.protocol import PROTOCOL_VERSION, ControllerAvailability, Play, Stop, Target, Topics, utcnow  # noqa: E402
from tests.samples import make  # noqa: E402

log = logging.getLogger("bench.agent_emergency")


async def until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.01)


def sounding(agent: Agent, item_id: str) -> bool:
    current = agent.player.current
    return current is not None and current.cmd.item_id == item_id and current.announced


def idle(agent: Agent) -> bool:
    return agent.player.current is None and not agent.player.items and len(agent.outbox) == 0


async def run(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="tt-agent-em-"))
    os.chmod(data_dir, 0o755)
    state = shm_dir()
    seed = data_dir / "seed.toml"
    write_seed(seed, args.receivers)
    tb = await asyncio.to_thread(make_testbed, data_dir, "mosquitto", seed_file=seed)
    fleet = Fleet()
    try:
        signer = ensure_signing_key(tb.settings)[0]
        topics = Topics(tb.settings.mqtt_base)
        audio = make(data_dir / "speech.wav", seconds=2)
        mp3 = data_dir / "speech.mp3"
        proc = await asyncio.create_subprocess_exec("ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(audio),
                                                    "-ac", "1", "-b:a", "32k", "-t", "60", "-y", str(mp3))
        await proc.wait()
        data = mp3.read_bytes()
        while len(data) < args.audio_kib * 1024:  # the emergency's size: its chime, speech and names
            data += data
        data = data[:args.audio_kib * 1024]
        inline: dict[str, Any] = {"inline_audio": base64.b64encode(data).decode(),
                                  "inline_sha256": hashlib.sha256(data).hexdigest()}
        user, password = tb.tools
        mqtt = tb.settings.mqtt
        assert mqtt.host is not None
        async with aiomqtt.Client(mqtt.host, mqtt.port, identifier=user, username=user, password=password) as client:
            await client.publish(topics.controller_availability(), ControllerAvailability(
                status="online", at=utcnow(), protocol=PROTOCOL_VERSION).to_bytes(), qos=1, retain=True)
            settings = agent_settings(tb.fleet, state, args.receivers, amp_warmup_s=0, telemetry_interval_s=3600,
                                      keepalive_s=60)
            agents = [fleet.add(s) for s in settings]
            await until(lambda: all(a.link.connected.is_set() and a.player.compact for a in agents), 120,
                        "agents online")
            await asyncio.sleep(2)

            async def emergency(to: list[Agent]) -> None:
                item = f"em-{uuid.uuid4()}"
                play = Play.new(Target.everyone(), 600, item_id=item, priority="emergency", volume=100, **inline)
                await client.publish(Target.everyone().topic(topics, "play"), signer.sign(play), qos=1)
                await until(lambda: all(sounding(a, item) for a in to), 120, "all sounding")
                stop = Stop.new(Target.everyone(), 600, item_id=item, priority="emergency")
                await client.publish(Target.everyone().topic(topics, "stop"), signer.sign(stop), qos=1)
                await until(lambda: all(idle(a) for a in to), 120, "all idle")

            for _ in range(args.warmup):
                await emergency(agents)
            await asyncio.sleep(1)
            profile = cProfile.Profile() if args.profile else None
            wall, cpu = time.monotonic(), time.process_time()
            if profile:
                profile.enable()
            for _ in range(args.rounds):
                await emergency(agents)
            if profile:
                profile.disable()
                profile.dump_stats(args.profile)
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            per = cpu / args.rounds / len(agents) * 1000
            print(f"{len(agents)} agents in one process, {args.rounds} emergencies played and cancelled, inline audio "
                  f"{len(data)} B: CPU {per:.3f} ms per agent per emergency (process {cpu:.2f} s over {wall:.1f} s)")

            # One agent alone: arrival → first sound.
            await fleet.stop()
            fleet = Fleet()
            [alone] = [fleet.add(settings[0])]
            await until(lambda: alone.link.connected.is_set() and alone.player.compact, 30, "alone online")
            arrivals: list[float] = []
            original = alone.on_message

            async def stamped(message: aiomqtt.Message) -> None:
                if message.topic.value.endswith("/play"):
                    arrivals.append(time.perf_counter())
                await original(message)

            alone.on_message = stamped  # type: ignore[method-assign]
            alone.link._on_message = stamped
            latencies = []
            starts: list[float] = []
            sink_play = alone.sink.play

            async def timed_play(path: Path, *, on_start: object = None, **kw: object) -> None:
                def first() -> None:
                    starts.append(time.perf_counter())
                    on_start()  # type: ignore[operator]
                await sink_play(path, on_start=first, **kw)  # type: ignore[arg-type]

            alone.sink.play = timed_play  # type: ignore[method-assign]
            for _ in range(args.rounds + 1):
                await emergency([alone])
                latencies.append((starts[-1] - arrivals[-1]) * 1000)
            latencies = latencies[1:]  # the first finds the sink's decoding cold
            print(f"one agent alone: arrival → first sound p50 {statistics.median(latencies):.1f} ms, "
                  f"max {max(latencies):.1f} ms ({len(latencies)} rounds, amplifier warm-up 0)")
    finally:
        await fleet.stop()
        tb.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--receivers", type=int, default=200)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--audio-kib", type=int, default=24, help="inline audio size (the bench emergency's: 24 KiB)")
    p.add_argument("--profile", type=Path, default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
