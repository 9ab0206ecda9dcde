"""The `truyenthanh-agent` command: everything a Raspberry Pi runs.

    truyenthanh-agent run [--config FILE]        the agent (what systemd starts)
    truyenthanh-agent enroll --controller URL --code CODE   fetch this receiver's config with a one-time code
                                                            (checked against the key fingerprint it ends with)
    truyenthanh-agent self-test [--config FILE]  a quiet tone through the amplifier and loudspeakers
    truyenthanh-agent status [--config FILE]     what the state directory holds: plan, queue, outbox

argparse, not typer: the agent's distribution stays small and its start fast on a Pi Zero. This module
imports neither the controller nor the simulator nor `audio`; a test keeps it so.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from .config import AgentSettings
from .enroll import BadCode, EnrolFailed, render_config, request_config, write_private
from .hardware import HardwareError, PiHardware
from .store import KeyStore, KeysUnreadable

DEFAULT_CONFIG = Path("/etc/truyenthanh/agent.toml")
DEFAULT_STATE_DIR = Path("/var/lib/truyenthanh")


class UsageError(Exception):
    """Bad arguments or configuration: exit status 2."""


def load_settings(config: Path | None) -> AgentSettings:
    """The config file; without one (`--config` not given and no DEFAULT_CONFIG) the TT_AGENT_* environment."""
    path = config if config is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    try:
        if path is None:
            return AgentSettings()  # type: ignore[call-arg]
        return AgentSettings.from_file(path)
    except FileNotFoundError:
        raise UsageError(f"no config file {path}: enrol first (truyenthanh-agent enroll --controller URL "
                         "--code CODE)") from None
    except (OSError, ValueError) as e:
        detail = str(e)
        if isinstance(e, ValidationError):
            detail = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise UsageError(f"{path or 'TT_AGENT_* environment'}: {detail}") from None


def pi_hardware(settings: AgentSettings) -> PiHardware:
    if settings.hardware != "pi":
        raise UsageError(f"hardware = {settings.hardware!r}: simulated receivers run under the development rig "
                         "(truyenthanh-dev), not truyenthanh-agent")
    return PiHardware.from_settings(settings)


# ------------------------------------------------------------------------------------------ commands


def cmd_run(args: argparse.Namespace) -> int:
    from .agent import Agent
    from .sink import SinkError, find_ffmpeg

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(args.config)
    hardware = pi_hardware(settings)
    try:
        find_ffmpeg()
    except SinkError as e:  # still run: the link, plan and acks work, and every play says why it failed
        logging.getLogger(__name__).error("%s", e)
    try:
        agent = Agent(settings, hardware)
    except KeysUnreadable as e:  # never fall back to the enrolled key: it may be retired, the current one not
        logging.getLogger(__name__).critical("cannot start: %s", e)
        hardware.close()
        return 1

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(agent.run())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():  # a signal: stop cleanly (`stopped`, then disconnect)
            await agent.stop()
        stopping.cancel()
        await task  # also returns after `restart-agent`: the process exits, systemd (Restart=always) starts it

    try:
        asyncio.run(main())
    finally:
        hardware.close()
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    import pwd

    account: pwd.struct_passwd | None = None
    if args.owner is not None:
        try:
            account = pwd.getpwnam(args.owner)
        except KeyError:
            raise UsageError(f"--owner: no user {args.owner!r} on this machine") from None
    elif os.geteuid() == 0:
        try:
            account = pwd.getpwnam("truyenthanh")
        except KeyError:
            account = None
    try:
        answer = request_config(args.controller, args.code, args.state_dir, timeout=args.timeout,
                                allow_cleartext=args.allow_cleartext)
    except BadCode as e:
        raise UsageError(f"--code: {e}") from None
    except ValueError as e:
        raise UsageError(f"--controller: {e}") from None
    except EnrolFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    write_private(args.config, render_config(answer, args.state_dir, args.controller, dt.datetime.now(dt.UTC),
                                             allow_cleartext=args.allow_cleartext))
    if account is not None:
        os.chown(args.config, account.pw_uid, account.pw_gid)
    keys = args.state_dir / "keys.json"
    if keys.exists():  # keys of an earlier enrolment (rotations since) are no longer trusted: only this one
        KeyStore(keys, answer.controller_public_key).reset()
        if account is not None:
            os.chown(keys, account.pw_uid, account.pw_gid)
    print(f"wrote {args.config} (mode 0600{f', owner {account.pw_name}' if account else ''}): receiver "
          f"{answer.receiver_id} of commune {answer.commune}, broker {answer.mqtt_url}")
    for w in answer.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print("next: sudo systemctl enable --now truyenthanh-agent   (already running: sudo systemctl restart "
          "truyenthanh-agent)")
    return 0


def cmd_self_test(args: argparse.Namespace) -> int:
    from .selftest import check_output
    from .sink import AlsaSink

    settings = load_settings(args.config)
    try:
        hardware = pi_hardware(settings)
    except HardwareError as e:
        print(f"self-test failed: {e}", file=sys.stderr)
        return 1
    try:
        relay = f"relay on GPIO {hardware.relay.pin}" if hardware.relay else "no relay configured"
        print(f"amplifier: {relay}; audio: ALSA device {settings.alsa_device!r}, volume {hardware.volume()} %")
        problem = asyncio.run(check_output(hardware, AlsaSink(settings.alsa_device)))
        temp = hardware.temperature_c()
        free = hardware.disk_free_mb(settings.state_dir)
        modem = hardware.modem.read_now()
    finally:
        hardware.close()
    print(f"CPU temperature: {f'{temp:.1f} °C' if temp is not None else 'unknown'}; free disk in "
          f"{settings.state_dir}: {f'{free:.0f} MB' if free is not None else 'unknown'}")
    print(f"modem: {modem.summary() if modem else 'none found (no mmcli or no modem)'}")
    if problem:
        print(f"self-test failed: {problem}", file=sys.stderr)
        return 1
    print("self-test passed: amplifier switched on, a 1 s tone played")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .status import format_status, read_status

    settings = load_settings(args.config)
    status = read_status(settings, dt.datetime.now(dt.UTC))
    for line in format_status(status):
        print(line)
    return 1 if status.keys_problem else 0


# ------------------------------------------------------------------------------------------- parser


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="truyenthanh-agent",
                                description="The truyenthanh receiver agent: the software of one loudspeaker "
                                            "cluster's Raspberry Pi.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,enroll,self-test,status}")
    config_help = f"the agent's config (TOML; default {DEFAULT_CONFIG} if it exists, else TT_AGENT_* variables)"

    run = sub.add_parser("run", help="run the agent (what systemd starts)")
    run.add_argument("--config", type=Path, help=config_help)
    run.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    run.set_defaults(func=cmd_run)

    enroll = sub.add_parser("enroll", help="fetch this receiver's config from the controller with a one-time code")
    enroll.add_argument("--controller", required=True, help="the controller's URL, e.g. https://truyenthanh.example")
    enroll.add_argument("--code", required=True, help="the one-time enrolment code from the operator")
    enroll.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help=f"where to write the agent's config, mode 0600 (default {DEFAULT_CONFIG})")
    enroll.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                        help=f"the agent's state directory, written into the config (default {DEFAULT_STATE_DIR})")
    enroll.add_argument("--owner", help="give the file to this user, who runs the agent (default when run as "
                                        "root: 'truyenthanh' if it exists)")
    enroll.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the controller")
    enroll.add_argument("--allow-cleartext", action="store_true",
                        help="accept http:// and mqtt:// to another machine: only on a closed private network "
                             "(a VPN that already encrypts, a LAN with no way out)")
    enroll.set_defaults(func=cmd_enroll)

    test = sub.add_parser("self-test", help="play a quiet tone through the relay, amplifier and loudspeakers "
                                            "(stop the agent first: it holds the relay)")
    test.add_argument("--config", type=Path, help=config_help)
    test.set_defaults(func=cmd_self_test)

    status = sub.add_parser("status", help="what the agent's state directory holds: plan, queue, outbox")
    status.add_argument("--config", type=Path, help=config_help)
    status.set_defaults(func=cmd_status)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as e:
        p.exit(2, f"{p.prog} {args.command}: error: {e}\n")
    except HardwareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
