"""`/api/v1/announcements`: Vietnamese text read aloud (thông báo), with optional chimes and repeats, and their
approval; `/api/v1/abbreviations`: the staff's abbreviation lists (the district's and each commune's).

Text is normalised first (numbers, dates, units, abbreviations… → words: `audio.vi_text`, with the
district's and the announcement's commune's abbreviations); every answer carries `normalized_text`, exactly
what was (or will be) read, and `POST /preview-text` shows it before anything is made. When Google's engine
is chosen but cannot be reached, the offline engine reads it and the response says so in `note`.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from controller.db.models import AnnouncementPublic, AnnouncementsPublic
from controller.services import abbreviations as abbr_service
from controller.services import content
from controller.services.abbreviations import AbbreviationPublic, AbbreviationPut, AbbreviationsPublic
from controller.services.content import AnnouncementCreate, PreviewPublic, PreviewRequest, ReturnRequest

from .deps import ContentApprover, ContentReader, ContentWriter, PageDep, RowId

router = APIRouter(prefix="/announcements", tags=["announcements"])
abbreviations = APIRouter(prefix="/abbreviations", tags=["announcements"])


@router.post("/preview-text", response_model=PreviewPublic)
def preview_text(body: PreviewRequest, ctx: ContentReader) -> PreviewPublic:
    """The text as it would be read, with the district's abbreviations and (given `commune`) its own."""
    return content.preview_text(ctx, body)


@router.post("", status_code=201, response_model=AnnouncementPublic)
def create_announcement(body: AnnouncementCreate, ctx: ContentWriter) -> AnnouncementPublic:
    """Make an announcement (a sync route: speech synthesis and ffmpeg block). It is a draft unless its maker
    may approve it or the commune needs no approval."""
    return content.create_announcement(ctx, body)


@router.get("", response_model=AnnouncementsPublic)
def list_announcements(ctx: ContentReader, page: PageDep, commune: str | None = None,
                       approved: bool | None = None) -> AnnouncementsPublic:
    """Newest first; `approved=false` lists the drafts waiting for approval."""
    return content.list_announcements(ctx, page, commune=commune, approved=approved)


@router.get("/{aid}", response_model=AnnouncementPublic)
def get_announcement(aid: RowId, ctx: ContentReader) -> AnnouncementPublic:
    return content.get_announcement(ctx, aid)


@router.post("/{aid}/approve", response_model=AnnouncementPublic)
def approve_announcement(aid: RowId, ctx: ContentApprover) -> AnnouncementPublic:
    """Approve a draft (duyệt tin) so it can be played and scheduled; approving it again changes nothing."""
    return content.approve_announcement(ctx, aid)


@router.post("/{aid}/return", response_model=AnnouncementPublic)
def return_announcement(aid: RowId, body: ReturnRequest, ctx: ContentApprover) -> AnnouncementPublic:
    """Send a draft back to its author with a comment (duyệt tin: trả lại); it stays a draft."""
    return content.return_announcement(ctx, aid, body.comment)


@router.delete("/{aid}", status_code=204)
def delete_announcement(aid: RowId, ctx: ContentWriter) -> Response:
    content.delete_announcement(ctx, aid)
    return Response(status_code=204)


# --------------------------------------------------------------------------------- abbreviation lists


@abbreviations.get("", response_model=AbbreviationsPublic)
def list_abbreviations(ctx: ContentReader, page: PageDep, commune: str | None = None) -> AbbreviationsPublic:
    """The district's list and (given `commune`) that commune's own, which wins there. The built-in list is
    `audio/vi_abbreviations.toml`."""
    return abbr_service.list_abbreviations(ctx, page, commune)


@abbreviations.put("/{abbr}", response_model=AbbreviationPublic)
def put_abbreviation(abbr: str, body: AbbreviationPut, ctx: ContentWriter) -> AbbreviationPublic:
    """Set an abbreviation in a commune's list (`commune`), or in the district's (district admins only)."""
    return abbr_service.put_abbreviation(ctx, abbr, body)


@abbreviations.delete("/{abbr}", status_code=204)
def delete_abbreviation(abbr: str, ctx: ContentWriter, commune: str | None = None) -> Response:
    abbr_service.delete_abbreviation(ctx, abbr, commune)
    return Response(status_code=204)
