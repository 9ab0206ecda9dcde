"""Tài khoản của tôi: who I am, my role and communes, change my password."""

from __future__ import annotations

from nicegui import ui

from controller.services.sessions import change_own_password

from .. import paths
from ..i18n import t
from ..shell import Staff, staff_page


@staff_page(paths.ACCOUNT, None, "login.my_account")
def account(staff: Staff) -> None:
    who = staff.who
    ui.label(t("login.my_account")).classes("text-h5")
    with ui.card().classes("w-full max-w-md gap-1"):
        ui.label(who.name).classes("text-subtitle1 font-bold")
        ui.label(f"{t('login.role')}: {t(f'common.role.{who.role}') if who.role else ''}")
        ui.label(f"{t('login.communes')}: "
                 + (t("common.district") if who.communes is None else ", ".join(sorted(who.communes))))
    with ui.card().classes("w-full max-w-md gap-2"):
        ui.label(t("login.change_password")).classes("text-subtitle1 font-bold")
        current = ui.input(t("login.current_password"), password=True).props("autocomplete=current-password")
        new = ui.input(t("login.new_password"), password=True).props("autocomplete=new-password")
        again = ui.input(t("login.repeat_password"), password=True).props("autocomplete=new-password")
        ui.label(t("login.password_rule")).classes("text-caption text-grey-7")

        def change() -> None:
            if new.value != again.value:
                ui.notify(t("login.password_mismatch"), type="warning")
                return
            with staff.ctx() as ctx:
                change_own_password(ctx, staff.session_id, current.value or "", new.value or "")
            for field in (current, new, again):
                field.set_value("")
            ui.notify(t("login.password_changed"), type="positive")

        ui.button(t("login.change_password"), on_click=staff.act(change, "change password")).props("color=teal-8")
