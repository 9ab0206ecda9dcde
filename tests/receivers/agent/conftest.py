"""Fixtures of the enrolment tests: a seeded controller's environment (`env`) and that controller served
over HTTP (`controller`, its URL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from controller.app import create_app
from controller.config import Settings
from controller.inventory import apply_seed, load_seed
from tests.live_server import live_server


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The controller's environment, shared by `serve` (the live server) and the operator's CLI."""
    values = {"TT_DATA_DIR": str(tmp_path / "data"), "TT_MQTT_URL": "mqtts://controller:pw-7f3a@broker.example:8883",
              "TT_RECEIVER_MQTT_URL": "mqtts://broker.example:8883", "TT_CREATE_KEY": "1"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    settings = Settings()
    with TestClient(create_app(settings, with_bridge=False)) as c, \
            Session(c.app.state.engine) as s:  # type: ignore[attr-defined]
        apply_seed(s, load_seed(settings.seed_file))
    return settings


@pytest.fixture
def controller(env: Settings) -> Iterator[str]:
    with live_server(create_app(env, with_bridge=False)) as url:
        yield url
