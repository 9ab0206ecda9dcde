"""`/api/v1/bulletins`: uploaded recordings (bản tin), made broadcast-ready on the way in.

The upload is refused before it is read if its declared size is over the limit, and counted as it is
copied to disk otherwise: a file never sits whole in memory. Nothing is stored for refused input.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from sqlmodel import col, func, select

from audio.ingest import IngestError
from controller.auth import CanReadContent, CanWriteContent, audit
from controller.content import (
    broadcast_format,
    commune_for,
    content_query,
    delete_content,
    find_content,
    ingest_error,
    make_media,
    media_url,
)
from controller.db.models import Bulletin, BulletinPublic, BulletinsPublic, Commune, MediaFile

from .deps import SessionDep

router = APIRouter(prefix="/bulletins", tags=["bulletins"])
MULTIPART_OVERHEAD = 64 * 1024


def _public(b: Bulletin, m: MediaFile, code: str | None) -> BulletinPublic:
    assert b.id is not None
    return BulletinPublic(id=b.id, title=b.title, commune=code, sha256=m.sha256, duration_s=m.duration_s,
                          loudness_before=b.loudness_before, loudness_after=b.loudness_after,
                          true_peak_after=m.true_peak_dbtp, media_url=media_url(m.sha256), created_by=b.created_by,
                          created_at=b.created_at, source_filename=b.source_filename,
                          source_format=b.source_format, trimmed_s=b.trimmed_s)


def receive_upload(upload: UploadFile, limit_bytes: int, directory: Path) -> Path:
    """Copy the upload to a temporary file in `directory`, refusing (413) past `limit_bytes`."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".upload-")
    path = Path(name)
    written = 0
    try:
        with open(fd, "wb") as out:
            while chunk := upload.file.read(1 << 20):
                written += len(chunk)
                if written > limit_bytes:
                    raise HTTPException(413, f"The file is larger than the limit of {limit_bytes / 1e6:.0f} MB.")
                out.write(chunk)
        if written == 0:
            raise HTTPException(422, "The file is empty.")
        return path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


@router.post("", status_code=201, response_model=BulletinPublic)
def create_bulletin(
    request: Request, session: SessionDep, who: CanWriteContent,
    file: Annotated[UploadFile, File(description="MP3, WAV, OGG/Opus, M4A/AAC, FLAC, AMR or 3GP")],
    title: Annotated[str, Form(min_length=1, max_length=200)],
    commune: Annotated[str | None, Form()] = None,
    trim_silence: Annotated[bool | None, Form()] = None,
) -> BulletinPublic:
    settings = request.app.state.settings
    limit = int(settings.audio.max_upload_mb * 1e6)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise HTTPException(413, f"The file is larger than the limit of {limit / 1e6:.0f} MB.")
    target = commune_for(session, who, commune)
    store = request.app.state.media
    source = receive_upload(file, limit, store.root)
    try:
        media, result = make_media(session, store, source, broadcast_format(settings.audio),
                                   trim_silence=settings.audio.trim_silence if trim_silence is None else trim_silence)
    except IngestError as e:
        audit(request.app.state.engine, who.actor, "bulletin.create", "refused", target=file.filename, detail=str(e))
        raise ingest_error(e) from None
    finally:
        source.unlink(missing_ok=True)
    bulletin = Bulletin(title=title.strip(), commune_id=target.id if target else None, media_sha256=media.sha256,
                        source_filename=(file.filename or "upload")[:200], source_format=result.probe.container,
                        loudness_before=result.loudness_before, loudness_after=result.loudness_after,
                        trimmed_s=result.trimmed_s, created_by=who.actor)
    session.add(bulletin)
    session.commit()
    session.refresh(bulletin)
    audit(request.app.state.engine, who.actor, "bulletin.create", "ok", target=str(bulletin.id),
          detail=f"{bulletin.title} ({media.sha256[:12]}, {media.duration_s:.1f} s)")
    return _public(bulletin, media, target.code if target else None)


@router.get("", response_model=BulletinsPublic)
def list_bulletins(session: SessionDep, who: CanReadContent, commune: str | None = None,
                   limit: int = 100, offset: int = 0) -> BulletinsPublic:
    q = content_query(Bulletin, who)
    if commune:
        q = q.where(Commune.code == commune)
    count = session.exec(select(func.count()).select_from(q.subquery())).one()
    rows = session.exec(q.order_by(col(Bulletin.id).desc()).offset(offset).limit(min(limit, 1000))).all()
    return BulletinsPublic(data=[_public(b, m, c.code if c else None) for b, m, c in rows], count=count)


@router.get("/{bid}", response_model=BulletinPublic)
def get_bulletin(bid: int, session: SessionDep, who: CanReadContent) -> BulletinPublic:
    b, m, c = find_content(session, Bulletin, bid, who)
    return _public(b, m, c.code if c else None)


@router.delete("/{bid}", status_code=204)
def delete_bulletin(bid: int, request: Request, session: SessionDep, who: CanWriteContent) -> None:
    delete_content(session, request.app.state.engine, request.app.state.media,
                   find_content(session, Bulletin, bid, who), who)
