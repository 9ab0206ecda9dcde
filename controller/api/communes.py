"""`/api/v1/communes`: the administrative units the caller may see, with their receivers' online / offline
counts and whether their content waits for approval; district admins turn that approval on or off."""

from __future__ import annotations

from fastapi import APIRouter

from controller.db.models import CommunePublic, CommunesPublic
from controller.services import communes
from controller.services.communes import CommuneUpdate

from .deps import Admin, PageDep, ReceiversReader

router = APIRouter(prefix="/communes", tags=["communes"])


@router.get("", response_model=CommunesPublic)
def list_communes(ctx: ReceiversReader, page: PageDep) -> CommunesPublic:
    return communes.list_communes(ctx, page)


@router.patch("/{code}", response_model=CommunePublic)
def update_commune(code: str, body: CommuneUpdate, ctx: Admin) -> CommunePublic:
    """Turn approval (duyệt tin) of the commune's content on or off."""
    return communes.update_commune(ctx, code, body)
