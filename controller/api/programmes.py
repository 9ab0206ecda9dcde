"""`/api/v1/programmes`: recurring or one-off programmes — what plays, on which receivers, when.

Create, list, read, edit (PATCH), pause/resume, delete and approve (duyệt tin); the rules — content and
targets within the principal's communes, the emergency class, clashes (409 naming the other programme,
the receivers and the times), drafts and approval — are `controller.services.programmes`'. Times are
entered and shown in Asia/Ho_Chi_Minh and stored in UTC.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from controller.db.models import ProgrammeCreate, ProgrammePublic, ProgrammesPublic, ProgrammeUpdate
from controller.scheduling import local as local  # re-exported: emergencies and CAP read it from here
from controller.services import programmes as service
from controller.services.content import ReturnRequest

from .deps import ContentApprover, ContentReader, ContentWriter, PageDep, RowId

router = APIRouter(prefix="/programmes", tags=["programmes"])


@router.post("", status_code=201, response_model=ProgrammePublic)
def create_programme(body: ProgrammeCreate, ctx: ContentWriter) -> ProgrammePublic:
    """Approved at once when the caller may approve it (or its communes do not require approval); a draft
    otherwise, on no receiver's plan until `POST /programmes/{id}/approve`."""
    return service.create_programme(ctx, body)


@router.get("", response_model=ProgrammesPublic)
def list_programmes(ctx: ContentReader, page: PageDep, commune: str | None = None, paused: bool | None = None,
                    approved: bool | None = None) -> ProgrammesPublic:
    """`approved=false`: the drafts awaiting approval."""
    return service.list_programmes(ctx, page, commune=commune, paused=paused, approved=approved)


@router.get("/{ident}", response_model=ProgrammePublic)
def get_programme(ident: RowId, ctx: ContentReader) -> ProgrammePublic:
    return service.get_programme(ctx, ident)


@router.patch("/{ident}", response_model=ProgrammePublic)
def edit_programme(ident: RowId, body: ProgrammeUpdate, ctx: ContentWriter) -> ProgrammePublic:
    """An edit by someone who cannot approve the programme makes it a draft again."""
    return service.edit_programme(ctx, ident, body)


@router.post("/{ident}/pause", response_model=ProgrammePublic)
def pause_programme(ident: RowId, ctx: ContentWriter) -> ProgrammePublic:
    return service.pause_programme(ctx, ident)


@router.post("/{ident}/resume", response_model=ProgrammePublic)
def resume_programme(ident: RowId, ctx: ContentWriter) -> ProgrammePublic:
    return service.resume_programme(ctx, ident)


@router.post("/{ident}/approve", response_model=ProgrammePublic)
def approve_programme(ident: RowId, ctx: ContentApprover) -> ProgrammePublic:
    """Put a draft on air (the approver covers every commune it reaches)."""
    return service.approve_programme(ctx, ident)


@router.post("/{ident}/return", response_model=ProgrammePublic)
def return_programme(ident: RowId, body: ReturnRequest, ctx: ContentApprover) -> ProgrammePublic:
    """Send a draft back to its author with a comment; it stays a draft (an edit or approval clears it)."""
    return service.return_programme(ctx, ident, body.comment)


@router.delete("/{ident}", status_code=204, response_class=Response)
def delete_programme(ident: RowId, ctx: ContentWriter) -> Response:
    service.delete_programme(ctx, ident)
    return Response(status_code=204)
