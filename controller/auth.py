"""Transitional names for routers not yet moved onto the services (they go with that move): the policy's
`Principal`, the audit writer and the route dependencies, all implemented by the core."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlmodel import Session

from controller.api.deps import (
    CanControlReceivers,
    CanReadContent,
    CanReadReceivers,
    CanWriteContent,
    allow,
)
from controller.policy import SCOPES, Principal, Right
from controller.services import audit as audit_log
from controller.services.accounts import hash_token, issue_token

__all__ = ["SCOPES", "CanControlReceivers", "CanReadContent", "CanReadReceivers", "CanWriteContent", "Principal",
           "audit", "create_token", "hash_token", "require"]


def create_token(session: Session, name: str, scopes: list[str], communes: list[str] | None = None) -> str:
    return issue_token(session, name, scopes, communes)[1]


def audit(engine: Engine, actor: str, action: str, outcome: str, target: str | None = None,
          detail: str | None = None) -> None:
    audit_log.record(engine, actor, action, outcome, target=target, detail=detail)


def require(scope: str) -> Callable[..., Principal]:
    return allow(Right(scope))
