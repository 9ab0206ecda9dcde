"""Event streams (SSE) per token are bounded (issue 12): a token holds at most `http.streams_per_token` (4)
open at once; the next is 429 with a message, a closed one frees its place, and another token has places of
its own. Over real HTTP (uvicorn): the streams stay open while the test holds them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest
from sqlmodel import Session

from controller.app import create_app
from controller.bridge_memory import InMemoryBridge
from controller.services.accounts import issue_token
from tests.conftest import Seeded, admin_token, wait_for
from tests.live_server import live_server


@pytest.fixture
def server(seeded: Seeded) -> Iterator[tuple[httpx.Client, str]]:
    """A client of the controller over HTTP with an admin token, and an active emergency's id."""
    token = admin_token(seeded.engine)
    with live_server(create_app(seeded.settings, bridge=InMemoryBridge)) as url, \
            httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        r = client.post("/api/v1/emergencies", json={"text": "Thử còi.", "targets": {"communes": ["tra-nu"]}})
        assert r.status_code == 202, r.text
        yield client, r.json()["id"]


@contextlib.contextmanager
def stream(client: httpx.Client, eid: str, headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
    """An event stream, held open (its 200 came once its place was taken: the check precedes the stream)."""
    with client.stream("GET", f"/api/v1/emergencies/{eid}/events", headers=headers) as r:
        if r.status_code != 200:
            r.read()
        yield r


def test_a_token_holds_at_most_four_streams_at_once(server: tuple[httpx.Client, str], seeded: Seeded) -> None:
    client, eid = server
    per_token = seeded.settings.http.streams_per_token
    with contextlib.ExitStack() as held:
        opened = [held.enter_context(stream(client, eid)) for _ in range(per_token)]
        assert [r.status_code for r in opened] == [200] * per_token
        with stream(client, eid) as one_more:
            assert one_more.status_code == 429
            assert one_more.json()["detail"].startswith(f"At most {per_token} event streams")
        with Session(seeded.engine) as s:  # another token: places of its own
            other = {"Authorization": f"Bearer {issue_token(s, 'truc-ban', ['emergency:trigger'])[1]}"}
        with stream(client, eid, other) as theirs:
            assert theirs.status_code == 200
        opened[0].close()  # one closed: its place is free again, once the server has seen it go

        def a_place_again() -> bool:
            with stream(client, eid) as again:
                assert again.status_code in (200, 429)
                return again.status_code == 200

        wait_for(a_place_again, 20, "the closed stream's place to be free")
