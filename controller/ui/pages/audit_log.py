"""Nhật ký: the audit log (district admins), newest first, filtered by action, outcome, actor and period, a
page at a time; times as dd/mm/yyyy HH:MM:SS in Vietnam's time. From `services.audit.entries`, which refuses
anyone but a district admin."""

from __future__ import annotations

import datetime as dt
from typing import Any

from nicegui import ui

from controller.policy import Right
from controller.services import Page
from controller.services.audit import AuditEntryPublic, entries

from .. import paths
from ..fmt import TZ, date_vi, local
from ..i18n import strings, t
from ..shell import Staff, staff_page

PAGE_SIZE = 50
OUTCOMES = ("ok", "refused", "rejected", "no_answer")
WIDE = {"target", "detail", "address"}


def action_vi(action: str) -> str:
    """'programme.approve' → 'Chương trình · duyệt' (the parts it knows; the rest as written)."""
    noun, _, verb = action.partition(".")
    verb = verb.split(":", 1)[0]
    known = strings()
    words = [known.get(f"audit.noun.{noun}", noun)]
    if verb:
        words.append(known.get(f"audit.verb.{verb}", verb))
    return " · ".join(words)


def stamp(value: dt.datetime) -> str:
    """dd/mm/yyyy HH:MM:SS, Vietnam's time."""
    return f"{date_vi(value)} {local(value):%H:%M:%S}"


def parse_day(text: str | None) -> dt.date | None:
    """'07/12/2026' → a date; '' → None; ValueError for anything else."""
    text = (text or "").strip()
    if not text:
        return None
    return dt.datetime.strptime(text, "%d/%m/%Y").date()


def _who(actor: str) -> str:
    """'user:5:leader-nu' → 'leader-nu'; 'token:3:ui-tests' → 'ui-tests (mã API)'."""
    kind, _, rest = actor.partition(":")
    name = rest.partition(":")[2] or rest or actor
    return f"{name} (API)" if kind == "token" else name


def _row(e: AuditEntryPublic) -> dict[str, Any]:
    return {"id": e.id, "at": stamp(e.at), "actor": _who(e.actor), "action": action_vi(e.action),
            "code": e.action, "outcome": t(f"audit.outcome_kind.{e.outcome}") if e.outcome in OUTCOMES else e.outcome,
            "outcome_code": e.outcome, "target": e.target or "", "detail": e.detail or "", "address": e.address or ""}


def _date_input(label: str, testid: str) -> ui.input:
    with ui.input(label, placeholder=t("audit.date_hint")).classes("w-full sm:w-40").props(
            f"outlined dense clearable data-testid={testid}") as field:
        with ui.menu().props("no-parent-event") as menu:
            # Fills the field, not bound back: a half-typed date would come back from the picker as "no date".
            ui.date(mask="DD/MM/YYYY", on_change=lambda e: e.value and field.set_value(e.value)).props(
                "first-day-of-week=1")
        with field.add_slot("append"):
            ui.icon("event").on("click", menu.open).classes("cursor-pointer")
    return field


@staff_page(paths.AUDIT, Right.ADMIN, "audit.title")
def audit_log(staff: Staff) -> None:
    ui.label(t("audit.title")).classes("text-h5")
    with ui.row().classes("w-full gap-2 items-start"):
        action = ui.input(t("audit.action"), placeholder=t("audit.action_hint")).classes("w-full sm:w-56").props(
            "outlined dense clearable data-testid=audit-action")
        outcome = ui.select({"": t("audit.any"), **{o: t(f"audit.outcome_kind.{o}") for o in OUTCOMES}}, value="",
                            label=t("audit.outcome")).classes("w-full sm:w-44").props(
            "outlined dense data-testid=audit-outcome")
        actor = ui.input(t("audit.actor"), placeholder=t("audit.actor_hint")).classes("w-full sm:w-48").props(
            "outlined dense clearable data-testid=audit-actor")
        start = _date_input(t("audit.start"), "audit-start")
        end = _date_input(t("audit.end"), "audit-end")
    with ui.row().classes("gap-2 items-center"):
        apply = ui.button(t("audit.apply"), icon="filter_alt").props("no-caps color=teal-8 data-testid=audit-apply")
        clear = ui.button(t("audit.clear")).props("flat no-caps")
        count = ui.label().classes("text-sm text-grey-8").props("data-testid=audit-count")
    wide = {"classes": "gt-xs", "headerClasses": "gt-xs"}  # a phone shows when, who, what and how it went
    columns = [{"name": n, "label": t(f"audit.{n}"), "field": n, "align": "left", **(wide if n in WIDE else {})}
               for n in ("at", "actor", "action", "outcome", "target", "detail", "address")]
    table = ui.table(columns=columns, rows=[], row_key="id").classes("w-full").props(
        "flat bordered dense wrap-cells hide-pagination :pagination='{rowsPerPage: 0}' data-testid=audit-table")
    table.add_slot("body-cell-outcome", r'''
        <q-td :props="props">
          <q-badge :color="props.row.outcome_code === 'ok' ? 'positive' : 'negative'" :label="props.value"
                   :data-testid="'outcome-' + props.row.outcome_code" />
        </q-td>''')
    table.add_slot("body-cell-action", r'''
        <q-td :props="props">
          <div>{{ props.value }}</div><div class="text-caption text-grey-7">{{ props.row.code }}</div>
          <div class="xs text-caption" style="white-space:normal">{{ props.row.target }} {{ props.row.detail }}</div>
        </q-td>''')
    pager = ui.pagination(1, 1, direction_links=True).props("max-pages=7 boundary-numbers")
    filters: dict[str, Any] = {}

    def load() -> None:
        page = pager.value or 1
        with staff.ctx() as ctx:
            found = entries(ctx, Page(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE), **filters)
        pages = max(1, -(-found.count // PAGE_SIZE))
        pager.max = pages
        pager.update()
        table.rows = [_row(e) for e in found.data]
        table.update()
        count.set_text(t("audit.count", count=found.count) if found.count else t("audit.nothing"))

    def filtered() -> None:
        try:
            first, last = parse_day(start.value), parse_day(end.value)
        except ValueError:
            ui.notify(t("audit.bad_date"), type="warning")
            return
        filters.clear()
        filters.update(action=(action.value or "").strip() or None, outcome=outcome.value or None,
                       actor_part=(actor.value or "").strip() or None,
                       start=dt.datetime.combine(first, dt.time(), TZ) if first else None,
                       end=dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), TZ) if last else None)
        if pager.value != 1:
            pager.set_value(1)  # reloads
        else:
            load()

    def cleared() -> None:
        for field in (action, actor, start, end):
            field.set_value("")
        outcome.set_value("")
        filtered()

    apply.on_click(staff.act(filtered, "audit filter"))
    clear.on_click(staff.act(cleared, "audit clear"))
    outcome.on_value_change(staff.act(filtered, "audit filter"))
    for field in (action, actor, start, end):
        field.on("keydown.enter", staff.act(filtered, "audit filter"))
    pager.on_value_change(staff.act(load, "audit page"))
    load()
