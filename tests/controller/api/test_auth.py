"""Tokens and scopes: 401 without a valid token, 403 without the scope, commune-limited tokens see only
their communes; every refusal is audited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from controller.app import create_app
from controller.config import Settings
from controller.db.models import ApiToken, AuditEntry
from controller.inventory import apply_seed, load_seed
from controller.services.accounts import issue_token


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(demo=True, data_dir=tmp_path)
    with TestClient(create_app(settings, with_bridge=False)) as c:
        with Session(c.app.state.engine) as s:  # type: ignore[attr-defined]
            apply_seed(s, load_seed(settings.seed_file))
        yield c


def token(client: TestClient, scopes: list[str], communes: list[str] | None = None) -> dict[str, str]:
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        return {"Authorization": "Bearer " + issue_token(s, "t", scopes, communes)[1]}


def refusals(client: TestClient) -> list[AuditEntry]:
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        return list(s.exec(select(AuditEntry).where(AuditEntry.outcome == "refused")))


def test_health_needs_no_token_everything_else_does(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    for path in ("/api/v1/communes", "/api/v1/receivers", "/api/v1/receivers/tra-ka-thon-1-1"):
        r = client.get(path)
        assert r.status_code == 401 and "bearer token" in r.json()["detail"].lower()
        assert r.headers["www-authenticate"] == "Bearer"
    r = client.get("/api/v1/communes", headers={"Authorization": "Bearer tt_forged"})
    assert r.status_code == 401 and r.json()["detail"] == "Invalid or revoked token."
    assert len(refusals(client)) == 4


def test_scope_is_enforced(client: TestClient) -> None:
    reader = token(client, ["receivers:read"])
    assert client.get("/api/v1/communes", headers=reader).status_code == 200
    r = client.post("/api/v1/receivers/tra-ka-thon-1-1/volume", json={"volume": 10}, headers=reader)
    assert r.status_code == 403 and "receivers:control" in r.json()["detail"]
    emergency_only = token(client, ["emergency:trigger"])
    assert client.get("/api/v1/receivers", headers=emergency_only).status_code == 403
    [entry] = [e for e in refusals(client) if "volume" in (e.target or "")]
    assert entry.action == "api.receivers:control" and entry.actor.startswith("token:")
    assert entry.target == "POST /api/v1/receivers/tra-ka-thon-1-1/volume" and entry.address


def test_revoked_token_is_refused(client: TestClient) -> None:
    h = token(client, ["admin"])
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        row = s.exec(select(ApiToken)).one()
        row.revoked = True
        s.add(row)
        s.commit()
    assert client.get("/api/v1/communes", headers=h).status_code == 401


def test_commune_limited_token_sees_only_its_communes(client: TestClient) -> None:
    h = token(client, ["receivers:read", "receivers:control"], ["tra-bui"])
    communes = client.get("/api/v1/communes", headers=h).json()
    assert [c["code"] for c in communes["data"]] == ["tra-bui"] and communes["count"] == 1
    rows = client.get("/api/v1/receivers", params={"limit": 1000}, headers=h).json()
    assert rows["count"] > 0 and {r["commune"] for r in rows["data"]} == {"tra-bui"}
    assert client.get("/api/v1/receivers", params={"commune": "tra-ka"}, headers=h).json()["count"] == 0
    assert client.get("/api/v1/receivers/tra-ka-thon-1-1", headers=h).status_code == 404
    assert client.post("/api/v1/receivers/tra-ka-thon-1-1/volume", json={"volume": 1}, headers=h).status_code == 404


def test_unknown_scope_is_refused_at_creation(client: TestClient) -> None:
    with pytest.raises(ValueError, match="unknown scope"):
        token(client, ["receivers:everything"])


def test_listing_filters_and_pages(client: TestClient) -> None:
    h = token(client, ["admin"])
    everything = client.get("/api/v1/receivers", params={"limit": 1000}, headers=h).json()
    assert everything["count"] == len(everything["data"]) == 139
    page = client.get("/api/v1/receivers", params={"limit": 10, "offset": 130}, headers=h).json()
    assert page["count"] == 139 and [r["id"] for r in page["data"]] == [r["id"] for r in everything["data"][130:]]
    # Nothing has reported yet: all are offline (never seen), none online.
    assert client.get("/api/v1/receivers", params={"status": "online"}, headers=h).json()["count"] == 0
    assert client.get("/api/v1/receivers", params={"status": "offline"}, headers=h).json()["count"] == 139
    assert client.get("/api/v1/receivers", params={"status": "sleeping"}, headers=h).status_code == 422
    assert client.get("/api/v1/receivers", params={"limit": 5000}, headers=h).status_code == 422  # 1000 a page
    village = client.get("/api/v1/receivers", params={"commune": "tra-my", "village": "tdp-1"}, headers=h).json()
    assert village["count"] >= 1 and all(r["village_name"] == "Tổ dân phố 1" for r in village["data"])
