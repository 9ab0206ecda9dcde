"""Announcements: text → normalised → speech (offline by default, Google through a local fake) →
chimes and repeats → broadcast loudness; Google failing falls back to the offline engine, plainly said."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from controller.app import create_app
from controller.config import AudioSettings, Settings
from controller.db.models import Announcement, MediaFile
from controller.inventory import apply_seed, load_seed
from controller.services.accounts import issue_token
from tests.fake_google import FakeGoogleTts
from tests.samples import integrated_lufs, make

TEXT = "UBND xã Trà Sơn thông báo: họp lúc 7h30 ngày 26/11/2026 tại nhà văn hóa thôn 2."


@pytest.fixture
def google(tmp_path: Path) -> Iterator[FakeGoogleTts]:
    fake = FakeGoogleTts(make(tmp_path / "google.mp3", seconds=2.0, source="tone", gain_db=-12))
    yield fake
    fake.close()


def app_client(tmp_path: Path, gtts_url: str) -> TestClient:
    settings = Settings(demo=True, data_dir=tmp_path / "data",
                        audio=AudioSettings(max_text_chars=500, gtts_url=gtts_url, gtts_timeout_s=3))
    return TestClient(create_app(settings, with_bridge=False))


@pytest.fixture
def client(tmp_path: Path, google: FakeGoogleTts) -> Iterator[TestClient]:
    with app_client(tmp_path, google.url) as c:
        with Session(c.app.state.engine) as s:  # type: ignore[attr-defined]
            apply_seed(s, load_seed(Settings().seed_file))
            c.headers["Authorization"] = "Bearer " + issue_token(s, "staff", ["content:read", "content:write"])[1]
        yield c


def rows(client: TestClient) -> tuple[int, int]:
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        return (s.exec(select(func.count()).select_from(Announcement)).one(),
                s.exec(select(func.count()).select_from(MediaFile)).one())


def measured(client: TestClient, url: str, tmp_path: Path) -> tuple[float, float]:
    out = tmp_path / "served.mp3"
    out.write_bytes(client.get(url).content)
    return integrated_lufs(out)


def test_offline_announcement_reads_normalised_text(client: TestClient, tmp_path: Path) -> None:
    r = client.post("/api/v1/announcements", json={"text": TEXT, "engine": "offline"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["engine"] == "offline" and body["note"] is None and body["voice"] == "vi"
    assert body["normalized_text"].startswith("ủy ban nhân dân xã Trà Sơn thông báo: họp lúc bảy giờ ba mươi phút")
    assert 3 < body["duration_s"] < 20
    lufs, peak = measured(client, body["media_url"], tmp_path)
    assert abs(lufs + 16) <= 1 and peak <= -1.5


def test_chimes_and_repeats_lengthen_the_audio(client: TestClient) -> None:
    plain = client.post("/api/v1/announcements", json={"text": "Kính mời bà con đi họp."}).json()
    dressed = client.post("/api/v1/announcements", json={
        "text": "Kính mời bà con đi họp.", "chime_before": True, "chime_after": True, "repeat": 3, "gap_s": 2,
    }).json()
    # three readings, two 2 s gaps, two chimes of ~1.65 s with 0.4 s pauses
    expected = 3 * plain["duration_s"] + 2 * 2 + 2 * (1.65 + 0.4)
    assert abs(dressed["duration_s"] - expected) < 0.6, (dressed["duration_s"], expected)
    assert dressed["sha256"] != plain["sha256"]


def test_gtts_path_through_fake_google(client: TestClient, google: FakeGoogleTts, tmp_path: Path) -> None:
    r = client.post("/api/v1/announcements", json={"text": "Xin chào bà con 2 thôn.", "engine": "gtts"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["engine"] == "gtts" and body["note"] is None
    assert google.texts == ["Xin chào bà con hai thôn."]  # Google was asked for the normalised text
    assert 1.8 <= body["duration_s"] <= 2.3  # …and what it sent back is what was stored
    assert abs(measured(client, body["media_url"], tmp_path)[0] + 16) <= 1

    # The same request again is served from the synthesis cache: Google is not asked twice.
    again = client.post("/api/v1/announcements", json={"text": "Xin chào bà con 2 thôn.", "engine": "gtts"}).json()
    assert len(google.texts) == 1 and again["sha256"] == body["sha256"]


@pytest.mark.parametrize("failure", ["http-500", "unreachable"])
def test_gtts_failure_falls_back_to_offline(tmp_path: Path, google: FakeGoogleTts, failure: str) -> None:
    url = google.url
    if failure == "http-500":
        google.fail_with = 500
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}/batchexecute"  # nothing listens there
    with app_client(tmp_path, url) as c:
        with Session(c.app.state.engine) as s:  # type: ignore[attr-defined]
            token = issue_token(s, "staff", ["content:write"])[1]
        r = c.post("/api/v1/announcements", json={"text": "Cảnh báo mưa lớn.", "engine": "gtts"},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["engine_requested"], body["engine"]) == ("gtts", "offline")
    assert "Google TTS could not be reached" in body["note"] and body["duration_s"] > 0.5


@pytest.mark.parametrize(("payload", "status", "words"), [
    ({"text": ""}, 422, "empty"),
    ({"text": "   \n "}, 422, "empty"),
    ({"text": "x" * 501}, 422, "limit is 500"),
    ({"text": "Chào", "engine": "festival"}, 422, "Unknown engine 'festival'"),
    ({"text": "Chào", "voice": "en-us"}, 422, "no voice 'en-us'"),
    ({"text": "Chào", "repeat": 0}, 422, "repeat"),
    ({"text": "Chào", "repeat": 11}, 422, "repeat"),
    ({"text": "Chào", "commune": "atlantis"}, 422, "atlantis"),
    ({"words": "Chào"}, 422, "text"),
])
def test_bad_requests_are_refused_and_leave_nothing(client: TestClient, payload: dict, status: int,
                                                     words: str) -> None:
    r = client.post("/api/v1/announcements", json=payload)
    assert r.status_code == status and words in r.text
    assert rows(client) == (0, 0)


def test_preview_text_and_staff_abbreviations(client: TestClient) -> None:
    r = client.post("/api/v1/announcements/preview-text", json={"text": "UBND xã họp lúc 7h30 ngày 26/11/2026."})
    assert r.status_code == 200
    assert r.json()["normalized_text"] == ("ủy ban nhân dân xã họp lúc bảy giờ ba mươi phút ngày hai mươi sáu "
                                           "tháng mười một năm hai nghìn không trăm hai mươi sáu.")
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        admin = {"Authorization": "Bearer " + issue_token(s, "admin", ["admin"])[1]}  # the district list's keeper
    assert client.put("/api/v1/abbreviations/HTX-TM", json={"expansion": "hợp tác xã Trà My"},
                      headers=admin).status_code == 200
    put = client.put("/api/v1/abbreviations/UBND", json={"expansion": " ủy ban "}, headers=admin)
    assert put.status_code == 200
    assert put.json()["expansion"] == "ủy ban" and put.json()["commune"] is None
    r = client.post("/api/v1/announcements/preview-text", json={"text": "HTX-TM và UBND"})
    assert r.json()["normalized_text"] == "hợp tác xã Trà My và ủy ban"
    listed = client.get("/api/v1/abbreviations").json()
    assert listed["count"] == 2
    assert [(a["abbr"], a["expansion"], a["commune"]) for a in listed["data"]] == [
        ("HTX-TM", "hợp tác xã Trà My", None), ("UBND", "ủy ban", None)]
    assert all(a["updated_by"].endswith(":admin") for a in listed["data"])
    assert client.delete("/api/v1/abbreviations/UBND", headers=admin).status_code == 204
    assert client.delete("/api/v1/abbreviations/UBND", headers=admin).status_code == 404
    assert client.put("/api/v1/abbreviations/two words", json={"expansion": "x"}, headers=admin).status_code == 422


def test_delete_and_list(client: TestClient) -> None:
    a = client.post("/api/v1/announcements", json={"text": "Thông báo một.", "commune": "tra-son"}).json()
    listed = client.get("/api/v1/announcements", params={"commune": "tra-son"}).json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == a["id"]
    assert client.get(f"/api/v1/announcements/{a['id']}").json()["text"] == "Thông báo một."
    assert client.delete(f"/api/v1/announcements/{a['id']}").status_code == 204
    assert client.get(f"/api/v1/announcements/{a['id']}").status_code == 404
    assert client.get(a["media_url"]).status_code == 404
    assert rows(client) == (0, 0)
