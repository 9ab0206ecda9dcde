"""Shared fixtures.

- `data_dir`: a fresh directory per test that Mosquitto (which drops to its own user) can read.
- `testbed`: real broker + migrated, seeded database + keys + fleet file (`firmware_sim.testbed`),
  parametrised over both brokers for the end-to-end tests that request `broker_kind`.
- `api`: the controller built through `create_app`, running its lifespan (MQTT bridge included), with an
  admin token; `fleet`: real agents on simulated hardware in their own thread and event loop.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from controller.app import create_app
from controller.auth import create_token
from devrig.testbed import BrokerUnavailable, Testbed, make_testbed
from firmware_sim.fleet import Fleet, agent_settings
from receivers.agent import Agent, AgentSettings

T = TypeVar("T")
REQUIRE_MOSQUITTO = os.environ.get("TT_REQUIRE_MOSQUITTO") == "1"


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


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def testbed(data_dir: Path, request: pytest.FixtureRequest) -> Iterator[Testbed]:
    kind = request.getfixturevalue("broker_kind") if "broker_kind" in request.fixturenames else "mosquitto"
    tb = _testbed(data_dir, kind, status_flush_s=0.1, command_timeout_s=5.0)
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


@pytest.fixture
def api(testbed: Testbed) -> Iterator[Api]:
    with Session(testbed.engine) as s:
        token = create_token(s, "test-admin", ["admin"])
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
        with Session(testbed.engine) as s:
            token = create_token(s, "live-admin", ["admin"])
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
