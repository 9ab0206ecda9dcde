"""`/api/v1/receiver-groups`: saved sets of receivers (e.g. "loa chợ", the market loudspeakers) that
programmes can target by id. A group is seen and deleted only by principals whose communes hold all its
receivers; a group a programme uses cannot be deleted (`controller.services.programmes`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from controller.db.models import ReceiverGroupCreate, ReceiverGroupPublic, ReceiverGroupsPublic
from controller.services import programmes as service

from .deps import ContentReader, ContentWriter, PageDep, RowId

router = APIRouter(prefix="/receiver-groups", tags=["programmes"])


@router.post("", status_code=201, response_model=ReceiverGroupPublic)
def create_group(body: ReceiverGroupCreate, ctx: ContentWriter) -> ReceiverGroupPublic:
    return service.create_group(ctx, body)


@router.get("", response_model=ReceiverGroupsPublic)
def list_groups(ctx: ContentReader, page: PageDep) -> ReceiverGroupsPublic:
    return service.list_groups(ctx, page)


@router.delete("/{ident}", status_code=204, response_class=Response)
def delete_group(ident: RowId, ctx: ContentWriter) -> Response:
    service.delete_group(ctx, ident)
    return Response(status_code=204)
