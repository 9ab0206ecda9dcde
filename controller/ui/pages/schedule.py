"""Lịch phát: the week calendar of a commune (or of every commune the person sees) — what will play, placed as
the receivers will play it, with shifted occurrences marked, and drafts where they would play, marked as
waiting for approval — and the programmes behind it, each with its recurrence in words and, for writers,
edit, pause / resume and delete. The programme form is `schedule_form` (registered on import)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from nicegui import run, ui

import schedules
from controller.db.models import ProgrammePublic
from controller.policy import Right
from controller.services import programmes as service
from controller.services.context import Page
from controller.services.programmes import ScheduleRow

from .. import paths, recurrence
from ..fmt import TZ, datetime_vi, weekday_vi
from ..i18n import t
from ..shell import Staff, staff_page
from . import schedule_form
from .schedule_form import PRIORITY_COLOURS, commune_names, go

PAGE = Page(limit=1000)
BORDERS = {"normal": "#00796b", "priority": "#ef6c00", "emergency": "#c62828"}


@dataclass
class Occurrence:
    """One occurrence of a programme as the calendar shows it: its items' slots joined."""

    programme_id: int
    title: str
    priority: str
    start: dt.datetime
    end: dt.datetime
    shifted_s: float
    receivers: int
    shared: bool  # another's programme that also plays here: shown, not opened
    draft: bool = False  # awaiting approval: when it would play, on no receiver's plan yet


@dataclass
class Week:
    days: dict[dt.date, list[Occurrence]] = field(default_factory=dict)
    programmes: list[ProgrammePublic] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)


@dataclass
class View:
    monday: dt.date
    commune: str  # "": every commune the person sees
    saved: int | None = None  # a programme just saved, not yet said so


def week_path(monday: dt.date, commune: str | None) -> str:
    return f"{paths.SCHEDULE}?tuan={monday.isoformat()}" + (f"&xa={commune}" if commune else "")


def monday_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def occurrences(rows: list[ScheduleRow]) -> list[Occurrence]:
    """The schedule's slots (one per item and placement) as one entry per programme occurrence."""
    out: dict[tuple[int, dt.datetime], Occurrence] = {}
    for r in rows:
        key = (r.programme_id, r.occurrence)
        o = out.get(key)
        if o is None:
            out[key] = Occurrence(r.programme_id, r.title, r.priority, r.start, r.end, r.shifted_s, r.receivers,
                                  r.item.get("id") is None)
        else:
            o.start, o.end = min(o.start, r.start), max(o.end, r.end)
            o.shifted_s, o.receivers = max(o.shifted_s, r.shifted_s), max(o.receivers, r.receivers)
    return sorted(out.values(), key=lambda o: (o.start, o.programme_id))


def load_week(staff: Staff, commune: str | None, monday: dt.date) -> Week:
    start = dt.datetime.combine(monday, dt.time(), TZ)
    end = start + dt.timedelta(days=7)
    rows: list[ScheduleRow] = []
    with staff.ctx() as ctx:
        while True:
            got = service.schedule(ctx, Page(limit=1000, offset=len(rows)), commune=commune, from_=start, to=end)
            rows += got.data
            if len(rows) >= got.count or not got.data:
                break
        programmes = service.list_programmes(ctx, PAGE, commune=commune).data
        names = commune_names(ctx)
    week = Week({monday + dt.timedelta(days=i): [] for i in range(7)}, programmes, names)
    for o in sorted(occurrences(rows) + drafts(programmes, start, end), key=lambda o: (o.start, o.programme_id)):
        day = o.start.astimezone(TZ).date()
        if day in week.days:
            week.days[day].append(o)
    return week


def drafts(programmes: list[ProgrammePublic], start: dt.datetime, end: dt.datetime) -> list[Occurrence]:
    """When the drafts among `programmes` would play in [start, end) once approved (they are in no schedule:
    the calendar shows them apart, unplaced)."""
    out = []
    for p in programmes:
        if p.approved or p.paused:
            continue
        value = schedules.Programme(
            id=p.id, title=p.title, items=(schedules.ContentItem("draft", "", p.duration_s, 0),),
            receivers=frozenset(), start=p.start, rrule=p.rrule,
            exdates=frozenset(dt.date.fromisoformat(d) for d in p.exdates), valid_from=p.valid_from,
            valid_until=p.valid_until)
        length = dt.timedelta(seconds=p.duration_s)
        out += [Occurrence(p.id, p.title, p.priority, at, at + length, 0, p.receivers, False, draft=True)
                for at in schedules.occurrences(value, start, end)]
    return out


def _shift_text(seconds: float) -> str:
    if seconds >= 60:
        return t("schedule.shifted", minutes=round(seconds / 60))
    return t("schedule.shifted_seconds", seconds=round(seconds))


def _occurrence(staff: Staff, o: Occurrence) -> None:
    colour = PRIORITY_COLOURS.get(o.priority, "grey")
    opens = not o.shared and staff.who.has(Right.CONTENT_WRITE)
    box = ui.column().classes(f"w-full gap-0 q-pa-xs rounded {'bg-grey-1' if o.draft else f'bg-{colour}-1'} "
                              + ("cursor-pointer" if opens else ""))
    box.style(f"border-left: 4px {'dashed' if o.draft else 'solid'} {BORDERS.get(o.priority, '#888')}")
    box.props(f"data-testid=occ-{o.programme_id}")
    with box:
        ui.label(f"{o.start.astimezone(TZ):%H:%M}–{o.end.astimezone(TZ):%H:%M}").classes("text-caption text-bold")
        ui.label(o.title).classes("text-body2 break-words")
        with ui.row().classes("gap-1 items-center"):
            if o.draft:
                ui.badge(t("schedule.status.draft"), color="amber-9").props("data-testid=draft").tooltip(
                    t("schedule.draft_hint"))
            if o.priority != "normal":
                ui.badge(t(f"schedule.priority.{o.priority}"), color=colour).props("outline")
            if o.shifted_s > 0:
                ui.badge(_shift_text(o.shifted_s), color="orange-9").props("data-testid=shifted").tooltip(
                    t("schedule.shifted_hint"))
            ui.label(t("schedule.receivers", n=o.receivers)).classes("text-caption text-grey-7")
        if o.shared:
            ui.tooltip(t("schedule.shared_hint"))
    if opens:
        box.on("click", lambda pid=o.programme_id: go(schedule_form.path_of(pid)))


def _calendar(staff: Staff, week: Week) -> None:
    today = dt.datetime.now(TZ).date()
    with ui.element("div").classes("grid grid-cols-1 md:grid-cols-7 gap-2 w-full").props("data-testid=calendar"):
        for day, entries in week.days.items():
            head = "bg-teal-8 text-white" if day == today else "bg-grey-3"
            with ui.card().tight().classes("w-full min-w-0").props(f"data-testid=day-{day.isoformat()}"):
                with ui.element("div").classes(f"w-full q-px-sm q-py-xs flex flex-row md:flex-col gap-x-2 {head}"):
                    ui.label(weekday_vi(day)).classes("text-bold")
                    ui.label(f"{day:%d/%m/%Y}").classes("text-caption")
                with ui.column().classes("w-full gap-1 q-pa-xs"):
                    if not entries:
                        ui.label(t("schedule.nothing")).classes("text-caption text-grey-6")
                    for o in entries:
                        _occurrence(staff, o)


def _programme(staff: Staff, p: ProgrammePublic, names: dict[str, str], changed: Any) -> None:
    status = "draft" if not p.approved else ("paused" if p.paused else "on_air")
    colour = {"draft": "amber-9", "paused": "grey-7", "on_air": "positive"}[status]
    writes = staff.who.has(Right.CONTENT_WRITE) and (p.priority != "emergency" or staff.who.has(Right.EMERGENCY))
    with ui.card().classes("w-full gap-1").props(f"data-testid=programme-{p.id}"):
        with ui.row().classes("w-full items-center gap-2 no-wrap"):
            ui.label(p.title).classes("text-subtitle1 text-bold break-words min-w-0")
            ui.space()
            ui.badge(t(f"schedule.status.{status}"), color=colour).props("data-testid=status")
        with ui.row().classes("gap-2 items-center"):
            ui.badge(t(f"schedule.priority.{p.priority}"), color=PRIORITY_COLOURS.get(p.priority, "grey")).props(
                "outline")
            ui.label(recurrence.describe(p.rrule, p.start)).classes("text-body2").props("data-testid=rule")
        ui.label(t("schedule.reach", receivers=p.receivers, communes=", ".join(names.get(c, c) for c in p.communes))
                 ).classes("text-caption text-grey-8")
        titles = [i.title or t("schedule.untitled_item") for i in p.items]
        ui.label(t("schedule.items", items="; ".join(titles))).classes("text-caption text-grey-8 break-words")
        ui.label(t("schedule.next", when=f"{weekday_vi(p.next[0].date())} {datetime_vi(p.next[0])}") if p.next
                 else t("schedule.no_next")).classes("text-caption")
        returned = getattr(p, "returned_comment", None)
        if returned and not p.approved:
            ui.label(t("schedule.returned", comment=returned)).classes("text-caption text-negative")
        if writes:
            with ui.row().classes("gap-1"):
                ui.button(t("common.edit"), icon="edit",
                          on_click=lambda: go(schedule_form.path_of(p.id))).props(
                    "flat dense data-testid=edit")
                if p.paused:
                    ui.button(t("schedule.resume"), icon="play_arrow", on_click=staff.act(
                        lambda: changed("resume", p), "programme.resume")).props("flat dense data-testid=resume")
                else:
                    ui.button(t("schedule.pause"), icon="pause", on_click=staff.act(
                        lambda: changed("pause", p), "programme.pause")).props("flat dense data-testid=pause")
                ui.button(t("common.delete"), icon="delete", color="negative", on_click=lambda: _confirm_delete(
                    staff, p, changed)).props("flat dense data-testid=delete")


def _confirm_delete(staff: Staff, p: ProgrammePublic, changed: Any) -> None:
    with ui.dialog() as dialog, ui.card().classes("gap-2"):
        ui.label(t("schedule.delete_title")).classes("text-h6")
        ui.label(t("schedule.delete_text", title=p.title, receivers=p.receivers))
        with ui.row().classes("w-full justify-end gap-2"):
            ui.button(t("common.cancel"), on_click=dialog.close).props("flat data-testid=cancel")

            async def yes() -> None:
                dialog.close()
                await changed("delete", p)

            ui.button(t("common.delete"), color="negative", on_click=staff.act(yes, "programme.delete")).props(
                "data-testid=confirm-delete")
    dialog.open()


@staff_page(paths.SCHEDULE, Right.CONTENT_READ, "schedule.title")
async def schedule_page(staff: Staff, tuan: str | None = None, xa: str | None = None,
                        luu: int | None = None) -> None:
    """`tuan`: a day of the week shown; `xa`: the commune; `luu`: the programme just saved (it is said so)."""
    with staff.ctx() as ctx:
        names = commune_names(ctx)
    options: dict[str, str] = {}
    if staff.who.communes is None:
        options[""] = t("schedule.district")
    elif len(names) > 1:
        options[""] = t("schedule.my_communes")
    options.update(names)
    try:
        monday = monday_of(dt.date.fromisoformat(tuan)) if tuan else monday_of(dt.datetime.now(TZ).date())
    except ValueError:
        monday = monday_of(dt.datetime.now(TZ).date())
    state = View(monday, xa if xa and xa in options else next(iter(options), ""), luu)

    with ui.row().classes("w-full items-center gap-2"):
        ui.label(t("schedule.title")).classes("text-h5")
        ui.space()
        if staff.who.has(Right.CONTENT_WRITE):
            ui.button(t("schedule.new"), icon="add",
                      on_click=lambda: go(schedule_form.path_of(None, state.commune))).props(
                "data-testid=new-programme")
    with ui.row().classes("w-full items-center gap-2"):
        scope = ui.select(options, value=state.commune, label=t("schedule.scope")).classes(
            "min-w-[12rem]").props("dense outlined data-testid=scope")
        with ui.row().classes("items-center gap-1"):
            ui.button(icon="chevron_left", on_click=lambda: move(-7)).props(
                f"flat round dense aria-label='{t('schedule.prev_week')}' data-testid=prev-week").tooltip(
                t("schedule.prev_week"))
            ui.button(t("schedule.this_week"), on_click=lambda: move(0)).props("flat dense data-testid=this-week")
            ui.button(icon="chevron_right", on_click=lambda: move(7)).props(
                f"flat round dense aria-label='{t('schedule.next_week')}' data-testid=next-week").tooltip(
                t("schedule.next_week"))
        label = ui.label().classes("text-subtitle1").props("data-testid=week")
    body = ui.column().classes("w-full gap-3")

    async def show() -> None:
        monday, commune = state.monday, state.commune or None
        sunday = monday + dt.timedelta(days=6)
        label.set_text(t("schedule.week", start=f"{monday:%d/%m/%Y}", end=f"{sunday:%d/%m/%Y}"))
        ui.navigate.history.replace(week_path(monday, commune))  # raw: NiceGUI does not prefix it
        week: Week = await run.io_bound(load_week, staff, commune, monday)  # type: ignore[assignment]
        body.clear()
        with body:
            _calendar(staff, week)
            ui.label(t("schedule.programmes")).classes("text-h6 q-mt-md")
            if not week.programmes:
                ui.label(t("schedule.no_programmes")).classes("text-grey-7")
            with ui.element("div").classes("grid grid-cols-1 md:grid-cols-2 gap-2 w-full"):
                for p in week.programmes:
                    _programme(staff, p, week.names, changed)
        saved = next((p for p in week.programmes if p.id == state.saved), None)
        if saved is not None:
            state.saved = None
            ui.notify(t("schedule.form.saved" if saved.approved else "schedule.form.saved_draft", title=saved.title),
                      type="positive", multi_line=True)

    async def move(days: int) -> None:
        state.monday = state.monday + dt.timedelta(days=days) if days else monday_of(dt.datetime.now(TZ).date())
        await staff.act(show, "schedule.read")()

    async def rescope(e: Any) -> None:
        state.commune = e.value or ""
        await staff.act(show, "schedule.read")()

    async def changed(what: str, p: ProgrammePublic) -> None:
        def call() -> None:
            with staff.ctx() as ctx:
                {"pause": service.pause_programme, "resume": service.resume_programme,
                 "delete": service.delete_programme}[what](ctx, p.id)

        await run.io_bound(call)
        done = {"pause": "schedule.paused_done", "resume": "schedule.resumed_done", "delete": "schedule.deleted_done"}
        ui.notify(t(done[what], title=p.title), type="positive")
        await show()

    scope.on_value_change(rescope)
    await staff.act(show, "schedule.read")()
