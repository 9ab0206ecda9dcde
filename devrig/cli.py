"""The `truyenthanh-dev` command: the development rig.

    truyenthanh-dev demo                      whole system on this machine (what `make demo` runs)
    truyenthanh-dev fleet --receivers N       run N simulated receivers from a fleet file, in one process per
                                              core (`--processes`)
    truyenthanh-dev sim-agent --config FILE   run one receiver agent on simulated hardware, in its own process
    truyenthanh-dev screenshots               the staff UI's main screens as PNGs, from a running demo

Imports are made inside the commands: `sim-agent` stands in for the agent on a Pi (the benchmarks measure
its memory), so it must not pay for the controller's database stack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="truyenthanh-dev: the development rig (demo, simulated receivers)")


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _run_until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


@app.command()
def demo() -> None:
    """Start the database, an embedded broker, the controller and a simulated fleet; Ctrl-C stops all."""
    from controller.config import Settings
    from devrig.demo import run_demo

    _logging()
    logging.getLogger("receivers").setLevel(logging.WARNING)
    run_demo(Settings(demo=True))


@app.command()
def fleet(
    file: Annotated[Path, typer.Option(help="fleet file written by the demo or `provision --fleet-file`")]
    = Path("var/fleet.json"),
    receivers: Annotated[int | None, typer.Option(help="how many (default: all in the file)")] = None,
    state_dir: Annotated[Path, typer.Option(help="where each simulated receiver keeps its disk")]
    = Path("var/fleet"),
    telemetry_interval: float = 30.0,
    keepalive: int = 30,
    processes: Annotated[int | None, typer.Option(
        help="processes to spread the receivers over, each with its own event loop (default: one per core); "
             "1 runs them all in this process", min=1)] = None,
    shard: Annotated[str | None, typer.Option(hidden=True, help="INDEX/COUNT: run only this process's share "
                                                               "(set by the parent of a fleet in several processes)")]
    = None,
) -> None:
    """Run simulated receivers (the real agent code on simulated hardware), in one process or several."""
    from firmware_sim.processes import default_processes, parse_shard, run_processes, share

    _logging()
    logging.getLogger("receivers").setLevel(logging.WARNING)
    if shard is None:
        total = len(json.loads(file.read_text(encoding="utf-8"))["receivers"])
        count = total if receivers is None else min(receivers, total)
        k = max(1, min(processes or default_processes(), count))
        if k > 1:  # the parent: one child per share, this same command with --shard
            common = ["--file", str(file), "--state-dir", str(state_dir), "--telemetry-interval",
                      str(telemetry_interval), "--keepalive", str(keepalive), "--receivers", str(count)]
            argvs = [[sys.executable, "-m", "devrig.cli", "fleet", *common, "--shard", f"{i}/{k}"] for i in range(k)]
            logging.getLogger(__name__).info("fleet: %d simulated receivers in %d processes", count, k)
            status = 0

            async def parent(stop: asyncio.Event) -> None:
                nonlocal status
                status = await run_processes(argvs, stop)

            _run_until_signal(parent)
            raise typer.Exit(status)

    from firmware_sim.fleet import agent_settings, load_fleet_file, run_fleet
    from firmware_sim.processes import watch_parent

    settings = agent_settings(load_fleet_file(file), state_dir, receivers,
                              telemetry_interval_s=telemetry_interval, keepalive_s=keepalive)
    if shard is not None:
        try:
            index, k = parse_shard(shard)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--shard") from None
        settings = settings[share(len(settings), index, k)]

    async def main(stop: asyncio.Event) -> None:
        if shard is not None:
            watch_parent(stop)
        await run_fleet(settings, stop)

    _run_until_signal(main)


@app.command("sim-agent")
def sim_agent(
    config: Annotated[Path, typer.Option(help="agent config file (TOML), as on a Pi")],
    verbose: bool = False,
) -> None:
    """Run one receiver agent on simulated hardware, in its own process as on a Pi.

    The loudspeaker is a recording sink that logs what it played to STATE_DIR/played.jsonl; the config's
    `hardware` setting is not consulted.
    """
    from firmware_sim.hardware import SimHardware
    from firmware_sim.sink import RecordingSink
    from receivers.agent import Agent, AgentSettings

    _logging(verbose)
    settings = AgentSettings.from_file(config)
    sim = SimHardware(seed=settings.receiver_id)
    agent = Agent(settings, sim, sink=RecordingSink(sim, log_path=settings.state_dir / "played.jsonl"))

    async def main(stop: asyncio.Event) -> None:
        task = asyncio.create_task(agent.run())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():  # a signal: stop cleanly
            await agent.stop()
        stopping.cancel()
        await task  # also returns after `restart-agent`: the process exits, as the agent does on a Pi

    _run_until_signal(main)


@app.command()
def screenshots(
    out: Annotated[Path, typer.Option(help="where the PNG files go")] = Path("docs/screenshots"),
    credentials: Annotated[Path, typer.Option(help="the demo's credentials file")] = Path("var/demo-credentials.json"),
) -> None:
    """Take the staff UI's main screens from a running demo (`make demo`), with Debian's Chromium."""
    from .screenshots import take

    for path in take(credentials, out):
        typer.echo(path)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
