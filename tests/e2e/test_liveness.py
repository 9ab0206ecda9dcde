"""What the controller believes about a receiver's liveness, against what the receiver declares.

A receiver declares its keepalive in its retained `online`; the controller's silence rule counts it only up to
`liveness.max_keepalive_s`, so a receiver (or a stolen receiver's account) declaring an hour cannot hide an
outage for an hour and a half.

Two agent processes running with one receiver's credentials (a copied SD card) take the connection from each
other: the controller flags the receiver as cloned (an audit row, an alarm on the dashboard).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from controller.app import create_app
from controller.db.models import AuditEntry
from controller.policy import Principal, Right
from controller.services import Ctx
from controller.services.fleet_health import alarms
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
        first = dt.datetime.fromisoformat(api.get(f"/api/v1/receivers/{rid}").json()["last_seen"])
        wait_for(lambda: dt.datetime.fromisoformat(api.get(f"/api/v1/receivers/{rid}").json()["last_seen"])
                 > first + dt.timedelta(seconds=2 * cap), 20, "heard from for 2 × the cap")
        assert availability(api, rid) == "online"

        fleet.loop.call_soon_threadsafe(proxy.blackhole)
        cut = time.monotonic()
        wait_for(lambda: availability(api, rid) == "offline", 30, "offline after 1.5 × the capped keepalive")
        print(f"offline {time.monotonic() - cut:.1f} s after the link went silent (declared 3600 s, cap {cap:g} s)")
    fleet.run(proxy.close())


def test_two_agents_with_one_receivers_credentials_are_flagged_as_a_clone(
        testbed: Testbed, fleet: FleetThread, data_dir: Path) -> None:
    [s] = fleet.settings(1)
    rid = s.receiver_id
    copy = FleetThread(testbed, data_dir / "copied-sd-card")
    with controller(testbed) as api:
        fleet.start([s])
        wait_for(lambda: availability(api, rid) == "online", 10, "the genuine receiver online")
        # A restart is a new process too, but the old one does not come back: not a clone.
        streams = api.client.app.state.bridge.streams  # type: ignore[attr-defined]
        assert api.post(f"/api/v1/receivers/{rid}/restart").json()["outcome"] == "applied"
        wait_for(lambda: len(set(streams.instances(rid))) == 2, 20, "the restarted agent online")
        assert streams.clones == 0
        try:
            copy.start(copy.settings(1))  # the same receiver id, user name and password

            def flagged() -> list[AuditEntry]:
                with Session(testbed.engine) as session:
                    return list(session.exec(select(AuditEntry).where(AuditEntry.action == "receiver.cloned",
                                                                      AuditEntry.target == rid)))

            [row] = wait_for(flagged, 30, "the clone flagged")
        finally:
            copy.close()
        assert "two agent processes" in (row.detail or "")
        with Session(testbed.engine) as session:
            district = Principal("user", 1, "huyen", frozenset({Right.RECEIVERS_READ}), None)
            found = [a for a in alarms(Ctx(session, district, testbed.settings, testbed.engine))
                     if a.receiver_id == rid]
        assert [a.kind for a in found if a.kind == "cloned"] == ["cloned"]
