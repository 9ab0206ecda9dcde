"""Bodies at the HTTP edge (issue 12): a request without a token is refused before its body is read, and a
body over its route's limit is refused before it is parsed — declared or streamed.

Over real HTTP (uvicorn in a thread): what matters is what the server reads off the socket, which an
in-process client cannot show. The uploads are generators that would send 2 GB; each counts what it managed
to hand to the socket before the answer came. Both ends' kernel buffers are kept small (64 KiB asked, so the
kernel's own growth of them does not hide what the server read): a server that reads the body lets the
generator run on (the test fails at 8 MB), one that does not stops it within a few hundred KB."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, select

from controller.app import create_app
from controller.bridge_memory import InMemoryBridge
from controller.db.models import AuditEntry
from tests.conftest import Seeded, admin_token
from tests.live_server import live_server

CHUNK = 64 * 1024
NOMINAL = 2 * 1024**3  # what the uploads would send if nobody stopped them
BOUND = 8 * 1024 * 1024  # past this, the server is plainly reading what it should have refused


class Flood:
    """A chunked body of NOMINAL bytes that fails the test once BOUND bytes have been taken from it."""

    def __init__(self, head: bytes = b"") -> None:
        self.head = head
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        if self.head:
            self.sent += len(self.head)
            yield self.head
        block = b"\0" * CHUNK
        while self.sent < NOMINAL:
            if self.sent > BOUND:
                raise AssertionError(f"the server kept reading: {self.sent} bytes sent and no answer yet")
            self.sent += CHUNK
            yield block


MULTIPART_HEAD = (b'--b0undary\r\nContent-Disposition: form-data; name="title"\r\n\r\nTin\r\n'
                  b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n'
                  b"Content-Type: audio/mpeg\r\n\r\n")
FORM = {"Content-Type": "multipart/form-data; boundary=b0undary"}


SMALL_BUFFER = 64 * 1024


def small_buffered_server(app: FastAPI, timeout: float = 30.0) -> contextlib.AbstractContextManager[str]:
    """`app` under uvicorn on a listening socket whose connections get small receive buffers."""
    return live_server(app, timeout, receive_buffer=SMALL_BUFFER)


@pytest.fixture
def server(seeded: Seeded) -> Iterator[tuple[str, str]]:
    """The controller over HTTP, and an admin token."""
    token = admin_token(seeded.engine)
    with small_buffered_server(create_app(seeded.settings, bridge=InMemoryBridge)) as url:
        yield url, token


def post(url: str, body: object, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.HTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)])
    with httpx.Client(timeout=60, transport=transport) as client:
        return client.post(url, content=body, headers=headers)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["/api/v1/bulletins", "/api/v1/emergencies/upload"])
@pytest.mark.parametrize("auth", [None, "Bearer tt_not-a-token"])
def test_an_upload_without_a_valid_token_is_refused_before_its_body_is_read(
        server: tuple[str, str], seeded: Seeded, path: str, auth: str | None) -> None:
    url, _ = server
    flood = Flood(MULTIPART_HEAD)
    r = post(url + path, flood, {**FORM, **({"Authorization": auth} if auth else {})})
    assert r.status_code == 401, r.text
    assert "token" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
    assert flood.sent < 1024 * 1024, f"{flood.sent} bytes were taken before the 401"
    with Session(seeded.engine) as s:
        refused = s.exec(select(AuditEntry).where(AuditEntry.outcome == "refused")).all()
    assert [(a.action, a.target, a.address) for a in refused] == [("auth.refused", f"POST {path}", "127.0.0.1")]


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(server: tuple[str, str]) -> None:
    """With a valid token: a declared 2 GB upload gets 413 from the edge, not after spooling."""
    url, token = server
    flood = Flood(MULTIPART_HEAD)
    r = post(url + "/api/v1/bulletins", flood,
             {**FORM, "Authorization": f"Bearer {token}", "Content-Length": str(NOMINAL)})
    assert r.status_code == 413, r.text
    assert r.json() == {"detail": "The file is larger than the limit of 200 MB."}
    assert flood.sent < 1024 * 1024


def test_a_streamed_json_body_over_the_limit_is_cut_off_with_413(server: tuple[str, str]) -> None:
    """A chunked JSON body to an authenticated route: counted as read, 413 past 1 MiB (http.max_body_kb)."""
    url, token = server
    flood = Flood(b'{"text": "')
    r = post(url + "/api/v1/emergencies", flood,
             {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    assert r.status_code == 413, r.text
    assert r.json() == {"detail": "The request body is larger than this route's limit of 1024 KB."}
    assert flood.sent < BOUND


def test_an_oversized_enrolment_request_is_refused_with_413(server: tuple[str, str]) -> None:
    """`/api/v1/enrol` is public (the code is the credential), so it gets no 401, but 16 KiB at most."""
    url, _ = server
    big = b'{"code": "' + b"A" * 100_000 + b'"}'
    r = post(url + "/api/v1/enrol", big, {"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json() == {"detail": "The request body is larger than this route's limit "
                                                           "of 16 KB."}, r.text[:200]
    flood = Flood(b'{"code": "')  # the same, chunked: no length to judge by
    r = post(url + "/api/v1/enrol", flood, {"Content-Type": "application/json"})
    assert r.status_code == 413 and flood.sent < BOUND, r.text[:200]
    # A code of an ordinary size is still read and judged (this world has no broker to enrol into: 503).
    r = post(url + "/api/v1/enrol", b'{"code": "ABCD-EFGH"}', {"Content-Type": "application/json"})
    assert r.status_code != 413 and "limit" not in r.text, r.text[:200]


def test_requests_with_a_token_and_a_body_within_the_limit_still_work(server: tuple[str, str]) -> None:
    url, token = server
    with httpx.Client(timeout=30) as client:
        r = client.post(url + "/api/v1/emergencies", json={"text": "Thử nghiệm.", "targets": {"communes": ["tra-nu"]}},
                        headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 202, r.text
        # A route without a body is left to its own checks: still 401 without a token.
        assert client.get(url + "/api/v1/emergencies").status_code == 401


def test_a_route_that_answers_without_reading_the_body_reads_no_more_of_it(server: tuple[str, str]) -> None:
    """A route without a body of its own (approving a bulletin) refuses a token-less request by itself. The
    server used to read (and throw away) the rest of the body, however long, to reach the connection's next
    request; now the answer closes the connection."""
    url, _ = server
    flood = Flood(b"{}")
    r = post(url + "/api/v1/bulletins/1/approve", flood, {"Content-Type": "application/json"})
    assert r.status_code == 401 and r.headers["connection"] == "close"
    assert flood.sent < 1024 * 1024
