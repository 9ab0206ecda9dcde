"""Signing in and out of the staff UI: plain HTML form posts (they work before any script has loaded), each
checked for its CSRF token, and the cookies they set.

- `POST /ui/auth/login` (`username`, `password`, `csrf`, `next`): the login page's `csrf` must equal the
  `tt_login_csrf` cookie set with that page (double submit: a page of another site can send the form but
  cannot read or set the cookie). Success sets `tt_session` (HttpOnly, SameSite=Strict, Secure over HTTPS)
  and redirects to `next`; a failure redirects back to the login page with the reason.
- `POST /ui/auth/logout` (`csrf`): the session's own CSRF token; ends the session and clears the cookie.
- `LoginCsrfCookie`: the ASGI middleware that gives the login page its CSRF cookie.
"""

from __future__ import annotations

import secrets
from http.cookies import SimpleCookie
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import PlainTextResponse, RedirectResponse
from sqlmodel import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.config import Settings
from controller.errors import DomainError, RateLimited, Refusal, Unauthenticated
from controller.services import audit
from controller.services.sessions import COOKIE, LOGIN_CSRF_COOKIE, LoginThrottle, check_csrf, sign_in, sign_out

from .paths import HOME, LOGIN

router = APIRouter(prefix="/ui/auth", include_in_schema=False)


def secure_cookies(settings: Settings, request: Request | None = None, scheme: str | None = None) -> bool:
    if settings.ui.cookie_secure is not None:
        return settings.ui.cookie_secure
    return (scheme or (request.url.scheme if request else "http")) == "https"


def safe_next(target: str | None) -> str:
    """Only a path of this UI: never another site (an open redirect) or a scheme-relative URL."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return HOME


def _back_to_login(reason: str, target: str) -> RedirectResponse:
    return RedirectResponse(f"{LOGIN}?error={reason}&next={quote(target)}", status_code=303)


@router.post("/login")
def login(request: Request, username: Annotated[str, Form(max_length=200)] = "",
          password: Annotated[str, Form(max_length=1000)] = "", csrf: Annotated[str, Form(max_length=200)] = "",
          next: Annotated[str, Form(max_length=2000)] = HOME) -> RedirectResponse:
    settings: Settings = request.app.state.settings
    target = safe_next(next)
    address = request.client.host if request.client else None
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not csrf or not expected or not secrets.compare_digest(csrf, expected):
        audit.record(request.app.state.engine, "anonymous", "ui.login", "refused", target="POST /ui/auth/login",
                     detail="missing or wrong CSRF token", address=address)
        return _back_to_login("csrf", target)
    throttle: LoginThrottle = request.app.state.login_throttle
    try:
        signed = sign_in(request.app.state.engine, settings.ui, throttle, username, password, address,
                         request.headers.get("user-agent"))
    except RateLimited as e:
        minutes = int(e.headers["Retry-After"]) // 60 + 1 if e.headers else 15
        return _back_to_login(f"limited&minutes={minutes}", target)
    except Unauthenticated as e:
        return _back_to_login("disabled" if "disabled" in e.message else "wrong", target)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, signed.token, max_age=int(settings.ui.session_max_days * 86400), path="/",
                        httponly=True, samesite="strict", secure=secure_cookies(settings, request))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui")
    return response


@router.post("/logout", response_model=None)
def logout(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Any:
    settings: Settings = request.app.state.settings
    token = request.cookies.get(COOKIE)
    address = request.client.host if request.client else None
    with Session(request.app.state.engine) as session:
        try:
            now = check_csrf(session, settings.ui, token, csrf)
        except Unauthenticated:
            return RedirectResponse(LOGIN, status_code=303)  # already ended: nothing to end
        except DomainError as e:  # Forbidden: a forged post; the session stays
            assert isinstance(e, Refusal)
            audit.record(request.app.state.engine, e.who.actor if e.who else "anonymous", e.action, "refused",
                         target="POST /ui/auth/logout", detail=e.message, address=address)
            return PlainTextResponse("Yêu cầu bị từ chối: thiếu mã chống giả mạo (CSRF).", status_code=403)
    sign_out(request.app.state.engine, token, now.principal.actor, address)
    response = RedirectResponse(f"{LOGIN}?info=logged_out", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


class LoginCsrfCookie:
    """Gives every visit of the login page a fresh CSRF token: in the `tt_login_csrf` cookie (HttpOnly,
    SameSite=Strict, path /ui) and in `scope["state"]["login_csrf"]`, where the page reads it for its form."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != LOGIN or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        token = secrets.token_urlsafe(32)
        scope.setdefault("state", {})["login_csrf"] = token
        cookie: SimpleCookie = SimpleCookie()
        cookie[LOGIN_CSRF_COOKIE] = token
        morsel = cookie[LOGIN_CSRF_COOKIE]
        morsel["path"], morsel["httponly"], morsel["samesite"] = "/ui", True, "Strict"
        if secure_cookies(self.settings, scheme=scope.get("scheme")):
            morsel["secure"] = True
        header = morsel.OutputString().encode("latin-1")

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"set-cookie", header))
            await send(message)

        await self.app(scope, receive, send_with_cookie)
