"""Tổng quan: the communes with their online / offline / playing counts, live (from `live.FleetView`)."""

from __future__ import annotations

from nicegui import ui

from controller.policy import Right

from .. import host, paths
from ..fmt import time_vi
from ..i18n import t
from ..shell import Staff, staff_page


def _count(label: str, value: int, color: str, testid: str) -> ui.label:
    with ui.column().classes("items-center gap-0"):
        number = ui.label(str(value)).classes(f"text-h6 text-{color}").props(f"data-testid={testid}")
        ui.label(label).classes("text-caption text-grey-8")
    return number


@staff_page(paths.HOME, Right.RECEIVERS_READ, "dashboard.title")
def dashboard(staff: Staff) -> None:
    view = host.state().fleet_view
    communes = staff.who.communes
    ui.label(t("dashboard.title")).classes("text-h5")
    updated = ui.label().classes("text-caption text-grey-7")
    cells: dict[str, dict[str, ui.label]] = {}
    totals: dict[str, ui.label] = {}
    with ui.row().classes("gap-6"):
        totals["total"] = _count(t("dashboard.total"), 0, "grey-9", "total-total")
        totals["online"] = _count(t("dashboard.online"), 0, "positive", "total-online")
        totals["offline"] = _count(t("dashboard.offline"), 0, "negative", "total-offline")
        totals["playing"] = _count(t("dashboard.playing"), 0, "primary", "total-playing")
    with ui.element("div").classes("grid gap-3 w-full grid-cols-1 sm:grid-cols-2 lg:grid-cols-3"):
        for c in view.snapshot.counts(communes):
            with ui.card().classes("gap-1").props(f"data-testid=commune-{c.code}"):
                ui.link(c.name, f"{paths.RECEIVERS}?commune={c.code}").classes("text-subtitle1 font-bold")
                with ui.row().classes("gap-6"):
                    cells[c.code] = {
                        "online": _count(t("dashboard.online"), c.online, "positive", f"online-{c.code}"),
                        "offline": _count(t("dashboard.offline"), c.offline, "negative", f"offline-{c.code}"),
                        "playing": _count(t("dashboard.playing"), c.playing, "primary", f"playing-{c.code}"),
                    }
    shown = {"version": -1}

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

    refresh()
    ui.timer(view.refresh_s, refresh)
