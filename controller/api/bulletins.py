"""`/api/v1/bulletins`: uploaded recordings (bản tin), made broadcast-ready on the way in, and their approval.

The upload is refused before it is read if its declared size is over the limit, and counted as it is
copied to disk otherwise (`receive_upload`, also used by emergency uploads): a file never sits whole in
memory. Nothing is stored for refused input. A commune operator's bulletin is a draft until approved.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile

from controller.db.models import BulletinPublic, BulletinsPublic
from controller.errors import Invalid, TooLarge
from controller.services import content
from controller.services.content import BulletinUpload, ReturnRequest

from .deps import ContentApprover, ContentReader, ContentWriter, PageDep, RowId
from .limits import UPLOAD

router = APIRouter(prefix="/bulletins", tags=["bulletins"])


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
                    raise TooLarge(f"The file is larger than the limit of {limit_bytes / 1e6:.0f} MB.")
                out.write(chunk)
        if written == 0:
            raise Invalid("The file is empty.")
        return path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


@router.post("", status_code=201, response_model=BulletinPublic, dependencies=[Depends(UPLOAD)])
def create_bulletin(
    ctx: ContentWriter,
    file: Annotated[UploadFile, File(description="MP3, WAV, OGG/Opus, M4A/AAC, FLAC, AMR or 3GP")],
    title: Annotated[str, Form(min_length=1, max_length=200)],
    commune: Annotated[str | None, Form(description="the commune's code; none for district-wide")] = None,
    trim_silence: Annotated[bool | None, Form()] = None,
) -> BulletinPublic:
    """Upload a recording. It is a draft (`approved` false) unless its maker may approve it or the commune
    needs no approval."""
    limit = int(ctx.settings.audio.max_upload_mb * 1e6)  # a declared length over it: 413 at the edge, unread
    form = BulletinUpload(title=title, filename=file.filename, commune=commune, trim_silence=trim_silence)
    return content.create_bulletin(ctx, form, lambda directory: receive_upload(file, limit, directory))


@router.get("", response_model=BulletinsPublic)
def list_bulletins(ctx: ContentReader, page: PageDep, commune: str | None = None,
                   approved: bool | None = None) -> BulletinsPublic:
    """Newest first; `approved=false` lists the drafts waiting for approval."""
    return content.list_bulletins(ctx, page, commune=commune, approved=approved)


@router.get("/{bid}", response_model=BulletinPublic)
def get_bulletin(bid: RowId, ctx: ContentReader) -> BulletinPublic:
    return content.get_bulletin(ctx, bid)


@router.post("/{bid}/approve", response_model=BulletinPublic)
def approve_bulletin(bid: RowId, ctx: ContentApprover) -> BulletinPublic:
    """Approve a draft (duyệt tin) so it can be played and scheduled; approving it again changes nothing."""
    return content.approve_bulletin(ctx, bid)


@router.post("/{bid}/return", response_model=BulletinPublic)
def return_bulletin(bid: RowId, body: ReturnRequest, ctx: ContentApprover) -> BulletinPublic:
    """Send a draft back to its author with a comment (duyệt tin: trả lại); it stays a draft."""
    return content.return_bulletin(ctx, bid, body.comment)


@router.delete("/{bid}", status_code=204)
def delete_bulletin(bid: RowId, ctx: ContentWriter) -> Response:
    content.delete_bulletin(ctx, bid)
    return Response(status_code=204)
