"""The Pi agent's footprint, as installed from its own distribution (`truyenthanh-agent`): disk, import
time, idle memory.

    make agent-wheelhouse && .venv/bin/python bench/agent_footprint.py [--runs 15] [--idle-seconds 30]

1. Disk: a fresh venv gets `pip install --no-index --find-links var/agent-wheelhouse truyenthanh-agent`;
   `du -sk` of its site-packages, against the same for this repository's `.venv` (the full install, with
   the test tools).
2. Import time: `python -c "import receivers.agent.cli"` in each venv, `--runs` times (wall clock,
   interpreter start included), against `python -c pass`; the median. Also `truyenthanh-agent --help`.
3. Idle memory: `truyenthanh-agent run` from the agent venv, real Pi code path (PiHardware without a relay,
   AlsaSink), against Mosquitto on 127.0.0.1 (`devrig.testbed`, production ACLs) with production timings
   (keepalive and telemetry 30 s). Once it is online and has settled, psutil samples RSS and USS every
   second for `--idle-seconds`; CPU is user + system time over that wall time.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sysconfig  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import venv  # noqa: E402

import aiomqtt  # noqa: E402
import psutil  # noqa: E402

from devrig.testbed import make_testbed  # noqa: E402
from receivers.protocol import Availability, Topics  # noqa: E402

MiB = 1024 * 1024
SETTLE_S = 5.0


def du_k(path: Path) -> int:
    return int(subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def site_packages(prefix: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))


def make_agent_venv(target: Path, wheelhouse: Path) -> None:
    venv.create(target, with_pip=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    subprocess.run([str(target / "bin" / "pip"), "install", "--quiet", "--find-links", str(wheelhouse),
                    "truyenthanh-agent"], check=True, env=env, cwd=target)


def median_wall(cmd: list[str], runs: int, cwd: Path) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=cwd)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


async def wait_online(tb: object, rid: str) -> None:
    mqtt = tb.settings.mqtt  # type: ignore[attr-defined]
    topics = Topics(tb.fleet["base"])  # type: ignore[attr-defined]
    async with aiomqtt.Client(mqtt.host, mqtt.port, username=mqtt.username, password=mqtt.password,
                              identifier="bench-controller") as c:
        await c.subscribe(topics.receiver(rid, "availability"), qos=1)
        async with asyncio.timeout(30):
            async for m in c.messages:
                if Availability.model_validate_json(m.payload).status == "online":
                    return


def idle_memory(agent_venv: Path, work: Path, seconds: float) -> dict[str, float]:
    tb = make_testbed(work / "tb", "mosquitto")
    proc = None
    try:
        r = tb.fleet["receivers"][0]
        values = {"receiver_id": r["receiver_id"], "commune": r["commune"], "username": r["username"],
                  "password": r["password"], "mqtt_url": tb.fleet["mqtt_url"], "base": tb.fleet["base"],
                  "controller_public_key": tb.fleet["controller_public_key"], "state_dir": str(work / "state")}
        config = work / "agent.toml"
        config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
        with (work / "agent.log").open("w") as log:
            proc = subprocess.Popen([str(agent_venv / "bin" / "truyenthanh-agent"), "run", "--config", str(config)],
                                    stdout=log, stderr=subprocess.STDOUT, cwd=work)
        asyncio.run(wait_online(tb, r["receiver_id"]))
        time.sleep(SETTLE_S)
        p = psutil.Process(proc.pid)
        cpu0, t0 = p.cpu_times(), time.monotonic()
        rss, uss = [], []
        while time.monotonic() - t0 < seconds:
            info = p.memory_full_info()
            rss.append(info.rss)
            uss.append(info.uss)
            time.sleep(1.0)
        cpu1, wall = p.cpu_times(), time.monotonic() - t0
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        return {"rss_mib": statistics.median(rss) / MiB, "uss_mib": statistics.median(uss) / MiB,
                "rss_max_mib": max(rss) / MiB, "cpu_pct": 100 * cpu / wall, "seconds": wall}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(20)
        tb.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--wheelhouse", type=Path, default=REPO / "var" / "agent-wheelhouse")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    args = ap.parse_args()
    full = Path(sys.prefix)
    with tempfile.TemporaryDirectory(prefix="tt-agent-footprint-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # Mosquitto, started as root, reads its files as its own user
        agent = work / "venv"
        make_agent_venv(agent, args.wheelhouse)
        sizes = {"agent": du_k(site_packages(agent)), "full": du_k(site_packages(full))}
        py_agent, py_full = str(agent / "bin" / "python"), str(full / "bin" / "python")
        imports = {
            "agent: python -c pass": median_wall([py_agent, "-c", "pass"], args.runs, work),
            "agent: import receivers.agent.cli": median_wall([py_agent, "-c", "import receivers.agent.cli"],
                                                             args.runs, work),
            "agent: truyenthanh-agent --help": median_wall([str(agent / "bin" / "truyenthanh-agent"), "--help"],
                                                           args.runs, work),
            "full: import receivers.agent.cli": median_wall([py_full, "-c", "import receivers.agent.cli"],
                                                            args.runs, REPO),
        }
        idle = idle_memory(agent, work, args.idle_seconds)
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"site-packages: agent venv {sizes['agent'] / 1024:.1f} MiB; full .venv {sizes['full'] / 1024:.1f} MiB")
    for what, s in imports.items():
        print(f"{what}: {1000 * s:.0f} ms (median of {args.runs})")
    print(f"idle agent ({idle['seconds']:.0f} s): RSS {idle['rss_mib']:.1f} MiB (max {idle['rss_max_mib']:.1f}), "
          f"USS {idle['uss_mib']:.1f} MiB, CPU {idle['cpu_pct']:.2f} % of one core")


if __name__ == "__main__":
    main()
