"""Đăng nhập: the sign-in page. Its form posts to /ui/auth/login (controller.ui.auth) with the CSRF token of
the `tt_login_csrf` cookie that came with this page."""

from __future__ import annotations

from html import escape

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from .. import paths
from ..auth import safe_next
from ..i18n import t
from ..shell import STYLE, public_page, signed_in

REASONS = {"wrong": "login.wrong", "disabled": "login.disabled", "csrf": "login.expired_form",
           "ended": "common.session_ended"}


@public_page(paths.LOGIN, "the sign-in form itself", "login.title")
def login_page(request: Request, next: str = paths.HOME, error: str | None = None, info: str | None = None,
               minutes: int = 15) -> RedirectResponse | None:
    if signed_in(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    csrf = request.scope.get("state", {}).get("login_csrf", "")
    ui.add_head_html(STYLE)
    with ui.column().classes("w-full items-center q-pa-md"):
        with ui.card().classes("w-full max-w-sm q-pa-lg gap-3"):
            ui.label(t("common.app_title")).classes("text-subtitle1 text-teal-9 font-bold")
            ui.label(t("login.title")).classes("text-h5")
            ui.label(t("login.hint")).classes("text-grey-8 text-sm")
            if error == "limited":
                ui.label(t("login.limited", minutes=minutes)).classes("text-negative").props("role=alert")
            elif error in REASONS:
                ui.label(t(REASONS[error])).classes("text-negative").props("role=alert")
            if info == "logged_out":
                ui.label(t("login.logged_out")).classes("text-positive")
            ui.html(f"""
<form method="post" action="/ui/auth/login" class="tt-login" autocomplete="on">
  <input type="hidden" name="csrf" value="{escape(csrf)}">
  <input type="hidden" name="next" value="{escape(safe_next(next))}">
  <label>{t("login.username")}<input name="username" autocomplete="username" required autofocus
    autocapitalize="none" spellcheck="false"></label>
  <label>{t("login.password")}<input name="password" type="password" autocomplete="current-password" required>
  </label>
  <button type="submit">{t("login.submit")}</button>
</form>""", sanitize=False).classes("w-full")
    ui.add_head_html("""<style>
.tt-login{display:flex;flex-direction:column;gap:14px;width:100%}
.tt-login label{display:flex;flex-direction:column;gap:4px;font-size:.95rem;color:#333}
.tt-login input{font:inherit;font-size:1rem;padding:10px;border:1px solid #aaa;border-radius:6px}
.tt-login input:focus{outline:2px solid #00897b;border-color:#00897b}
.tt-login button{font:inherit;font-size:1rem;padding:12px;border:0;border-radius:6px;background:#00796b;
  color:#fff;cursor:pointer}
</style>""")
    return None
