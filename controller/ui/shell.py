"""What every staff page shares: who is signed in, the page's policy, the frame (header and menu), and the one
way a page's actions call the services and show what went wrong.

- `staff_page(path, right)`: registers a NiceGUI page that only a signed-in person holding `right` sees
  (`None`: any signed-in person). Each is recorded in `PAGES`; tests/ui/test_page_policy.py fails for a page
  registered any other way. Anyone not signed in is sent to the login page; a person without the right gets
  a "no access" page, and the refusal is audited like the API's.
- `Staff`: handed to the page. `staff.ctx()` opens a service `Ctx` after re-reading the session (a session
  ended meanwhile — signed out, account disabled — refuses at once); `staff.act(fn)` wraps an event handler
  so that a domain error becomes a Vietnamese message on screen (never a stack trace).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui
from sqlmodel import Session

from controller.errors import DomainError, Hidden, NotFound, Refusal, Unauthenticated
from controller.policy import ROLES, Principal, Right
from controller.services import Ctx, audit
from controller.services.sessions import COOKIE, Current, current

from . import host, paths
from .i18n import strings, t

log = logging.getLogger(__name__)

# NiceGUI path → the right its visitors need (None: signed in is enough).
PAGES: dict[str, Right | None] = {}
# NiceGUI path → why anybody may open it (the login page).
PUBLIC_PAGES: dict[str, str] = {}

ERROR_KINDS: list[tuple[type[DomainError], str]] = []  # filled below, most specific first


def explain(e: DomainError) -> str:
    """What a person reads for `e`: its own text when it has a `code` with a text, else its kind's."""
    if e.code and f"errors.{e.code}" in strings():
        return t(f"errors.{e.code}", **e.params)
    for kind, key in ERROR_KINDS:
        if isinstance(e, kind):
            return t(key)
    return t("common.error.unexpected")


def _kinds() -> None:
    from controller import errors as E

    ERROR_KINDS.extend([(E.Unauthenticated, "common.error.unauthenticated"), (E.Hidden, "common.error.not_found"),
                        (E.Forbidden, "common.error.forbidden"), (E.Invalid, "common.error.invalid"),
                        (E.NotFound, "common.error.not_found"), (E.Conflict, "common.error.conflict"),
                        (E.TooLarge, "common.error.too_large"), (E.Unsupported, "common.error.unsupported"),
                        (E.RateLimited, "common.error.rate_limited"), (E.Unavailable, "common.error.unavailable")])


_kinds()


def _address(request: Request | None) -> str | None:
    return request.client.host if request is not None and request.client else None


@dataclass
class Staff:
    """The person on a page (as of the page's loading) and the way its actions reach the services."""

    who: Principal
    csrf: str
    session_id: str
    token: str
    address: str | None

    @property
    def settings(self) -> Any:
        return host.state().settings

    @contextmanager
    def ctx(self) -> Iterator[Ctx]:
        """A service context for one action, with the session re-checked now."""
        state = host.state()
        with Session(state.engine) as session:
            now = current(session, state.settings.ui, self.token, self.address)
            self.who = now.principal
            yield Ctx(session=session, who=now.principal, settings=state.settings, engine=state.engine,
                      bridge=getattr(state, "bridge", None), media=getattr(state, "media", None),
                      tracker=getattr(state, "tracker", None), runner=getattr(state, "runner", None))

    def refused(self, e: DomainError, what: str) -> None:
        if isinstance(e, Refusal):
            who = e.who or self.who
            audit.record(host.state().engine, who.actor, e.action, "refused", target=f"UI {what}",
                         detail=e.message, address=self.address)

    def fail(self, e: BaseException, what: str) -> None:
        """Show `e` to the person (and send them to the login page if their session has ended)."""
        if isinstance(e, DomainError):
            self.refused(e, what)
            ui.notify(explain(e), type="negative", multi_line=True, close_button=t("common.close"))
            if isinstance(e, Unauthenticated):
                ui.navigate.to(paths.page_path(f"{paths.LOGIN}?error=ended"))
        else:
            log.exception("UI action %s failed", what)
            ui.notify(t("common.error.unexpected"), type="negative", multi_line=True, close_button=t("common.close"))

    def act(self, fn: Callable[..., Any], what: str | None = None) -> Callable[..., Awaitable[None]]:
        """`fn` as an event handler: run it (awaiting it if it is a coroutine); a failure is shown, not raised."""
        name = str(what or getattr(fn, "__name__", "action"))

        async def handler(*args: Any) -> None:
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception as e:  # noqa: BLE001  # every failure reaches the person as a message
                self.fail(e, name)

        return handler


def signed_in(request: Request) -> Current | None:
    state = host.state()
    with Session(state.engine) as session:
        try:
            return current(session, state.settings.ui, request.cookies.get(COOKIE), _address(request))
        except Unauthenticated:
            return None


NAV: list[tuple[str, str, str, Right | None]] = [  # path, text key, icon, right to see it in the menu
    (paths.HOME, "common.nav.dashboard", "dashboard", Right.RECEIVERS_READ),
    (paths.RECEIVERS, "common.nav.receivers", "speaker", Right.RECEIVERS_READ),
    (paths.MAP, "common.nav.map", "map", Right.RECEIVERS_READ),
    (paths.LIBRARY, "common.nav.library", "library_music", Right.CONTENT_READ),
    (paths.COMPOSE, "common.nav.compose", "record_voice_over", Right.CONTENT_WRITE),
    (paths.SCHEDULE, "common.nav.schedule", "calendar_month", Right.CONTENT_READ),
    (paths.APPROVAL, "common.nav.approval", "fact_check", Right.CONTENT_APPROVE),
    (paths.MY_DRAFTS, "common.nav.my_drafts", "drafts", Right.CONTENT_WRITE),
    (paths.EMERGENCY, "common.nav.emergency", "campaign", Right.EMERGENCY),
    (paths.WARNINGS, "common.nav.warnings", "notifications_active", Right.EMERGENCY),
    (paths.REPORTS, "common.nav.reports", "bar_chart", Right.CONTENT_READ),
    (paths.AUDIT, "common.nav.audit", "history", Right.ADMIN),
    (paths.USERS, "common.nav.users", "manage_accounts", Right.ADMIN),
    (paths.TOKENS, "common.nav.tokens", "key", Right.ADMIN),
]


def logout_form(staff: Staff) -> None:
    """Signing out is a form post carrying the session's CSRF token (see controller.ui.auth)."""
    ui.html(f'<form method="post" action="/ui/auth/logout" style="margin:0">'
            f'<input type="hidden" name="csrf" value="{staff.csrf}">'
            f'<button type="submit" class="tt-logout" data-testid="logout">{t("common.logout")}</button></form>',
            sanitize=False)


def frame(staff: Staff, title: str, current_path: str, *, plain: bool = False) -> None:
    """The header and the menu of the rights the person holds. `plain`: the emergency page's own frame
    (red, no menu clutter)."""
    ui.add_head_html(STYLE)
    who = staff.who
    with ui.header(elevated=True).classes("items-center gap-2 px-3 py-1 " + ("bg-red-8" if plain else "bg-teal-8")):
        if not plain:
            menu = ui.button(icon="menu").props("flat round dense color=white aria-label=Menu")
        ui.link(t("common.app_name"), paths.page_path(paths.HOME)).classes("text-white text-lg font-bold no-underline")
        ui.label(title).classes("text-white text-base gt-xs")
        ui.space()
        ui.link(t("common.signed_in_as", name=who.name, role=ROLES[who.role].title if who.role in ROLES else ""),
                paths.page_path(paths.ACCOUNT)).classes("text-white text-sm no-underline gt-xs")
        logout_form(staff)
    if plain:
        return
    with ui.left_drawer(value=None, bordered=True).classes("bg-grey-1").props("width=220 breakpoint=900") as drawer:
        for path, key, icon, right in NAV:
            if right is not None and not who.has(right):
                continue
            active = path == current_path or (path != paths.HOME and current_path.startswith(path + "/")
                                              and not any(p == current_path for p, *_ in NAV))
            with ui.link(target=paths.page_path(path)).classes("no-underline w-full"):
                with ui.row().classes("items-center gap-3 px-3 py-2 rounded w-full "
                                      + ("bg-teal-1 text-teal-10 font-bold" if active else "text-grey-9")):
                    ui.icon(icon, color="red-8" if path == paths.EMERGENCY else None)
                    ui.label(t(key))
    menu.on_click(drawer.toggle)


def no_access(title_key: str, text_key: str) -> None:
    with ui.column().classes("w-full items-center q-pa-xl gap-2").props("data-testid=no-access"):
        ui.icon("block", size="xl", color="grey-7")
        ui.label(t(title_key)).classes("text-h6")
        ui.label(t(text_key)).classes("text-center")
        ui.link(t("common.back_home"), paths.page_path(paths.HOME))


def staff_page(path: str, right: Right | None, title_key: str, *, plain: bool = False) -> Callable[..., Any]:
    """Register `build(staff, **path_params)` as the page at `path` for signed-in people holding `right`."""

    def register(build: Callable[..., Any]) -> Callable[..., Any]:
        route = paths.page_path(path)
        PAGES[route] = right
        params = [p for name, p in inspect.signature(build).parameters.items() if name != "staff"]

        async def show(request: Request, **kwargs: Any) -> Any:
            now = signed_in(request)
            if now is None:
                from urllib.parse import quote

                return RedirectResponse(f"{paths.LOGIN}?next={quote(str(request.url.path))}", status_code=303)
            staff = Staff(now.principal, now.csrf, now.session_id, request.cookies.get(COOKIE, ""),
                          _address(request))
            title = t(title_key)
            frame(staff, title, str(request.url.path), plain=plain)
            with ui.column().classes("w-full max-w-screen-xl mx-auto q-pa-sm sm:q-pa-md gap-3"):
                if right is not None and not staff.who.has(right):
                    staff.refused(_forbidden(staff, right, route), str(request.url.path))
                    no_access("common.forbidden_title", "common.forbidden_text")
                    return None
                try:
                    result = build(staff, **kwargs)
                    if inspect.isawaitable(result):
                        await result
                except (Hidden, NotFound) as e:
                    staff.refused(e, str(request.url.path))
                    no_access("common.not_found_title", "common.not_found_text")
                except Unauthenticated:
                    return RedirectResponse(paths.LOGIN, status_code=303)
            return None

        show.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request), *params])
        show.__name__ = build.__name__
        ui.page(route, title=f"{t(title_key)} · {t('common.app_name')}")(show)
        return build

    return register


def public_page(path: str, reason: str, title_key: str) -> Callable[..., Any]:
    """Register a page that needs no session, saying why (`PUBLIC_PAGES`)."""

    def register(build: Callable[..., Any]) -> Callable[..., Any]:
        route = paths.page_path(path)
        PUBLIC_PAGES[route] = reason
        ui.page(route, title=f"{t(title_key)} · {t('common.app_name')}")(build)
        return build

    return register


def _forbidden(staff: Staff, right: Right, route: str) -> DomainError:
    from controller.errors import Forbidden

    return Forbidden(f"The page {route} needs the '{right}' right.", who=staff.who, action=f"ui.page:{route}")


STYLE = """<style>
.tt-logout{background:transparent;color:#fff;border:1px solid rgba(255,255,255,.6);border-radius:4px;
  padding:4px 10px;font:inherit;font-size:.875rem;cursor:pointer}
.tt-logout:hover{background:rgba(255,255,255,.15)}
body{overflow-x:hidden}
</style>"""
