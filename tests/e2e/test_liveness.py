"""What the controller believes about a receiver's liveness, against what the receiver declares.

A receiver declares its keepalive in its retained `online`; the controller's silence rule counts it only up to
`liveness.max_keepalive_s`, so a receiver (or a stolen receiver's account) declaring an hour cannot hide an
outage for an hour and a half.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.app import create_app
from devrig.testbed import Testbed
from firmware_sim.netproxy import LinkProxy
from tests.conftest import Api, FleetThread, admin_token, wait_for

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def controller(testbed: Testbed, **settings: Any) -> Iterator[Api]:
    """The controller on the testbed's broker (as `api_mqtt`), with `settings` changed."""
    token = admin_token(testbed.engine)
    app_settings = testbed.settings.model_copy(update=settings)
    with TestClient(create_app(app_settings)) as client:
        wait_for(lambda: client.get("/healthz").json()["mqtt"] == "connected", 20, "controller connected")
        yield Api(client, token)


def availability(api: Api, rid: str) -> str:
    return str(api.get(f"/api/v1/receivers/{rid}").json()["availability"])


def test_a_declared_hour_of_keepalive_does_not_hide_an_outage(testbed: Testbed, fleet: FleetThread) -> None:
    """A receiver declares (and uses with the broker) a keepalive of an hour, then its link goes silent: the
    broker would not notice for 90 minutes, but the controller trusts at most 2 s here and shows it offline
    after about 3 s of silence."""
    cap = 2.0
    liveness = testbed.settings.liveness.model_copy(update={"max_keepalive_s": cap})
    proxy = LinkProxy("127.0.0.1", testbed.broker.port)
    port = fleet.run(proxy.start())
    [s] = fleet.settings(1, keepalive_s=3600)
    s = s.model_copy(update={"mqtt_url": f"mqtt://127.0.0.1:{port}"})
    with controller(testbed, liveness=liveness) as api:
        fleet.start([s])
        rid = s.receiver_id
        wait_for(lambda: api.get(f"/api/v1/receivers/{rid}").json()["telemetry"], 10, "telemetry")
        # Telemetry every second keeps it online past 1.5 × the cap.
        time.sleep(2 * cap)
        assert availability(api, rid) == "online"

        fleet.loop.call_soon_threadsafe(proxy.blackhole)
        cut = time.monotonic()
        wait_for(lambda: availability(api, rid) == "offline", 30, "offline after 1.5 × the capped keepalive")
        print(f"offline {time.monotonic() - cut:.1f} s after the link went silent (declared 3600 s, cap {cap:g} s)")
    fleet.run(proxy.close())
