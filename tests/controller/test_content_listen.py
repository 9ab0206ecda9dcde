"""Listening before saving (`listen_announcement`, the staff UI's "Nghe thử"): the same audio saving would make,
checked like making it, and nothing kept; a delete refused because a programme uses the item, an upload that
cannot become broadcast audio and abbreviations refused each say why in a code the UI can put into words."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from controller.db.models import Announcement, AuditEntry, MediaFile
from controller.errors import Conflict, Forbidden, Hidden, Invalid, Unsupported
from controller.policy import Principal, Right
from controller.services import Ctx
from controller.services.abbreviations import AbbreviationPut, put_abbreviation
from controller.services.content import (
    AnnouncementCreate,
    BulletinUpload,
    create_announcement,
    create_bulletin,
    delete_announcement,
    listen_announcement,
)
from tests.conftest import Api
from tests.samples import integrated_lufs, make

WRITER = frozenset({Right.CONTENT_READ, Right.CONTENT_WRITE})
NU = Principal("user", 41, "op-nu", WRITER, frozenset({"tra-nu"}))
DISTRICT = Principal("user", 42, "huyen", WRITER | {Right.CONTENT_APPROVE}, None)


def ctx_of(api: Api, session: Session, who: Principal) -> Ctx:
    state = api.client.app.state  # type: ignore[attr-defined]
    return Ctx(session=session, who=who, settings=state.settings, engine=state.engine, media=state.media)


def counts(session: Session) -> tuple[int, int, int]:
    return (session.exec(select(func.count()).select_from(Announcement)).one(),
            session.exec(select(func.count()).select_from(MediaFile)).one(),
            session.exec(select(func.count()).select_from(AuditEntry)
                         .where(AuditEntry.action.like("announcement.%"))).one())  # type: ignore[attr-defined]


def test_listening_makes_what_saving_would_and_keeps_nothing(api: Api, tmp_path: Path) -> None:
    body = AnnouncementCreate(text="UBND xã họp lúc 8h.", commune="tra-nu", chime_before=True)
    with Session(api.engine) as s:
        ctx = ctx_of(api, s, NU)
        put_abbreviation(ctx, "UBND", AbbreviationPut(expansion="ủy ban xã mình", commune="tra-nu"))
        before = counts(s)
        heard = listen_announcement(ctx, body, tmp_path)
        assert counts(s) == before  # no item, no stored audio, no audit row
        assert heard.path.parent == tmp_path and heard.path.stat().st_size > 0
        assert heard.normalized_text == "ủy ban xã mình xã họp lúc tám giờ."
        assert heard.engine == "offline" and heard.voice == "vi" and heard.note is None
        lufs, _ = integrated_lufs(heard.path)
        assert abs(lufs - heard.loudness_after) < 1 and abs(lufs + 16) <= 1
        saved = create_announcement(ctx, body)
        assert saved.normalized_text == heard.normalized_text
        assert abs(saved.duration_s - heard.duration_s) < 0.2
    assert not [p for p in tmp_path.iterdir() if p != heard.path]  # its work files are gone


def test_listening_is_checked_like_making(api: Api, tmp_path: Path) -> None:
    with Session(api.engine) as s:
        ctx = ctx_of(api, s, NU)
        with pytest.raises(Hidden):
            listen_announcement(ctx, AnnouncementCreate(text="Thông báo.", commune="tra-bui"), tmp_path)
        with pytest.raises(Forbidden):  # a commune operator cannot speak for the whole district
            listen_announcement(ctx, AnnouncementCreate(text="Thông báo."), tmp_path)
        viewer = Principal("user", 43, "xem", frozenset({Right.CONTENT_READ}), frozenset({"tra-nu"}))
        with pytest.raises(Forbidden):
            listen_announcement(ctx_of(api, s, viewer), AnnouncementCreate(text="Thông báo.", commune="tra-nu"),
                                tmp_path)
        with pytest.raises(Invalid):
            listen_announcement(ctx, AnnouncementCreate(text="Thông báo.", commune="tra-nu", engine="robot"),
                                tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_delete_refused_for_a_programme_carries_a_code_and_the_count(api: Api) -> None:
    with Session(api.engine) as s:
        made = create_announcement(ctx_of(api, s, DISTRICT), AnnouncementCreate(text="Lịch họp.", commune="tra-nu"))
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    r = api.post("/api/v1/programmes", json={"title": "Họp", "items": [{"announcement_id": made.id}],
                                             "targets": {"communes": ["tra-nu"]}, "start": start})
    assert r.status_code == 201, r.text
    with Session(api.engine) as s:
        with pytest.raises(Conflict) as refused:
            delete_announcement(ctx_of(api, s, NU), made.id)
    assert refused.value.code == "content_in_use" and refused.value.params == {"count": 1}


def test_refused_abbreviations_carry_codes(api: Api) -> None:
    with Session(api.engine) as s:
        ctx = ctx_of(api, s, NU)
        with pytest.raises(Invalid) as negation:
            put_abbreviation(ctx, "Không", AbbreviationPut(expansion="có", commune="tra-nu"))
        with pytest.raises(Invalid) as two_words:
            put_abbreviation(ctx, "hai từ", AbbreviationPut(expansion="x", commune="tra-nu"))
    assert negation.value.code == "abbr_negation" and negation.value.params == {"word": "Không"}
    assert two_words.value.code == "abbr_one_word"


def test_an_upload_that_cannot_become_broadcast_audio_says_why_in_a_code(api: Api, tmp_path: Path) -> None:
    silent = make(tmp_path / "im-lang.wav", seconds=3.0, gain_db=-120)
    text = tmp_path / "bien-ban.mp3"
    text.write_text("không phải âm thanh\n" * 100)
    with Session(api.engine) as s:
        ctx = ctx_of(api, s, NU)
        before = counts(s)
        for source, kind, code in [(silent, Invalid, "audio_silent"), (text, Unsupported, None)]:
            copy = tmp_path / f"upload-{source.name}"

            def receive(_directory: Path, source: Path = source, copy: Path = copy) -> Path:
                copy.write_bytes(source.read_bytes())
                return copy

            with pytest.raises(kind) as refused:
                create_bulletin(ctx, BulletinUpload(title="Thử", filename=source.name, commune="tra-nu"), receive)
            assert refused.value.code == code and not copy.exists()  # the received file is gone
        assert counts(s)[:2] == before[:2]
