"""A whole world on one machine for tests and benchmarks: a real broker (Mosquitto or the embedded amqtt)
on a free port with provisioned accounts and ACLs, a migrated and seeded database, the controller's keys,
and a fleet file with every receiver's credentials. The controller and the agents are then started by the
caller (`create_app(tb.settings)`, `firmware_sim.fleet`). `seed_world` is the same without the broker.

`start_broker` raises `BrokerUnavailable` when the broker's program is missing; tests skip on it unless
`TT_REQUIRE_MOSQUITTO=1` (CI sets it), so CI can never pass by skipping the real broker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from controller.broker.files import Account, controller_account
from controller.broker.passwords import hash_password
from controller.config import DEFAULT_SEED, Settings
from controller.db import make_engine, migrate
from controller.inventory import apply_seed, load_seed
from controller.provision import (
    broker_accounts,
    demo_controller_password,
    demo_fleet_file,
    ensure_signing_key,
    write_broker_files,
)
from firmware_sim.fleet import load_fleet_file
from receivers.protocol import Topics

from .ports import free_port, stop_child, wait_port

# A second account with the controller's rights, for tests and benchmarks that speak as the controller while a
# controller runs: the brokers make the client id the user name, so a second connection of one account takes
# the first one's place, and the controller's own account must be its alone.
TOOLS_USER = "test-tools"


class BrokerUnavailable(RuntimeError):
    pass


@dataclass
class Broker:
    kind: str
    port: int
    proc: subprocess.Popen[bytes]
    directory: Path

    def stop(self) -> None:
        stop_child(self.proc)

    def log(self) -> str:
        path = self.directory / "broker.log"
        return path.read_text(errors="replace") if path.exists() else ""


def find_mosquitto() -> str | None:
    """The Mosquitto program: on PATH or in /usr/sbin. TT_MOSQUITTO names it instead (a path that does not
    exist makes this machine one without Mosquitto, e.g. to see what the tests skip there)."""
    forced = os.environ.get("TT_MOSQUITTO")
    if forced:
        return forced if os.path.exists(forced) else None
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def start_broker(kind: str, directory: Path, accounts: list[Account], *, port: int | None = None,
                 timeout: float = 20.0, persistence: bool = False) -> Broker:
    port = port or free_port()
    config = write_broker_files(kind, directory, accounts, port, persistence=persistence)
    if kind == "mosquitto":
        exe = find_mosquitto()
        if exe is None:
            raise BrokerUnavailable("mosquitto not found (apt-get install mosquitto)")
        cmd = [exe, "-c", str(config)]
    else:
        cmd = [sys.executable, "-m", "controller.broker.embedded", str(config)]
    with (directory / "broker.log").open("ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    broker = Broker(kind, port, proc, directory)
    try:
        wait_port(port, timeout, proc)
    except RuntimeError as e:
        broker.stop()
        raise RuntimeError(f"{kind} did not start: {e}\n{broker.log()}") from None
    return broker


@dataclass
class Testbed:
    __test__ = False  # not a pytest test class, despite the name
    settings: Settings
    engine: Engine
    broker: Broker
    fleet: dict[str, Any]
    public_key: str
    controller_password: str

    @property
    def tools(self) -> tuple[str, str]:
        """User name and password of the tools account (`TOOLS_USER`)."""
        return TOOLS_USER, self.controller_password

    def close(self) -> None:
        self.broker.stop()
        self.engine.dispose()


def seed_world(data_dir: Path, *, seed_file: Path = DEFAULT_SEED, **settings: Any) -> tuple[Settings, Engine, str]:
    """The test bed without its broker: a migrated database seeded from `seed_file` and the controller's
    signing key, in `data_dir`. Returns the settings, the engine and the public key (base64)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    base = Settings(demo=True, data_dir=data_dir, seed_file=seed_file, **settings)
    engine = make_engine(base.db_url)
    migrate(engine)
    _, public_key = ensure_signing_key(base)
    with Session(engine) as s:
        apply_seed(s, load_seed(seed_file))
    return base, engine, public_key


def make_testbed(data_dir: Path, broker_kind: str, *, seed_file: Path = DEFAULT_SEED, persistence: bool = False,
                 **settings: Any) -> Testbed:
    """`persistence`: Mosquitto keeps sessions, queues and retained messages on disk (as provisioned for
    production), so a broker killed and started again with the same arguments has them back."""
    base, engine, public_key = seed_world(data_dir, seed_file=seed_file, **settings)
    password = demo_controller_password(base)
    port = free_port()
    with Session(engine) as s:
        demo_fleet_file(s, data_dir / "fleet.json", mqtt_url=f"mqtt://127.0.0.1:{port}", base=base.mqtt_base,
                        public_key=public_key)
        accounts = broker_accounts(s, Topics(base.mqtt_base), "controller", password)
    accounts.append(controller_account(Topics(base.mqtt_base), TOOLS_USER, hash_password(password)))
    broker = start_broker(broker_kind, data_dir / "broker", accounts, port=port, persistence=persistence)
    final = base.model_copy(update={"mqtt_url": f"mqtt://controller:{password}@127.0.0.1:{port}"})
    return Testbed(final, engine, broker, load_fleet_file(data_dir / "fleet.json"), public_key, password)
