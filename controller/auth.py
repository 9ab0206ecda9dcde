"""API tokens: creation, lookup and the scope checks used as FastAPI dependencies.

A token is `tt_` + 43 random URL-safe characters (256 bits); only its SHA-256 is stored, which suffices for
a secret of that entropy and keeps each lookup a single indexed query. Scopes: `receivers:read`,
`receivers:control`, `content:read`, `content:write`, `emergency:trigger`, `admin` (implies every other).
A token may be limited to some communes. Every refusal is written to the audit log.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from controller.db.models import ApiToken, AuditEntry, utcnow

SCOPES = ("receivers:read", "receivers:control", "content:read", "content:write", "emergency:trigger", "admin")


@dataclass(frozen=True)
class Principal:
    token_id: int
    name: str
    scopes: frozenset[str]
    communes: frozenset[str] | None  # None: every commune

    @property
    def actor(self) -> str:
        return f"token:{self.token_id}:{self.name}"

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def may_see(self, commune: str) -> bool:
        return self.communes is None or commune in self.communes


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, scopes: list[str], communes: list[str] | None = None) -> str:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"unknown scope(s) {unknown or scopes}: choose from {', '.join(SCOPES)}")
    token = "tt_" + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_token(token), scopes=" ".join(sorted(set(scopes))),
                         communes=" ".join(sorted(set(communes))) if communes else None))
    session.commit()
    return token


def audit(engine: Engine, actor: str, action: str, outcome: str, target: str | None = None,
          detail: str | None = None) -> None:
    with Session(engine) as s:
        s.add(AuditEntry(actor=actor, action=action, target=target, outcome=outcome, detail=detail))
        s.commit()


_bearer = HTTPBearer(auto_error=False)


def _refuse(request: Request, status: int, message: str, actor: str) -> HTTPException:
    audit(request.app.state.engine, actor, "auth.refused", "refused",
          target=f"{request.method} {request.url.path}", detail=message)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status, message, headers=headers)


def principal(request: Request,
              creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    if creds is None:
        raise _refuse(request, 401, "Missing bearer token: send 'Authorization: Bearer <token>'.", "anonymous")
    with Session(request.app.state.engine) as s:
        row = s.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(creds.credentials))).first()
        if row is None or row.revoked or row.id is None:
            raise _refuse(request, 401, "Invalid or revoked token.", "anonymous")
        row.last_used_at = utcnow()
        s.add(row)
        s.commit()
        return Principal(row.id, row.name, frozenset(row.scopes.split()),
                         frozenset(row.communes.split()) if row.communes else None)


def require(scope: str):
    """Dependency: the caller's principal, if its token has `scope` (or `admin`); 403 otherwise."""

    def check(request: Request, who: Annotated[Principal, Depends(principal)]) -> Principal:
        if not who.has(scope):
            raise _refuse(request, 403, f"This token lacks the '{scope}' scope.", who.actor)
        return who

    return check


CanReadReceivers = Annotated[Principal, Depends(require("receivers:read"))]
CanControlReceivers = Annotated[Principal, Depends(require("receivers:control"))]
CanReadContent = Annotated[Principal, Depends(require("content:read"))]
CanWriteContent = Annotated[Principal, Depends(require("content:write"))]
