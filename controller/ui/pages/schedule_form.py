"""The programme form (Lịch phát › chương trình): what plays (from the library), where (communes, villages,
groups, receivers the person may touch), when (start, recurrence in words, validity, days skipped) and at
which priority. While it is filled in, the programme is checked against the schedule without saving
(`services.programmes.check_programme`), so a clash is named — the other programme and its time — before
anything is saved. `/ui/lich-phat/chuong-trinh/moi` makes a new one; `/…/{id}` edits one."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from nicegui import run, ui

from controller.db.models import ProgrammeCreate, ProgrammePublic, ProgrammeUpdate, Targets
from controller.errors import Conflict, DomainError, Forbidden, NotFound, Refusal
from controller.policy import Right
from controller.services import communes as communes_service
from controller.services import content as content_service
from controller.services import programmes as service
from controller.services import receivers as receivers_service
from controller.services.context import Ctx, Page

from .. import paths, recurrence
from ..fmt import TZ, duration_vi
from ..i18n import t
from ..shell import Staff, explain, staff_page

FORM = paths.SCHEDULE + "/chuong-trinh/{pid}"
NEW = "moi"
PAGE = Page(limit=1000)
PRIORITY_COLOURS = {"normal": "teal", "priority": "orange", "emergency": "red"}
CHECK_AFTER_S = 0.7  # the form is checked this long after its last change
DATE_LOCALE = {
    "days": [t(f"common.weekday.{(i + 6) % 7}") for i in range(7)],  # Quasar counts from Sunday
    "daysShort": ["CN", "T2", "T3", "T4", "T5", "T6", "T7"],
    "months": [f"Tháng {i}" for i in range(1, 13)],
    "monthsShort": [f"Th{i}" for i in range(1, 13)],
    "firstDayOfWeek": 1,
}


def go(path: str) -> None:
    """Open `path` (NiceGUI prefixes a path starting with '/' with its mount point itself: it is given the path
    below it)."""
    ui.navigate.to(paths.page_path(path))


def path_of(pid: int | None, commune: str | None = None) -> str:
    base = FORM.replace("{pid}", str(pid) if pid is not None else NEW)
    return base + (f"?xa={commune}" if pid is None and commune else "")


def commune_names(ctx: Ctx) -> dict[str, str]:
    """The person's communes, code → name, in the registry's order."""
    try:
        return {c.code: c.name for c in communes_service.list_communes(ctx, PAGE).data}
    except Forbidden:
        return {}


@dataclass
class Choices:
    """What the person may pick: usable content, and targets within their communes."""

    items: dict[str, str] = field(default_factory=dict)  # "bulletin:3" → label
    durations: dict[str, float] = field(default_factory=dict)
    drafts: list[str] = field(default_factory=list)  # titles of content waiting for approval
    communes: dict[str, str] = field(default_factory=dict)
    villages: dict[str, str] = field(default_factory=dict)  # "tra-nu/thon-1" → "Thôn 1 (Xã Trà Nú)"
    groups: dict[int, str] = field(default_factory=dict)
    receivers: dict[str, str] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)  # "commune:x" / "village:x/y" / "group:3" → ids


def load_choices(ctx: Ctx) -> Choices:
    c = Choices()
    for kind, rows in (("bulletin", content_service.list_bulletins(ctx, PAGE).data),
                       ("announcement", content_service.list_announcements(ctx, PAGE).data)):
        for row in rows:
            if not row.approved:
                c.drafts.append(row.title)
                continue
            key = f"{kind}:{row.id}"
            c.items[key] = t("schedule.form.item_label", kind=t(f"schedule.form.{kind}"), title=row.title,
                             duration=duration_vi(row.duration_s))
            c.durations[key] = row.duration_s
    c.communes = commune_names(ctx)
    for r in receivers_service.list_receivers(ctx, PAGE).data:
        if not ctx.who.may_touch(r.commune):
            continue
        c.receivers[r.id] = f"{r.name} · {r.commune_name}"
        c.members.setdefault(f"commune:{r.commune}", set()).add(r.id)
        if r.village:
            key = f"{r.commune}/{r.village}"
            c.villages[key] = f"{r.village_name} ({r.commune_name})"
            c.members.setdefault(f"village:{key}", set()).add(r.id)
    for g in service.list_groups(ctx, PAGE).data:
        c.groups[g.id] = g.name
        c.members[f"group:{g.id}"] = set(g.receivers)
    return c


def parse_date(text: str | None) -> dt.date | None:
    """"14/12/2026" → date; "" → None; anything else raises ValueError."""
    if not text or not text.strip():
        return None
    return dt.datetime.strptime(text.strip(), "%d/%m/%Y").date()


def parse_time(text: str | None) -> dt.time:
    return dt.datetime.strptime((text or "").strip(), "%H:%M").time()


class Problem(ValueError):
    """The form is not complete; the text says what is missing (`schedule.form.missing.*`)."""


@dataclass
class Form:
    """The values of the form, as staff set them."""

    title: str = ""
    items: list[str] = field(default_factory=list)
    all: bool = False
    communes: list[str] = field(default_factory=list)
    villages: list[str] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    receivers: list[str] = field(default_factory=list)
    start_date: str = ""
    start_time: str = "06:00"
    kind: str = "weekly"
    weekdays: list[int] = field(default_factory=list)
    month_day: int = 1
    nth: int = 1
    nth_weekday: int = 0
    custom_rule: str | None = None  # a rule the choices cannot show, kept as it is
    valid_from: str = ""
    valid_until: str = ""
    exdates: list[str] = field(default_factory=list)  # dd/mm/yyyy
    priority: str = "normal"
    order: str = ""  # "": a clash is refused; "before" / "after": played before / after the other

    @classmethod
    def of(cls, p: ProgrammePublic) -> Form:
        start = p.start.astimezone(TZ)
        rec = recurrence.parse(p.rrule)
        f = cls(title=p.title, items=[f"{i.kind}:{i.id}" for i in p.items], all=bool(p.targets.get("all")),
                communes=list(p.targets.get("communes") or []), villages=list(p.targets.get("villages") or []),
                groups=list(p.targets.get("groups") or []), receivers=list(p.targets.get("receivers") or []),
                start_date=f"{start:%d/%m/%Y}", start_time=f"{start:%H:%M}",
                valid_from=f"{p.valid_from:%d/%m/%Y}" if p.valid_from else "",
                valid_until=f"{p.valid_until:%d/%m/%Y}" if p.valid_until else "",
                exdates=[f"{dt.date.fromisoformat(d):%d/%m/%Y}" for d in p.exdates], priority=p.priority,
                order=p.order or "")
        if rec is None:
            f.kind, f.custom_rule = "custom", p.rrule
        else:
            f.kind, f.weekdays, f.month_day = rec.kind, list(rec.weekdays), rec.day
            f.nth, f.nth_weekday = rec.nth, rec.weekday
        return f

    def start(self) -> dt.datetime:
        try:
            day = parse_date(self.start_date)
        except ValueError:
            raise Problem("start_date") from None
        if day is None:
            raise Problem("start_date")
        try:
            return dt.datetime.combine(day, parse_time(self.start_time), TZ)
        except ValueError:
            raise Problem("start_time") from None

    def rule(self) -> str | None:
        if self.kind == "custom":
            return self.custom_rule
        if self.kind == "weekly" and not self.weekdays:
            raise Problem("weekdays")
        return recurrence.build(recurrence.Recurrence(
            self.kind, weekdays=tuple(self.weekdays), day=self.month_day, nth=self.nth,  # type: ignore[arg-type]
            weekday=self.nth_weekday))

    def targets(self) -> Targets:
        return Targets(all=self.all, communes=[] if self.all else self.communes,
                       villages=[] if self.all else self.villages, groups=[] if self.all else self.groups,
                       receivers=[] if self.all else self.receivers)

    def body(self) -> ProgrammeCreate:
        """The programme as the service takes it, or `Problem` naming what is missing."""
        if not self.title.strip():
            raise Problem("title")
        if not self.items:
            raise Problem("items")
        targets = self.targets()
        if not (targets.all or targets.communes or targets.villages or targets.groups or targets.receivers):
            raise Problem("targets")
        start, rule = self.start(), self.rule()
        try:
            valid_from = parse_date(self.valid_from)
        except ValueError:
            raise Problem("valid_from") from None
        try:
            valid_until = parse_date(self.valid_until)
        except ValueError:
            raise Problem("valid_until") from None
        if valid_from and valid_until and valid_until < valid_from:
            raise Problem("valid_order")
        if rule is None and start < dt.datetime.now(TZ):
            raise Problem("past")
        exdates = sorted({d for d in (parse_date(x) for x in self.exdates) if d})
        items = [{f"{k.partition(':')[0]}_id": int(k.partition(":")[2])} for k in self.items]
        return ProgrammeCreate(title=self.title.strip(), items=items, targets=targets, start=start, rrule=rule,
                               exdates=exdates, valid_from=valid_from, valid_until=valid_until,
                               priority=self.priority, order=self.order or None)  # type: ignore[arg-type]

    def update(self) -> ProgrammeUpdate:
        """For an edit: every field the form holds (pausing is left as it is)."""
        b = self.body()
        return ProgrammeUpdate(title=b.title, items=b.items, targets=b.targets, start=b.start, rrule=b.rrule,
                               exdates=b.exdates, valid_from=b.valid_from, valid_until=b.valid_until,
                               priority=b.priority, order=b.order)

    def reach(self, c: Choices) -> int:
        if self.all:
            return len(c.receivers)
        out: set[str] = set(self.receivers)
        for code in self.communes:
            out |= c.members.get(f"commune:{code}", set())
        for v in self.villages:
            out |= c.members.get(f"village:{v}", set())
        for g in self.groups:
            out |= c.members.get(f"group:{g}", set())
        return len(out)


def clash_text(e: Conflict) -> str:
    p = e.params
    return t("schedule.form.clash", other=p["other"], time=p["time"], end=p["end"], date=p["date"],
             weekday=t(f"common.weekday.{p['weekday']}"), receivers=p["receivers"], communes=p["communes"])


# ------------------------------------------------------------------------------------------- fields


def _date_field(label: str, form: Form, attr: str, testid: str, on_change: Any) -> ui.input:
    # Bound one way (field → form): a value echoed back from the server while the person types into a masked
    # field moves the cursor and scrambles what they type (seen on a slow link, and in the tests).
    field_ = ui.input(label, placeholder=t("schedule.form.date_hint"), value=getattr(form, attr)).bind_value_to(
        form, attr).props(
        f"dense outlined mask=##/##/#### data-testid={testid}").classes("w-40")
    with field_.add_slot("append"):
        icon = ui.icon("event").classes("cursor-pointer")
        with ui.menu() as menu:
            # The picker fills the field; it is not bound back: a half-typed date given to the picker comes back
            # from the browser as "no date" and would clear what the person is typing.
            picker = ui.date(mask="DD/MM/YYYY", on_change=lambda e: e.value and field_.set_value(e.value)).props(
                "minimal")
            picker._props["locale"] = DATE_LOCALE
        icon.on("click", menu.open)
    field_.on_value_change(on_change)
    return field_


def _multi(options: dict[Any, str], label: str, form: Form, attr: str, testid: str, on_change: Any) -> ui.select:
    for value in getattr(form, attr):  # a value the person cannot pick any more is still shown
        options.setdefault(value, str(value))
    s = ui.select(options, multiple=True, with_input=True, label=label).bind_value(form, attr)
    s.props(f"dense outlined use-chips data-testid={testid}").classes("w-full")
    s.on_value_change(on_change)
    return s


@staff_page(FORM, Right.CONTENT_WRITE, "schedule.form.page_title")
async def programme_page(staff: Staff, pid: str, xa: str | None = None) -> None:
    ident: int | None = None
    existing: ProgrammePublic | None = None
    if pid != NEW:
        try:
            ident = int(pid)
        except ValueError:
            raise NotFound(f"No programme {pid!r}.") from None
    with staff.ctx() as ctx:
        if ident is not None:
            existing = service.get_programme(ctx, ident)
        choices = load_choices(ctx)
    if existing is not None:
        form = Form.of(existing)
        for i in existing.items:
            choices.items.setdefault(f"{i.kind}:{i.id}", i.title or t("schedule.untitled_item"))
    else:
        tomorrow = dt.datetime.now(TZ).date() + dt.timedelta(days=1)
        only = list(choices.communes) if len(choices.communes) == 1 else []  # a commune's own staff: theirs
        form = Form(start_date=f"{tomorrow:%d/%m/%Y}", weekdays=[tomorrow.weekday()],
                    communes=[xa] if xa and xa in choices.communes else only)
    state: dict[str, Any] = {"dirty": True, "checking": False}

    def changed(*_: Any) -> None:
        state["dirty"] = True
        state["at"] = dt.datetime.now()
        refresh_view()

    ui.label(t("schedule.form.edit_title" if existing else "schedule.form.new_title")).classes("text-h5")
    if existing is not None and not existing.approved:
        ui.badge(t("schedule.status.draft"), color="amber-9").props("data-testid=status")
        if existing.returned_comment:
            ui.label(t("schedule.returned", comment=existing.returned_comment)).classes(
                "text-body2 text-negative").props("data-testid=returned")
    with ui.card().classes("w-full gap-2"):
        ui.input(t("schedule.form.title"), placeholder=t("schedule.form.title_hint")).bind_value(form, "title").props(
            "dense outlined maxlength=200 data-testid=title").classes("w-full").on_value_change(changed)
        _multi(dict(choices.items), t("schedule.form.items"), form, "items", "items", changed)
        duration = ui.label().classes("text-caption text-grey-8").props("data-testid=duration")
        if choices.drafts:
            shown = ", ".join(f"«{d}»" for d in choices.drafts[:5]) + (" …" if len(choices.drafts) > 5 else "")
            ui.label(t("schedule.form.drafts_note", titles=shown)).classes("text-caption text-amber-10").props(
                "data-testid=drafts-note")

    with ui.card().classes("w-full gap-2"):
        ui.label(t("schedule.form.targets")).classes("text-subtitle1 text-bold")
        if staff.who.communes is None:
            ui.checkbox(t("schedule.form.all")).bind_value(form, "all").props("data-testid=all").on_value_change(
                changed)
        pickers = ui.column().classes("w-full gap-2")
        with pickers:
            _multi(dict(choices.communes), t("schedule.form.communes"), form, "communes", "communes", changed)
            _multi(dict(choices.villages), t("schedule.form.villages"), form, "villages", "villages", changed)
            if choices.groups or form.groups:
                _multi(dict(choices.groups), t("schedule.form.groups"), form, "groups", "groups", changed)
            _multi(dict(choices.receivers), t("schedule.form.receivers"), form, "receivers", "receivers", changed)
        reach = ui.label().classes("text-body2").props("data-testid=reach")

    with ui.card().classes("w-full gap-2"):
        ui.label(t("schedule.form.when")).classes("text-subtitle1 text-bold")
        with ui.row().classes("gap-2 items-start"):
            _date_field(t("schedule.form.start_date"), form, "start_date", "start-date", changed)
            time_field = ui.input(t("schedule.form.start_time"), placeholder=t("schedule.form.time_hint"),
                                  value=form.start_time).bind_value_to(form, "start_time")
            time_field.props("dense outlined mask=##:## data-testid=start-time").classes("w-28")
            with time_field.add_slot("append"):
                clock = ui.icon("schedule").classes("cursor-pointer")
                with ui.menu() as menu:
                    ui.time(mask="HH:mm", on_change=lambda e: e.value and time_field.set_value(e.value)).props(
                        "format24h")  # not bound back, as the date picker
                clock.on("click", menu.open)
            time_field.on_value_change(changed)
        kinds: dict[str, str] = {k: t(f"schedule.form.kind.{k}") for k in recurrence.KINDS}
        if form.kind == "custom":
            kinds["custom"] = t("schedule.form.kind.custom")
        ui.select(kinds, label=t("schedule.form.repeat")).bind_value(form, "kind").props(
            "dense outlined data-testid=repeat").classes("w-64").on_value_change(changed)
        weekly = ui.row().classes("gap-1")
        with weekly:
            for d in range(7):
                def toggle(e: Any, d: int = d) -> None:
                    days = set(form.weekdays)
                    (days.add if e.value else days.discard)(d)
                    form.weekdays = sorted(days)
                    changed()

                ui.checkbox(t(f"common.weekday.{d}"), value=d in form.weekdays, on_change=toggle).props(
                    f"dense data-testid=wd-{d}")
        monthly_day = ui.row()
        with monthly_day:
            days = {d: str(d) for d in range(1, 32)} | {-1: t("schedule.form.last_day")}
            ui.select(days, label=t("schedule.form.month_day")).bind_value(form, "month_day").props(
                "dense outlined data-testid=month-day").classes("w-40").on_value_change(changed)
        monthly_nth = ui.row().classes("gap-2")
        with monthly_nth:
            nths = {n: t(f"schedule.rec.nth.{n}") for n in recurrence.NTHS}
            ui.select(nths, label=t("schedule.form.nth")).bind_value(form, "nth").props(
                "dense outlined data-testid=nth").classes("w-36").on_value_change(changed)
            ui.select({d: t(f"common.weekday.{d}") for d in range(7)}, label=t("schedule.form.weekday")).bind_value(
                form, "nth_weekday").props("dense outlined data-testid=nth-weekday").classes("w-36").on_value_change(
                changed)
        rule_text = ui.label().classes("text-body1 text-teal-10").props("data-testid=repeat-text")
        ui.label(t("schedule.form.valid")).classes("text-body2 text-bold q-mt-sm")
        with ui.row().classes("gap-2"):
            _date_field(t("schedule.form.valid_from"), form, "valid_from", "valid-from", changed)
            _date_field(t("schedule.form.valid_until"), form, "valid_until", "valid-until", changed)
        ui.label(t("schedule.form.exdates")).classes("text-body2 text-bold q-mt-sm")
        with ui.row().classes("gap-2 items-center"):
            pending = Form()
            exdate_field = _date_field(t("schedule.form.exdate_add"), pending, "start_date", "exdate",
                                       lambda *_: None)

            def add_exdate() -> None:
                try:
                    day = parse_date(pending.start_date)
                except ValueError:
                    day = None
                if day is None:
                    ui.notify(t("schedule.form.missing.exdate"), type="warning")
                    return
                text = f"{day:%d/%m/%Y}"
                if text not in form.exdates:
                    form.exdates.append(text)
                exdate_field.set_value("")
                show_exdates()
                changed()

            ui.button(t("schedule.form.exdate_add"), icon="add", on_click=add_exdate).props(
                "flat dense data-testid=exdate-add")
        exdates = ui.row().classes("gap-1")

        def show_exdates() -> None:
            exdates.clear()
            with exdates:
                if not form.exdates:
                    ui.label(t("schedule.form.exdates_none")).classes("text-caption text-grey-7")
                for text in form.exdates:
                    def drop(text: str = text) -> None:
                        form.exdates.remove(text)
                        show_exdates()
                        changed()

                    ui.chip(text, removable=True, on_value_change=lambda e, drop=drop: drop() if not e.value else None
                            ).props("dense")

        show_exdates()

    with ui.card().classes("w-full gap-2"):
        ui.label(t("schedule.form.priority")).classes("text-subtitle1 text-bold")
        priorities = {"normal": t("schedule.priority.normal"), "priority": t("schedule.priority.priority")}
        if form.priority == "emergency":
            priorities["emergency"] = t("schedule.priority.emergency")
        ui.toggle(priorities).bind_value(form, "priority").props("data-testid=priority").on_value_change(changed)
        orders = {"": t("schedule.form.order.none"), "before": t("schedule.form.order.before"),
                  "after": t("schedule.form.order.after")}
        ui.select(orders, label=t("schedule.form.order.label")).bind_value(form, "order").props(
            "dense outlined data-testid=order").classes("w-full sm:w-96").on_value_change(changed)

    with ui.card().classes("w-full gap-2"):
        verdict = ui.label().classes("text-body1").props("data-testid=clash-status")
        if not staff.who.has(Right.CONTENT_APPROVE):
            ui.label(t("schedule.form.needs_approval")).classes("text-caption text-amber-10").props(
                "data-testid=approval-note")
        with ui.row().classes("gap-2"):
            ui.button(t("schedule.form.check"), icon="rule", on_click=lambda: check(explicit=True)).props(
                "outline data-testid=check")
            save_button = ui.button(t("common.save"), icon="save").props("data-testid=save")
            ui.button(t("schedule.form.back"), on_click=lambda: go(paths.SCHEDULE)).props(
                "flat data-testid=back")
            if existing is not None:
                ui.button(t("schedule.form.delete"), icon="delete", color="negative",
                          on_click=lambda: confirm_delete()).props("flat data-testid=delete")

    def confirm_delete() -> None:
        assert existing is not None
        with ui.dialog() as dialog, ui.card().classes("gap-2"):
            ui.label(t("schedule.delete_title")).classes("text-h6")
            ui.label(t("schedule.delete_text", title=existing.title, receivers=existing.receivers))
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button(t("common.cancel"), on_click=dialog.close).props("flat data-testid=cancel")

                async def yes() -> None:
                    dialog.close()

                    def delete() -> None:
                        with staff.ctx() as ctx:
                            service.delete_programme(ctx, existing.id)

                    await run.io_bound(delete)
                    go(paths.SCHEDULE)

                ui.button(t("common.delete"), color="negative", on_click=staff.act(yes, "programme.delete")).props(
                    "data-testid=confirm-delete")
        dialog.open()

    def show_verdict(text: str, tone: str) -> None:
        verdict.set_text(text)
        verdict.classes(replace=f"text-body1 text-{tone}")

    def refresh_view() -> None:
        seconds = sum(choices.durations.get(k, 0) for k in form.items)
        duration.set_text(t("schedule.form.duration", duration=duration_vi(seconds)) if form.items else "")
        pickers.set_visibility(not form.all)
        n = form.reach(choices)
        reach.set_text(t("schedule.form.reach", n=n) if n else t("schedule.form.reach_none"))
        weekly.set_visibility(form.kind == "weekly")
        monthly_day.set_visibility(form.kind == "monthly_day")
        monthly_nth.set_visibility(form.kind == "monthly_nth")
        try:
            rule_text.set_text(recurrence.describe(form.rule(), form.start()))
        except Problem:
            rule_text.set_text("")

    def dry_run(body: ProgrammeCreate) -> None:
        with staff.ctx() as ctx:
            service.check_programme(ctx, body if ident is None else form.update(), ident)

    async def check(explicit: bool = False) -> bool:
        """Check the form against the schedule without saving; True when it could be saved as it is."""
        state["dirty"] = False
        try:
            body = form.body()
        except Problem as p:
            if explicit:
                show_verdict(t("schedule.form.problem", problem=t(f"schedule.form.missing.{p}")), "grey-8")
            else:
                show_verdict("", "grey-8")
            return False
        show_verdict(t("schedule.form.checking"), "grey-7")
        try:
            await run.io_bound(dry_run, body)
        except Conflict as e:
            show_verdict(clash_text(e) if e.code == "programme_clash" else explain(e), "negative")
            return False
        except DomainError as e:
            if isinstance(e, Refusal):
                staff.refused(e, "programme.check")
            show_verdict(t("schedule.form.problem", problem=explain(e)), "negative")
            return False
        show_verdict(t("schedule.form.no_clash"), "positive")
        return True

    async def poll() -> None:
        if state["dirty"] and not state["checking"] and (dt.datetime.now() - state.get("at", dt.datetime.min)
                                                         ).total_seconds() >= CHECK_AFTER_S:
            state["checking"] = True
            try:
                await check()
            finally:
                state["checking"] = False

    async def save() -> None:
        try:
            body = form.body()
        except Problem as p:
            show_verdict(t("schedule.form.problem", problem=t(f"schedule.form.missing.{p}")), "negative")
            return

        def write() -> ProgrammePublic:
            with staff.ctx() as ctx:
                if ident is None:
                    return service.create_programme(ctx, body)
                return service.edit_programme(ctx, ident, form.update())

        try:
            saved: ProgrammePublic = await run.io_bound(write)  # type: ignore[assignment]
        except Conflict as e:
            if e.code == "programme_clash":
                show_verdict(clash_text(e), "negative")
            raise
        monday = saved.start.astimezone(TZ).date()
        monday -= dt.timedelta(days=monday.weekday())
        commune = saved.communes[0] if len(saved.communes) == 1 else (xa or "")
        # The calendar says it was saved (a message shown here would be gone with the page).
        go(f"{paths.SCHEDULE}?tuan={monday.isoformat()}" + (f"&xa={commune}" if commune else "") + f"&luu={saved.id}")

    save_button.on_click(staff.act(save, "programme.save"))
    refresh_view()
    ui.timer(0.3, poll)
