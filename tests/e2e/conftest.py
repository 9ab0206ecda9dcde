"""End to end, `api` is the controller on a real broker (`api_mqtt`); elsewhere it has the in-memory bridge."""

from __future__ import annotations

import pytest

from tests.conftest import Api


@pytest.fixture
def api(api_mqtt: Api) -> Api:
    return api_mqtt
