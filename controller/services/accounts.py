"""People and tokens: accounts with roles (`User`), Argon2id passwords, API tokens owned by a person or
named as a service, and how each becomes the `Principal` the policy judges.

- Users: `create_user`, `list_users`, `update_user` (role, communes, disable, reset password), `authenticate`.
- Tokens: `issue_token` (the one place a token is made: CLI, API, tests), `create_token` (the API's, for
  admins), `list_tokens`, `revoke_token`, `principal_for_token`.

A token is `tt_` + 43 random URL-safe characters (256 bits); only its SHA-256 is stored, which suffices for
a secret of that entropy and keeps each lookup one indexed query. Its rights are its scopes bounded by its
owner's role, and its communes bounded by the owner's: checked when it is made and again at every use, so a
demoted or disabled owner takes the token's rights along.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import field_validator
from sqlmodel import Session, SQLModel, col, func, select

from controller.db.models import ApiToken, Commune, User, utcnow
from controller.errors import Conflict, Forbidden, Hidden, Invalid, NotFound, Unauthenticated
from controller.policy import (
    ROLES,
    SCOPES,
    Principal,
    Right,
    narrow,
    parse_communes,
    parse_rights,
    require,
    require_district,
    role_title,
)

from .context import Ctx, Page

RoleName = Literal["district_admin", "commune_operator", "commune_leader", "emergency_duty", "viewer"]
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
MIN_PASSWORD = 10
TOUCH_EVERY = dt.timedelta(seconds=60)  # last_used_at is written at most this often per token
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _codes(value: str | None) -> frozenset[str] | None:
    return frozenset(value.split()) if value else None


def _joined(codes: frozenset[str] | None) -> str | None:
    return " ".join(sorted(codes)) if codes is not None else None


def _check_communes(session: Session, codes: frozenset[str] | None) -> None:
    if codes is None:
        return
    known = set(session.exec(select(Commune.code)))
    unknown = sorted(codes - known)
    if unknown:
        raise Invalid(f"Unknown commune code(s): {', '.join(unknown)}.")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"A password needs at least {MIN_PASSWORD} characters.", code="password_short",
                      params={"min": MIN_PASSWORD})


# -------------------------------------------------------------------------------------------- users


class UserCreate(SQLModel):
    username: str
    display_name: str
    password: str
    role: RoleName
    communes: list[str] | None = None  # None: every commune (a district admin always has every commune)

    @field_validator("username")
    @classmethod
    def _username(cls, v: str) -> str:
        if not USERNAME.match(v):
            raise ValueError("3-64 characters: lower-case letters, digits, '.', '_' and '-'")
        return v


class UserUpdate(SQLModel):
    display_name: str | None = None
    role: RoleName | None = None
    communes: list[str] | None = None
    all_communes: bool = False  # set communes to every commune (None cannot say it in a PATCH)
    disabled: bool | None = None
    password: str | None = None


class UserPublic(SQLModel):
    id: int
    username: str
    display_name: str
    role: str
    role_title: str
    communes: list[str] | None
    disabled: bool
    last_login_at: dt.datetime | None
    created_at: dt.datetime


class UsersPublic(SQLModel):
    data: list[UserPublic]
    count: int


def _user_public(u: User) -> UserPublic:
    assert u.id is not None
    codes = _codes(u.communes)
    return UserPublic(id=u.id, username=u.username, display_name=u.display_name, role=u.role,
                      role_title=role_title(u.role), communes=sorted(codes) if codes is not None else None,
                      disabled=u.disabled, last_login_at=u.last_login_at, created_at=u.created_at)


def add_user(session: Session, body: UserCreate, created_by: str) -> User:
    """Make an account (no rights check: the CLI's, and `create_user`'s after its check)."""
    _check_password(body.password)
    codes = None if ROLES[body.role].district else parse_communes(body.communes) if body.communes is not None else None
    _check_communes(session, codes)
    if session.exec(select(User).where(User.username == body.username)).first():
        raise Conflict(f"The username {body.username!r} is taken.", code="username_taken",
                       params={"username": body.username})
    user = User(username=body.username, display_name=body.display_name.strip() or body.username,
                password_hash=hash_password(body.password), role=body.role, communes=_joined(codes),
                created_by=created_by)
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def create_user(ctx: Ctx, body: UserCreate) -> UserPublic:
    require_district(ctx.who, Right.ADMIN, "user.create")
    try:
        user = add_user(ctx.session, body, ctx.who.actor)
    except ValueError as e:
        raise Invalid(str(e)) from None
    ctx.audit("user.create", target=user.username, detail=f"role={user.role}; communes={user.communes or 'all'}")
    return _user_public(user)


def list_users(ctx: Ctx, page: Page) -> UsersPublic:
    require_district(ctx.who, Right.ADMIN, "user.list")
    q = select(User)
    count = ctx.session.exec(select(func.count()).select_from(q.subquery())).one()
    rows = ctx.session.exec(page.apply(q.order_by(col(User.id)))).all()
    return UsersPublic(data=[_user_public(u) for u in rows], count=count)


def update_user(ctx: Ctx, uid: int, body: UserUpdate) -> UserPublic:
    require_district(ctx.who, Right.ADMIN, "user.update")
    user = ctx.session.get(User, uid)
    if user is None:
        raise NotFound(f"No user {uid}.")
    changed = []
    if body.display_name is not None:
        user.display_name = body.display_name.strip() or user.display_name
        changed.append("display_name")
    if body.role is not None:
        if (ROLES[user.role].district and not ROLES[body.role].district and user.communes is None
                and body.communes is None and not body.all_communes):
            # A district role keeps no communes (it has them all): leaving it silently would leave a
            # commune role over the whole district.
            raise Invalid(f"{user.username} leaves a district role: name their communes (or all_communes: true).")
        user.role = body.role
        changed.append(f"role={body.role}")
    if body.all_communes or body.communes is not None:
        try:
            codes = None if body.all_communes else parse_communes(body.communes)
        except ValueError as e:
            raise Invalid(str(e)) from None
        _check_communes(ctx.session, codes)
        user.communes = _joined(codes)
        changed.append(f"communes={user.communes or 'all'}")
    if ROLES[user.role].district:
        user.communes = None
    if body.disabled is not None:
        user.disabled = body.disabled
        changed.append(f"disabled={body.disabled}")
    if body.password is not None:
        _check_password(body.password)
        user.password_hash = hash_password(body.password)
        changed.append("password reset")
    if body.disabled or body.password is not None or body.role is not None or body.all_communes \
            or body.communes is not None:
        from .sessions import end_sessions  # sessions imports this module

        end_sessions(ctx.session, uid)  # signed in under the old rights: signs in again
    ctx.session.add(user)
    ctx.session.commit()
    ctx.session.refresh(user)
    ctx.audit("user.update", target=user.username, detail="; ".join(changed))
    return _user_public(user)


def user_principal(user: User) -> Principal:
    assert user.id is not None
    return Principal.for_user(user.id, user.username, user.role, _codes(user.communes))


def authenticate(session: Session, username: str, password: str, address: str | None = None) -> Principal:
    """The person's principal, if the password is theirs and the account is enabled. The same answer for a
    wrong name and a wrong password (and the same Argon2 cost), so names cannot be probed."""
    user = session.exec(select(User).where(User.username == username)).first()
    try:
        _hasher.verify(user.password_hash if user else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        raise Unauthenticated("Wrong username or password.") from None
    if user is None or user.disabled:
        raise Unauthenticated("Wrong username or password." if user is None else "This account is disabled.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    session.add(user)
    session.commit()
    return user_principal(user).at(address)


_DUMMY = _hasher.hash("not a password of anyone's")


# ------------------------------------------------------------------------------------------- tokens


class TokenCreate(SQLModel):
    name: str
    scopes: list[str]
    communes: list[str] | None = None  # None: every commune the creator (and owner) may see
    owner: str | None = None  # a username: the token acts for that person, never beyond their rights
    expires_at: dt.datetime | None = None


class TokenPublic(SQLModel):
    id: int
    name: str
    scopes: list[str]
    communes: list[str] | None
    owner: str | None
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked: bool


class TokenCreated(TokenPublic):
    token: str  # shown only this once


class TokensPublic(SQLModel):
    data: list[TokenPublic]
    count: int


def issue_token(session: Session, name: str, scopes: list[str], communes: list[str] | None = None, *,
                owner: User | None = None, created_by: str = "cli",
                expires_at: dt.datetime | None = None) -> tuple[ApiToken, str]:
    """Make a token (ValueError for unknown scopes or communes, an empty commune list, rights beyond the
    owner's). Returns the row and the token, which is stored only as its hash."""
    rights = parse_rights(scopes)
    codes = parse_communes(communes)
    known = set(session.exec(select(Commune.code)))
    unknown = sorted((codes or frozenset()) - known)
    if unknown:
        raise ValueError(f"unknown commune code(s): {', '.join(unknown)}")
    if owner is not None:
        mine = user_principal(owner)
        beyond = sorted(r.value for r in rights if not mine.has(r))
        if beyond:
            raise ValueError(f"a token never has more rights than its owner: {owner.username} "
                             f"({role_title(owner.role)}) lacks {', '.join(beyond)}")
        if mine.communes is not None:
            outside = sorted((codes or known) - mine.communes)
            if codes is not None and outside:
                raise ValueError(f"{owner.username} does not work in {', '.join(outside)}")
            codes = narrow(codes, mine.communes)
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValueError("expires_at needs a UTC offset")
    token = "tt_" + secrets.token_urlsafe(32)
    row = ApiToken(name=name, token_hash=hash_token(token), scopes=" ".join(sorted(rights)),
                   communes=_joined(codes), owner_id=owner.id if owner else None, created_by=created_by,
                   expires_at=expires_at)
    session.add(row)
    session.commit()
    session.refresh(row)
    return row, token


def _token_public(session: Session, t: ApiToken, model: type[TokenPublic] = TokenPublic, **extra: str) -> TokenPublic:
    assert t.id is not None
    owner = session.get(User, t.owner_id) if t.owner_id else None
    codes = _codes(t.communes)
    return model(id=t.id, name=t.name, scopes=t.scopes.split(), communes=sorted(codes) if codes is not None else None,
                 owner=owner.username if owner else None, created_by=t.created_by, created_at=t.created_at,
                 expires_at=t.expires_at, last_used_at=t.last_used_at, revoked=t.revoked, **extra)


def create_token(ctx: Ctx, body: TokenCreate) -> TokenCreated:
    """An admin makes a token; never wider than the admin's own communes."""
    require(ctx.who, Right.ADMIN, "token.create")
    owner = None
    if body.owner is not None:
        owner = ctx.session.exec(select(User).where(User.username == body.owner)).first()
        if owner is None or owner.disabled:
            raise Invalid(f"No enabled user {body.owner!r} to own the token.")
    expires_at = body.expires_at
    if ctx.who.kind == "token":  # a token making a token: the child never outlives nor outranks its parent
        parent = ctx.session.get(ApiToken, ctx.who.id)
        if parent is not None:
            if parent.expires_at is not None:
                cap = parent.expires_at if parent.expires_at.tzinfo else parent.expires_at.replace(tzinfo=dt.UTC)
                expires_at = min(expires_at, cap) if expires_at is not None else cap
            if owner is None and parent.owner_id is not None:
                owner = ctx.session.get(User, parent.owner_id)
    communes = body.communes
    if ctx.who.communes is not None:
        asked = frozenset(communes) if communes is not None else ctx.who.communes
        if not asked <= ctx.who.communes:
            raise Forbidden("A token cannot reach communes its creator does not.", who=ctx.who,
                            action="token.create")
        communes = sorted(asked)
    try:
        row, token = issue_token(ctx.session, body.name.strip() or "token", body.scopes, communes, owner=owner,
                                 created_by=ctx.who.actor, expires_at=expires_at)
    except ValueError as e:
        message = str(e)[:1].upper() + str(e)[1:] + "."
        beyond = "more rights than its owner" in message or "does not work in" in message
        if beyond:
            ctx.audit("token.create", "refused", target=body.name[:60], detail=message)
        raise Invalid(message, code="token_beyond_owner" if beyond else None,
                      params={"owner": owner.username if owner else ""}) from None
    ctx.audit("token.create", target=f"token:{row.id}:{row.name}",
              detail=f"scopes={row.scopes}; communes={row.communes or 'all'}; owner={body.owner or '-'}")
    created = _token_public(ctx.session, row, TokenCreated, token=token)
    assert isinstance(created, TokenCreated)
    return created


def list_tokens(ctx: Ctx, page: Page) -> TokensPublic:
    require_district(ctx.who, Right.ADMIN, "token.list")
    q = select(ApiToken)
    count = ctx.session.exec(select(func.count()).select_from(q.subquery())).one()
    rows = ctx.session.exec(page.apply(q.order_by(col(ApiToken.id)))).all()
    return TokensPublic(data=[_token_public(ctx.session, t) for t in rows], count=count)


def revoke(session: Session, tid: int) -> ApiToken | None:
    row = session.get(ApiToken, tid)
    if row is None:
        return None
    if not row.revoked:
        row.revoked, row.revoked_at = True, utcnow()
        session.add(row)
        session.commit()
    return row


def revoke_token(ctx: Ctx, tid: int) -> None:
    require(ctx.who, Right.ADMIN, "token.revoke")
    row = ctx.session.get(ApiToken, tid)
    if row is None:
        raise NotFound(f"No token {tid}.")
    if not ctx.who.may_touch_all(_codes(row.communes)):
        raise Hidden(f"No token {tid}.", who=ctx.who, action="token.revoke")
    revoke(ctx.session, tid)
    ctx.audit("token.revoke", target=f"token:{tid}:{row.name}")


def principal_for_token(session: Session, token: str, address: str | None = None) -> Principal:
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    now = utcnow()
    if row is None or row.id is None:
        raise Unauthenticated("Invalid or revoked token.", headers={"WWW-Authenticate": "Bearer"})
    # A token we know but refuse is named in the audit row (with no rights), so its use can be traced.
    known = Principal("token", row.id, row.name, frozenset(), frozenset(), address=address)
    if row.revoked:
        raise Unauthenticated("Invalid or revoked token.", who=known, headers={"WWW-Authenticate": "Bearer"})
    expires = row.expires_at
    if expires is not None and (expires if expires.tzinfo else expires.replace(tzinfo=dt.UTC)) <= now:
        raise Unauthenticated("This token has expired.", who=known, headers={"WWW-Authenticate": "Bearer"})
    owner = None
    if row.owner_id is not None:
        user = session.get(User, row.owner_id)
        if user is None or user.disabled:
            raise Unauthenticated("This token's owner is disabled.", who=known,
                                  headers={"WWW-Authenticate": "Bearer"})
        owner = user_principal(user)
    last = row.last_used_at
    if last is None or now - (last if last.tzinfo else last.replace(tzinfo=dt.UTC)) > TOUCH_EVERY:
        row.last_used_at = now
        session.add(row)
        session.commit()
    rights = frozenset(Right(s) for s in row.scopes.split() if s in SCOPES)
    return Principal.for_token(row.id, row.name, rights, _codes(row.communes), owner).at(address)
