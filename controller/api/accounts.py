"""`/api/v1/users`, `/api/v1/tokens`, `/api/v1/me`, `/api/v1/audit`: people, API tokens and the audit log
(district admins), and who the caller is."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from controller.policy import Principal, role_title
from controller.services import accounts, audit
from controller.services.accounts import (
    TokenCreate,
    TokenCreated,
    TokensPublic,
    UserCreate,
    UserPublic,
    UsersPublic,
    UserUpdate,
)
from controller.services.audit import AuditEntriesPublic

from .deps import Admin, PageDep, RowId, SignedIn

router = APIRouter(tags=["accounts"])


@router.get("/users", response_model=UsersPublic)
def list_users(ctx: Admin, page: PageDep) -> UsersPublic:
    return accounts.list_users(ctx, page)


@router.post("/users", response_model=UserPublic, status_code=201)
def create_user(body: UserCreate, ctx: Admin) -> UserPublic:
    return accounts.create_user(ctx, body)


@router.patch("/users/{uid}", response_model=UserPublic)
def update_user(uid: RowId, body: UserUpdate, ctx: Admin) -> UserPublic:
    """Change a person's role or communes, disable or enable the account, or reset the password."""
    return accounts.update_user(ctx, uid, body)


@router.get("/tokens", response_model=TokensPublic)
def list_tokens(ctx: Admin, page: PageDep) -> TokensPublic:
    return accounts.list_tokens(ctx, page)


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_token(body: TokenCreate, ctx: Admin) -> TokenCreated:
    """Make an API token; the answer's `token` is shown only this once."""
    return accounts.create_token(ctx, body)


@router.delete("/tokens/{tid}", status_code=204)
def revoke_token(tid: RowId, ctx: Admin) -> Response:
    accounts.revoke_token(ctx, tid)
    return Response(status_code=204)


@router.get("/audit", response_model=AuditEntriesPublic)
def audit_log(ctx: Admin, page: PageDep, action: str | None = None, outcome: str | None = None,
              actor: str | None = None) -> AuditEntriesPublic:
    return audit.entries(ctx, page, action=action, outcome=outcome, actor=actor)


class Me(BaseModel):
    actor: str
    kind: str
    name: str
    role: str | None
    role_title: str
    rights: list[str]
    communes: list[str] | None


@router.get("/me", response_model=Me)
def me(who: SignedIn) -> Me:
    """Who the caller is: rights and communes in force (a token's bounded by its owner's)."""
    return _me(who)


def _me(who: Principal) -> Me:
    return Me(actor=who.actor, kind=who.kind, name=who.name, role=who.role, role_title=role_title(who.role),
              rights=sorted(who.rights), communes=sorted(who.communes) if who.communes is not None else None)
