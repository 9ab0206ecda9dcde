"""Uploads in every accepted format come out as broadcast audio at the target loudness; bad input gets a
clear 4xx and leaves nothing behind; the media route serves what was stored, verified."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from controller.app import create_app
from controller.config import AudioSettings, Settings
from controller.db.models import AuditEntry, Bulletin, MediaFile
from controller.inventory import apply_seed, load_seed
from controller.services.accounts import issue_token
from tests.samples import FORMATS, integrated_lufs, make, probe_line


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(demo=True, data_dir=tmp_path / "data",
                        audio=AudioSettings(max_upload_mb=2, max_duration_s=120))
    with TestClient(create_app(settings, with_bridge=False)) as c:
        with Session(c.app.state.engine) as s:  # type: ignore[attr-defined]
            apply_seed(s, load_seed(settings.seed_file))
            c.headers["Authorization"] = "Bearer " + issue_token(s, "staff", ["content:read", "content:write"])[1]
        yield c


def upload(client: TestClient, path: Path, title: str = "Bản tin sáng", **form: str):  # type: ignore[no-untyped-def]
    with path.open("rb") as f:
        return client.post("/api/v1/bulletins", data={"title": title, **form},
                           files={"file": (path.name, f, "application/octet-stream")})


def stored(client: TestClient) -> tuple[int, int, list[Path]]:
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        bulletins = s.exec(select(func.count()).select_from(Bulletin)).one()
        media = s.exec(select(func.count()).select_from(MediaFile)).one()
    root = client.app.state.media.root  # type: ignore[attr-defined]
    return bulletins, media, [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_every_format_becomes_broadcast_audio_at_target_loudness(client: TestClient, tmp_path: Path,
                                                                  ext: str) -> None:
    source = make(tmp_path / f"quiet.{ext}", gain_db=-32)  # far too quiet, as phone recordings are
    r = upload(client, source, commune="tra-bui")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["commune"] == "tra-bui" and body["media_url"] == f"/media/{body['sha256']}.mp3"
    assert body["loudness_before"] < -35 and abs(body["loudness_after"] + 16) <= 1
    assert 5.0 <= body["duration_s"] <= 6.5

    media = client.get(body["media_url"])  # no token needed
    assert media.status_code == 200 and media.headers["content-type"] == "audio/mpeg"
    assert hashlib.sha256(media.content).hexdigest() == body["sha256"]
    out = tmp_path / "served.mp3"
    out.write_bytes(media.content)
    lufs, peak = integrated_lufs(out)
    assert abs(lufs + 16) <= 1.0, f"{ext}: measured {lufs} LUFS"
    assert peak <= -1.5, f"{ext}: true peak {peak} dBTP"
    line = probe_line(out)
    assert "mp3" in line and "44100 Hz" in line and "mono" in line and "64 kb/s" in line


def test_leading_and_trailing_silence_is_trimmed(client: TestClient, tmp_path: Path) -> None:
    source = make(tmp_path / "padded.wav", seconds=4, lead_silence_s=3, tail_silence_s=3)
    body = upload(client, source).json()
    assert 3.5 <= body["duration_s"] <= 4.6 and body["trimmed_s"] >= 5
    kept = upload(client, make(tmp_path / "padded2.wav", seconds=4, lead_silence_s=3, tail_silence_s=3,
                               gain_db=-19), trim_silence="false").json()
    assert kept["duration_s"] >= 9.5 and kept["trimmed_s"] == 0


def test_same_content_is_stored_once(client: TestClient, tmp_path: Path) -> None:
    source = make(tmp_path / "a.wav")
    first, second = upload(client, source, "Một").json(), upload(client, source, "Hai").json()
    assert first["sha256"] == second["sha256"] and first["id"] != second["id"]
    assert stored(client)[:2] == (2, 1)
    # Deleting one keeps the audio for the other; deleting both removes it.
    assert client.delete(f"/api/v1/bulletins/{first['id']}").status_code == 204
    assert client.get(second["media_url"]).status_code == 200
    assert client.delete(f"/api/v1/bulletins/{second['id']}").status_code == 204
    assert client.get(second["media_url"]).status_code == 404
    assert stored(client) == (0, 0, [])


BAD = {
    "random bytes": (lambda p: p.write_bytes(bytes(range(256)) * 200), 415, "not audio"),
    "a text file": (lambda p: p.write_text("Kính gửi bà con " * 100), 415, "not audio"),
    "empty": (lambda p: p.write_bytes(b""), 422, "empty"),
    "silent": (lambda p: make(p, gain_db=-120), 422, "silent"),
    "too long": (lambda p: make(p, seconds=150, gain_db=-20), 422, "limit is 2"),
    "too large": (lambda p: p.write_bytes(b"\0" * 3_000_000), 413, "larger than the limit"),
    "video without audio": (lambda p: __import__("subprocess").run(
        [__import__("tests.samples", fromlist=["FFMPEG"]).FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i",
         "color=c=blue:s=32x32:d=1", str(p)], check=True), 415, "no audio track"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused_and_leaves_nothing(client: TestClient, tmp_path: Path, case: str) -> None:
    write, status, words = BAD[case]
    path = tmp_path / {"video without audio": "bad.mp4", "too long": "long.ogg"}.get(case, "bad.wav")
    write(path)
    r = upload(client, path)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert stored(client) == (0, 0, [])
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        refusals = s.exec(select(AuditEntry).where(AuditEntry.action == "bulletin.create")).all()
    assert [a.outcome for a in refusals] in ([], ["refused"])  # size and emptiness are refused before ingest


def test_bad_form_fields(client: TestClient, tmp_path: Path) -> None:
    source = make(tmp_path / "ok.wav")
    assert upload(client, source, title="").status_code == 422
    assert upload(client, source, commune="no-such-commune").status_code == 422
    assert client.post("/api/v1/bulletins", data={"title": "x"}).status_code == 422  # no file
    assert stored(client) == (0, 0, [])


def test_media_route_caches_ranges_and_refuses_corruption(client: TestClient, tmp_path: Path) -> None:
    body = upload(client, make(tmp_path / "b.wav")).json()
    url, sha = body["media_url"], body["sha256"]
    full = client.get(url)
    assert full.headers["etag"] == f'"{sha}"' and "immutable" in full.headers["cache-control"]
    assert full.headers["accept-ranges"] == "bytes"
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == full.content[100:200]
    assert client.get(url, headers={"If-None-Match": f'"{sha}"'}).status_code == 304
    assert client.get(f"/media/{'0' * 64}.mp3").status_code == 404
    assert client.get("/media/../../etc/passwd").status_code == 404

    path = client.app.state.media.path(sha)  # type: ignore[attr-defined]
    client.app.state.media._verified.clear()  # type: ignore[attr-defined]
    data = bytearray(path.read_bytes())
    data[500] ^= 0xFF  # one flipped byte on a failing SD card
    path.write_bytes(bytes(data))
    r = client.get(url)
    assert r.status_code == 500 and "corrupted" in r.json()["detail"]
    assert r.content != bytes(data)


def test_content_scopes(client: TestClient, tmp_path: Path) -> None:
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        reader = "Bearer " + issue_token(s, "r", ["content:read"])[1]
        bui = "Bearer " + issue_token(s, "b", ["content:read", "content:write"], ["tra-bui"])[1]
    source = make(tmp_path / "s.wav")
    with source.open("rb") as f:
        r = client.post("/api/v1/bulletins", data={"title": "x"}, files={"file": ("s.wav", f)},
                        headers={"Authorization": reader})
    assert r.status_code == 403
    with source.open("rb") as f:
        r = client.post("/api/v1/bulletins", data={"title": "x", "commune": "tra-ka"},
                        files={"file": ("s.wav", f)}, headers={"Authorization": bui})
    # Another commune is answered as if it did not exist (the policy's 404; it was 403 before the policy).
    assert r.status_code == 404 and "tra-ka" in r.json()["detail"]
    own = upload(client, source, commune="tra-ka").json()
    assert client.get(f"/api/v1/bulletins/{own['id']}", headers={"Authorization": bui}).status_code == 404
    assert client.get("/api/v1/bulletins", headers={"Authorization": bui}).json()["count"] == 0
