"""Enrolment: only an admin makes codes; a code works once, before it expires, and gives a config the agent
accepts, with a new broker password that the broker's files (rewritten in place) now hold; every refusal is
audited and changes nothing."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from controller.app import create_app
from controller.broker.passwords import verify_password
from controller.config import Settings
from controller.db.enrolment import EnrolmentCode
from controller.db.models import AuditEntry, Receiver
from controller.inventory import apply_seed, load_seed
from controller.provision import broker_accounts, write_broker_files
from controller.services.accounts import issue_token
from receivers.agent import AgentSettings
from receivers.protocol import Topics

RID = "tra-bui-thon-1-1"
CONTROLLER_PASSWORD = "a-real-controller-password"
# Crockford base32 (no I L O U): the secret, then the fingerprint of the controller's key, four groups each.
CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){7}$")


def make_client(tmp_path: Path, broker: str | None = "mosquitto", **overrides: Any) -> Iterator[TestClient]:
    broker_dir = tmp_path / "broker"
    defaults: dict[str, Any] = {"mqtt_url": f"mqtts://controller:{CONTROLLER_PASSWORD}@10.0.0.5:8883",
                                "create_key": True,
                                "controller_url": "https://tt.example/"}
    settings = Settings(data_dir=tmp_path / "data", broker_dir=broker_dir if broker else None,
                        **{**defaults, **overrides})
    with TestClient(create_app(settings, with_bridge=False)) as c:
        with Session(c.app.state.engine) as s:  # type: ignore[attr-defined]
            apply_seed(s, load_seed(settings.seed_file))
            if broker:  # as `truyenthanh provision` leaves it, with a listener that is not the default
                accounts = broker_accounts(s, Topics(settings.mqtt_base), "controller", CONTROLLER_PASSWORD)
                write_broker_files(broker, broker_dir, accounts, 18830, bind="0.0.0.0", persistence=True)
        yield c


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from make_client(tmp_path)


def engine(client: TestClient) -> Any:
    return client.app.state.engine  # type: ignore[attr-defined]


def headers(client: TestClient, scopes: list[str], communes: list[str] | None = None) -> dict[str, str]:
    with Session(engine(client)) as s:
        return {"Authorization": "Bearer " + issue_token(s, "op", scopes, communes)[1]}


def new_code(client: TestClient, rid: str = RID) -> str:
    r = client.post(f"/api/v1/receivers/{rid}/enrolment", headers=headers(client, ["admin"]))
    assert r.status_code == 201, r.text
    return str(r.json()["code"])


def audit_rows(client: TestClient, action: str) -> list[AuditEntry]:
    with Session(engine(client)) as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.id))))


def password_hash(client: TestClient, rid: str = RID) -> str | None:
    with Session(engine(client)) as s:
        receiver = s.get(Receiver, rid)
        assert receiver is not None
        return receiver.mqtt_password_hash


def test_only_an_admin_makes_codes(client: TestClient) -> None:
    assert client.post(f"/api/v1/receivers/{RID}/enrolment").status_code == 401
    operator = headers(client, ["receivers:read", "receivers:control", "content:write"])
    r = client.post(f"/api/v1/receivers/{RID}/enrolment", headers=operator)
    assert r.status_code == 403 and "'admin'" in r.json()["detail"]
    [refusal] = [e for e in audit_rows(client, "api.admin") if e.actor.startswith("token:")]
    assert refusal.outcome == "refused" and refusal.target == f"POST /api/v1/receivers/{RID}/enrolment"

    admin = headers(client, ["admin"])
    r = client.post(f"/api/v1/receivers/{RID}/enrolment", headers=admin)
    assert r.status_code == 201
    body = r.json()
    assert body["receiver_id"] == RID and CODE.match(body["code"])
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert abs(expires - dt.datetime.now(dt.UTC) - dt.timedelta(hours=72)) < dt.timedelta(minutes=1)
    [made] = audit_rows(client, "receiver.enrolment-code")
    assert made.target == RID and made.outcome == "ok" and made.actor.startswith("token:")
    assert body["code"] not in (made.detail or "")  # the code is shown once, and never stored

    assert client.post("/api/v1/receivers/no-such-receiver/enrolment", headers=admin).status_code == 404
    # admin in the receiver's commune: stricter than receivers:control, which enrolling (a new broker password
    # for the box) must not be open to.
    elsewhere = headers(client, ["admin"], ["tra-ka"])
    assert client.post(f"/api/v1/receivers/{RID}/enrolment", headers=elsewhere).status_code == 404
    [hidden] = [e for e in audit_rows(client, "receiver.enrolment-code") if e.outcome == "refused"]
    assert hidden.target == f"POST /api/v1/receivers/{RID}/enrolment" and hidden.address


def test_codes_are_random_and_only_their_hash_is_stored(client: TestClient) -> None:
    codes = {new_code(client) for _ in range(3)}
    assert len(codes) == 3
    with Session(engine(client)) as s:
        stored = " ".join(r.code_hash for r in s.exec(select(EnrolmentCode)))
    assert not any(c.replace("-", "") in stored or c in stored for c in codes)


def test_enrolment_gives_a_config_the_agent_accepts(client: TestClient, tmp_path: Path) -> None:
    old_hash = password_hash(client)
    code = new_code(client)
    typed = " ".join(code.lower().split("-"))  # read out over the phone: case and separators do not matter
    r = client.post("/api/v1/enrol", json={"code": typed})
    assert r.status_code == 200, r.text
    cfg = r.json()
    assert cfg["receiver_id"] == cfg["username"] == RID and cfg["commune"] == "tra-bui"
    assert cfg["mqtt_url"] == "mqtts://10.0.0.5:8883"  # TT_MQTT_URL's broker, without the controller's account
    assert cfg["controller_url"] == "https://tt.example"
    assert cfg["controller_public_key"] == client.app.state.public_key  # type: ignore[attr-defined]
    assert cfg["warnings"] and "TT_BROKER_RELOAD" in cfg["warnings"][0]
    agent = AgentSettings(**{k: v for k, v in cfg.items() if k != "warnings"}, state_dir=tmp_path / "state")
    assert agent.broker == ("10.0.0.5", 8883, True) and agent.base == "truyenthanh"

    new_hash = password_hash(client)
    assert new_hash != old_hash and new_hash is not None
    assert verify_password(cfg["password"], new_hash)

    broker = tmp_path / "broker"
    passwd = dict(line.split(":", 1) for line in (broker / "passwd").read_text().splitlines())
    assert passwd[RID] == new_hash
    assert verify_password(CONTROLLER_PASSWORD, passwd["controller"])  # the controller keeps its account
    acl = (broker / "acl").read_text()
    assert f"user {RID}\ntopic write truyenthanh/receivers/{RID}/" in acl
    conf = (broker / "mosquitto.conf").read_text()  # the listener `provision` chose is kept
    assert "listener 18830 0.0.0.0" in conf and "persistence true" in conf

    [entry] = audit_rows(client, "receiver.enrol")
    assert entry.outcome == "ok" and entry.target == RID and entry.actor.startswith("enrolment-code:token:")
    assert cfg["password"] not in (entry.detail or "") and code not in (entry.detail or "")


def test_a_used_code_is_refused(client: TestClient) -> None:
    code = new_code(client)
    first = client.post("/api/v1/enrol", json={"code": code})
    assert first.status_code == 200
    again = client.post("/api/v1/enrol", json={"code": code})
    assert again.status_code == 403 and "already used" in again.json()["detail"]
    assert verify_password(first.json()["password"], password_hash(client) or "")  # the refusal changed nothing
    refused = [e for e in audit_rows(client, "receiver.enrol") if e.outcome == "refused"]
    assert [(e.target, e.actor) for e in refused] == [(RID, "anonymous")]
    assert "already used" in (refused[0].detail or "")


def test_an_expired_code_is_refused(client: TestClient) -> None:
    code = new_code(client)
    with Session(engine(client)) as s:
        row = s.exec(select(EnrolmentCode)).one()
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        s.add(row)
        s.commit()
    before = password_hash(client)
    r = client.post("/api/v1/enrol", json={"code": code})
    assert r.status_code == 403 and "expired" in r.json()["detail"]
    assert password_hash(client) == before
    [entry] = audit_rows(client, "receiver.enrol")
    assert entry.outcome == "refused" and entry.target == RID


def test_a_new_code_replaces_the_unused_old_one(client: TestClient) -> None:
    old, new = new_code(client), new_code(client)
    r = client.post("/api/v1/enrol", json={"code": old})
    assert r.status_code == 403 and "replaced by a newer one" in r.json()["detail"]
    assert client.post("/api/v1/enrol", json={"code": new}).status_code == 200


def test_unknown_and_malformed_codes_are_refused(client: TestClient) -> None:
    before = password_hash(client)
    real = new_code(client)
    guess = "0000-0000-0000-0000" if real != "0000-0000-0000-0000" else "1111-1111-1111-1111"
    r = client.post("/api/v1/enrol", json={"code": guess})
    assert r.status_code == 403 and "Unknown enrolment code" in r.json()["detail"]
    r = client.post("/api/v1/enrol", json={"code": "hello"})
    assert r.status_code == 403 and "not an enrolment code" in r.json()["detail"]
    assert client.post("/api/v1/enrol", json={}).status_code == 422
    assert password_hash(client) == before
    refused = audit_rows(client, "receiver.enrol")
    assert [(e.outcome, e.target, e.actor) for e in refused] == [("refused", None, "anonymous")] * 2
    assert client.post("/api/v1/enrol", json={"code": real}).status_code == 200  # guesses did not burn it


def test_the_embedded_broker_files_are_rewritten_too(tmp_path: Path) -> None:
    for client in make_client(tmp_path, broker="amqtt"):
        r = client.post("/api/v1/enrol", json={"code": new_code(client)})
        assert r.status_code == 200 and r.json()["warnings"] == []  # amqtt re-reads its password file itself
        passwd = dict(line.split(":", 1) for line in (tmp_path / "broker" / "passwd").read_text().splitlines())
        assert verify_password(r.json()["password"], passwd[RID])
        config = json.loads((tmp_path / "broker" / "amqtt.yaml").read_text())
        assert config["listeners"]["default"]["bind"] == "0.0.0.0:18830"
        rules = json.loads((tmp_path / "broker" / "acl.json").read_text())  # re-read by the running broker
        assert RID in rules["publish"]


def test_the_reload_command_runs_and_its_failure_is_reported(tmp_path: Path) -> None:
    marker = tmp_path / "reloaded"
    for client in make_client(tmp_path, broker_reload=f"touch {marker}"):
        r = client.post("/api/v1/enrol", json={"code": new_code(client)})
        assert r.status_code == 200 and r.json()["warnings"] == [] and marker.exists()
    for client in make_client(tmp_path / "2", broker_reload="echo no such broker >&2; exit 3"):
        r = client.post("/api/v1/enrol", json={"code": new_code(client)})
        assert r.status_code == 200
        [warning] = r.json()["warnings"]
        assert "exited with 3: no such broker" in warning
        [entry] = audit_rows(client, "receiver.enrol")
        assert entry.outcome == "ok" and "exited with 3" in (entry.detail or "")


def test_without_a_broker_dir_the_installer_is_told_to_wait_for_provisioning(tmp_path: Path) -> None:
    for client in make_client(tmp_path, broker=None):
        r = client.post("/api/v1/enrol", json={"code": new_code(client)})
        assert r.status_code == 200
        assert "truyenthanh provision" in r.json()["warnings"][0]
        assert not (tmp_path / "broker").exists()


def test_broken_broker_files_leave_the_code_usable(tmp_path: Path) -> None:
    for client in make_client(tmp_path):
        code = new_code(client)
        before = password_hash(client)
        (tmp_path / "broker" / "mosquitto.conf").unlink()
        r = client.post("/api/v1/enrol", json={"code": code})
        assert r.status_code == 503 and "mosquitto.conf is missing" in r.json()["detail"]
        assert password_hash(client) == before
        [entry] = audit_rows(client, "receiver.enrol")
        assert entry.outcome == "failed"
        with Session(engine(client)) as s:  # the operator provisions again
            accounts = broker_accounts(s, Topics("truyenthanh"), "controller", CONTROLLER_PASSWORD)
        write_broker_files("mosquitto", tmp_path / "broker", accounts, 18830, bind="0.0.0.0")
        assert client.post("/api/v1/enrol", json={"code": code}).status_code == 200


def test_a_broker_url_no_receiver_could_reach_is_refused_before_the_code_is_spent(tmp_path: Path) -> None:
    for client in make_client(tmp_path, mqtt_url=f"mqtt://controller:{CONTROLLER_PASSWORD}@127.0.0.1:1883"):
        code = new_code(client)
        r = client.post("/api/v1/enrol", json={"code": code})
        assert r.status_code == 503 and "set TT_RECEIVER_MQTT_URL" in r.json()["detail"]
        assert "code was not used" in r.json()["detail"]
    for client in make_client(tmp_path / "2", mqtt_url=f"mqtt://controller:{CONTROLLER_PASSWORD}@127.0.0.1:1883",
                              receiver_mqtt_url="mqtts://broker.example:8883"):
        r = client.post("/api/v1/enrol", json={"code": new_code(client)})
        assert r.status_code == 200 and r.json()["mqtt_url"] == "mqtts://broker.example:8883"
