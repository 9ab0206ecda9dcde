"""What every route is handed: the session, the acting principal (checked against a right declared on the
route), the service context.

- `SessionDep`: one SQLModel session per request (for the few routes that need no `Ctx`).
- `allow(right)`: the route's policy — a dependency that authenticates the caller (bearer token) and refuses
  (403) a principal without `right`. Every route under /api/v1 declares one (`Allowed`/`CanX` aliases, or
  `public(...)` for the few that authenticate otherwise); tests/controller/api/test_policy_routes.py fails
  for a route that does not.
- `CtxDep`: a `Ctx` for the services (session, principal, settings, bridge, media store, tracker).
- `PageDep`: the paging convention (`limit` 1–1000, default 100; `offset`).
"""

# No `from __future__ import annotations`: the dependencies made in `allow`/`ctx_for` annotate with a
# local `right`, which FastAPI could not resolve from a string annotation.
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session
from starlette.types import Scope

from controller.errors import Unauthenticated
from controller.policy import Principal, Right, require
from controller.services import Ctx, Page
from controller.services.accounts import principal_for_token
from controller.services.context import DEFAULT_LIMIT, MAX_LIMIT


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="an API token: `Authorization: Bearer tt_…`")


def scope_address(scope: Scope) -> str | None:
    """The client's address of an HTTP request's ASGI scope (the connection's peer; what the server put there
    from a trusted proxy's headers when told to): one rule for the routes (`client_address`) and the edge
    middleware (`limits.EdgeLimits`), which has no `Request`."""
    client = scope.get("client")
    return client[0] if client else None


def client_address(request: Request) -> str | None:
    return scope_address(request.scope)


def authenticated(request: Request, session: SessionDep,
                  creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    if creds is None:
        raise Unauthenticated("Missing bearer token: send 'Authorization: Bearer <token>'.",
                              headers={"WWW-Authenticate": "Bearer"})
    who = principal_for_token(session, creds.credentials, client_address(request))
    request.state.principal = who  # for the audit of a later refusal
    return who


def allow(right: Right) -> Callable[..., Principal]:
    """The route's policy: an authenticated principal holding `right` (commune checks are the services')."""

    def check(who: Annotated[Principal, Depends(authenticated)]) -> Principal:
        require(who, right, f"api.{right}")
        return who

    check.right = right  # type: ignore[attr-defined]  # read by the route-table policy test
    return check


def signed_in(who: Annotated[Principal, Depends(authenticated)]) -> Principal:
    """The route's policy: any authenticated principal (it only shows the caller their own)."""
    return who


signed_in.right = "signed-in"  # type: ignore[attr-defined]
SignedIn = Annotated[Principal, Depends(signed_in)]


def public(reason: str) -> Callable[[], None]:
    """A route without a principal, saying why (media by unguessable hash, enrolment by one-time code, a
    receiver's plan by its own credentials, health)."""

    def open_route() -> None:
        return None

    open_route.public = reason  # type: ignore[attr-defined]
    return open_route


# SQLite's integers are 64-bit: a larger offset or row id was a 500 (OverflowError) instead of a 422.
MAX_OFFSET = 10**9
# A row's id in a path (`/bulletins/{bid}`…).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def page(limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows per page")] = DEFAULT_LIMIT,
         offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")] = 0) -> Page:
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(page)]

CanReadReceivers = Annotated[Principal, Depends(allow(Right.RECEIVERS_READ))]
CanControlReceivers = Annotated[Principal, Depends(allow(Right.RECEIVERS_CONTROL))]
CanReadContent = Annotated[Principal, Depends(allow(Right.CONTENT_READ))]
CanWriteContent = Annotated[Principal, Depends(allow(Right.CONTENT_WRITE))]
CanApproveContent = Annotated[Principal, Depends(allow(Right.CONTENT_APPROVE))]
CanTriggerEmergency = Annotated[Principal, Depends(allow(Right.EMERGENCY))]
IsAdmin = Annotated[Principal, Depends(allow(Right.ADMIN))]


def context(request: Request, session: Session, who: Principal) -> Ctx:
    state: Any = request.app.state
    return Ctx(session=session, who=who, settings=state.settings, engine=state.engine,
               bridge=getattr(state, "bridge", None), media=getattr(state, "media", None),
               tracker=getattr(state, "tracker", None), runner=getattr(state, "runner", None))


def ctx_for(right: Right) -> Callable[..., Ctx]:
    """A `Ctx` for a principal holding `right`: the usual way a route gets what it hands to a service."""

    def make(request: Request, session: SessionDep, who: Annotated[Principal, Depends(allow(right))]) -> Ctx:
        return context(request, session, who)

    make.right = right  # type: ignore[attr-defined]
    return make


ReceiversReader = Annotated[Ctx, Depends(ctx_for(Right.RECEIVERS_READ))]
ReceiversController = Annotated[Ctx, Depends(ctx_for(Right.RECEIVERS_CONTROL))]
ContentReader = Annotated[Ctx, Depends(ctx_for(Right.CONTENT_READ))]
ContentWriter = Annotated[Ctx, Depends(ctx_for(Right.CONTENT_WRITE))]
ContentApprover = Annotated[Ctx, Depends(ctx_for(Right.CONTENT_APPROVE))]
EmergencyTrigger = Annotated[Ctx, Depends(ctx_for(Right.EMERGENCY))]
Admin = Annotated[Ctx, Depends(ctx_for(Right.ADMIN))]
