"""Tổng quan: the person's communes with their online / offline / playing counts (live, from `live.FleetView`),
what is on air now and what comes next in each (the schedule, `services.programmes.schedule`), and the alarms
that need attention (`services.fleet_health.alarms`), each linking to its receiver's page.

The counts redraw from the shared snapshot once it changes; the schedule (every minute) and the alarms (every
ten seconds) are read in a worker thread, never on the event loop.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from nicegui import ui

from controller.policy import Right
from controller.services import Ctx, fleet_health, programmes
from controller.services.context import MAX_LIMIT, Page
from controller.services.fleet_health import Alarm
from controller.services.programmes import ScheduleRow

from .. import host, paths
from ..fmt import datetime_vi, time_vi
from ..i18n import t
from ..shell import Staff, staff_page
from .receivers import background, receiver_path

SCHEDULE_EVERY_S = 60.0
ALARMS_EVERY_S = 10.0
ALARMS_SHOWN = 30
BEHIND = dt.timedelta(hours=3)  # a programme that started this long ago may still be on air
AHEAD = dt.timedelta(hours=24)


def _count(label: str, value: int, color: str, testid: str) -> ui.label:
    with ui.column().classes("items-center gap-0"):
        number = ui.label(str(value)).classes(f"text-h6 text-{color}").props(f"data-testid={testid}")
        ui.label(label).classes("text-caption text-grey-8")
    return number


def on_air(ctx: Ctx, codes: list[str]) -> dict[str, tuple[ScheduleRow | None, ScheduleRow | None]]:
    """Commune → (what plays there now by the schedule, what plays next within `AHEAD`)."""
    now = dt.datetime.now(dt.UTC)
    rows = programmes.schedule(ctx, Page(limit=MAX_LIMIT), from_=now - BEHIND, to=now + AHEAD).data
    out: dict[str, tuple[ScheduleRow | None, ScheduleRow | None]] = {}
    for code in codes:
        here = [r for r in rows if code in r.communes]
        playing = [r for r in here if r.start <= now < r.end]
        # Several at once (an emergency over a programme, …): the highest class is what is heard.
        playing.sort(key=lambda r: ("normal", "priority", "emergency").index(r.priority), reverse=True)
        coming = [r for r in here if r.start > now]
        out[code] = (playing[0] if playing else None, coming[0] if coming else None)
    return out


def alarm_text(a: Alarm) -> str:
    match a.kind:
        case "offline":
            return t("dashboard.alarm.offline", since=datetime_vi(a.since)) if a.since \
                else t("dashboard.alarm.offline_never")
        case "clock_drift":
            return t("dashboard.alarm.clock_drift", seconds=f"{a.value or 0:+.1f}".replace(".", ","))
        case "disk_low":
            return t("dashboard.alarm.disk_low", mb=f"{a.value or 0:.0f}")
        case "self_test_failed":
            return t("dashboard.alarm.self_test_failed", at=datetime_vi(a.since))
        case "cloned":
            return t("dashboard.alarm.cloned", at=datetime_vi(a.since))
    return a.kind


ALARM_ICONS = {"offline": "wifi_off", "clock_drift": "schedule", "disk_low": "sd_card_alert",
               "self_test_failed": "report_problem", "cloned": "content_copy"}


@staff_page(paths.HOME, Right.RECEIVERS_READ, "dashboard.title")
def dashboard(staff: Staff) -> None:
    view = host.state().fleet_view
    communes = staff.who.communes
    ui.label(t("dashboard.title")).classes("text-h5")
    updated = ui.label().classes("text-caption text-grey-7")
    cells: dict[str, dict[str, ui.label]] = {}
    air: dict[str, tuple[ui.label, ui.label, ui.label]] = {}
    totals: dict[str, ui.label] = {}
    with ui.row().classes("gap-6"):
        totals["total"] = _count(t("dashboard.total"), 0, "grey-9", "total-total")
        totals["online"] = _count(t("dashboard.online"), 0, "positive", "total-online")
        totals["offline"] = _count(t("dashboard.offline"), 0, "negative", "total-offline")
        totals["playing"] = _count(t("dashboard.playing"), 0, "primary", "total-playing")

    with ui.card().classes("w-full gap-1").props("data-testid=alarms"):
        with ui.row().classes("items-center gap-2"):
            ui.icon("notifications_active", color="negative")
            ui.label(t("dashboard.alarms")).classes("text-subtitle1 font-bold")
            alarm_count = ui.badge("").props("color=negative data-testid=alarm-count")
        alarm_list = ui.column().classes("w-full gap-1").props("data-testid=alarm-list")

    schedule_visible = staff.who.has(Right.CONTENT_READ)
    with ui.element("div").classes("grid gap-3 w-full grid-cols-1 sm:grid-cols-2 lg:grid-cols-3"):
        for c in view.snapshot.counts(communes):
            with ui.card().classes("gap-1 min-w-0").props(f"data-testid=commune-{c.code}"):
                ui.link(c.name, paths.page_path(f"{paths.RECEIVERS}?commune={c.code}")) \
                    .classes("text-subtitle1 font-bold").props(f"data-testid=commune-link-{c.code}")
                with ui.row().classes("gap-6"):
                    cells[c.code] = {
                        "online": _count(t("dashboard.online"), c.online, "positive", f"online-{c.code}"),
                        "offline": _count(t("dashboard.offline"), c.offline, "negative", f"offline-{c.code}"),
                        "playing": _count(t("dashboard.playing"), c.playing, "primary", f"playing-{c.code}"),
                    }
                if schedule_visible:
                    air[c.code] = (
                        ui.label().classes("text-sm text-primary").props(f"data-testid=onair-{c.code}"),
                        ui.label().classes("text-sm text-grey-8").props(f"data-testid=next-{c.code}"),
                        ui.label().classes("text-sm text-orange-9").props(f"data-testid=unscheduled-{c.code}"),
                    )
    shown: dict[str, Any] = {"version": -1, "air": {}}

    def unscheduled() -> None:
        """Receivers playing while the schedule says nothing plays: a one-off play or an emergency."""
        snap = view.snapshot
        for code, (_, _, label) in air.items():
            now_row = shown["air"].get(code, (None, None))[0]
            count = sum(1 for r in snap.receivers.values()
                        if r.commune == code and r.availability == "online" and r.playing) if now_row is None else 0
            label.set_text(t("dashboard.unscheduled", count=count) if count else "")
            label.set_visibility(bool(count))

    def refresh() -> None:
        snap = view.snapshot
        if snap.version == shown["version"]:
            return
        shown["version"] = snap.version
        rows = snap.counts(communes)
        for c in rows:
            for key, label in cells.get(c.code, {}).items():
                label.set_text(str(getattr(c, key)))
        for key, label in totals.items():
            label.set_text(str(sum(getattr(c, key) for c in rows)))
        if snap.at:
            updated.set_text(t("dashboard.updated", time=time_vi(snap.at, seconds=True)))
        unscheduled()

    async def refresh_schedule() -> None:
        found = await background(staff, lambda ctx: on_air(ctx, list(air)))
        if found is None:
            return
        shown["air"] = found
        for code, (now_label, next_label, _) in air.items():
            now_row, next_row = found.get(code, (None, None))
            now_label.set_text(t("dashboard.on_air", title=now_row.title, end=time_vi(now_row.end))
                               if now_row else t("dashboard.on_air_none"))
            next_label.set_text(t("dashboard.next", title=next_row.title, start=datetime_vi(next_row.start))
                                if next_row else t("dashboard.next_none"))
        unscheduled()
        # Switch at the moment a programme starts or ends rather than up to a minute later.
        now = dt.datetime.now(dt.UTC)
        edges = [row.end if i == 0 else row.start for pair in found.values()
                 for i, row in enumerate(pair) if row is not None]
        wait = min(((e - now).total_seconds() for e in edges if e > now), default=SCHEDULE_EVERY_S)
        if wait < SCHEDULE_EVERY_S - 1 and not shown.get("edge"):
            shown["edge"] = True

            async def at_edge() -> None:
                shown["edge"] = False
                await refresh_schedule()

            ui.timer(wait + 0.5, at_edge, once=True)

    async def refresh_alarms() -> None:
        found = await background(staff, fleet_health.alarms)
        if found is None or found == shown.get("alarms"):
            return
        shown["alarms"] = found
        alarm_list.classes("tt-loaded")  # for tests: the alarms have been read at least once
        alarm_count.set_text(t("dashboard.alarms_count", count=len(found)))
        alarm_count.set_visibility(bool(found))
        alarm_list.clear()
        with alarm_list:
            if not found:
                ui.label(t("dashboard.alarms_none")).classes("text-grey-7").props("data-testid=no-alarms")
            for a in found[:ALARMS_SHOWN]:
                with ui.row().classes("w-full items-center gap-2 no-wrap"):
                    ui.icon(ALARM_ICONS.get(a.kind, "warning"), color="negative", size="xs")
                    link = paths.page_path(receiver_path(a.receiver_id))
                    with ui.link(target=link).classes("no-underline min-w-0") \
                            .props(f"data-testid=alarm-{a.kind}-{a.receiver_id}"):
                        ui.label(f"{a.receiver_name} · {a.commune_name}").classes("text-primary font-medium")
                        ui.label(alarm_text(a)).classes("text-sm text-grey-9")
            if len(found) > ALARMS_SHOWN:
                ui.label(t("dashboard.alarms_more", count=len(found) - ALARMS_SHOWN)).classes("text-grey-8")

    refresh()
    ui.timer(view.poll_s, refresh)
    ui.timer(0.1, refresh_alarms, once=True)
    ui.timer(ALARMS_EVERY_S, refresh_alarms)
    if schedule_visible:
        ui.timer(0.1, refresh_schedule, once=True)
        ui.timer(SCHEDULE_EVERY_S, refresh_schedule)
