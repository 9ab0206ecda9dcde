"""Receivers and plays under the access policy, without a broker (the in-memory bridge records what would
have been sent): playing needs usable content (another commune's is absent, a draft waits for approval),
silencing an emergency needs the emergency right, lists and receivers stay within the principal's communes,
and a broker that cannot be reached is a 503 with nothing sent."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from controller.app import create_app
from controller.bridge_memory import InMemoryBridge
from controller.config import Settings
from controller.db.models import AuditEntry, Bulletin, Commune, MediaFile, PlayRecord, Receiver, utcnow
from controller.emergencies import Live, Tracker
from controller.errors import Forbidden
from controller.inventory import apply_seed, load_seed
from controller.policy import Principal, Right
from controller.provision import ensure_signing_key, issue_receiver_password
from controller.services import plays, receivers
from controller.services.accounts import issue_token
from controller.services.context import Ctx, Page

HOME, ELSEWHERE = "tra-bui", "tra-ka"
RID, OTHER_RID = "tra-bui-thon-1-1", "tra-ka-thon-1-1"


@dataclass
class World:
    client: TestClient
    bridge: InMemoryBridge

    @property
    def engine(self) -> Engine:
        return self.client.app.state.engine  # type: ignore[attr-defined]

    def token(self, scopes: list[str], communes: list[str] | None = None) -> dict[str, str]:
        with Session(self.engine) as s:
            return {"Authorization": "Bearer " + issue_token(s, "t", scopes, communes)[1]}

    def bulletin(self, commune: str | None, *, approved: bool = True) -> int:
        with Session(self.engine) as s:
            sha = hashlib.sha256(f"{commune}-{approved}-{utcnow()}".encode()).hexdigest()
            s.add(MediaFile(sha256=sha, size_bytes=1000, duration_s=1.0, loudness_lufs=-16, true_peak_dbtp=-1))
            s.flush()
            cid = s.exec(select(Commune.id).where(Commune.code == commune)).one() if commune else None
            b = Bulletin(title=f"Bản tin {commune}", commune_id=cid, media_sha256=sha, source_filename="b.wav",
                         source_format="wav", loudness_before=-20, loudness_after=-16, created_by="test",
                         approved_by="test" if approved else None, approved_at=utcnow() if approved else None)
            s.add(b)
            s.commit()
            assert b.id is not None
            return b.id

    @property
    def tracker(self) -> Tracker:
        return self.client.app.state.tracker  # type: ignore[attr-defined]

    def emergency(self, eid: str, *rids: str, minutes: float = 10) -> Live:
        """An emergency the tracker follows (as `services.emergencies` leaves it), pending on `rids`."""
        live = Live(eid, [f"cmd-{eid}"], utcnow() + dt.timedelta(minutes=minutes), {}, {}, {},
                    {rid: ("pending", None) for rid in rids})
        self.tracker.add(live)
        return live

    def audit(self, action: str) -> list[AuditEntry]:
        with Session(self.engine) as s:
            return list(s.exec(select(AuditEntry).where(AuditEntry.action == action)))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = Settings(demo=True, data_dir=tmp_path, command_timeout_s=0.5)
    with TestClient(create_app(settings, with_bridge=False)) as client:
        app = client.app
        with Session(app.state.engine) as s:  # type: ignore[attr-defined]
            apply_seed(s, load_seed(settings.seed_file))
        bridge = InMemoryBridge(settings, app.state.engine, ensure_signing_key(settings)[0])  # type: ignore[attr-defined]
        client.portal.call(bridge.start)  # type: ignore[union-attr]
        client.portal.call(bridge.bring_online, RID, OTHER_RID)  # type: ignore[union-attr]
        app.state.bridge = bridge  # type: ignore[attr-defined]
        yield World(client, bridge)
        client.portal.call(bridge.stop)  # type: ignore[union-attr]


def test_stopping_an_emergency_needs_the_emergency_right(world: World) -> None:
    # LEAK (issue 10, §3): `POST …/stop` of the emergency class, of an emergency's item or of everything
    # needed only receivers:control; each of these was sent before this change.
    control = world.token(["receivers:read", "receivers:control"], [HOME])
    with Session(world.engine) as s:
        s.add(PlayRecord(event_id="e1", receiver_id=RID, seq=1, event="started", at=utcnow(),
                         item_id="bulletin-9-abcdef12", priority="emergency"))  # played at emergency priority
        s.commit()
    # An emergency's item is `em-{uuid}`; a one-off play at emergency priority `em-bulletin-…`: both by name,
    # before any receiver has reported them (a digits-only pattern once let the UUID ones through).
    for body in ({}, {"priority": "emergency"}, {"item_id": "em-7"}, {"item_id": "bulletin-9-abcdef12"},
                 {"item_id": "em-0b6f5a8e-4a3c-4d8e-9a51-2f0d1c3b7e44"}, {"item_id": "em-bulletin-3-0123abcd"}):
        r = world.client.post(f"/api/v1/receivers/{RID}/stop", json=body, headers=control)
        assert r.status_code == 403 and "emergency:trigger" in r.json()["detail"], (body, r.text)
    assert world.bridge.commands("stop") == []
    refused = world.audit("receiver.stop")
    assert len(refused) == 6 and {e.outcome for e in refused} == {"refused"}
    assert all(e.actor.startswith("token:") and e.address for e in refused)

    # The lower classes, and other items, are receivers:control's to stop.
    for body in ({"priority": "normal"}, {"priority": "priority"}, {"item_id": "bulletin-3-0123abcd"},
                 {"item_id": "em-7", "priority": "normal"}):  # both given: only an item of that class
        r = world.client.post(f"/api/v1/receivers/{RID}/stop", json=body, headers=control)
        assert r.status_code == 200 and r.json()["outcome"] == "applied", (body, r.text)
    assert len(world.bridge.commands("stop")) == 4

    duty = world.token(["receivers:control", "emergency:trigger"], [HOME])
    r = world.client.post(f"/api/v1/receivers/{RID}/stop", json={}, headers=duty)
    assert r.status_code == 200 and r.json()["receiver"]["id"] == RID
    [everything] = world.bridge.commands("stop")[-1:]
    assert everything.item_id is None and everything.priority is None  # type: ignore[union-attr]


def test_play_takes_only_usable_content(world: World) -> None:
    # LEAK (issue 10, §3): a play accepted another commune's bulletin id (and drafts did not exist); before
    # this change both were sent.
    operator = world.token(["receivers:read", "receivers:control", "content:read"], [HOME])
    theirs, draft = world.bulletin(ELSEWHERE), world.bulletin(HOME, approved=False)
    r = world.client.post(f"/api/v1/receivers/{RID}/play", json={"bulletin_id": theirs}, headers=operator)
    assert r.status_code == 404 and r.json()["detail"] == f"No bulletin {theirs}."
    r = world.client.post(f"/api/v1/receivers/{RID}/play", json={"bulletin_id": draft}, headers=operator)
    assert r.status_code == 409 and "draft" in r.json()["detail"]
    assert world.bridge.commands("play") == []

    for ok in (world.bulletin(HOME), world.bulletin(None)):  # its commune's, and the district's own
        r = world.client.post(f"/api/v1/receivers/{RID}/play", json={"bulletin_id": ok}, headers=operator)
        assert r.status_code == 202 and r.json()["outcome"] == "received", r.text
        assert r.json()["item_id"].startswith(f"bulletin-{ok}-")
    assert len(world.bridge.commands("play")) == 2
    [first, _] = world.audit("receiver.play")[-2:]
    assert first.outcome == "received" and first.target == RID


def test_play_at_emergency_priority_needs_the_emergency_right(world: World) -> None:
    operator = world.token(["receivers:control", "content:read"], [HOME])
    mine = world.bulletin(HOME)
    r = world.client.post(f"/api/v1/receivers/{RID}/play", json={"bulletin_id": mine, "priority": "emergency"},
                          headers=operator)
    assert r.status_code == 403 and "emergency:trigger" in r.json()["detail"]
    [entry] = world.audit("receiver.play")
    assert entry.outcome == "refused" and entry.target == f"POST /api/v1/receivers/{RID}/play"
    r = world.client.post(f"/api/v1/receivers/{OTHER_RID}/play", json={"bulletin_id": mine}, headers=operator)
    assert r.status_code == 404 and r.json()["detail"] == f"No receiver {OTHER_RID!r}."
    assert world.bridge.commands() == []


def test_commands_stay_in_the_principals_communes_and_a_down_broker_is_503(world: World) -> None:
    control = world.token(["receivers:read", "receivers:control"], [HOME])
    for path, body in (("volume", {"volume": 5}), ("self-test", None), ("restart", None), ("stop", {})):
        r = world.client.post(f"/api/v1/receivers/{OTHER_RID}/{path}", json=body, headers=control)
        assert r.status_code == 404, (path, r.text)
    r = world.client.patch(f"/api/v1/receivers/{OTHER_RID}", json={"accepts_tests": True}, headers=control)
    assert r.status_code == 404
    assert world.bridge.commands() == []

    r = world.client.post(f"/api/v1/receivers/{RID}/volume", json={"volume": 5}, headers=control)
    assert r.status_code == 200 and r.json() == {**r.json(), "outcome": "applied", "reason": None}
    world.bridge.is_connected = False
    r = world.client.post(f"/api/v1/receivers/{RID}/volume", json={"volume": 6}, headers=control)
    assert r.status_code == 503 and "cannot reach the MQTT broker" in r.json()["detail"]
    assert [(e.target, e.outcome) for e in world.audit("receiver.volume")] == [
        (f"POST /api/v1/receivers/{OTHER_RID}/volume", "refused"), (RID, "applied"), (RID, "failed")]


def test_plays_are_listed_within_the_principals_communes(world: World) -> None:
    at = dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC)
    with Session(world.engine) as s:
        for n, rid in enumerate((RID, OTHER_RID, RID)):
            s.add(PlayRecord(event_id=f"e{n}", receiver_id=rid, seq=n, event="finished",
                             at=at + dt.timedelta(minutes=n), item_id=f"bulletin-1-{n}", priority="normal"))
        s.commit()
    mine = world.token(["receivers:read"], [HOME])
    rows = world.client.get("/api/v1/plays", headers=mine).json()
    assert rows["count"] == 2 and {p["commune"] for p in rows["data"]} == {HOME}
    assert world.client.get("/api/v1/plays", params={"commune": ELSEWHERE}, headers=mine).json()["count"] == 0
    assert world.client.get("/api/v1/plays", params={"receiver": OTHER_RID}, headers=mine).json()["count"] == 0
    assert world.client.get(f"/api/v1/receivers/{OTHER_RID}/plays", headers=mine).status_code == 404
    page = world.client.get(f"/api/v1/receivers/{RID}/plays", params={"limit": 1, "offset": 1}, headers=mine).json()
    assert page["count"] == 2 and [p["event_id"] for p in page["data"]] == ["e2"]
    everyone = world.token(["receivers:read"])
    assert world.client.get("/api/v1/plays", headers=everyone).json()["count"] == 3
    # Local times without an offset are Vietnam's: 13:01 there is 06:01 UTC.
    r = world.client.get("/api/v1/plays", params={"from": "2026-03-01T13:01:00"}, headers=everyone).json()
    assert [p["event_id"] for p in r["data"]] == ["e1", "e2"]
    bad = world.client.get("/api/v1/plays", params={"from": "2026-03-02T00:00:00+07:00",
                                                    "to": "2026-03-01T00:00:00+07:00"}, headers=everyone)
    assert bad.status_code == 422 and "'to' is before 'from'" in bad.json()["detail"]
    for path in ("/api/v1/plays", "/api/v1/receivers"):  # one paging convention: at most 1000 a page
        assert world.client.get(path, params={"limit": 1001}, headers=everyone).status_code == 422


def test_plan_refusals_are_audited_with_the_receiver(world: World) -> None:
    url = f"/api/v1/receivers/{RID}/plan"
    assert world.client.get(url).status_code == 401
    r = world.client.get(url, auth=(OTHER_RID, "whatever"))
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="receivers"'
    r = world.client.get(url, auth=(RID, "not-its-password"))
    assert r.status_code == 401 and r.json()["detail"] == "Wrong receiver id or password."
    entries = world.audit("plan.fetch")
    assert [(e.actor, e.target, e.outcome) for e in entries] == [
        ("receiver:anonymous", RID, "refused"), (f"receiver:{OTHER_RID}", RID, "refused"),
        (f"receiver:{RID}", RID, "refused")]
    assert world.audit("auth.refused") == []  # once each, not again by the API's refusal handler


def test_an_emergency_is_not_silenced_by_volume_restart_or_self_test(world: World) -> None:
    # LEAK (security review, receivers item 1): with only receivers:control, `volume 0` answered `applied`
    # while an emergency played on the receiver, and `restart` / `self-test` cut it; each was sent before this
    # change.
    control = world.token(["receivers:read", "receivers:control"], [HOME])
    live = world.emergency("e1", RID)
    for path, body in (("volume", {"volume": 0}), ("restart", None), ("self-test", None)):
        r = world.client.post(f"/api/v1/receivers/{RID}/{path}", json=body, headers=control)
        assert r.status_code == 403, (path, r.text)
        assert "playing an emergency" in r.json()["detail"] and "emergency:trigger" in r.json()["detail"]
    assert world.bridge.commands() == []
    refused = [e for a in ("receiver.volume", "receiver.restart-agent", "receiver.self-test") for e in world.audit(a)]
    assert [e.outcome for e in refused] == ["refused"] * 3 and all(e.address for e in refused)
    # Another commune's receiver stays absent (not "in an emergency"), even while one plays there.
    world.emergency("e2", OTHER_RID)
    r = world.client.post(f"/api/v1/receivers/{OTHER_RID}/volume", json={"volume": 0}, headers=control)
    assert r.status_code == 404

    duty = world.token(["receivers:control", "emergency:trigger"], [HOME])  # the emergency right may
    r = world.client.post(f"/api/v1/receivers/{RID}/volume", json={"volume": 50}, headers=duty)
    assert r.status_code == 200 and r.json()["outcome"] == "applied"

    live.set(RID, ("playing", None))
    assert world.tracker.in_emergency(RID)
    live.set(RID, ("done", None))  # over on this receiver: receivers:control again
    assert not world.tracker.in_emergency(RID)
    r = world.client.post(f"/api/v1/receivers/{RID}/volume", json={"volume": 0}, headers=control)
    assert r.status_code == 200 and r.json()["outcome"] == "applied"
    world.emergency("e3", RID).cancelled = True
    world.emergency("e4", RID, minutes=-1)  # expired
    assert not world.tracker.in_emergency(RID)
    assert world.client.post(f"/api/v1/receivers/{RID}/restart", headers=control).status_code == 200
    assert [c.kind for c in world.bridge.commands()] == ["set-volume", "set-volume", "restart-agent"]


def test_the_list_services_check_their_own_right(world: World) -> None:
    # LEAK (security review, receivers item 2): `list_receivers` and `list_plays` relied on the route's check;
    # called directly (as the staff UI will), they answered a principal without receivers:read.
    nobody = Principal("user", 99, "khach", frozenset({Right.CONTENT_READ}), None)
    reader = Principal("user", 98, "xem", frozenset({Right.RECEIVERS_READ}), frozenset({HOME}))
    settings = world.client.app.state.settings  # type: ignore[attr-defined]
    with Session(world.engine) as s:
        for call in (lambda c: receivers.list_receivers(c, Page()), lambda c: plays.list_plays(c, Page())):
            with pytest.raises(Forbidden):
                call(Ctx(s, nobody, settings, world.engine))
            assert call(Ctx(s, reader, settings, world.engine)).count >= 0
        assert {r.commune for r in receivers.list_receivers(Ctx(s, reader, settings, world.engine), Page()).data} \
            == {HOME}


def test_a_new_password_ends_the_remembered_old_one_at_once(tmp_path: Path) -> None:
    # LEAK (security review, receivers item 3): a verified id/password pair was remembered for 300 s and not
    # forgotten on re-enrolment, so a stolen old password fetched the plan for up to 5 minutes after it.
    settings = Settings(data_dir=tmp_path, mqtt_url="mqtts://controller:pw@10.0.0.5:8883", create_key=True)
    with TestClient(create_app(settings, with_bridge=False)) as client:
        engine = client.app.state.engine  # type: ignore[attr-defined]
        with Session(engine) as s:
            apply_seed(s, load_seed(settings.seed_file))
            admin = {"Authorization": "Bearer " + issue_token(s, "t", ["admin"])[1]}
        url = f"/api/v1/receivers/{RID}/plan"

        def enrol() -> str:
            code = client.post(f"/api/v1/receivers/{RID}/enrolment", headers=admin).json()["code"]
            r = client.post("/api/v1/enrol", json={"code": code})
            assert r.status_code == 200, r.text
            return str(r.json()["password"])

        old = enrol()
        assert client.get(url, auth=(RID, old)).status_code != 401  # verified, and remembered
        new = enrol()
        r = client.get(url, auth=(RID, old))
        assert r.status_code == 401 and r.json()["detail"] == "Wrong receiver id or password."
        assert client.get(url, auth=(RID, new)).status_code != 401
        # A password issued from the command line (`truyenthanh provision`, another process) ends it too.
        with Session(engine) as s:
            receiver = s.get(Receiver, RID)
            assert receiver is not None
            issue_receiver_password(receiver)
            s.add(receiver)
            s.commit()
        assert client.get(url, auth=(RID, new)).status_code == 401
