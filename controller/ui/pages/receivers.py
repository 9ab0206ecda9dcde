"""Cụm loa: the list of receivers (filters, live status) and one receiver's page — its status now and its
history, telemetry, recent plays (proof of play) and the commands staff send it (volume, self-test, restart).

The list is drawn from the live fleet view (`live.FleetView`, no query per browser), limited to the person's
communes; the receiver page reads the services (`services.receivers`, `services.fleet_health`,
`services.plays`), which answer a receiver of another commune as absent — the shell then shows "not found".

Shared with the dashboard and the map: `AVAILABILITY_COLORS`, `availability_text`, `background` (a service
call in a worker thread, for timers) and `fold` (search without diacritics).
"""

from __future__ import annotations

import datetime as dt
import logging
import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

from nicegui import run, ui

from controller.errors import DomainError, Unauthenticated
from controller.policy import Principal, Right
from controller.services import Ctx, fleet_health, plays
from controller.services import receivers as receiver_service
from controller.services.context import Page
from controller.services.receivers import CommandOutcome, VolumeRequest

from .. import host, paths
from ..fmt import datetime_vi, duration_vi
from ..i18n import t
from ..live import ReceiverLive, Snapshot
from ..shell import Staff, staff_page

log = logging.getLogger(__name__)
T = TypeVar("T")

# Quasar colour names (badges) and the same as hex (map markers).
AVAILABILITY_COLORS = {"online": "positive", "offline": "negative", "stopped": "grey-7", "unknown": "grey-5"}
HEX = {"online": "#21ba45", "playing": "#1976d2", "offline": "#c10015", "stopped": "#616161", "unknown": "#9e9e9e"}
RECENT = 20  # plays and status changes shown on a receiver's page


def availability_text(availability: str) -> str:
    return t(f"receivers.availability.{availability if availability in AVAILABILITY_COLORS else 'unknown'}")


def receiver_path(rid: str) -> str:
    """The receiver's page, as a plain link's address (NiceGUI's `ui.link` wants `paths.page_path` of it: it
    puts its mount point in front of an address starting with '/' itself)."""
    return f"{paths.RECEIVERS}/{rid}"


def fold(text: str) -> str:
    """`text` lower-cased without diacritics ("Thôn Đắk" → "thon dak"), so a search need not type them."""
    text = unicodedata.normalize("NFD", text.lower().replace("đ", "d"))
    return "".join(ch for ch in text if not unicodedata.combining(ch))


async def background(staff: Staff, fn: Callable[[Ctx], T]) -> T | None:
    """`fn(ctx)` in a worker thread (timers must not hold the event loop on the database). A session that
    ended sends the person to the login page; any other refusal leaves the page as it was (None)."""

    def go() -> T:
        with staff.ctx() as ctx:
            return fn(ctx)

    try:
        return await run.io_bound(go)
    except Unauthenticated:
        ui.navigate.to(paths.page_path(f"{paths.LOGIN}?error=ended"))
    except DomainError as e:
        log.info("UI refresh refused: %s", e)
    return None


# ------------------------------------------------------------------------------------------- the list


def list_rows(snap: Snapshot, who: Principal, commune: str | None, status: str | None,
              search: str) -> list[dict[str, Any]]:
    """The table's rows: the person's receivers matching the filters (`status`: online / offline)."""
    names = {c.code: c.name for c in snap.communes}
    order = {c.code: i for i, c in enumerate(snap.communes)}  # the seed's order: the town first
    wanted = fold(search.strip())
    rows = []
    for r in sorted(snap.receivers.values(), key=lambda r: (order.get(r.commune, len(order)), r.id)):
        if not who.may_see(r.commune) or (commune and r.commune != commune):
            continue
        online = r.availability == "online"
        if (status == "online" and not online) or (status == "offline" and online):
            continue
        if wanted and wanted not in fold(f"{r.id} {r.name} {r.village or ''}"):
            continue
        rows.append({"id": r.id, "name": r.name, "commune": names.get(r.commune, r.commune),
                     "status": availability_text(r.availability),
                     "color": AVAILABILITY_COLORS.get(r.availability, "grey-5"),
                     "activity": t("receivers.playing") if online and r.playing else "",
                     "url": receiver_path(r.id)})
    return rows


NAME_CELL = r"""<q-td :props="props"><a :href="props.row.url" class="text-primary text-weight-medium"
  :data-testid="'rx-' + props.row.id">{{ props.row.name }}</a>
  <div class="text-caption text-grey-7">{{ props.row.id }}</div></q-td>"""
STATUS_CELL = r"""<q-td :props="props"><q-badge :color="props.row.color" :label="props.row.status"
  :data-testid="'status-' + props.row.id" /></q-td>"""


@staff_page(paths.RECEIVERS, Right.RECEIVERS_READ, "receivers.title")
def receiver_list(staff: Staff, commune: str | None = None) -> None:
    view = host.state().fleet_view
    who = staff.who
    communes = {c.code: c.name for c in view.snapshot.counts(who.communes)}
    ui.label(t("receivers.title")).classes("text-h5")
    filters: dict[str, Any] = {"commune": commune if commune in communes else None, "status": None, "search": ""}

    def set_filter(key: str) -> Callable[[Any], None]:
        def changed(e: Any) -> None:
            filters[key] = e.value or ("" if key == "search" else None)
            redraw(force=True)

        return changed

    with ui.element("div").classes("grid gap-2 w-full grid-cols-1 sm:grid-cols-3"):
        ui.select({None: t("receivers.all_communes"), **communes}, value=filters["commune"],
                  label=t("receivers.filter_commune"), on_change=set_filter("commune")) \
            .props("outlined dense options-dense data-testid=filter-commune")
        ui.select({None: t("receivers.all_statuses"), "online": t("receivers.status_online"),
                   "offline": t("receivers.status_offline")}, value=None, label=t("receivers.filter_status"),
                  on_change=set_filter("status")).props("outlined dense options-dense data-testid=filter-status")
        ui.input(t("receivers.search"), on_change=set_filter("search")) \
            .props("outlined dense clearable debounce=300 data-testid=filter-search")
    shown = ui.label().classes("text-caption text-grey-8").props("data-testid=receiver-count")
    columns: list[dict[str, Any]] = [
        {"name": "name", "label": t("receivers.col.name"), "field": "name", "align": "left", "sortable": True},
        {"name": "commune", "label": t("receivers.col.commune"), "field": "commune", "align": "left",
         "sortable": True, "classes": "gt-xs", "headerClasses": "gt-xs"},
        {"name": "status", "label": t("receivers.col.status"), "field": "status", "align": "left", "sortable": True},
        {"name": "activity", "label": t("receivers.col.activity"), "field": "activity", "align": "left",
         "classes": "gt-xs", "headerClasses": "gt-xs"},
    ]
    table = ui.table(columns=columns, rows=[], row_key="id", pagination=25).classes("w-full") \
        .props(f'flat bordered dense no-data-label="{t("receivers.none_found")}" data-testid=receiver-table')
    table.add_slot("body-cell-name", NAME_CELL)
    table.add_slot("body-cell-status", STATUS_CELL)
    state: dict[str, Any] = {"version": -1, "rows": None}

    def redraw(force: bool = False) -> None:
        snap = view.snapshot
        if not force and snap.version == state["version"]:
            return
        state["version"] = snap.version
        rows = list_rows(snap, who, filters["commune"], filters["status"], filters["search"])
        total = sum(1 for r in snap.receivers.values() if who.may_see(r.commune))
        shown.set_text(t("receivers.count", shown=len(rows), total=total))
        if rows != state["rows"]:
            state["rows"] = rows
            table.rows = rows
            table.update()

    redraw()
    ui.timer(view.poll_s, redraw)


# ------------------------------------------------------------------------------------ one receiver


def _outcome_text(kind: str, result: CommandOutcome, volume: int | None = None) -> tuple[str, str]:
    """What the person reads after a command, and the notification's type."""
    if result.outcome == "applied":
        return t(f"receivers.control.{kind}_applied", volume=volume), "positive"
    if result.outcome == "rejected":
        return t("receivers.control.self_test_rejected" if kind == "self_test" else "receivers.control.rejected"), \
            "negative"
    if result.receiver.availability != "online":
        return t("receivers.control.not_sent"), "warning"
    return t("receivers.control.no_answer"), "warning"


def _fact(label: str, testid: str) -> ui.label:
    with ui.row().classes("w-full justify-between gap-2 no-wrap"):
        ui.label(label).classes("text-grey-8")
        return ui.label("—").classes("text-right font-medium").props(f"data-testid={testid}")


TELEMETRY = ("uptime_s", "temperature_c", "signal_dbm", "disk_free_mb", "clock_offset_s_seen", "at")


def telemetry_value(key: str, value: Any) -> str:
    if value is None:
        return "—"
    match key:
        case "uptime_s":
            return duration_vi(float(value))
        case "temperature_c":
            return t("receivers.telemetry.temperature_value", value=f"{float(value):.1f}".replace(".", ","))
        case "signal_dbm":
            return t("receivers.telemetry.signal_value", value=f"{float(value):.0f}")
        case "disk_free_mb":
            return t("receivers.telemetry.disk_value", value=f"{float(value):,.0f}".replace(",", "."))
        case "clock_offset_s_seen":
            return t("receivers.telemetry.clock_value", value=f"{float(value):.1f}".replace(".", ","))
        case "at":
            return datetime_vi(dt.datetime.fromisoformat(value), seconds=True) if isinstance(value, str) else "—"
    return str(value)


def confirm(title: str, text: str, testid: str, action: Callable[[], Any]) -> ui.dialog:
    """A dialog asking to confirm `action` (an event handler, e.g. from `staff.act`)."""

    async def confirmed() -> None:
        dialog.close()
        await action()

    with ui.dialog() as dialog, ui.card().classes("max-w-sm").props(f"data-testid={testid}-dialog"):
        ui.label(title).classes("text-h6")
        ui.label(text)
        with ui.row().classes("w-full justify-end gap-2"):
            ui.button(t("common.cancel"), on_click=dialog.close).props("flat")
            ui.button(t("common.confirm"), on_click=confirmed).props(f"color=primary data-testid={testid}-confirm")
    return dialog


@staff_page(paths.RECEIVERS + "/{rid}", Right.RECEIVERS_READ, "receivers.receiver_title")
def receiver_page(staff: Staff, rid: str) -> None:
    with staff.ctx() as ctx:
        receiver = receiver_service.get_receiver(ctx, rid)  # Hidden / NotFound: the shell's "not found" page
    ui.link(t("receivers.back"), paths.page_path(f"{paths.RECEIVERS}?commune={receiver.commune}")) \
        .classes("text-sm").props("data-testid=back-to-list")
    with ui.row().classes("w-full items-center gap-3"):
        ui.label(receiver.name).classes("text-h5").props("data-testid=receiver-name")
        badge = ui.badge().props("data-testid=receiver-status")
    ui.label(t("receivers.page.location", village=receiver.village_name or "—", commune=receiver.commune_name)) \
        .classes("text-grey-8")
    ui.label(receiver.id).classes("text-caption text-grey-7")
    drift = ui.label().classes("text-negative font-medium").props("data-testid=clock-drift")

    with ui.element("div").classes("grid gap-3 w-full grid-cols-1 md:grid-cols-2"):
        with ui.card().classes("gap-1"):
            ui.label(t("receivers.page.status")).classes("text-subtitle1 font-bold")
            last_seen = _fact(t("receivers.page.last_seen"), "last-seen")
            playing = _fact(t("receivers.page.now_playing"), "now-playing")
            volume = _fact(t("receivers.page.volume"), "volume")
            amplifier = _fact(t("receivers.page.amplifier"), "amplifier")
        with ui.card().classes("gap-1").props("data-testid=telemetry"):
            ui.label(t("receivers.page.telemetry")).classes("text-subtitle1 font-bold")
            no_telemetry = ui.label(t("receivers.page.no_telemetry")).classes("text-grey-7")
            telemetry = {key: _fact(t(f"receivers.telemetry.{key}"), f"telemetry-{key}") for key in TELEMETRY}

    if staff.who.has(Right.RECEIVERS_CONTROL) and staff.who.may_touch(receiver.commune):
        controls(staff, rid, receiver.volume)

    with ui.element("div").classes("grid gap-3 w-full grid-cols-1 md:grid-cols-2"):
        with ui.card().classes("gap-1 min-w-0"):
            ui.label(t("receivers.page.history")).classes("text-subtitle1 font-bold")
            history = ui.table(columns=[
                {"name": "at", "label": t("receivers.history_col.at"), "field": "at", "align": "left"},
                {"name": "status", "label": t("receivers.history_col.status"), "field": "status", "align": "left"},
            ], rows=[], row_key="key", pagination=0).classes("w-full") \
                .props(f'flat dense hide-pagination '
                       f'no-data-label="{t("receivers.page.no_history")}" data-testid=status-history')
        with ui.card().classes("gap-1 min-w-0"):
            ui.label(t("receivers.page.plays")).classes("text-subtitle1 font-bold")
            recent = ui.table(columns=[
                {"name": "at", "label": t("receivers.plays_col.at"), "field": "at", "align": "left"},
                {"name": "event", "label": t("receivers.plays_col.event"), "field": "event", "align": "left"},
                {"name": "item", "label": t("receivers.plays_col.item"), "field": "item", "align": "left",
                 "classes": "gt-xs", "headerClasses": "gt-xs", "style": "white-space:normal;word-break:break-all"},
                {"name": "priority", "label": t("receivers.plays_col.priority"), "field": "priority",
                 "align": "left"},
            ], rows=[], row_key="key", pagination=0).classes("w-full") \
                .props(f'flat dense hide-pagination '
                       f'no-data-label="{t("receivers.page.no_plays")}" data-testid=recent-plays')

    def show(r: receiver_service.ReceiverPublic) -> None:
        badge.set_text(availability_text(r.availability))
        badge.props(f"color={AVAILABILITY_COLORS.get(r.availability, 'grey-5')}")
        last_seen.set_text(datetime_vi(r.last_seen, seconds=True))
        item = r.state.get("playing")
        playing.set_text(str(item) if item and r.availability == "online" else t("receivers.page.nothing_playing"))
        volume.set_text(t("receivers.page.volume_value", volume=r.volume) if r.volume is not None else "—")
        amp = r.state.get("amplifier")
        amplifier.set_text(t(f"receivers.page.amplifier_{amp}") if amp in ("on", "off") else "—")
        drift.set_text(t("receivers.page.clock_drift", seconds=f"{r.clock_offset_s or 0:.1f}".replace(".", ","))
                       if r.clock_drift else "")
        drift.set_visibility(r.clock_drift)
        data = r.telemetry or {}
        no_telemetry.set_visibility(not data)
        for key, label in telemetry.items():
            label.set_text(telemetry_value(key, data.get(key)))

    def read(ctx: Ctx) -> tuple[Any, Any, Any]:
        r = receiver_service.get_receiver(ctx, rid)
        events = fleet_health.status_history(ctx, rid, Page(limit=RECENT))
        count = plays.receiver_plays(ctx, Page(limit=1), rid).count
        done = plays.receiver_plays(ctx, Page(limit=RECENT, offset=max(0, count - RECENT)), rid)
        return r, events, done

    def show_lists(events: fleet_health.StatusEventsPublic, done: Any) -> None:
        rows = [{"key": f"{e.at.isoformat()}-{i}", "at": datetime_vi(e.at, seconds=True),
                 "status": availability_text(e.availability)} for i, e in enumerate(events.data)]
        if rows != history.rows:
            history.rows = rows
            history.update()
        rows = [{"key": f"{p.receiver_id}-{p.seq}", "at": datetime_vi(p.at, seconds=True),
                 "event": t(f"receivers.event.{p.event}"), "item": p.item_id or "—",
                 "priority": t(f"receivers.priority.{p.priority}") if p.priority else "—"}
                for p in reversed(done.data)]
        if rows != recent.rows:
            recent.rows = rows
            recent.update()

    show(receiver)
    busy = {"now": False}

    async def refresh() -> None:
        if busy["now"]:
            return
        busy["now"] = True
        try:
            got = await background(staff, read)
        finally:
            busy["now"] = False
        if got is not None:
            show(got[0])
            show_lists(got[1], got[2])

    ui.timer(0.1, refresh, once=True)
    ui.timer(3.0, refresh)


def controls(staff: Staff, rid: str, current: int | None) -> None:
    """Volume, self-test and restart, for people who may control this receiver (the services check again)."""
    with ui.card().classes("w-full gap-2").props("data-testid=controls"):
        ui.label(t("receivers.page.controls")).classes("text-subtitle1 font-bold")
        with ui.row().classes("w-full items-center gap-3 no-wrap"):
            ui.icon("volume_up", size="sm", color="grey-8")
            slider = ui.slider(min=0, max=100, step=1, value=current if current is not None else 70) \
                .classes("grow").props("label data-testid=volume-slider")
            number = ui.number(t("receivers.control.volume_input"), min=0, max=100, step=1, precision=0,
                               format="%d").bind_value(slider).classes("w-28").props("dense outlined "
                                                                                     "data-testid=volume-input")
        with ui.row().classes("w-full gap-2"):
            apply = ui.button(t("receivers.control.apply_volume"), icon="check") \
                .props("color=primary data-testid=apply-volume")
            test = ui.button(t("receivers.control.self_test"), icon="fact_check") \
                .props("outline color=primary data-testid=self-test")
            restart = ui.button(t("receivers.control.restart"), icon="restart_alt") \
                .props("outline color=negative data-testid=restart")
        outcome = ui.label().classes("text-sm").props("data-testid=command-outcome")

    async def command(button: ui.button, kind: str, send: Callable[[Ctx], Any], value: int | None = None) -> None:
        button.props("loading")
        outcome.set_text(t("receivers.control.working"))
        try:
            with staff.ctx() as ctx:
                result = await send(ctx)
            text, kind_of = _outcome_text(kind, result, value)
            outcome.set_text(text)
            ui.notify(text, type=kind_of)  # type: ignore[arg-type]
        except BaseException:
            outcome.set_text("")
            raise
        finally:
            button.props(remove="loading")

    async def set_volume() -> None:
        value = int(number.value if number.value is not None else slider.value)
        await command(apply, "volume",
                      lambda ctx: receiver_service.set_volume(ctx, rid, VolumeRequest(volume=value)), value)

    async def self_test() -> None:
        await command(test, "self_test", lambda ctx: receiver_service.self_test(ctx, rid))

    async def restart_agent() -> None:
        await command(restart, "restart", lambda ctx: receiver_service.restart_agent(ctx, rid))

    apply.on_click(staff.act(set_volume, "receiver.volume"))
    test_dialog = confirm(t("receivers.control.confirm_self_test_title"), t("receivers.control.confirm_self_test"),
                          "self-test", staff.act(self_test, "receiver.self-test"))
    restart_dialog = confirm(t("receivers.control.confirm_restart_title"), t("receivers.control.confirm_restart"),
                             "restart", staff.act(restart_agent, "receiver.restart-agent"))
    test.on_click(test_dialog.open)
    restart.on_click(restart_dialog.open)


def live_color(r: ReceiverLive) -> str:
    """A receiver's colour on the map: playing, online, offline, stopped or never heard from."""
    if r.availability == "online" and r.playing:
        return HEX["playing"]
    return HEX.get(r.availability, HEX["unknown"])
