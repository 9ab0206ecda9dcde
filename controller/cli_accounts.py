"""`truyenthanh user …` and `truyenthanh token …`: people and API tokens from the command line (the
operator at the server; the web UI and `/api/v1/users`, `/api/v1/tokens` do the same for district admins).

    truyenthanh user add USERNAME --role commune_operator --communes tra-mai [--name "Nguyễn Văn A"]
    truyenthanh user list | disable USERNAME | enable USERNAME | passwd USERNAME
    truyenthanh token create --scopes receivers:read,emergency:trigger [--communes tra-nu] [--owner U]
                             [--expires-days 90] [--name NAME]
    truyenthanh token list | revoke ID
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from controller.config import Settings
from controller.policy import ROLES, SCOPES

if TYPE_CHECKING:
    from sqlmodel import Session

user_app = typer.Typer(help="People's accounts (roles: " + ", ".join(ROLES) + ").", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)


def _session() -> Session:
    from sqlmodel import Session

    from controller.db import make_engine, migrate

    engine = make_engine(Settings().db_url)
    migrate(engine)
    return Session(engine)


def _audit(s: Session, action: str, target: str, detail: str = "") -> None:
    from controller.db.models import AuditEntry

    s.add(AuditEntry(actor="cli", action=action, target=target, outcome="ok", detail=detail or None))
    s.commit()


def _communes(value: str | None) -> list[str] | None:
    """None: every commune. `--communes ","` (a list with nothing in it) is refused by the policy."""
    return None if value is None else value.split(",")


def _password(prompt: str) -> str:
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))


@user_app.command("add")
def user_add(
    username: str,
    role: Annotated[str, typer.Option(help=", ".join(f"{k} ({v.title})" for k, v in ROLES.items()))],
    communes: Annotated[str | None, typer.Option(help="comma-separated commune codes (default: every commune)")]
    = None,
    name: Annotated[str | None, typer.Option(help="the person's name as staff read it")] = None,
    password: Annotated[str | None, typer.Option(help="default: asked for (never echoed)")] = None,
) -> None:
    """Create an account."""
    from controller.services.accounts import UserCreate, add_user

    if role not in ROLES:
        raise typer.BadParameter(f"choose one of {', '.join(ROLES)}", param_hint="--role")
    with _session() as s:
        try:
            body = UserCreate(username=username, display_name=name or username, role=role,  # type: ignore[arg-type]
                              password=password or _password("Password"), communes=_communes(communes))
            user = add_user(s, body, "cli")
        except ValueError as e:  # pydantic's ValidationError is one
            raise typer.BadParameter(str(e)) from None
        except Exception as e:
            if type(e).__module__ == "controller.errors":
                raise typer.BadParameter(str(e)) from None
            raise
        _audit(s, "user.create", user.username, f"role={user.role}; communes={user.communes or 'all'}")
        typer.echo(f"user {user.username} ({ROLES[user.role].title}, communes: {user.communes or 'all'})")


@user_app.command("list")
def user_list() -> None:
    """Every account, with its role and communes."""
    from sqlmodel import col, select

    from controller.db.models import User

    with _session() as s:
        for u in s.exec(select(User).order_by(col(User.id))):
            state = "disabled" if u.disabled else "enabled"
            seen = f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "never"
            typer.echo(f"{u.id:4}  {u.username:20} {u.role:17} {u.communes or 'all':30} {state:8} last login {seen}")


def _set_disabled(username: str, disabled: bool) -> None:
    from sqlmodel import select

    from controller.db.models import User

    with _session() as s:
        user = s.exec(select(User).where(User.username == username)).first()
        if user is None:
            raise typer.BadParameter(f"no user {username!r}")
        user.disabled = disabled
        s.add(user)
        s.commit()
        _audit(s, "user.update", username, f"disabled={disabled}")
    typer.echo(f"{username}: {'disabled (its tokens stop working too)' if disabled else 'enabled'}")


@user_app.command("disable")
def user_disable(username: str) -> None:
    """Disable an account: it can no longer log in, and tokens it owns stop working."""
    _set_disabled(username, True)


@user_app.command("enable")
def user_enable(username: str) -> None:
    _set_disabled(username, False)


@user_app.command("passwd")
def user_passwd(username: str, password: Annotated[str | None, typer.Option(help="default: asked for")] = None) -> None:
    """Set a new password."""
    from sqlmodel import select

    from controller.db.models import User
    from controller.services.accounts import MIN_PASSWORD, hash_password

    with _session() as s:
        user = s.exec(select(User).where(User.username == username)).first()
        if user is None:
            raise typer.BadParameter(f"no user {username!r}")
        new = password or _password("New password")
        if len(new) < MIN_PASSWORD:
            raise typer.BadParameter(f"a password needs at least {MIN_PASSWORD} characters")
        user.password_hash = hash_password(new)
        s.add(user)
        s.commit()
        _audit(s, "user.update", username, "password reset")
    typer.echo(f"{username}: password changed")


@token_app.command("create")
def token_create(
    scopes: Annotated[str, typer.Option(help="comma-separated: " + ", ".join(SCOPES))],
    communes: Annotated[str | None, typer.Option(help="comma-separated commune codes (default: every commune)")]
    = None,
    name: Annotated[str, typer.Option(help="who or what the token is for")] = "cli",
    owner: Annotated[str | None, typer.Option(help="a username: the token never exceeds that person's rights")]
    = None,
    expires_days: Annotated[float | None, typer.Option(help="the token stops working after this many days")]
    = None,
) -> None:
    """Create an API token and print it (it is shown only this once)."""
    from sqlmodel import select

    from controller.db.models import User
    from controller.services.accounts import issue_token

    with _session() as s:
        user = None
        if owner is not None:
            user = s.exec(select(User).where(User.username == owner)).first()
            if user is None or user.disabled:
                raise typer.BadParameter(f"no enabled user {owner!r}", param_hint="--owner")
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_days) if expires_days else None
        try:
            row, token = issue_token(s, name, scopes.split(","), _communes(communes), owner=user, expires_at=expires)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
        _audit(s, "token.create", f"token:{row.id}:{name}",
               f"scopes={row.scopes}; communes={row.communes or 'all'}; owner={owner or '-'}")
    typer.echo(token)


@token_app.command("list")
def token_list() -> None:
    """Every token (never the secret itself): scopes, communes, owner, expiry, last use."""
    from sqlmodel import col, select

    from controller.db.models import ApiToken

    with _session() as s:
        for t in s.exec(select(ApiToken).order_by(col(ApiToken.id))):
            state = "revoked" if t.revoked else (f"expires {t.expires_at:%Y-%m-%d}" if t.expires_at else "active")
            used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
            typer.echo(f"{t.id:4}  {t.name:24} {t.scopes:50} {t.communes or 'all':20} {state:18} used {used}")


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke a token: it gets 401 from then on."""
    from controller.services.accounts import revoke

    with _session() as s:
        row = revoke(s, token_id)
        if row is None:
            raise typer.BadParameter(f"no token {token_id}")
        name = row.name
        _audit(s, "token.revoke", f"token:{token_id}:{name}")
    typer.echo(f"token {token_id} ({name}) revoked")
