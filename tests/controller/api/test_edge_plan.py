"""A receiver's plan over HTTP Basic (issue 12): failed attempts are limited per receiver and address and
per address (429, the password not even checked), a guesser elsewhere does not lock the receiver out, and
the refusals are audited. (A new password ending the remembered old one at once is
test_receivers_policy.py's `test_a_new_password_ends_the_remembered_old_one_at_once`.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, select

from controller.app import create_app
from controller.bridge_memory import InMemoryBridge
from controller.db.models import AuditEntry, Receiver
from controller.provision import issue_receiver_password
from tests.conftest import Seeded

RID, OTHER = "tra-bui-thon-1-1", "tra-ka-thon-1-1"
GUESSER, HOME = "198.51.100.66", "203.0.113.20"


@pytest.fixture
def app(seeded: Seeded) -> Iterator[tuple[FastAPI, dict[str, str]]]:
    passwords = {}
    with Session(seeded.engine) as s:
        for rid in (RID, OTHER):
            receiver = s.get(Receiver, rid)
            assert receiver is not None
            passwords[rid] = issue_receiver_password(receiver)
            s.add(receiver)
        s.commit()
    yield create_app(seeded.settings, bridge=InMemoryBridge), passwords


def fetches(app: FastAPI, calls: list[tuple[str, str, str]]) -> list[httpx.Response]:
    """`calls`: (address, receiver id, password), in order; the answers."""

    async def go() -> list[httpx.Response]:
        answers = []
        async with app.router.lifespan_context(app):
            for address, rid, password in calls:
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app, client=(address, 5000)),
                                             base_url="http://tt") as client:
                    answers.append(await client.get(f"/api/v1/receivers/{rid}/plan", auth=(rid, password)))
        return answers

    return asyncio.run(go())


def test_failed_plan_fetches_are_limited_per_receiver_and_address(app: tuple[FastAPI, dict[str, str]],
                                                                  seeded: Seeded) -> None:
    application, passwords = app
    limit = seeded.settings.http.plan_failures
    answers = fetches(application, [(GUESSER, RID, f"guess-{i}") for i in range(limit + 3)] + [
        (GUESSER, RID, passwords[RID]),  # even the right password, from the guesser's address: not now
        (HOME, RID, passwords[RID]),  # the receiver itself, from its own address: still served
        (GUESSER, OTHER, passwords[OTHER]),  # another receiver's pair from that address: its own count
    ])
    codes = [r.status_code for r in answers]
    assert codes[:limit] == [401] * limit
    assert codes[limit:limit + 4] == [429] * 4, codes
    refused = answers[limit]
    assert int(refused.headers["Retry-After"]) > 0 and "Too many failed plan fetches" in refused.json()["detail"]
    assert codes[limit + 4:] == [200, 200] and all(r.json()["sig"] for r in answers[limit + 4:])
    with Session(seeded.engine) as s:
        audited = [(a.outcome, a.address) for a in s.exec(select(AuditEntry).where(AuditEntry.action == "plan.fetch"))]
    assert audited.count(("refused", GUESSER)) == limit and audited.count(("rate-limited", GUESSER)) == 4


def test_an_address_guessing_across_receivers_is_limited_too(app: tuple[FastAPI, dict[str, str]],
                                                             seeded: Seeded) -> None:
    """Many receivers' ids from one address: the per-address count stops it."""
    application, passwords = app
    per_address = seeded.settings.http.plan_failures_per_address
    calls = [(GUESSER, f"rx-{i % 50}", "guess") for i in range(per_address)] + [
        (GUESSER, "rx-made-up", "guess"),  # one more id that is no receiver's: not even looked at
        (GUESSER, OTHER, "guess"),  # a real receiver's first failure from there: checked, and counted
        (GUESSER, OTHER, "guess-2"),  # now it has failures of its own: the address limit holds it too
    ]
    codes = [r.status_code for r in fetches(application, calls)]
    assert codes[:per_address] == [401] * per_address and codes[per_address:] == [429, 401, 429], codes


def test_a_receiver_behind_a_guessed_from_address_still_gets_its_plan(app: tuple[FastAPI, dict[str, str]],
                                                                      seeded: Seeded) -> None:
    """Receivers behind one 4G carrier NAT share an address: a guesser (or a misconfigured neighbour) spraying
    made-up ids from it must not lock a genuine receiver with no failures of its own out of its plan."""
    # Before: the address limit was checked first for every id, so the genuine receiver got 429 for 5 minutes.
    application, passwords = app
    per_address = seeded.settings.http.plan_failures_per_address
    calls = [(GUESSER, f"rx-made-up-{i}", f"guess-{i}") for i in range(per_address)] + [
        (GUESSER, RID, passwords[RID]), (GUESSER, OTHER, passwords[OTHER])]
    answers = fetches(application, calls)
    assert [r.status_code for r in answers[:per_address]] == [401] * per_address
    assert [r.status_code for r in answers[per_address:]] == [200, 200]
    assert all(r.json()["sig"] for r in answers[per_address:])
