"""Programmes through the API: created, listed, edited and deleted as staff would; clashes refused with a
message naming the other programme, the receivers and the times; stated orders and priority placement shown
in the schedule; content a programme plays cannot be deleted. No broker needed: plans are checked in
tests/e2e/test_schedule.py."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from controller.app import create_app
from controller.config import Settings
from controller.db.models import AuditEntry, Bulletin, MediaFile, Programme
from controller.inventory import apply_seed, load_seed
from controller.services.accounts import issue_token
from schedules import TZ
from tests.conftest import wait_for

TOMORROW = (dt.datetime.now(TZ) + dt.timedelta(days=1)).date()


def at(hour: int, minute: int = 0, day: dt.date = TOMORROW) -> str:
    return dt.datetime.combine(day, dt.time(hour, minute), TZ).isoformat()


def add_bulletin(session: Session, title: str, seconds: float, *, commune_id: int | None = None,
                 approved: bool = True) -> int:
    """A bulletin of the district (or of `commune_id`), approved unless `approved=False` (a draft)."""
    sha = hashlib.sha256(title.encode()).hexdigest()
    session.add(MediaFile(sha256=sha, size_bytes=int(seconds * 8000), duration_s=seconds, loudness_lufs=-16,
                          true_peak_dbtp=-2))
    session.commit()
    row = Bulletin(title=title, media_sha256=sha, source_filename=f"{title}.mp3", source_format="mp3",
                   loudness_before=-20, loudness_after=-16, created_by="test", commune_id=commune_id,
                   approved_by="test" if approved else None,
                   approved_at=dt.datetime.now(dt.UTC) if approved else None)
    session.add(row)
    session.commit()
    assert row.id is not None
    return row.id


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(demo=True, data_dir=tmp_path / "data"), with_bridge=False)) as c:
        with Session(c.app.state.engine) as s:  # type: ignore[attr-defined]
            apply_seed(s, load_seed(Settings().seed_file))
            # A commune leader's rights: what it writes is approved at once (drafts and approval are tested in
            # test_programmes_policy.py).
            c.headers["Authorization"] = "Bearer " + issue_token(s, "staff", ["content:read", "content:write",
                                                                               "content:approve",
                                                                               "receivers:read"])[1]
            c.bulletins = {name: add_bulletin(s, name, secs)  # type: ignore[attr-defined]
                           for name, secs in [("Bản tin sáng", 600), ("Thông báo tiêm chủng", 120),
                                              ("Nhạc", 300)]}
        yield c


def programme(c: TestClient, title: str, bulletin: str, start: str, **extra: object) -> dict:
    return {"title": title, "items": [{"bulletin_id": c.bulletins[bulletin]}],  # type: ignore[attr-defined]
            "targets": {"communes": ["tra-kot"]}, "start": start, **extra}


def test_create_list_and_read_in_local_time(client: TestClient) -> None:
    body = programme(client, "Bản tin sáng", "Bản tin sáng", at(6), rrule="FREQ=DAILY;BYHOUR=6,17;BYMINUTE=0")
    r = client.post("/api/v1/programmes", json=body)
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["start"].endswith("+07:00") and p["start"].startswith(f"{TOMORROW.isoformat()}T06:00")
    assert [n[11:16] for n in p["next"][:3]] == ["06:00", "17:00", "06:00"]
    assert p["communes"] == ["tra-kot"] and p["receivers"] > 0 and p["duration_s"] == 600
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        stored = s.exec(select(Programme)).one()
        assert stored.start.utcoffset() == dt.timedelta(0) and stored.start.hour == 23  # 06:00 +07 in UTC
    listed = client.get("/api/v1/programmes", params={"commune": "tra-kot"}).json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == p["id"]
    assert client.get("/api/v1/programmes", params={"commune": "tra-son"}).json()["count"] == 0
    assert client.get(f"/api/v1/programmes/{p['id']}").json()["title"] == "Bản tin sáng"


def test_same_class_clash_is_refused_naming_programme_receivers_and_times(client: TestClient) -> None:
    first = client.post("/api/v1/programmes", json=programme(client, "Bản tin sáng", "Bản tin sáng", at(6),
                                                             rrule="FREQ=DAILY")).json()
    r = client.post("/api/v1/programmes", json=programme(client, "Nhạc buổi sáng", "Nhạc", at(6, 5)))
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert f"#{first['id']}" in detail and "Bản tin sáng" in detail
    assert "tra-kot-" in detail and "receiver(s)" in detail
    assert f"{TOMORROW:%d/%m/%Y} 06:00:00–06:10:00" in detail and "06:05:00–06:10:00" in detail
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        assert len(s.exec(select(Programme)).all()) == 1  # nothing stored
        refused = s.exec(select(AuditEntry).where(AuditEntry.action == "programme.create",
                                                  AuditEntry.outcome == "refused")).all()
        assert refused and "Clashes" in (refused[0].detail or "")
    # Another commune at the same time is no clash; a stated order is accepted.
    other = programme(client, "Nhạc buổi sáng", "Nhạc", at(6, 5))
    other["targets"] = {"communes": ["tra-son"]}
    assert client.post("/api/v1/programmes", json=other).status_code == 201
    ordered = client.post("/api/v1/programmes", json=programme(client, "Nhạc", "Nhạc", at(6, 5), order="after"))
    assert ordered.status_code == 201, ordered.text
    rows = client.get("/api/v1/schedule", params={"commune": "tra-kot", "from": at(5), "to": at(8)}).json()["data"]
    music = next(r for r in rows if r["programme_id"] == ordered.json()["id"])
    assert music["start"][11:16] == "06:10" and music["shifted_s"] == 300  # moved after the 10-minute bulletin


def test_priority_item_plays_first_and_the_normal_programme_moves_after(client: TestClient) -> None:
    normal = client.post("/api/v1/programmes", json=programme(client, "Nhạc", "Nhạc", at(7))).json()
    urgent = client.post("/api/v1/programmes", json=programme(client, "Tiêm chủng", "Thông báo tiêm chủng",
                                                              at(7), priority="priority"))
    assert urgent.status_code == 201, urgent.text  # different classes never clash
    rows = client.get("/api/v1/schedule", params={"commune": "tra-kot", "from": at(6), "to": at(9)}).json()["data"]
    assert [(r["title"], r["start"][11:19]) for r in rows] == [("Tiêm chủng", "07:00:00"), ("Nhạc", "07:02:00")]
    assert rows[1]["programme_id"] == normal["id"] and rows[0]["receivers"] == rows[1]["receivers"] > 0


def test_exceptions_validity_pause_and_edit(client: TestClient) -> None:
    p = client.post("/api/v1/programmes", json=programme(
        client, "Bản tin sáng", "Bản tin sáng", at(6), rrule="FREQ=DAILY",
        exdates=[(TOMORROW + dt.timedelta(days=1)).isoformat()],
        valid_until=(TOMORROW + dt.timedelta(days=3)).isoformat())).json()
    assert [n[:10] for n in p["next"]] == [(TOMORROW + dt.timedelta(days=d)).isoformat() for d in (0, 2, 3)]
    paused = client.post(f"/api/v1/programmes/{p['id']}/pause").json()
    assert paused["paused"] and paused["next"] == []
    assert client.get("/api/v1/schedule", params={"commune": "tra-kot"}).json()["count"] == 0
    client.post(f"/api/v1/programmes/{p['id']}/resume")
    edited = client.patch(f"/api/v1/programmes/{p['id']}", json={"start": at(17)})
    assert edited.status_code == 200 and edited.json()["next"][0][11:16] == "17:00"


def test_a_refused_edit_keeps_the_stored_programme(client: TestClient) -> None:
    a = client.post("/api/v1/programmes", json=programme(client, "Bản tin sáng", "Bản tin sáng", at(6))).json()
    b = client.post("/api/v1/programmes", json=programme(client, "Nhạc", "Nhạc", at(8))).json()
    r = client.patch(f"/api/v1/programmes/{b['id']}", json={"start": at(6, 1)})
    assert r.status_code == 409 and f"#{a['id']}" in r.json()["detail"]
    assert client.get(f"/api/v1/programmes/{b['id']}").json()["start"][11:16] == "08:00"


@pytest.mark.parametrize("change, status, words", [
    ({"rrule": "FREQ=SOMETIMES"}, 422, "RRULE"),
    ({"rrule": "FREQ=MINUTELY"}, 422, "times a day"),
    ({"targets": {"communes": ["no-such-commune"]}}, 422, "no-such-commune"),
    ({"targets": {"villages": ["thon-1"]}}, 422, "several communes"),
    ({"targets": {}}, 422, "no receiver"),
    ({"items": [{"bulletin_id": 999}]}, 404, "bulletin 999"),  # as another commune's would be: 404
    ({"items": [{"song": 1}]}, 422, "bulletin_id"),
    ({"start": "2020-01-01T06:00:00+07:00"}, 422, "never play"),
    ({"valid_from": "2030-01-02", "valid_until": "2030-01-01"}, 422, "valid_until"),
    ({"priority": "emergency"}, 403, "emergency:trigger"),
    ({"start": "tomorrow at six"}, 422, "start"),
])
def test_bad_programmes_are_refused_with_a_reason(client: TestClient, change: dict, status: int, words: str) -> None:
    r = client.post("/api/v1/programmes", json={**programme(client, "Bản tin", "Nhạc", at(9)), **change})
    assert r.status_code == status, r.text
    assert words in str(r.json()["detail"])
    assert client.get("/api/v1/programmes").json()["count"] == 0


def test_villages_groups_and_a_commune_limited_token(client: TestClient) -> None:
    village = client.post("/api/v1/programmes", json={**programme(client, "Thôn 1", "Nhạc", at(9)),
                                                      "targets": {"villages": ["tra-kot/thon-1"]}})
    assert village.status_code == 201, village.text
    receivers = client.get("/api/v1/receivers", params={"commune": "tra-kot", "limit": 3}).json()["data"]
    group = client.post("/api/v1/receiver-groups", json={"name": "Loa chợ", "receivers": [r["id"] for r in receivers]})
    assert group.status_code == 201
    by_group = client.post("/api/v1/programmes", json={**programme(client, "Chợ", "Nhạc", at(10)),
                                                       "targets": {"groups": [group.json()["id"]]}}).json()
    assert by_group["receivers"] == 3
    assert client.delete(f"/api/v1/receiver-groups/{group.json()['id']}").status_code == 409
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        limited = issue_token(s, "xa-tra-son", ["content:read", "content:write"], communes=["tra-son"])[1]
    headers = {"Authorization": f"Bearer {limited}"}
    r = client.post("/api/v1/programmes", json=programme(client, "Bản tin", "Nhạc", at(11)), headers=headers)
    assert r.status_code == 404 and "tra-kot" in r.json()["detail"]  # outside its communes: hidden
    assert client.get("/api/v1/programmes", headers=headers).json()["count"] == 0
    assert client.get(f"/api/v1/programmes/{by_group['id']}", headers=headers).status_code == 404


def test_content_used_by_a_programme_cannot_be_deleted(client: TestClient) -> None:
    p = client.post("/api/v1/programmes", json=programme(client, "Bản tin sáng", "Bản tin sáng", at(6))).json()
    bid = client.bulletins["Bản tin sáng"]  # type: ignore[attr-defined]
    r = client.delete(f"/api/v1/bulletins/{bid}")
    assert r.status_code == 409 and f"#{p['id']}" in r.json()["detail"]
    assert client.get(f"/api/v1/bulletins/{bid}").status_code == 200
    assert client.delete(f"/api/v1/programmes/{p['id']}").status_code == 204
    assert client.delete(f"/api/v1/bulletins/{bid}").status_code == 204


def test_a_receiver_fetches_its_own_signed_plan(client: TestClient) -> None:
    from controller.broker.passwords import hash_password
    from controller.db.models import Receiver, ReceiverPlanState
    from receivers.protocol import Verifier

    rid = "tra-kot-thon-1-1"
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        row = s.get(Receiver, rid)
        assert row is not None
        row.mqtt_password_hash = hash_password("mat-khau-cum-loa")
        s.add(row)
        s.commit()
    p = client.post("/api/v1/programmes", json=programme(client, "Bản tin sáng", "Bản tin sáng", at(6))).json()
    runner = client.app.state.runner  # type: ignore[attr-defined]
    client.portal.call(runner.recompile)  # type: ignore[union-attr]
    url = f"/api/v1/receivers/{rid}/plan"
    assert client.get(url, headers={"Authorization": ""}).status_code == 401
    assert client.get(url, auth=(rid, "sai-mat-khau"), headers={"Authorization": ""}).status_code == 401
    other = "/api/v1/receivers/tra-kot-thon-1-2/plan"
    assert client.get(other, auth=(rid, "mat-khau-cum-loa"), headers={"Authorization": ""}).status_code == 401
    r = client.get(url, auth=(rid, "mat-khau-cum-loa"))
    assert r.status_code == 200, r.text
    plan = Verifier(client.app.state.public_key).open_plan(r.content)  # type: ignore[attr-defined]
    assert plan.receiver_id == rid and r.headers["etag"] == f'"{plan.version}"'
    [entry] = plan.entries
    assert entry.programme_id == p["id"] and entry.start_at.astimezone(TZ).hour == 6
    assert entry.media.url.startswith("/media/") and entry.duration_s == 600
    again = client.get(url, auth=(rid, "mat-khau-cum-loa"), headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and not again.content
    # The runner's own loop writes fetched versions in batches too: whichever flush took the batch, wait for
    # its write rather than read once (a one-shot read lost that race once in CI).
    runner.flush_fetched()

    def fetched() -> ReceiverPlanState | None:
        with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
            got = s.get(ReceiverPlanState, rid)
            return got if got is not None and got.fetched_version is not None else None

    state = wait_for(fetched, 10, "the fetched plan version written")
    assert state.fetched_version == plan.version == state.version
