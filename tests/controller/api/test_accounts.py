"""Accounts, roles and tokens through the API: an admin creates and revokes tokens (shown once, 401 after
revocation), a token never has more rights or communes than its owner, expiry, disabled owners, and the
refusals are audited with who, what and from where."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from controller.db.models import AuditEntry, User
from controller.services.accounts import UserCreate, add_user, issue_token
from tests.conftest import Api

PASSWORD = "mật-khẩu-đủ-dài"


@pytest.fixture
def core(api: Api) -> Iterator[tuple[TestClient, Session]]:
    """The controller on its in-memory bridge, with an admin token, and a session on its database."""
    client = api.client
    client.headers.update(api.headers)
    with Session(api.engine) as s:
        yield client, s


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def person(s: Session, username: str, role: str, communes: list[str] | None = None) -> User:
    return add_user(s, UserCreate(username=username, display_name=username, password=PASSWORD,
                                  role=role, communes=communes), "test")  # type: ignore[arg-type]


def test_admin_creates_a_token_shown_once_and_revokes_it(core: tuple[TestClient, Session]) -> None:
    client, _ = core
    r = client.post("/api/v1/tokens", json={"name": "tich-hop-tinh", "scopes": ["emergency:trigger",
                                                                              "receivers:read"],
                                            "communes": ["tra-nu"]})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["token"].startswith("tt_") and made["communes"] == ["tra-nu"]
    listed = client.get("/api/v1/tokens").json()
    assert listed["count"] >= 2 and all("token" not in t for t in listed["data"])
    assert client.get("/api/v1/communes", headers=bearer(made["token"])).status_code == 200
    assert client.delete(f"/api/v1/tokens/{made['id']}").status_code == 204
    r = client.get("/api/v1/communes", headers=bearer(made["token"]))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_an_empty_commune_list_is_refused_not_read_as_every_commune(core: tuple[TestClient, Session]) -> None:
    # The leak: `token create --communes ","` made an unrestricted token.
    client, s = core
    r = client.post("/api/v1/tokens", json={"name": "x", "scopes": ["receivers:read"], "communes": [" ", ""]})
    assert r.status_code == 422 and "empty commune list" in r.json()["detail"]
    with pytest.raises(ValueError, match="empty commune list"):
        issue_token(s, "x", ["receivers:read"], [","[1:]])
    r = client.post("/api/v1/tokens", json={"name": "x", "scopes": ["receivers:read"], "communes": ["nowhere"]})
    assert r.status_code == 422 and "nowhere" in r.json()["detail"]
    r = client.post("/api/v1/tokens", json={"name": "x", "scopes": ["receivers:fly"]})
    assert r.status_code == 422


def test_a_token_never_has_more_rights_than_its_owner(core: tuple[TestClient, Session]) -> None:
    client, s = core
    person(s, "canbo-tranu", "commune_operator", ["tra-nu"])
    r = client.post("/api/v1/tokens", json={"name": "op", "scopes": ["emergency:trigger"], "owner": "canbo-tranu"})
    assert r.status_code == 422 and "more rights than its owner" in r.json()["detail"]
    r = client.post("/api/v1/tokens", json={"name": "op", "scopes": ["receivers:read"], "owner": "canbo-tranu",
                                            "communes": ["tra-bui"]})
    assert r.status_code == 422
    r = client.post("/api/v1/tokens", json={"name": "op", "scopes": ["receivers:read", "receivers:control"],
                                            "owner": "canbo-tranu"})
    assert r.status_code == 201 and r.json()["communes"] == ["tra-nu"]  # narrowed to the owner's
    token = r.json()["token"]
    me = client.get("/api/v1/me", headers=bearer(token)).json()
    assert me["communes"] == ["tra-nu"] and me["role"] == "commune_operator"
    rows = client.get("/api/v1/receivers", headers=bearer(token)).json()
    assert rows["count"] > 0 and {x["commune"] for x in rows["data"]} == {"tra-nu"}


def test_demoting_or_disabling_the_owner_takes_the_tokens_rights_along(core: tuple[TestClient, Session]) -> None:
    client, s = core
    user = person(s, "lanhdao-tranu", "commune_leader", ["tra-nu"])
    token = client.post("/api/v1/tokens", json={"name": "ld", "scopes": ["content:read", "content:approve"],
                                                "owner": "lanhdao-tranu"}).json()["token"]
    assert "content:approve" in client.get("/api/v1/me", headers=bearer(token)).json()["rights"]
    assert client.patch(f"/api/v1/users/{user.id}", json={"role": "viewer"}).status_code == 200
    assert "content:approve" not in client.get("/api/v1/me", headers=bearer(token)).json()["rights"]
    assert client.patch(f"/api/v1/users/{user.id}", json={"disabled": True}).status_code == 200
    r = client.get("/api/v1/me", headers=bearer(token))
    assert r.status_code == 401 and "disabled" in r.json()["detail"]


def test_an_expired_token_gets_401(core: tuple[TestClient, Session]) -> None:
    client, s = core
    _, token = issue_token(s, "old", ["receivers:read"], expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    r = client.get("/api/v1/communes", headers=bearer(token))
    assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_accounts_are_admin_only_and_refusals_are_audited(core: tuple[TestClient, Session]) -> None:
    client, s = core
    _, op = issue_token(s, "op", ["receivers:read", "receivers:control", "content:read", "content:write"])
    for method, path, body in [("POST", "/api/v1/tokens", {"name": "x", "scopes": ["admin"]}),
                               ("GET", "/api/v1/tokens", None), ("DELETE", "/api/v1/tokens/1", None),
                               ("GET", "/api/v1/users", None), ("GET", "/api/v1/audit", None),
                               ("POST", "/api/v1/users", {"username": "moi", "display_name": "Mới",
                                                          "password": PASSWORD, "role": "district_admin"})]:
        r = client.request(method, path, json=body, headers=bearer(op))
        assert r.status_code == 403, (method, path, r.text)
    s.expire_all()
    refused = s.exec(select(AuditEntry).where(AuditEntry.outcome == "refused")).all()
    assert len(refused) == 6
    assert all(e.actor.startswith("token:") and e.address == "testclient" for e in refused)
    assert {e.target for e in refused} >= {"POST /api/v1/tokens", "GET /api/v1/audit"}
    audit = client.get("/api/v1/audit", params={"outcome": "refused"}).json()
    assert audit["count"] == 6


def test_users_with_roles_and_argon2_passwords(core: tuple[TestClient, Session]) -> None:
    client, s = core
    r = client.post("/api/v1/users", json={"username": "truc-kc", "display_name": "Trực khẩn cấp",
                                           "password": PASSWORD, "role": "emergency_duty", "communes": ["tra-nu"]})
    assert r.status_code == 201, r.text
    assert r.json()["role_title"] == "Trực khẩn cấp" and r.json()["communes"] == ["tra-nu"]
    stored = s.exec(select(User).where(User.username == "truc-kc")).one()
    assert stored.password_hash.startswith("$argon2id$") and PASSWORD not in stored.password_hash
    assert client.post("/api/v1/users", json={"username": "truc-kc", "display_name": "x", "password": PASSWORD,
                                              "role": "viewer"}).status_code == 409
    assert client.post("/api/v1/users", json={"username": "ngan", "display_name": "x", "password": "ngan",
                                              "role": "viewer"}).status_code == 422
    assert client.post("/api/v1/users", json={"username": "x", "display_name": "x", "password": PASSWORD,
                                              "role": "god"}).status_code == 422
    # A district admin always has every commune, whatever was asked.
    admin = client.post("/api/v1/users", json={"username": "qt-huyen", "display_name": "Quản trị",
                                               "password": PASSWORD, "role": "district_admin",
                                               "communes": ["tra-nu"]}).json()
    assert admin["communes"] is None
    assert client.get("/api/v1/users").json()["count"] == 2


def test_demoting_a_district_admin_needs_their_communes(core: tuple[TestClient, Session]) -> None:
    # A district role keeps no communes; demoting it as it was left a commune role over the whole district.
    client, s = core
    user = person(s, "qt-cu", "district_admin")
    r = client.patch(f"/api/v1/users/{user.id}", json={"role": "commune_operator"})
    assert r.status_code == 422 and "name their communes" in r.json()["detail"]
    r = client.patch(f"/api/v1/users/{user.id}", json={"role": "commune_operator", "communes": ["tra-kot"]})
    assert r.status_code == 200 and r.json()["communes"] == ["tra-kot"]


def test_a_token_made_by_a_token_never_outlives_or_outranks_it(core: tuple[TestClient, Session]) -> None:
    client, s = core
    owner = person(s, "qt-tinh", "district_admin")
    day = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    _, parent = issue_token(s, "parent", ["admin"], owner=owner, expires_at=day)
    r = client.post("/api/v1/tokens", json={"name": "child", "scopes": ["admin"]}, headers=bearer(parent))
    assert r.status_code == 201, r.text
    child = r.json()
    assert child["owner"] == "qt-tinh" and child["expires_at"] is not None
    assert dt.datetime.fromisoformat(child["expires_at"]).replace(tzinfo=dt.UTC) <= day
    client.patch(f"/api/v1/users/{owner.id}", json={"disabled": True})
    assert client.get("/api/v1/me", headers=bearer(child["token"])).status_code == 401  # goes with its owner


def test_refusals_name_the_token_and_the_owner_rights_refusal_is_audited(core: tuple[TestClient, Session]) -> None:
    client, s = core
    person(s, "xem-tra-nu", "viewer", ["tra-nu"])
    r = client.post("/api/v1/tokens", json={"name": "too-much", "scopes": ["receivers:control"],
                                            "owner": "xem-tra-nu"})
    assert r.status_code == 422
    row, token = issue_token(s, "old-phone", ["receivers:read"])
    client.delete(f"/api/v1/tokens/{row.id}")
    assert client.get("/api/v1/communes", headers=bearer(token)).status_code == 401
    s.expire_all()
    refused = {(e.action, e.actor) for e in s.exec(select(AuditEntry).where(AuditEntry.outcome == "refused"))}
    assert ("token.create", "token:1:test-admin") in refused
    assert ("auth.refused", f"token:{row.id}:old-phone") in refused  # not "anonymous": its use is traceable


def test_the_approval_setting_is_the_districts(core: tuple[TestClient, Session]) -> None:
    client, s = core
    _, nu_admin = issue_token(s, "admin-tra-nu", ["admin"], ["tra-nu"])
    r = client.patch("/api/v1/communes/tra-nu", json={"approval_required": False}, headers=bearer(nu_admin))
    assert r.status_code == 403
    assert client.patch("/api/v1/communes/tra-nu", json={"approval_required": False}).status_code == 200
