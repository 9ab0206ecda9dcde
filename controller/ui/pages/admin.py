"""Quản trị (district admins): accounts — list, create, edit the role and communes, disable / enable, reset the
password — and API tokens — create with scopes and communes (the token is shown once), list, revoke.

Everything goes through `services.accounts` (`create_user`, `update_user`, `list_users`, `create_token`,
`list_tokens`, `revoke_token`), which refuse anyone but a district admin and audit every change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from nicegui import ui
from pydantic import ValidationError

from controller.policy import ROLES, SCOPES, Right
from controller.services import Page
from controller.services.accounts import (
    MIN_PASSWORD,
    USERNAME,
    TokenCreate,
    TokenPublic,
    UserCreate,
    UserPublic,
    UserUpdate,
    create_token,
    create_user,
    list_tokens,
    list_users,
    revoke_token,
    update_user,
)
from controller.services.communes import list_communes

from .. import paths
from ..fmt import datetime_vi
from ..i18n import t
from ..shell import Staff, staff_page

ALL = Page(limit=1000)
EXPIRY_DAYS = (30, 90, 365)


def _communes_text(codes: list[str] | None, names: dict[str, str]) -> str:
    return t("admin.all_communes") if codes is None else ", ".join(names.get(c, c) for c in codes)


def _names(staff: Staff) -> dict[str, str]:
    with staff.ctx() as ctx:
        return {c.code: c.name for c in list_communes(ctx, ALL).data}


def _confirm(title: str, text: str, button: str, color: str, action: Callable[[], None], staff: Staff,
             testid: str) -> None:
    with ui.dialog() as dialog, ui.card().classes("w-full max-w-md gap-3"):
        ui.label(title).classes("text-h6").style("overflow-wrap:anywhere")
        ui.label(text)

        def go() -> None:
            action()
            dialog.close()

        with ui.row().classes("w-full justify-end gap-2"):
            ui.button(t("common.cancel"), on_click=dialog.close).props("flat")
            ui.button(button, on_click=staff.act(go, testid)).props(f"color={color} data-testid={testid}")
    dialog.open()


# -------------------------------------------------------------------------------------------- accounts


class UserForm:
    """The fields of an account: role by its Vietnamese title; for a commune role, its communes (or every
    commune, as an emergency duty officer or a district viewer has); a district role has them all."""

    def __init__(self, names: dict[str, str], user: UserPublic | None = None) -> None:
        self.role = ui.select({name: role.title for name, role in ROLES.items()}, label=t("admin.role"),
                              value=user.role if user else "commune_operator").classes("w-full").props(
            "outlined data-testid=user-role")
        everywhere = user is not None and user.communes is None and not ROLES[user.role].district
        self.everywhere = ui.checkbox(t("admin.every_commune"), value=everywhere).props(
            "data-testid=user-every-commune")
        self.communes = ui.select(names, label=t("admin.communes"), multiple=True,
                                  value=list(user.communes or []) if user else []).classes("w-full").props(
            "outlined use-chips data-testid=user-communes")
        self.role.on_value_change(self._shown)
        self.everywhere.on_value_change(self._shown)
        self._shown()

    def _shown(self) -> None:
        district = ROLES[self.role.value].district
        self.everywhere.set_visibility(not district)
        self.communes.set_visibility(not district and not self.everywhere.value)

    def communes_value(self) -> list[str] | None:
        """None for every commune; else the chosen communes (a message, and ValueError, when none is)."""
        if ROLES[self.role.value].district or self.everywhere.value:
            return None
        chosen = list(self.communes.value or [])
        if not chosen:
            ui.notify(t("admin.communes_needed"), type="warning")
            raise ValueError("no commune chosen")
        return chosen


@staff_page(paths.USERS, Right.ADMIN, "admin.users_title")
def users(staff: Staff) -> None:
    names = _names(staff)
    with ui.row().classes("w-full items-center justify-between gap-2"):
        ui.label(t("admin.users_title")).classes("text-h5")
        new = ui.button(t("admin.new_user"), icon="person_add").props("no-caps color=teal-8 data-testid=new-user")
    search = ui.input(t("admin.search")).classes("w-full sm:w-72").props("outlined dense clearable")
    box = ui.element("div").classes("grid gap-2 w-full grid-cols-1 md:grid-cols-2 xl:grid-cols-3")

    def draw() -> None:
        with staff.ctx() as ctx:
            rows = list_users(ctx, ALL).data
        text = (search.value or "").strip().lower()
        box.clear()
        with box:
            for user in rows:
                if text and text not in user.username.lower() and text not in user.display_name.lower():
                    continue
                _user_card(user)

    def _user_card(user: UserPublic) -> None:
        me = user.username == staff.who.name and staff.who.kind == "user"
        with ui.card().classes("w-full gap-1").props(f"data-testid=user-{user.username}"):
            with ui.row().classes("w-full items-center justify-between gap-2"):
                with ui.column().classes("gap-0 min-w-0"):
                    ui.label(f"{user.display_name} {t('admin.you') if me else ''}").classes(
                        "text-subtitle1 font-bold").style("overflow-wrap:anywhere")
                    ui.label(user.username).classes("text-caption text-grey-7")
                ui.badge(t("admin.disabled") if user.disabled else t("admin.active"),
                         color="negative" if user.disabled else "positive").props(
                    f"data-testid=user-state-{user.username}")
            ui.label(f"{t('admin.role')}: {user.role_title}").classes("text-sm")
            ui.label(f"{t('admin.communes')}: {_communes_text(user.communes, names)}").classes("text-sm").style(
                "overflow-wrap:anywhere")
            ui.label(f"{t('admin.last_login')}: "
                     + (datetime_vi(user.last_login_at) if user.last_login_at else t("admin.never"))).classes(
                "text-caption text-grey-7")
            with ui.row().classes("gap-1"):
                ui.button(t("admin.edit"), icon="edit", on_click=staff.act(lambda: edit(user), "edit user")).props(
                    f"flat dense no-caps color=teal-8 data-testid=edit-{user.username}")
                ui.button(t("admin.reset"), icon="password",
                          on_click=staff.act(lambda: reset(user), "reset password")).props(
                    f"flat dense no-caps color=teal-8 data-testid=reset-{user.username}")
                if not me:
                    label = t("admin.enable") if user.disabled else t("admin.disable")
                    ui.button(label, icon="lock_open" if user.disabled else "lock",
                              on_click=staff.act(lambda: toggle(user), "disable user")).props(
                        f"flat dense no-caps color={'positive' if user.disabled else 'negative'} "
                        f"data-testid=toggle-{user.username}")

    def create() -> None:
        with ui.dialog() as dialog, ui.card().classes("w-full max-w-md gap-2"):
            ui.label(t("admin.new_user")).classes("text-h6")
            username = ui.input(t("admin.username")).classes("w-full").props(
                "outlined autocomplete=off data-testid=user-username")
            ui.label(t("admin.username_hint")).classes("text-caption text-grey-7")
            display = ui.input(t("admin.display_name")).classes("w-full").props(
                "outlined data-testid=user-display")
            password = ui.input(t("admin.password"), password=True, password_toggle_button=True).classes(
                "w-full").props("outlined autocomplete=new-password data-testid=user-password")
            ui.label(t("admin.password_hint", min=MIN_PASSWORD)).classes("text-caption text-grey-7")
            form = UserForm(names)

            def save() -> None:
                name = (username.value or "").strip()
                if not USERNAME.match(name):
                    ui.notify(t("admin.bad_username"), type="warning")
                    return
                try:
                    communes = form.communes_value()
                    body = UserCreate(username=name, display_name=(display.value or "").strip() or name,
                                      password=password.value or "", role=form.role.value, communes=communes)
                except (ValueError, ValidationError):
                    return
                with staff.ctx() as ctx:
                    made = create_user(ctx, body)
                dialog.close()
                ui.notify(t("admin.created_done", username=made.username), type="positive")
                draw()

            with ui.row().classes("w-full justify-end gap-2"):
                ui.button(t("common.cancel"), on_click=dialog.close).props("flat")
                ui.button(t("admin.create"), on_click=staff.act(save, "create user")).props(
                    "color=teal-8 data-testid=user-save")
        dialog.open()

    def edit(user: UserPublic) -> None:
        with ui.dialog() as dialog, ui.card().classes("w-full max-w-md gap-2"):
            ui.label(t("admin.edit_title", username=user.username)).classes("text-h6")
            display = ui.input(t("admin.display_name"), value=user.display_name).classes("w-full").props("outlined")
            form = UserForm(names, user)

            def save() -> None:
                try:
                    communes = form.communes_value()
                except ValueError:
                    return
                body = UserUpdate(display_name=(display.value or "").strip() or None, role=form.role.value,
                                  communes=communes, all_communes=communes is None)
                with staff.ctx() as ctx:
                    update_user(ctx, user.id, body)
                dialog.close()
                ui.notify(t("admin.updated_done", username=user.username), type="positive")
                draw()

            with ui.row().classes("w-full justify-end gap-2"):
                ui.button(t("common.cancel"), on_click=dialog.close).props("flat")
                ui.button(t("common.save"), on_click=staff.act(save, "edit user")).props(
                    "color=teal-8 data-testid=user-save")
        dialog.open()

    def reset(user: UserPublic) -> None:
        with ui.dialog() as dialog, ui.card().classes("w-full max-w-md gap-2"):
            ui.label(t("admin.reset_title", username=user.username)).classes("text-h6")
            ui.label(t("admin.reset_text")).classes("text-sm")
            password = ui.input(t("admin.new_password"), password=True, password_toggle_button=True).classes(
                "w-full").props("outlined autocomplete=new-password data-testid=reset-password")
            ui.label(t("admin.password_hint", min=MIN_PASSWORD)).classes("text-caption text-grey-7")

            def save() -> None:
                with staff.ctx() as ctx:
                    update_user(ctx, user.id, UserUpdate(password=password.value or ""))
                dialog.close()
                ui.notify(t("admin.reset_done", username=user.username), type="positive")

            with ui.row().classes("w-full justify-end gap-2"):
                ui.button(t("common.cancel"), on_click=dialog.close).props("flat")
                ui.button(t("admin.reset"), on_click=staff.act(save, "reset password")).props(
                    "color=teal-8 data-testid=reset-save")
        dialog.open()

    def toggle(user: UserPublic) -> None:
        disabling = not user.disabled

        def apply() -> None:
            with staff.ctx() as ctx:
                update_user(ctx, user.id, UserUpdate(disabled=disabling))
            ui.notify(t("admin.disabled_done" if disabling else "admin.enabled_done", username=user.username),
                      type="positive")
            draw()

        word = "disable" if disabling else "enable"
        _confirm(t(f"admin.{word}_title", username=user.username), t(f"admin.{word}_text"), t(f"admin.{word}"),
                 "negative" if disabling else "positive", apply, staff, "toggle-confirm")

    new.on_click(staff.act(create, "new user"))
    search.on_value_change(staff.act(draw, "search users"))
    draw()


# ---------------------------------------------------------------------------------------------- tokens


def _token_state(tok: TokenPublic, now: dt.datetime) -> tuple[str, str]:
    if tok.revoked:
        return "revoked", "grey-7"
    expires = tok.expires_at
    if expires is not None and (expires if expires.tzinfo else expires.replace(tzinfo=dt.UTC)) <= now:
        return "expired", "orange-8"
    return "valid", "positive"


def _scopes_text(scopes: list[str]) -> str:
    return ", ".join(t(f"admin.right.{s}") if s in SCOPES else s for s in scopes)


@staff_page(paths.TOKENS, Right.ADMIN, "admin.tokens_title")
def tokens(staff: Staff) -> None:
    names = _names(staff)
    with ui.row().classes("w-full items-center justify-between gap-2"):
        ui.label(t("admin.tokens_title")).classes("text-h5")
        new = ui.button(t("admin.new_token"), icon="add").props("no-caps color=teal-8 data-testid=new-token")
    box = ui.element("div").classes("grid gap-2 w-full grid-cols-1 md:grid-cols-2 xl:grid-cols-3")

    def draw() -> None:
        with staff.ctx() as ctx:
            rows = list_tokens(ctx, ALL).data
        now = dt.datetime.now(dt.UTC)
        box.clear()
        with box:
            if not rows:
                ui.label(t("admin.nothing_tokens")).classes("text-grey-7 col-span-full")
            for tok in reversed(rows):  # newest first
                _token_card(tok, now)

    def _token_card(tok: TokenPublic, now: dt.datetime) -> None:
        state, color = _token_state(tok, now)
        with ui.card().classes("w-full gap-1").props(f"data-testid=token-{tok.id}"):
            with ui.row().classes("w-full items-center justify-between gap-2 no-wrap"):
                ui.label(tok.name).classes("text-subtitle1 font-bold min-w-0").style("overflow-wrap:anywhere")
                ui.badge(t(f"admin.{state}"), color=color).props(f"data-testid=token-state-{tok.id}")
            ui.label(f"{t('admin.scopes')}: {_scopes_text(tok.scopes)}").classes("text-sm").style(
                "overflow-wrap:anywhere")
            ui.label(f"{t('admin.token_communes')}: {_communes_text(tok.communes, names)}").classes("text-sm")
            if tok.owner:
                ui.label(f"{t('admin.owner')}: {tok.owner}").classes("text-sm")
            ui.label(f"{t('admin.created')}: {datetime_vi(tok.created_at)} · {t('admin.expires')}: "
                     + (datetime_vi(tok.expires_at) if tok.expires_at else t("admin.expires_never"))
                     + f" · {t('admin.last_used')}: {datetime_vi(tok.last_used_at)}").classes(
                "text-caption text-grey-7")
            if state != "revoked":
                ui.button(t("admin.revoke"), icon="block", on_click=staff.act(lambda: revoke(tok), "revoke token"))\
                    .props(f"flat dense no-caps color=negative data-testid=revoke-{tok.id}")

    def revoke(tok: TokenPublic) -> None:
        def apply() -> None:
            with staff.ctx() as ctx:
                revoke_token(ctx, tok.id)
            ui.notify(t("admin.revoked_done", name=tok.name), type="positive")
            draw()

        _confirm(t("admin.revoke_title", name=tok.name), t("admin.revoke_text"), t("admin.revoke"), "negative",
                 apply, staff, "revoke-confirm")

    def shown_once(name: str, token: str) -> None:
        with ui.dialog().props("persistent") as dialog, ui.card().classes("w-full max-w-lg gap-3"):
            ui.label(t("admin.token_shown_title", name=name)).classes("text-h6").style("overflow-wrap:anywhere")
            with ui.row().classes("w-full items-center gap-2 no-wrap bg-orange-1 q-pa-sm rounded"):
                ui.icon("warning", color="orange-9")
                ui.label(t("admin.token_shown_warning")).classes("text-body2")
            ui.label(token).classes("font-mono text-body2 bg-grey-2 q-pa-sm rounded w-full").style(
                "overflow-wrap:anywhere; user-select:all").props("data-testid=token-value")

            def copy() -> None:
                ui.clipboard.write(token)
                ui.notify(t("admin.copied"), type="positive")

            with ui.row().classes("w-full justify-end gap-2"):
                ui.button(t("admin.copy"), icon="content_copy", on_click=copy).props(
                    "outline color=teal-8 data-testid=token-copy")
                ui.button(t("admin.token_done"), on_click=dialog.close).props("color=teal-8 data-testid=token-done")
        dialog.open()

    def create() -> None:
        with staff.ctx() as ctx:
            people = {u.username: f"{u.display_name} ({u.username})" for u in list_users(ctx, ALL).data
                      if not u.disabled}
        with ui.dialog() as dialog, ui.card().classes("w-full max-w-lg gap-2"):
            ui.label(t("admin.new_token")).classes("text-h6")
            name = ui.input(t("admin.token_name"), placeholder=t("admin.token_name_hint")).classes("w-full").props(
                "outlined data-testid=token-name")
            ui.label(t("admin.scopes")).classes("text-caption text-grey-7")
            boxes: dict[str, Any] = {}
            for scope in SCOPES:
                boxes[scope] = ui.checkbox(t(f"admin.right.{scope}")).props(
                    f"data-testid=scope-{scope.replace(':', '-')}")
            communes = ui.select(names, label=t("admin.token_communes"), multiple=True, value=[]).classes(
                "w-full").props("outlined use-chips data-testid=token-communes")
            ui.label(t("admin.token_communes_hint")).classes("text-caption text-grey-7")
            owner = ui.select({"": t("admin.owner_none"), **people}, value="", label=t("admin.owner"),
                              with_input=True).classes("w-full").props("outlined data-testid=token-owner")
            ui.label(t("admin.owner_hint")).classes("text-caption text-grey-7")
            expiry = ui.select({0: t("admin.expires_never"), **{d: t("admin.expires_days", days=d)
                                                               for d in EXPIRY_DAYS}},
                               value=0, label=t("admin.expires")).classes("w-full").props("outlined")

            def save() -> None:
                scopes = [s for s, box in boxes.items() if box.value]
                if not scopes:
                    ui.notify(t("admin.scopes_needed"), type="warning")
                    return
                days = int(expiry.value or 0)
                body = TokenCreate(name=(name.value or "").strip() or "token", scopes=scopes,
                                   communes=list(communes.value) or None, owner=owner.value or None,
                                   expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=days) if days else None)
                with staff.ctx() as ctx:
                    made = create_token(ctx, body)
                dialog.close()
                draw()
                shown_once(made.name, made.token)

            with ui.row().classes("w-full justify-end gap-2"):
                ui.button(t("common.cancel"), on_click=dialog.close).props("flat")
                ui.button(t("admin.create"), on_click=staff.act(save, "create token")).props(
                    "color=teal-8 data-testid=token-save")
        dialog.open()

    new.on_click(staff.act(create, "new token"))
    draw()
