"""Duyệt tin: the drafts waiting for the approver in their communes — bulletins and announcements to listen to
and read (the text as typed and as it will be spoken), programmes described (items, where, when) — each
approved or sent back to its author with a comment; and "Của tôi", the person's own drafts with how they
stand (chờ duyệt / đã duyệt / bị trả lại, with the approver's comment).

The approval page needs `content:approve`; an author without it (a commune operator) reads "Của tôi" on its
own page (`MINE`, `content:write`). What may be approved is the services' decision: the page lists what they
return and hides the buttons of what the person could not approve, but the service refuses it regardless.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from nicegui import ui

from controller.db.models import AnnouncementPublic, BulletinPublic, ProgrammePublic
from controller.policy import Right
from controller.services import Ctx, Page
from controller.services import content as content_service
from controller.services import programmes as programme_service
from controller.services.communes import list_communes
from controller.services.content import MAX_RETURN_COMMENT, may_approve

from .. import paths
from ..fmt import date_vi, datetime_vi, duration_vi
from ..i18n import t
from ..recurrence import describe
from ..shell import Staff, staff_page

MINE = paths.MY_DRAFTS  # the author's own drafts, for those who may not approve
ALL = Page(limit=1000)
Kind = Literal["bulletin", "announcement", "programme"]
Draft = BulletinPublic | AnnouncementPublic | ProgrammePublic


@dataclass(frozen=True)
class Item:
    kind: Kind
    row: Draft

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.row.id}"

    @property
    def when(self) -> dt.datetime:
        return self.row.created_at


def _who(actor: str | None) -> str:
    """'user:5:leader-nu' → 'leader-nu'."""
    return actor.split(":", 2)[-1] if actor else "—"


def _state(row: Draft) -> str:
    if row.approved:
        return "approved"
    return "returned" if row.returned_at is not None else "waiting"


def _kind_of(row: Draft) -> Kind:
    if isinstance(row, BulletinPublic):
        return "bulletin"
    return "announcement" if isinstance(row, AnnouncementPublic) else "programme"


def _all_drafts(ctx: Ctx) -> list[Item]:
    """Every draft the person sees (their communes' and the district's), newest first."""
    rows: list[Draft] = [*content_service.list_bulletins(ctx, ALL, approved=False).data,
                         *content_service.list_announcements(ctx, ALL, approved=False).data,
                         *programme_service.list_programmes(ctx, ALL, approved=False).data]
    return sorted((Item(_kind_of(r), r) for r in rows), key=lambda i: i.when, reverse=True)


def waiting(ctx: Ctx) -> list[Item]:
    """The drafts this approver may judge: not sent back (the author has to make a new one, or edit a
    programme), of a commune they approve in (programmes: listed only when they reach none but theirs)."""
    who = ctx.who
    out = []
    for item in _all_drafts(ctx):
        if item.row.returned_at is not None:
            continue
        if isinstance(item.row, ProgrammePublic):
            if item.row.priority != "emergency" and who.has(Right.CONTENT_APPROVE):
                out.append(item)
        elif may_approve(who, item.row.commune):
            out.append(item)
    return out


def mine(ctx: Ctx) -> list[Item]:
    """The person's own work that needed someone else's approval: drafts, sent back, or approved by another."""
    actor = ctx.who.actor
    out = []
    for kind, rows in (("bulletin", content_service.list_bulletins(ctx, ALL).data),
                       ("announcement", content_service.list_announcements(ctx, ALL).data),
                       ("programme", programme_service.list_programmes(ctx, ALL).data)):
        for row in rows:
            author = row.updated_by if isinstance(row, ProgrammePublic) and row.updated_by else row.created_by
            if author != actor:
                continue
            if row.approved and row.approved_by == actor:
                continue  # approved at once, by the author: nothing to wait for
            out.append(Item(kind, row))  # type: ignore[arg-type]
    return sorted(out, key=lambda i: i.when, reverse=True)


def _names(ctx: Ctx) -> dict[str, str]:
    return {c.code: c.name for c in list_communes(ctx, ALL).data}


# ------------------------------------------------------------------------------------------- showing


def _state_chip(row: Draft) -> None:
    state = _state(row)
    color = {"waiting": "orange-8", "approved": "positive", "returned": "negative"}[state]
    ui.badge(t(f"approval.state.{state}"), color=color).classes("text-sm q-px-sm").props(
        f"data-testid=state-{_kind_of(row)}-{row.id}")


def _header(item: Item, names: dict[str, str]) -> None:
    row = item.row
    with ui.row().classes("items-center justify-between gap-2 w-full"):
        ui.badge(t(f"approval.kind.{item.kind}"), color="teal-8", outline=True)
        _state_chip(row)
    ui.label(row.title).classes("text-subtitle1 font-bold w-full").style("overflow-wrap:break-word")
    if isinstance(row, ProgrammePublic):
        place = ", ".join(names.get(c, c) for c in row.communes)
    else:
        place = names.get(row.commune or "", row.commune or "") or t("approval.district_wide")
    ui.label(place).classes("text-sm text-grey-8")
    ui.label(t("approval.created", who=_who(row.created_by), when=datetime_vi(row.created_at))).classes(
        "text-caption text-grey-7")


def _content_body(row: BulletinPublic | AnnouncementPublic) -> None:
    with ui.row().classes("items-center gap-2 w-full"):
        ui.label(t("approval.duration", duration=duration_vi(row.duration_s))).classes("text-sm")
    ui.audio(row.media_url).classes("w-full").props(f"preload=none data-testid=audio-{_kind_of(row)}-{row.id}")
    if isinstance(row, AnnouncementPublic):
        ui.label(t("approval.text")).classes("text-caption text-grey-7")
        ui.label(row.text).classes("text-body2 whitespace-pre-wrap").style("overflow-wrap:anywhere")
        ui.label(t("approval.spoken")).classes("text-caption text-grey-7")
        ui.label(row.normalized_text).classes("text-body2 bg-grey-2 q-pa-sm rounded w-full").style(
            "overflow-wrap:anywhere").props(f"data-testid=spoken-{row.id}")
        ui.label(t("approval.engine", engine=f"{row.engine}/{row.voice or ''}", repeat=row.repeat)
                 + (f" · {t('approval.chimes')}" if row.chime_before or row.chime_after else "")).classes(
            "text-caption text-grey-7")


def _describe_targets(p: ProgrammePublic, names: dict[str, str]) -> list[str]:
    tg = p.targets
    lines = []
    if tg.get("all"):
        lines.append(t("approval.programme.all"))
    if tg.get("communes"):
        lines.append(", ".join(names.get(c, c) for c in tg["communes"]))
    if tg.get("villages"):
        lines.append(t("approval.programme.villages", names=", ".join(str(v) for v in tg["villages"])))
    if tg.get("groups"):
        lines.append(t("approval.programme.groups", n=len(tg["groups"])))
    if tg.get("receivers"):
        lines.append(t("approval.programme.receivers_named", names=", ".join(str(r) for r in tg["receivers"][:10])
                       + (" …" if len(tg["receivers"]) > 10 else "")))
    lines.append(t("approval.programme.receivers", n=p.receivers))
    return lines


def _programme_body(p: ProgrammePublic, names: dict[str, str]) -> None:
    ui.label(t("approval.programme.when")).classes("text-caption text-grey-7")
    ui.label(describe(p.rrule, p.start)).classes("text-body2").props(f"data-testid=when-{p.id}")
    period = " ".join(x for x in (t("approval.programme.valid_from", date=date_vi(p.valid_from)) if p.valid_from
                                  else "", t("approval.programme.valid_until", date=date_vi(p.valid_until))
                                  if p.valid_until else "") if x)
    if period:
        ui.label(t("approval.programme.valid", period=period)).classes("text-sm")
    if p.exdates:
        ui.label(t("approval.programme.exdates", dates=", ".join(
            date_vi(dt.date.fromisoformat(d)) for d in p.exdates))).classes("text-sm")
    if p.next:
        ui.label(t("approval.programme.next", times=", ".join(datetime_vi(x) for x in p.next[:3]))).classes(
            "text-caption text-grey-7")
    ui.label(t(f"approval.programme.priority_{p.priority}")).classes("text-sm")
    if p.paused:
        ui.label(t("approval.programme.paused")).classes("text-sm text-orange-9")
    ui.label(t("approval.programme.items")).classes("text-caption text-grey-7")
    with ui.column().classes("gap-0 w-full"):
        for i, item in enumerate(p.items, 1):
            title = item.title or t("approval.programme.other_item")
            length = f" ({duration_vi(item.duration_s)})" if item.duration_s else ""
            ui.label(f"{i}. {t(f'approval.kind.{item.kind}')}: {title}{length}").classes("text-body2").style(
                "overflow-wrap:anywhere")
    ui.label(t("approval.programme.targets")).classes("text-caption text-grey-7")
    for line in _describe_targets(p, names):
        ui.label(line).classes("text-body2").style("overflow-wrap:anywhere")


def _outcome(row: Draft) -> None:
    state = _state(row)
    if state == "approved":
        ui.label(t("approval.state.approved_by", who=_who(row.approved_by), when=datetime_vi(row.approved_at))
                 ).classes("text-caption text-positive")
    elif state == "returned":
        with ui.column().classes("gap-0 w-full bg-red-1 q-pa-sm rounded"):
            ui.label(t("approval.state.returned_by", who=_who(row.returned_by), when=datetime_vi(row.returned_at))
                     ).classes("text-caption text-negative")
            ui.label(t("approval.state.comment", comment=row.returned_comment or "")).classes(
                "text-body2 whitespace-pre-wrap").style("overflow-wrap:anywhere").props(
                f"data-testid=comment-{_kind_of(row)}-{row.id}")


def _card(item: Item, names: dict[str, str], actions: Callable[[Item], None] | None) -> None:
    with ui.card().classes("w-full gap-2").props(f"data-testid=draft-{item.key}"):
        with ui.column().classes("gap-1 w-full"):
            _header(item, names)
        if isinstance(item.row, ProgrammePublic):
            _programme_body(item.row, names)
        else:
            _content_body(item.row)
        _outcome(item.row)
        if actions is not None:
            actions(item)


# ------------------------------------------------------------------------------------------ the pages


def _approve(ctx: Ctx, item: Item) -> str:
    if item.kind == "bulletin":
        return content_service.approve_bulletin(ctx, item.row.id).title
    if item.kind == "announcement":
        return content_service.approve_announcement(ctx, item.row.id).title
    return programme_service.approve_programme(ctx, item.row.id).title


def _send_back(ctx: Ctx, item: Item, comment: str) -> str:
    if item.kind == "bulletin":
        return content_service.return_bulletin(ctx, item.row.id, comment).title
    if item.kind == "announcement":
        return content_service.return_announcement(ctx, item.row.id, comment).title
    return programme_service.return_programme(ctx, item.row.id, comment).title


def _mine_list(staff: Staff) -> int:
    """The person's own drafts, as cards; returns how many."""
    with staff.ctx() as ctx:
        items, names = mine(ctx), _names(ctx)
    ui.label(t("approval.mine_hint")).classes("text-sm text-grey-8")
    if not items:
        ui.label(t("approval.nothing_mine")).classes("text-grey-7 q-pa-md").props("data-testid=nothing-mine")
    for item in items:
        _card(item, names, None)
    return len(items)


@staff_page(paths.APPROVAL, Right.CONTENT_APPROVE, "approval.title")
def approval(staff: Staff) -> None:
    with ui.row().classes("w-full items-center justify-between"):
        ui.label(t("approval.title")).classes("text-h5")
        refresh = ui.button(t("approval.refresh"), icon="refresh").props("flat no-caps color=teal-8")
    with ui.tabs().classes("w-full").props("align=left dense no-caps") as tabs:
        tab_waiting = ui.tab("waiting").props("data-testid=tab-waiting")
        tab_mine = ui.tab("mine").props("data-testid=tab-mine")
    with ui.tab_panels(tabs, value=tab_waiting).classes("w-full bg-transparent").props("keep-alive"):
        with ui.tab_panel(tab_waiting).style("padding:0"):
            redraw = queue(staff, lambda n: tab_waiting.set_label(t("approval.waiting", n=n)))
        with ui.tab_panel(tab_mine).classes("gap-3").style("padding:0"):
            tab_mine.set_label(t("approval.mine", n=_mine_list(staff)))
    refresh.on_click(staff.act(redraw, "refresh approvals"))


def queue(staff: Staff, counted: Callable[[int], object]) -> Callable[[], None]:
    """The waiting drafts, each with Duyệt / Trả lại; redrawn after every decision (and by the function
    returned)."""
    box = ui.column().classes("w-full gap-3")

    def draw() -> None:
        with staff.ctx() as ctx:
            items, names = waiting(ctx), _names(ctx)
        counted(len(items))
        box.clear()
        with box:
            if not items:
                ui.label(t("approval.nothing_waiting")).classes("text-grey-7 q-pa-md").props(
                    "data-testid=nothing-waiting")
            for item in items:
                _card(item, names, decide)

    def approve(item: Item) -> None:
        with staff.ctx() as ctx:
            title = _approve(ctx, item)
        ui.notify(t("approval.approved_done", title=title), type="positive")
        draw()

    def send_back(item: Item) -> None:
        with ui.dialog() as dialog, ui.card().classes("w-full max-w-lg gap-2"):
            ui.label(t("approval.return_title", title=item.row.title)).classes("text-h6").style(
                "overflow-wrap:anywhere")
            comment = ui.textarea(t("approval.return_label")).classes("w-full").props(
                f"outlined autogrow counter maxlength={MAX_RETURN_COMMENT} data-testid=return-comment")
            ui.label(t("approval.return_hint")).classes("text-caption text-grey-7")

            def confirm() -> None:
                with staff.ctx() as ctx:
                    title = _send_back(ctx, item, comment.value or "")
                dialog.close()
                ui.notify(t("approval.returned_done", title=title), type="info")
                draw()

            with ui.row().classes("w-full justify-end gap-2"):
                ui.button(t("common.cancel"), on_click=dialog.close).props("flat")
                ui.button(t("approval.return_confirm"), on_click=staff.act(confirm, "send back")).props(
                    "color=negative data-testid=return-confirm")
        dialog.open()

    def decide(item: Item) -> None:
        with ui.row().classes("w-full justify-end gap-2"):
            ui.button(t("approval.send_back"), icon="undo", on_click=staff.act(lambda: send_back(item), "send back"))\
                .props(f"outline no-caps color=negative data-testid=return-{item.key}")
            ui.button(t("approval.approve"), icon="check", on_click=staff.act(lambda: approve(item), "approve"))\
                .props(f"no-caps color=positive data-testid=approve-{item.key}")

    draw()
    return draw


@staff_page(MINE, Right.CONTENT_WRITE, "approval.mine_title")
def my_drafts(staff: Staff) -> None:
    ui.label(t("approval.mine_title")).classes("text-h5")
    with ui.column().classes("w-full gap-3").props("data-testid=mine"):
        _mine_list(staff)
