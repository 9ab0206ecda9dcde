"""Báo cáo: a month's planned against played minutes per commune (a chart and a table), per programme, the
items receivers missed and why (in Vietnamese), the proof of play of one receiver, and the CSV files.

Everything comes from `services.reports.broadcast_report` / `broadcast_csv` and `services.plays.list_plays`,
which limit it to the person's communes. A month's report places every programme on every receiver: it is
computed off the event loop (`run.io_bound`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from nicegui import run, ui

from controller.db.models import PlaysPublic
from controller.policy import Right
from controller.services import Page
from controller.services.communes import list_communes
from controller.services.plays import list_plays
from controller.services.receivers import list_receivers
from controller.services.reports import BroadcastReport, MissedItem, broadcast_csv, broadcast_report

from .. import paths
from ..fmt import TZ, datetime_vi, duration_vi
from ..i18n import t
from ..shell import Staff, staff_page

MONTHS_SHOWN = 12
MISSED_SHOWN = 300
PLAYS_SHOWN = 300
PROGRAMME_ITEM = re.compile(r"^p(\d+)-")


def months(today: dt.date, n: int = MONTHS_SHOWN) -> dict[str, str]:
    """The last `n` months, this one first: 'YYYY-MM' → 'Tháng MM/YYYY'."""
    out, year, month = {}, today.year, today.month
    for _ in range(n):
        out[f"{year}-{month:02d}"] = t("reports.month_option", month=f"{month:02d}", year=year)
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out


def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime]:
    first = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=TZ)
    return first, (first + dt.timedelta(days=32)).replace(day=1)


def reason_vi(outcome: str, reason: str | None) -> str:
    """Why an item was not played, as staff read it (the receivers report in English, for logs)."""
    text = (reason or "").lower()
    if outcome == "no report":
        return t("reports.why.no_report")
    if "power cut" in text or "restart" in text:
        return t("reports.why.power")
    if "stopped before" in text:
        return t("reports.why.stopped_before")
    if "stopped" in text:
        return t("reports.why.stopped")
    if "missed" in text or outcome == "missed":
        return t("reports.why.late")
    if "pre-empted" in text:
        return t("reports.why.preempted")
    if "audio not available" in text:
        return t("reports.why.audio")
    return t("reports.why.other", detail=reason or outcome)


def outcome_vi(outcome: str) -> str:
    key = f"reports.outcome_kind.{outcome}"
    try:
        return t(key)
    except KeyError:
        return outcome


def _percent(value: float | None) -> str:
    return "—" if value is None else t("reports.percent", value=f"{value:.1f}".replace(".", ","))


def _minutes(value: float) -> str:
    return f"{value:.1f}".replace(".", ",")


def chart_options(report: BroadcastReport, names: dict[str, str]) -> dict[str, Any]:
    """The ECharts options: planned against played receiver-minutes, a pair of bars per commune, laid
    across so that the communes' names read on a phone too."""
    rows = list(reversed(report.communes))  # the first commune on top
    return {
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
        "legend": {"data": [t("reports.planned"), t("reports.played")], "top": 0},
        "grid": {"left": 8, "right": 16, "top": 32, "bottom": 8, "containLabel": True},
        "yAxis": {"type": "category", "data": [names.get(c.commune, c.commune) for c in rows],
                  "axisLabel": {"fontSize": 11}},
        "xAxis": {"type": "value"},
        "series": [
            {"name": t("reports.planned"), "type": "bar", "color": "#90a4ae",
             "data": [round(c.planned_receiver_minutes, 1) for c in rows]},
            {"name": t("reports.played"), "type": "bar", "color": "#00796b",
             "data": [round(c.played_receiver_minutes, 1) for c in rows]},
        ],
    }


def chart_height(report: BroadcastReport) -> int:
    return 80 + 44 * max(1, len(report.communes))


def _item_vi(item_id: str) -> str:
    m = PROGRAMME_ITEM.match(item_id)
    if m:
        return t("reports.programme_item", id=m.group(1))
    return t("reports.emergency_item") if item_id.startswith("em-") else t("reports.direct_item")


def _missed_rows(missed: list[MissedItem], names: dict[str, str]) -> list[dict[str, Any]]:
    return [{"id": i, "when": datetime_vi(m.start), "receiver": m.receiver_id,
             "commune": names.get(m.commune, m.commune), "title": m.title, "outcome": outcome_vi(m.outcome),
             "reason": reason_vi(m.outcome, m.reason)} for i, m in enumerate(missed[:MISSED_SHOWN])]


def _plays_rows(plays: PlaysPublic) -> list[dict[str, Any]]:
    return [{"id": p.event_id, "when": datetime_vi(p.at, seconds=True), "event": outcome_vi(p.event),
             "item": _item_vi(p.item_id), "position": duration_vi(p.position_s),
             "priority": t(f"reports.priority_kind.{p.priority}") if p.priority in ("emergency", "priority",
                                                                                     "normal") else p.priority,
             "reason": reason_vi(p.event, p.reason) if p.event in ("missed", "failed", "cut") else ""}
            for p in plays.data]


def _col(name: str, key: str, *, wide: bool = False) -> dict[str, Any]:
    """A table column; `wide`: shown from tablet width up only (a phone shows the columns that matter)."""
    hidden = {"classes": "gt-xs", "headerClasses": "gt-xs"} if wide else {}
    return {"name": name, "label": t(key), "field": name, "align": "left", **hidden}


@staff_page(paths.REPORTS, Right.CONTENT_READ, "reports.title")
def reports(staff: Staff) -> None:
    ui.label(t("reports.title")).classes("text-h5")
    today = dt.datetime.now(TZ).date()
    with staff.ctx() as ctx:
        names = {c.code: c.name for c in list_communes(ctx, Page(limit=1000)).data}
        receivers = list_receivers(ctx, Page(limit=1000)).data
    choices = months(today)
    communes = {"": t("reports.district") if staff.who.communes is None else t("reports.all_communes"),
                **{code: name for code, name in names.items()}}
    with ui.row().classes("w-full gap-2 items-end"):
        month = ui.select(choices, value=next(iter(choices)), label=t("reports.month")).classes(
            "w-full sm:w-48").props("outlined dense data-testid=report-month")
        commune = ui.select(communes, value="", label=t("reports.commune")).classes("w-full sm:w-64").props(
            "outlined dense data-testid=report-commune")
    status = ui.label().classes("text-caption text-grey-7").props("data-testid=report-period")
    body = ui.column().classes("w-full gap-3")
    state: dict[str, Any] = {"report": None}

    def compute(month_value: str, code: str | None) -> BroadcastReport:
        with staff.ctx() as ctx:
            return broadcast_report(ctx, commune=code, month=month_value)

    async def load() -> None:
        status.set_text(t("reports.loading"))
        body.clear()
        report = await run.io_bound(compute, month.value, commune.value or None)
        assert report is not None
        state["report"] = report
        status.set_text(t("reports.period", start=datetime_vi(report.from_), end=datetime_vi(report.to),
                          until=datetime_vi(report.planned_until)))
        with body:
            _draw(report)

    def download(part: str) -> None:
        report = state["report"]
        if report is None:
            return
        table = broadcast_csv(report, "missed" if part == "missed" else "summary", month.value)
        ui.download.content(table.text.encode("utf-8"), table.filename, table.media_type)

    def _draw(report: BroadcastReport) -> None:
        with ui.row().classes("w-full gap-2"):
            ui.button(t("reports.download"), icon="download", on_click=staff.act(lambda: download("summary"),
                                                                                 "report csv")).props(
                "no-caps color=teal-8 data-testid=report-csv")
            ui.button(t("reports.download_missed"), icon="download",
                      on_click=staff.act(lambda: download("missed"), "report missed csv")).props(
                "no-caps outline color=teal-8 data-testid=report-csv-missed")
        with ui.card().classes("w-full gap-2"):
            ui.label(t("reports.chart_title")).classes("text-subtitle1 font-bold")
            if not report.communes:
                ui.label(t("reports.no_data")).classes("text-grey-7").props("data-testid=report-empty")
            ui.echart(chart_options(report, names)).classes("w-full").style(
                f"height:{chart_height(report)}px").props("data-testid=report-chart")
            columns = [_col("commune", "reports.commune"), _col("receivers", "reports.receivers", wide=True),
                       _col("air", "reports.air", wide=True), _col("planned", "reports.planned"),
                       _col("played", "reports.played"), _col("completion", "reports.completion"),
                       _col("missing", "reports.missing_receivers", wide=True)]
            rows = [{"commune": names.get(c.commune, c.commune), "receivers": c.receivers,
                     "air": _minutes(c.planned_minutes), "planned": _minutes(c.planned_receiver_minutes),
                     "played": _minutes(c.played_receiver_minutes), "completion": _percent(c.completion_percent),
                     "missing": c.receivers_missing_items} for c in report.communes]
            ui.table(columns=columns, rows=rows, row_key="commune").classes("w-full").props(
                "flat dense wrap-cells data-testid=report-communes")
        if report.programmes:
            with ui.expansion(t("reports.programmes"), icon="list").classes("w-full bg-white rounded-borders"):
                columns = [_col("title", "reports.programme"), _col("commune", "reports.commune", wide=True),
                           _col("occurrences", "reports.occurrences", wide=True), _col("planned", "reports.planned"),
                           _col("played", "reports.played"), _col("completion", "reports.completion")]
                rows = [{"id": f"{p.commune}-{p.programme_id}", "title": p.title,
                         "commune": names.get(p.commune, p.commune), "occurrences": p.occurrences,
                         "planned": _minutes(p.planned_receiver_minutes), "played": _minutes(p.played_receiver_minutes),
                         "completion": _percent(p.completion_percent)} for p in report.programmes]
                ui.table(columns=columns, rows=rows, row_key="id", pagination=20).classes("w-full").props(
                    "flat dense wrap-cells")
        with ui.card().classes("w-full gap-2"):
            ui.label(t("reports.missed_title", n=len(report.missed))).classes("text-subtitle1 font-bold")
            if not report.missed:
                ui.label(t("reports.missed_none")).classes("text-grey-7")
            else:
                if len(report.missed) > MISSED_SHOWN:
                    ui.label(t("reports.missed_more", shown=MISSED_SHOWN, total=len(report.missed))).classes(
                        "text-caption")
                columns = [_col("when", "reports.when"), _col("receiver", "reports.receiver"),
                           _col("commune", "reports.commune", wide=True), _col("title", "reports.programme"),
                           _col("outcome", "reports.outcome"), _col("reason", "reports.reason")]
                ui.table(columns=columns, rows=_missed_rows(report.missed, names), row_key="id",
                         pagination=20).classes("w-full").props("flat dense wrap-cells data-testid=report-missed")

    ui.separator()
    ui.label(t("reports.proof_title")).classes("text-h6")
    options = {r.id: f"{r.id} · {r.name}" for r in receivers}
    picked = ui.select(options, label=t("reports.pick_receiver"), with_input=True).classes("w-full sm:w-96").props(
        "outlined dense data-testid=proof-receiver")
    proof = ui.column().classes("w-full gap-2")

    def show_plays() -> None:
        proof.clear()
        if not picked.value:
            return
        start, end = month_bounds(month.value)
        with staff.ctx() as ctx:
            plays = list_plays(ctx, Page(limit=PLAYS_SHOWN), receiver=picked.value, start=start, end=end)
        with proof:
            if not plays.data:
                ui.label(t("reports.proof_none")).classes("text-grey-7").props("data-testid=proof-none")
                return
            if plays.count > PLAYS_SHOWN:
                ui.label(t("reports.proof_more", shown=PLAYS_SHOWN, total=plays.count)).classes("text-caption")
            columns = [_col("when", "reports.when"), _col("event", "reports.event"), _col("item", "reports.item"),
                       _col("position", "reports.position", wide=True), _col("priority", "reports.priority", wide=True),
                       _col("reason", "reports.reason")]
            ui.table(columns=columns, rows=_plays_rows(plays), row_key="id", pagination=20).classes("w-full").props(
                "flat dense wrap-cells data-testid=proof-table")

    async def changed() -> None:
        await load()
        show_plays()

    month.on_value_change(staff.act(changed, "report month"))
    commune.on_value_change(staff.act(load, "report commune"))
    picked.on_value_change(staff.act(show_plays, "proof of play"))
    ui.timer(0.05, staff.act(load, "report"), once=True)  # the page shows at once; the report follows
