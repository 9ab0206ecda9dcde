"""Limits at the HTTP edge, applied before a route reads anything: an outsider's 401 costs the server
nothing, and nobody's body is spooled or parsed past its route's limit.

- `EdgeLimits`: pure ASGI middleware (`create_app` installs it outermost). For a request that carries a body
  (`Content-Length` > 0 or `Transfer-Encoding`) to `/api/` or the UI's sign-in forms:
  1. a route of the API that is not `public(...)` (see `deps.public`: enrolment, a receiver's plan), asked
     without a valid bearer token → 401 at once, the body unread (the refusal audited within the refusal
     budget of `controller.services.audit`);
  2. a declared `Content-Length` over the route's limit → 413, the body unread;
  3. a body sent chunked (or longer than declared) → counted as the route reads it, 413 once past the limit.
  Any answer that leaves a body unread (these refusals, or a route that answered without reading it) closes
  the connection: the server reads no more of it.
- `body_limit(size, what)`: what a route declares, as `deps.public` is declared (a dependency that does
  nothing): `UPLOAD` (audio files: `audio.max_upload_mb` plus the form's overhead) and `ENROL`
  (`http.max_enrol_kb`); every other route gets `http.max_body_kb`.
- `StreamSlots`: open event streams (SSE) per principal, at most `http.streams_per_token`; one more is 429.
- `install` also sets up the plan-fetch throttle (`controller.throttle.FailedAttempts`, per receiver and per
  address); past the limit, 429 until the oldest failure leaves the window.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi.routing import APIRoute
from sqlmodel import Session
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.config import MULTIPART_OVERHEAD, Settings
from controller.errors import RateLimited, Unauthenticated
from controller.services import audit
from controller.services.accounts import principal_for_token
from controller.throttle import FailedAttempts

from .deps import scope_address

GUARDED = ("/api/", "/ui/auth/")
Size = Callable[[Settings], int]


def body_limit(size: Size, what: str) -> Callable[[], None]:
    """A route's body limit (`dependencies=[Depends(body_limit(...))]`); `what` names it in the 413."""

    def declared() -> None:
        return None

    declared.body_limit = size  # type: ignore[attr-defined]  # read by EdgeLimits
    declared.what = what  # type: ignore[attr-defined]
    return declared


UPLOAD = body_limit(lambda s: int(s.audio.max_upload_mb * 1e6) + MULTIPART_OVERHEAD, "file")
ENROL = body_limit(lambda s: s.http.max_enrol_kb * 1024, "request body")


def _default(s: Settings) -> int:
    return s.http.max_body_kb * 1024


@dataclass(frozen=True)
class _Rule:
    size: Size
    what: str
    public: bool


def _rule(route: Any) -> _Rule:
    """The rule `route` declares (`body_limit`, `deps.public`); a request no route took: the default."""
    size, what, public = _default, "request body", False
    for dep in route.dependant.dependencies if isinstance(route, APIRoute) else ():
        fn: Any = dep.call
        if hasattr(fn, "body_limit"):
            size, what = fn.body_limit, fn.what
        public = public or hasattr(fn, "public")
    return _Rule(size, what, public)


class _Refused(Exception):
    def __init__(self, status: int, detail: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, list(headers)


def _too_large(rule: _Rule, limit: int) -> _Refused:
    if rule.what == "file":
        return _Refused(413, f"The file is larger than the limit of {(limit - MULTIPART_OVERHEAD) / 1e6:.0f} MB.")
    return _Refused(413, f"The request body is larger than this route's limit of {limit // 1024} KB.")


async def _answer(send: Send, refused: _Refused) -> None:
    body = json.dumps({"detail": refused.detail}).encode()
    await send({"type": "http.response.start", "status": refused.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *refused.headers]})
    await send({"type": "http.response.body", "body": body})


class EdgeLimits:
    """See the module's docstring. The verdict comes when the app first asks for the body: routing is done
    then (`scope["route"]`), and not a byte of the body has been handed over. A refusal raised there is
    answered by this middleware, in place of whatever the app makes of a body it could not read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(GUARDED):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "").strip()
        if "transfer-encoding" not in headers and declared in ("", "0"):
            await self.app(scope, receive, send)  # no body: nothing to refuse before the route's own checks
            return
        judged = False
        limit = counted = 0
        rule = _DEFAULT
        refused: _Refused | None = None
        started = ours = read_all = False

        async def guarded() -> Message:
            nonlocal judged, rule, limit, counted, refused, read_all
            if not judged:
                judged = True
                rule = _rule(scope.get("route"))
                limit = rule.size(scope["app"].state.settings)
                refused = await _judge(scope, headers, rule, declared, limit)
            if refused is None:
                message = await receive()
                if message["type"] == "http.request":
                    counted += len(message.get("body", b""))
                    read_all = not message.get("more_body", False)
                    if counted > limit:
                        refused = _too_large(rule, limit)
            if refused is not None:
                raise refused
            return message

        async def watching(message: Message) -> None:
            nonlocal started, ours
            if refused is not None and not started:
                started = ours = True
                await _answer(send, refused)
            if ours:
                return
            if message["type"] == "http.response.start":
                started = True
                if not read_all:  # an answer with the body unread (a 401 of the route, say): read no more of it
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, guarded, watching)
        except _Refused as e:
            if started and not ours:
                raise
            if not started:
                await _answer(send, e)


_DEFAULT = _Rule(_default, "request body", False)


async def _judge(scope: Scope, headers: Headers, rule: _Rule, declared: str, limit: int) -> _Refused | None:
    if scope["path"].startswith("/api/") and not rule.public:
        reason = await _unauthenticated(scope, headers)
        if reason is not None:
            return _Refused(401, reason, [(b"www-authenticate", b"Bearer")])
    if declared.isdigit() and int(declared) > limit:
        return _too_large(rule, limit)
    return None


async def _unauthenticated(scope: Scope, headers: Headers) -> str | None:
    """Why the request's credentials are not a valid bearer token (audited), or None when they are."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    state = scope["app"].state
    address = scope_address(scope)
    target = f"{scope['method']} {scope['path']}"
    if scheme.lower() != "bearer" or not token.strip():
        reason = "Missing bearer token: send 'Authorization: Bearer <token>'."
        await anyio.to_thread.run_sync(lambda: audit.record(state.engine, "anonymous", "auth.refused", "refused",
                                                            target=target, detail=reason, address=address))
        return reason

    def check() -> str | None:
        with Session(state.engine) as session:
            try:
                principal_for_token(session, token.strip(), address)
            except Unauthenticated as e:
                audit.record(state.engine, e.who.actor if e.who else "anonymous", e.action, "refused",
                             target=target, detail=e.message, address=address)
                return e.message
        return None

    return await anyio.to_thread.run_sync(check)


class StreamSlots:
    """Open streams per key (a principal's actor): `take` one or `RateLimited`; the release it returns may be
    called more than once."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> Callable[[], None]:
        with self._lock:
            if self._open.get(key, 0) >= self.per_key:
                raise RateLimited(f"At most {self.per_key} event streams may be open at once with one token; "
                                  "close one first.", headers={"Retry-After": "5"})
            self._open[key] = self._open.get(key, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                left = self._open.get(key, 1) - 1
                if left > 0:
                    self._open[key] = left
                else:
                    self._open.pop(key, None)

        return release

    def open(self, key: str) -> int:
        with self._lock:
            return self._open.get(key, 0)


def install(app: Any, settings: Settings) -> None:
    """The edge's limits on `app`: the middleware (outermost), the stream slots and the plan-fetch throttle."""
    http = settings.http
    app.state.streams = StreamSlots(http.streams_per_token)
    app.state.plan_failures = FailedAttempts(
        lambda key: http.plan_failures_per_address if key.startswith("addr:") else http.plan_failures,
        http.plan_window_min * 60)
    app.add_middleware(EdgeLimits)
