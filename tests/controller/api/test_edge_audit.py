"""The audit log under a flood of refusals (issue 12): an outsider's refused requests cannot fill the disk.
Each client address gets `http.refusal_audits_per_minute` refusal rows a minute; the rest are counted, and
one `audit.suppressed` row says how many were not written. Refusals of a principal that authenticated are
still written one by one, and every row written for a request names the client's address."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, col, select

from controller.app import create_app
from controller.bridge_memory import InMemoryBridge
from controller.db.models import AuditEntry
from controller.services.accounts import issue_token
from controller.services.audit import RefusalBudget
from tests.conftest import Api, Seeded


def rows(seeded: Seeded) -> list[AuditEntry]:
    with Session(seeded.engine) as s:
        return list(s.exec(select(AuditEntry).order_by(col(AuditEntry.id))))


@pytest.mark.parametrize("flood", [600, pytest.param(10_000, marks=pytest.mark.long)])
def test_a_flood_of_refused_requests_writes_a_bounded_number_of_rows(seeded: Seeded, flood: int) -> None:
    """Without the budget, every refusal was a row: 10,000 requests, 10,000 rows."""
    before = len(rows(seeded))
    app = create_app(seeded.settings, bridge=InMemoryBridge)

    async def refused() -> list[int]:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app, client=("203.0.113.7", 4000)), base_url="http://tt") as client:
            statuses = []
            for i in range(flood):
                if i % 2:
                    r = await client.get("/api/v1/receivers")  # refused by the route (no token)
                else:
                    r = await client.post("/api/v1/bulletins", content=b"x" * 100,
                                          headers={"Authorization": "Bearer tt_guess"})  # refused at the edge
                statuses.append(r.status_code)
            return statuses

    assert set(asyncio.run(refused())) == {401}
    written = rows(seeded)[before:]
    per_minute = seeded.settings.http.refusal_audits_per_minute
    refused = [a for a in written if a.outcome == "refused"]
    suppressed = [a for a in written if a.action == "audit.suppressed"]
    assert len(refused) <= 2 * per_minute, len(refused)  # a minute may turn during the flood
    assert all(a.address == "203.0.113.7" for a in written)
    assert sum(int(a.target or 0) for a in suppressed) == flood - len(refused)
    assert "were not written one by one" in (suppressed[0].detail or "")


def test_refusals_of_an_authenticated_principal_are_all_written(seeded: Seeded) -> None:
    """A token without the right is refused (403) and each refusal written: it names who, who can be stopped."""
    with Session(seeded.engine) as s:
        _, token = issue_token(s, "chi-xem", ["receivers:read"])
    app = create_app(seeded.settings, bridge=InMemoryBridge)
    n = seeded.settings.http.refusal_audits_per_minute + 10

    async def refused() -> set[int]:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app, client=("203.0.113.8", 4000)), base_url="http://tt") as client:
            return {(await client.get("/api/v1/audit", headers={"Authorization": f"Bearer {token}"})).status_code
                    for _ in range(n)}

    assert asyncio.run(refused()) == {403}
    written = [a for a in rows(seeded) if a.outcome == "refused"]
    assert len(written) == n and all(a.actor.endswith(":chi-xem") and a.address == "203.0.113.8" for a in written)


def test_the_budget_counts_an_ipv6_network_as_one_address_and_has_a_total() -> None:
    budget = RefusalBudget(per_source=3, total=5)
    same_line = [f"2001:db8:1:2::{i:x}" for i in range(10)]  # one /64: one customer's line
    assert [budget.admit(a)[0] for a in same_line] == [True] * 3 + [False] * 7
    assert [budget.admit(a)[0] for a in ("198.51.100.1", "198.51.100.2", "198.51.100.3")] == [True, True, False]
    ended = budget.drain()
    assert sorted((w.address, w.suppressed) for w in ended if not w.everyone) == [("2001:db8:1:2::/64", 7)]
    assert [w.suppressed for w in ended if w.everyone] == [1]


def test_every_row_written_for_a_request_names_the_client_address(api: Api, tmp_path: Path) -> None:
    """Actions of every kind over HTTP — content, programmes, commands, emergencies, CAP, enrolment codes,
    accounts — and their refusals: each audit row they write carries the caller's address. (This held before
    issue 12 already; it guards the address as the edge and the services change.)"""
    from tests.controller.api.test_emergencies import cap, post_cap
    from tests.controller.api.test_programmes import at
    from tests.samples import make

    rid = "tra-nu-thon-1-1"
    api.online(rid)
    wav = make(tmp_path / "tin.wav", seconds=2)
    with wav.open("rb") as f:
        bulletin = api.post("/api/v1/bulletins", files={"file": ("tin.wav", f)}, data={"title": "Tin sáng"}).json()
    calls = [
        api.post(f"/api/v1/bulletins/{bulletin['id']}/approve"),
        api.post("/api/v1/programmes", json={"title": "Sáng", "items": [{"bulletin_id": bulletin["id"]}],
                                             "targets": {"communes": ["tra-nu"]}, "start": at(6)}),
        api.post(f"/api/v1/receivers/{rid}/volume", json={"volume": 40}),
        api.post(f"/api/v1/receivers/{rid}/enrolment"),
        api.post("/api/v1/emergencies", json={"text": "Lũ về.", "targets": {"communes": ["tra-nu"]}}),
        api.post("/api/v1/tokens", json={"name": "may-chu", "scopes": ["receivers:read"]}),
        api.post("/api/v1/users", json={"username": "can-bo", "display_name": "Cán bộ", "password": "mat-khau-dai-1",
                                        "role": "viewer"}),
        api.client.get("/api/v1/receivers"),  # refused: no token
    ]
    assert [r.status_code for r in calls][:-1] == [200, 201, 200, 201, 202, 201, 201], \
        [r.text[:300] for r in calls]
    eid = calls[4].json()["id"]
    assert api.post(f"/api/v1/emergencies/{eid}/cancel").status_code == 200
    assert post_cap(api, cap("flash-flood-alert.xml"))[0] == 202
    with Session(api.engine) as s:
        written = list(s.exec(select(AuditEntry)))
    from_requests = [a for a in written if a.actor != "system"]
    assert len({a.action for a in from_requests}) >= 8, sorted({a.action for a in from_requests})
    assert [(a.actor, a.action) for a in from_requests if a.address != "testclient"] == []


def test_the_count_of_a_minute_is_written_with_the_next_row_after_it(seeded: Seeded,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from controller.services import audit

    clock = SimpleNamespace(monotonic=lambda: 1000.0)
    monkeypatch.setattr(audit, "time", clock)
    audit.limit_refusals(seeded.engine, 2, 100)
    before = len(rows(seeded))
    for _ in range(5):
        audit.record(seeded.engine, "anonymous", "auth.refused", "refused", address="198.51.100.1")
    assert len(rows(seeded)) - before == 2
    clock.monotonic = lambda: 1061.0  # the minute is over; nobody is refused any more
    audit.record(seeded.engine, "cli", "user.create", "ok", target="can-bo")
    new = rows(seeded)[before + 2:]
    assert [(a.action, a.target, a.address) for a in new] == [("audit.suppressed", "3", "198.51.100.1"),
                                                              ("user.create", "can-bo", None)]
