"""Signed-in sessions of the staff web UI: sign in (rate limited), the principal of a session's cookie, sign
out, change one's own password.

The browser holds a random token in an HttpOnly, SameSite=Strict cookie; the database holds its SHA-256
(`WebSession.id`) and the session's CSRF token, which every form post must carry. A session is re-read on
every page and every action, so disabling an account, resetting its password or signing out ends it at once.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select

from controller.config import UiSettings
from controller.db.models import User, WebSession, utcnow
from controller.errors import Forbidden, Invalid, RateLimited, Unauthenticated
from controller.policy import Principal
from controller.throttle import FailedAttempts

from . import audit
from .accounts import _check_password, _hasher, authenticate, hash_password, hash_token, user_principal
from .context import Ctx

COOKIE = "tt_session"
LOGIN_CSRF_COOKIE = "tt_login_csrf"
_TOUCH_EVERY = dt.timedelta(minutes=1)  # last_seen_at is written at most this often


class LoginThrottle(FailedAttempts):
    """Failed sign-ins per user name and per address (keys `addr:…`) in a sliding window: past the limit,
    sign-in is refused (429) until the oldest failure leaves the window — even with the right password, so
    guessing stops."""

    def __init__(self, per_name: int, per_address: int, window_s: float) -> None:
        super().__init__(lambda key: per_address if key.startswith("addr:") else per_name, window_s)


@dataclass(frozen=True)
class SignedIn:
    token: str  # for the cookie; never stored
    csrf: str
    principal: Principal
    expires_at: dt.datetime


def _keys(username: str, address: str | None) -> list[str]:
    return [f"user:{username.strip().lower()}", f"addr:{address or '?'}"]


def sign_in(engine: Engine, ui: UiSettings, throttle: LoginThrottle, username: str, password: str,
            address: str | None, user_agent: str | None) -> SignedIn:
    """A new session for the person, or `RateLimited` / `Unauthenticated` (audited either way)."""
    keys = _keys(username, address)
    wait = throttle.wait_s(keys)
    if wait > 0:
        audit.record(engine, f"anonymous:{username[:64]}", "ui.login", "rate-limited", address=address)
        raise RateLimited(f"Too many failed sign-ins: try again in {int(wait // 60) + 1} minute(s).",
                          headers={"Retry-After": str(int(wait) + 1)})
    with Session(engine) as session:
        try:
            who = authenticate(session, username.strip(), password, address)
        except Unauthenticated:
            throttle.failed(keys)
            audit.record(engine, f"anonymous:{username[:64]}", "ui.login", "refused", address=address)
            raise
        throttle.succeeded(keys[:1])  # not the address: signing in to an own account must not reset it
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + dt.timedelta(hours=ui.session_hours)
        session.add(WebSession(id=hash_token(token), user_id=who.id, csrf=csrf, created_at=now, last_seen_at=now,
                               expires_at=expires, address=address, user_agent=(user_agent or "")[:300] or None))
        session.commit()
    audit.record(engine, who.actor, "ui.login", "ok", address=address)
    return SignedIn(token, csrf, who, expires)


@dataclass(frozen=True)
class Current:
    """A live session: its person's principal and the CSRF token its form posts carry."""

    principal: Principal
    csrf: str
    session_id: str


def current(session: Session, ui: UiSettings, token: str | None, address: str | None = None) -> Current:
    """The session of a cookie's token, re-checked against its account; `Unauthenticated` when it has
    ended (expired, signed out, account disabled or changed)."""
    if not token:
        raise Unauthenticated("Not signed in.")
    row = session.get(WebSession, hash_token(token))
    now = utcnow()
    if row is None or row.expires_at.replace(tzinfo=dt.UTC) <= now \
            or row.created_at.replace(tzinfo=dt.UTC) + dt.timedelta(days=ui.session_max_days) <= now:
        raise Unauthenticated("The session has ended: sign in again.")
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        session.delete(row)
        session.commit()
        raise Unauthenticated("The session has ended: sign in again.")
    if now - row.last_seen_at.replace(tzinfo=dt.UTC) >= _TOUCH_EVERY:
        row.last_seen_at = now
        row.expires_at = now + dt.timedelta(hours=ui.session_hours)
        session.add(row)
        session.commit()
    return Current(user_principal(user).at(address), row.csrf, row.id)


def check_csrf(session: Session, ui: UiSettings, token: str | None, csrf: str | None) -> Current:
    """The session, if the form post carries its CSRF token; else `Unauthenticated`/`Forbidden`."""

    now = current(session, ui, token)
    if not csrf or not secrets.compare_digest(csrf, now.csrf):
        raise Forbidden("The form was not sent from this site's page (missing or wrong CSRF token).",
                        who=now.principal, action="ui.csrf")
    return now


def sign_out(engine: Engine, token: str | None, actor: str, address: str | None) -> None:
    if not token:
        return
    with Session(engine) as session:
        session.exec(delete(WebSession).where(col(WebSession.id) == hash_token(token)))
        session.commit()
    audit.record(engine, actor, "ui.logout", "ok", address=address)


def end_sessions(session: Session, user_id: int, keep: str | None = None) -> None:
    """End every session of a person (but `keep`): after a password change, a reset or disabling."""
    query = delete(WebSession).where(col(WebSession.user_id) == user_id)
    if keep is not None:
        query = query.where(col(WebSession.id) != keep)
    session.exec(query)


def change_own_password(ctx: Ctx, session_id: str, current_password: str, new_password: str) -> None:
    """The signed-in person's new password; every other session of theirs ends."""
    user = ctx.session.exec(select(User).where(User.id == ctx.who.id)).first()
    if ctx.who.kind != "user" or user is None:
        raise Invalid("Only a person can change their password.")
    try:
        _hasher.verify(user.password_hash, current_password)
    except Exception:  # argon2's VerificationError / InvalidHashError
        ctx.audit("user.password", "refused", target=user.username, detail="wrong current password")
        raise Invalid("The current password is wrong.", code="wrong_current_password") from None
    _check_password(new_password)
    user.password_hash = hash_password(new_password)
    ctx.session.add(user)
    end_sessions(ctx.session, user.id or 0, keep=session_id)
    ctx.session.commit()
    ctx.audit("user.password", target=user.username)
