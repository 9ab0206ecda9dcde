"""Shared fixtures.

- `data_dir`: a fresh directory per test that Mosquitto (which drops to its own user) can read.
- `seeded`: a migrated database seeded with the demo district, and the controller's keys, in `data_dir`
  (`devrig.testbed.seed_world`, made once per session and copied); no broker.
- `api`: the controller built through `create_app` on `seeded`, running its lifespan with the in-memory
  bridge (`controller.bridge_memory.InMemoryBridge`, as `api.bridge`) instead of MQTT, with an admin token.
  For every API test that does not test MQTT itself: no broker needed.
- `testbed`: real broker + migrated, seeded database + keys + fleet file (`devrig.testbed`), parametrised
  over both brokers for the end-to-end tests that request `broker_kind`.
- `api_mqtt`: as `api`, with the real MQTT bridge connected to the testbed's broker; tests/e2e/conftest.py
  makes it the `api` of the end-to-end tests. `fleet`: real agents on simulated hardware in their own thread
  and event loop; `live`: the controller under uvicorn on the testbed.

Without Mosquitto (and without TT_REQUIRE_MOSQUITTO=1, which CI sets) the cases that need it are skipped,
and `pytest_terminal_summary` counts them in one line at the end, with those skipped for other missing
system parts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from controller.app import create_app
from controller.bridge_memory import InMemoryBridge
from controller.config import DEFAULT_SEED, Settings, TtsSettings
from controller.db import make_engine
from controller.provision import ensure_signing_key
from controller.services.accounts import issue_token
from devrig.testbed import BrokerUnavailable, Testbed, make_testbed, seed_world
from firmware_sim.fleet import Fleet, agent_settings
from receivers.agent import Agent, AgentSettings
from receivers.protocol.messages import Ack, Availability, PlayEvent, ReceiverState, Telemetry

T = TypeVar("T")
# In-process controllers of the tests serve the API only: NiceGUI's UI can be mounted once per process. The
# UI's tests (tests/ui) run a whole controller, UI included, in a process of its own.
os.environ["TT_UI__ENABLED"] = "0"
REQUIRE_MOSQUITTO = os.environ.get("TT_REQUIRE_MOSQUITTO") == "1"
# Long fault and load scenarios (`@pytest.mark.long`) run when TT_LONG=1 (CI sets it); `make test` alone
# skips them and counts them at the end.
RUN_LONG = os.environ.get("TT_LONG") == "1"
LONG_SKIP = "long scenario: TT_LONG=1 runs it"
# Speech: eSpeak alone, so that no test reaches Google (no network in tests) nor waits on it; the tests of the
# engine order (tests/controller/test_voice_order.py…) set their own, against a local fake of Google.
OFFLINE_ONLY = TtsSettings(announcements=["offline"], emergencies=["offline"], cap=["offline"])
TEST_SETTINGS: dict[str, Any] = {"status_flush_s": 0.1, "command_timeout_s": 5.0, "tts": OFFLINE_ONLY}
# Skips for want of a part of the machine, each counted in one line at the end of the run:
# (what the skip reason says, the rest of that line).
MISSING_PARTS = [
    ("mosquitto not found", "no Mosquitto on this machine — `apt-get install mosquitto` to run them"),
    ("systemd-analyze not installed", "no systemd-analyze on this machine — `apt-get install systemd` to run them"),
    ("shellcheck not installed", "no shellcheck on this machine — `apt-get install shellcheck` to run them"),
    ("no agent wheelhouse", "no agent wheelhouse — `make agent-wheelhouse` to run them"),
    ("no size-limited disk", "no size-limited disk could be made here (needs root and a loop device)"),
    ("needs root", "not running as root"),
    ("chromium not installed", "no Chromium on this machine — `apt-get install chromium` to run them"),
    (LONG_SKIP, "long fault and load scenarios — `TT_LONG=1 make test` (CI) runs them"),
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if RUN_LONG:
        return
    skip = pytest.mark.skip(reason=LONG_SKIP)
    for item in items:
        if item.get_closest_marker("long"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    counts: collections.Counter[str] = collections.Counter()
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        for says, line in MISSING_PARTS:
            if says in reason:
                counts[line] += 1
                break
    for line, n in counts.items():
        terminalreporter.write_line(f"{n} test{'s' if n != 1 else ''} skipped: {line}", yellow=True, bold=True)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="tt-test-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _testbed(data_dir: Path, kind: str, **settings: Any) -> Testbed:
    try:
        return make_testbed(data_dir, kind, **settings)
    except BrokerUnavailable as e:
        if REQUIRE_MOSQUITTO:
            pytest.fail(f"{e} — TT_REQUIRE_MOSQUITTO=1 forbids skipping the real broker")
        pytest.skip(str(e))


@dataclass
class Seeded:
    """The controller's world without a broker: settings, database and public key."""

    settings: Settings
    engine: Engine
    public_key: str


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrating and seeding takes most of a second: done once, then copied for each test."""
    d = tmp_path_factory.mktemp("seeded")
    _, engine, _ = seed_world(d)
    engine.dispose()
    return d


@contextlib.contextmanager
def seeded_copy(template: Path, data_dir: Path) -> Iterator[Seeded]:
    """The seeded world of `template` (the `seeded_template` fixture) copied into `data_dir`. For fixtures of
    a wider scope than `seeded`'s (e.g. a module's: with `tmp_path_factory.mktemp(...)` as `data_dir`)."""
    shutil.copytree(template, data_dir, dirs_exist_ok=True)
    settings = Settings(demo=True, data_dir=data_dir, seed_file=DEFAULT_SEED, **TEST_SETTINGS)
    engine = make_engine(settings.db_url)
    try:
        yield Seeded(settings, engine, ensure_signing_key(settings)[1])
    finally:
        engine.dispose()


@pytest.fixture
def seeded(data_dir: Path, seeded_template: Path) -> Iterator[Seeded]:
    with seeded_copy(seeded_template, data_dir) as world:
        yield world


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def testbed(data_dir: Path, request: pytest.FixtureRequest) -> Iterator[Testbed]:
    kind = request.getfixturevalue("broker_kind") if "broker_kind" in request.fixturenames else "mosquitto"
    tb = _testbed(data_dir, kind, **TEST_SETTINGS)
    yield tb
    tb.close()


class Api:
    """The controller under test, reached over its ASGI interface with an admin token."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self.headers, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.client.post(path, headers=self.headers, **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.client.put(path, headers=self.headers, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self.client.patch(path, headers=self.headers, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.client.delete(path, headers=self.headers, **kw)

    @property
    def engine(self) -> Engine:
        return self.client.app.state.engine  # type: ignore[attr-defined]

    @property
    def bridge(self) -> InMemoryBridge:
        """The in-memory bridge (`api` only): what was sent, and the rule that answers requests."""
        bridge = self.client.app.state.bridge  # type: ignore[attr-defined]
        assert isinstance(bridge, InMemoryBridge), "a real MQTT bridge: talk to it through real agents"
        return bridge

    def deliver(self, rid: str, *reports: Availability | ReceiverState | Telemetry | Ack | PlayEvent) -> None:
        """Receiver `rid` reports (through the bridge's ingest, on the app's event loop), written at once."""
        self.client.portal.call(functools.partial(self.bridge.deliver, rid, *reports))  # type: ignore[union-attr]

    def online(self, *rids: str) -> None:
        """These receivers say they are online, as an agent does on connecting."""
        self.client.portal.call(functools.partial(self.bridge.bring_online, *rids))  # type: ignore[union-attr]


def admin_token(engine: Engine, name: str = "test-admin") -> str:
    with Session(engine) as s:
        return issue_token(s, name, ["admin"], created_by="test")[1]


@contextlib.contextmanager
def api_in_memory(world: Seeded, **bridge_options: Any) -> Iterator[Api]:
    """The controller on `world` with the in-memory bridge (`bridge_options`: its `answer`, `answers`), and an
    admin token: what the `api` fixture gives, for fixtures of a wider scope."""
    token = admin_token(world.engine)
    factory = functools.partial(InMemoryBridge, **bridge_options) if bridge_options else InMemoryBridge
    with TestClient(create_app(world.settings, bridge=factory)) as client:
        yield Api(client, token)


@pytest.fixture
def api(seeded: Seeded) -> Iterator[Api]:
    with api_in_memory(seeded) as a:
        yield a


@pytest.fixture
def api_mqtt(testbed: Testbed) -> Iterator[Api]:
    token = admin_token(testbed.engine)
    with TestClient(create_app(testbed.settings)) as client:
        deadline = time.monotonic() + 20
        while client.get("/healthz").json()["mqtt"] != "connected":
            assert time.monotonic() < deadline, "controller never connected to the broker"
            time.sleep(0.05)
        yield Api(client, token)


class FleetThread:
    """Agents in their own event loop and thread, as they would be in their own process."""

    def __init__(self, testbed: Testbed, state_root: Path) -> None:
        self.testbed = testbed
        self.state_root = state_root
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.fleet = Fleet()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def settings(self, n: int | None = None, **overrides: Any) -> list[AgentSettings]:
        defaults: dict[str, Any] = {"telemetry_interval_s": 1.0, "keepalive_s": 10, "backoff_min_s": 0.2,
                                    "backoff_max_s": 2.0}
        return agent_settings(self.testbed.fleet, self.state_root, n, **{**defaults, **overrides})

    def start(self, settings: list[AgentSettings], timeout: float = 60) -> list[Agent]:
        async def go() -> list[Agent]:
            agents = [self.fleet.add(s) for s in settings]
            await asyncio.wait_for(asyncio.gather(*(a.link.connected.wait() for a in agents)), timeout)
            return agents

        return self.run(go(), timeout + 5)

    def stop_one(self, rid: str) -> None:
        self.run(self.fleet.stop_one(rid))

    def close(self) -> None:
        async def cancel_rest() -> None:
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:
            self.run(self.fleet.stop(), 30)
            self.run(cancel_rest(), 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def fleet(testbed: Testbed, data_dir: Path) -> Iterator[FleetThread]:
    ft = FleetThread(testbed, data_dir / "fleet")
    yield ft
    ft.close()


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class LiveController:
    """The controller served by a real uvicorn on a free port, so agents can download media over HTTP."""

    def __init__(self, testbed: Testbed, port: int) -> None:
        import uvicorn

        self.testbed = testbed
        self.url = f"http://127.0.0.1:{port}"
        self.app = create_app(testbed.settings)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        token = admin_token(testbed.engine, "live-admin")
        import httpx

        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        wait_for(lambda: self._health() == "connected", 20, "live controller connected to the broker")

    def _health(self) -> str | None:
        import httpx

        try:
            return str(self.http.get("/healthz").json()["mqtt"])
        except httpx.HTTPError:
            return None

    def close(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture
def live(testbed: Testbed) -> Iterator[LiveController]:
    from devrig.ports import free_port

    lc = LiveController(testbed, free_port())
    yield lc
    lc.close()
