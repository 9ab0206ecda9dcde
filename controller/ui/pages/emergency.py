"""Khẩn cấp: a page set apart (red, no menu) to send an emergency announcement and follow it.

- `emergency_page` (`/ui/khan-cap`): the form — text or approved content, where (district, communes, villages
  within the person's communes), expiry, repeats — then a confirmation that says exactly what the loudspeakers
  will read, where and on how many receivers (`services.emergencies.preview`: the trigger's own checks and its
  own way of reading the text); a text can be heard there first ("Nghe thử": `services.emergencies.listen`,
  through the same engines, order and deadlines, with which voice read it; its speech is cached, so sending
  reuses it); only the confirmation triggers. Below: the recent emergencies the person can
  see and the CAP alerts that arrived.
- `progress_page` (`/ui/khan-cap/{eid}`): counts, percentage done and each receiver's status, refreshed every
  second (the reads off the event loop), and cancelling with a confirmation. An emergency the person may not
  see is answered by the service as unknown: the not-found page.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nicegui import ui

from controller.db.models import utcnow
from controller.errors import DomainError
from controller.policy import Right
from controller.services import cap, emergencies, warnings
from controller.services.communes import list_communes
from controller.services.content import list_announcements, list_bulletins
from controller.services.context import Page
from controller.services.emergencies import EmergencyCreate, EmergencyPreview, EmergencyPublic, EmergencyTargets
from controller.services.receivers import list_receivers
from controller.services.warnings import WarningPublic
from controller.warnings import EVENT_TYPES

from .. import host, paths
from ..fmt import datetime_vi, duration_vi, time_vi, voice_vi
from ..i18n import t
from ..shell import Staff, staff_page
from .compose import KEY_MAX, last_sentence
from .library import player

RECENT = 10
EXPIRY_CHOICES = (30, 60, 120)
STATUS_COLOR = {"pending": "grey-7", "offline": "grey-9", "received": "blue-7", "fetched": "blue-7",
                "playing": "orange-9", "done": "positive", "failed": "negative", "cancelled": "brown-6"}
STATE_COLOR = {"active": "red-8", "finished": "positive", "expired": "grey-7", "cancelled": "brown-6"}
COUNTS = ("targeted", "pending", "received", "playing", "done", "failed", "offline", "cancelled")


# ------------------------------------------------------------------------------------------ helpers


def href(path: str) -> str:
    """A link's or a navigation's target: NiceGUI prefixes a path starting with '/' with its mount point
    itself (`/ui`), so it is given the path below it."""
    return paths.page_path(path)


def back_links(*, to_list: bool = False) -> None:
    with ui.row().classes("w-full items-center gap-4"):
        ui.link(t("emergency.back_home"), href(paths.HOME)).classes("text-base text-red-9").props(
            "data-testid=back-home")
        if to_list:
            ui.link(t("emergency.back_list"), href(paths.EMERGENCY)).classes("text-base text-red-9")


def percent_done(e: EmergencyPublic) -> int:
    """Whole percent of the targeted receivers that played it through (100 only once all of them did)."""
    n = e.totals.targeted
    return 100 * e.totals.done // n if n else 0


def where_text(targets: dict[str, Any], names: dict[str, str]) -> str:
    """'Toàn huyện', or the communes' and villages' names (receivers named one by one are counted)."""
    if targets.get("all"):
        return t("emergency.where_district")
    parts = [names.get(c, c) for c in targets.get("communes") or []]
    for key in targets.get("villages") or []:
        commune, _, village = str(key).partition("/")
        parts.append(t("emergency.village_option", village=village, commune=names.get(commune, commune)))
    if targets.get("receivers"):
        parts.append(t("emergency.recent.receivers", count=len(targets["receivers"])))
    return ", ".join(parts) or "—"


def commune_names(staff: Staff) -> dict[str, str]:
    with staff.ctx() as ctx:
        return {c.code: c.name for c in list_communes(ctx, Page(limit=1000)).data}


def state_badge(state: str) -> ui.badge:
    return (ui.badge(t(f"emergency.state.{state}"), color=STATE_COLOR.get(state, "grey-7"))
            .classes("text-sm q-px-sm q-py-xs").props("data-testid=em-state"))


# ------------------------------------------------------------------------------------------ the form


@staff_page(paths.EMERGENCY, Right.EMERGENCY, "emergency.title", plain=True)
async def emergency_page(staff: Staff) -> None:
    settings = staff.settings.emergency
    district = staff.who.communes is None
    names, villages, content = await asyncio.to_thread(_choices, staff)
    kinds = await asyncio.to_thread(_event_types, staff)

    back_links()
    ui.label(t("emergency.title")).classes("text-h5 text-red-9 font-bold")
    with ui.card().classes("w-full gap-3 border-2 border-red-7").props("flat bordered"):
        ui.label(t("emergency.compose")).classes("text-h6 text-red-9")
        ui.label(t("emergency.compose_hint")).classes("text-body2 text-grey-8")
        source = ui.toggle({"text": t("emergency.source_text"), "content": t("emergency.source_content")},
                           value="text").props("no-caps spread color=grey-3 text-color=grey-9 "
                                                "toggle-color=red-8 size=lg data-testid=em-source").classes("w-full")
        text = (ui.textarea(t("emergency.text_label")).classes("w-full text-lg")
                .props("outlined autogrow maxlength=5000 data-testid=em-text input-style='min-height:6em'"))
        hint = ui.label(t("emergency.text_hint")).classes("text-caption text-grey-7")
        # The key instruction read again at the end ("Xin nhắc lại: …"), prefilled with the text's last sentence.
        key_on = ui.checkbox(t("compose.key_repeat")).props("data-testid=em-key-on")
        key = (ui.textarea(t("compose.key_text")).classes("w-full")
               .props(f"outlined dense autogrow counter maxlength={KEY_MAX} data-testid=em-key"))

        def key_shown() -> None:
            key.set_visibility(source.value == "text" and bool(key_on.value))
            if key_on.value and not (key.value or "").strip():
                key.set_value(last_sentence(text.value or ""))

        key_on.on_value_change(key_shown)
        key_on.bind_visibility_from(source, "value", value="text")
        source.on_value_change(key_shown)
        key_shown()
        chosen = (ui.select(content, label=t("emergency.content_label")).classes("w-full")
                  .props("outlined data-testid=em-content"))
        if not content:
            ui.label(t("emergency.content_none")).classes("text-caption text-grey-7").bind_visibility_from(
                source, "value", value="content")
        text.bind_visibility_from(source, "value", value="text")
        hint.bind_visibility_from(source, "value", value="text")
        chosen.bind_visibility_from(source, "value", value="content")
        # Loại thiên tai: a type with a pre-recorded warning plays it before the names and the text are read.
        event = (ui.select({"": t("emergency.event_none"), **{k: w.name for k, w in kinds.items()}}, value="",
                           label=t("emergency.event_type")).classes("w-full sm:w-96")
                 .props("outlined data-testid=em-event-type"))
        event_hint = ui.label().classes("text-body2").props("data-testid=em-event-hint")

        def explain_event() -> None:
            kind = kinds.get(event.value or "")
            event_hint.set_text("" if kind is None else t("emergency.event_recorded", name=kind.name) if kind.recorded
                                else t("emergency.event_synthesised", name=kind.name))
            event_hint.classes(replace="text-body2 " + ("text-positive font-bold" if kind and kind.recorded
                                                        else "text-grey-8"))

        event.on_value_change(explain_event)
        event.bind_visibility_from(source, "value", value="text")
        event_hint.bind_visibility_from(source, "value", value="text")

        ui.label(t("emergency.where")).classes("text-subtitle1 font-bold q-mt-sm")
        modes = {**({"all": t("emergency.where_district")} if district else {}),
                 "communes": t("emergency.where_communes"), "villages": t("emergency.where_villages")}
        mode = ui.toggle(modes, value="communes").props(
            "no-caps spread color=grey-3 text-color=grey-9 toggle-color=red-8 data-testid=em-where").classes("w-full")
        boxes: dict[str, ui.checkbox] = {}
        with ui.element("div").classes("grid grid-cols-1 sm:grid-cols-2 lg:grid-cols-3 gap-x-4 w-full") as grid:
            for code, name in names.items():
                boxes[code] = ui.checkbox(name).props(f"size=lg data-testid=em-commune-{code}")
        grid.bind_visibility_from(mode, "value", value="communes")
        picked = (ui.select(villages, multiple=True, with_input=True, label=t("emergency.villages_label"))
                  .classes("w-full").props("outlined use-chips data-testid=em-villages"))
        picked.bind_visibility_from(mode, "value", value="villages")

        with ui.row().classes("w-full items-end gap-4 q-mt-sm"):
            with ui.column().classes("gap-1"):
                ui.label(t("emergency.expiry")).classes("text-subtitle1 font-bold")
                default = int(settings.expires_min)
                expiry_choice = ui.toggle(
                    {**{m: t(f"emergency.minutes.{m}") for m in EXPIRY_CHOICES}, 0: t("emergency.expiry_custom")},
                    value=default if default in EXPIRY_CHOICES else 0).props(
                    "no-caps color=grey-3 text-color=grey-9 toggle-color=red-8 data-testid=em-expiry")
            max_minutes = int(settings.max_expires_h * 60)
            minutes = (ui.number(t("emergency.expiry_minutes"), value=default, min=1, max=max_minutes, precision=0)
                       .classes("w-28").props("outlined data-testid=em-minutes"))
            minutes.bind_visibility_from(expiry_choice, "value", value=0)
            repeat = (ui.number(t("emergency.repeat"), value=settings.repeat, min=1, max=10, precision=0)
                      .classes("w-28").props("outlined data-testid=em-repeat"))

        def request(request_id: str) -> EmergencyCreate | None:
            """The request the form describes (the expiry counted from now), or None and a message why not."""
            message = None
            targets = EmergencyTargets(all=mode.value == "all",
                                       communes=[c for c, box in boxes.items() if box.value]
                                       if mode.value == "communes" else [],
                                       villages=list(picked.value or []) if mode.value == "villages" else [])
            span = expiry_choice.value or minutes.value
            said = (text.value or "").strip()
            warning = kinds.get(event.value or "") if source.value == "text" else None
            if source.value == "text" and not said and not (warning and warning.recorded):
                message = t("emergency.missing_text")
            elif source.value == "content" and not chosen.value:
                message = t("emergency.missing_content")
            elif not (targets.all or targets.communes or targets.villages):
                message = t("emergency.missing_targets")
            elif span is None or not 1 <= span <= max_minutes:
                message = t("emergency.bad_minutes", max=max_minutes)
            elif repeat.value is None or not 1 <= repeat.value <= 10:
                message = t("emergency.bad_repeat")
            if message:
                ui.notify(message, type="warning")
                return None
            kind, _, ident = str(chosen.value).partition(":")
            return EmergencyCreate(
                text=(said or None) if source.value == "text" else None,
                key_instruction=((key.value or "").strip() or None)
                if source.value == "text" and said and key_on.value else None,
                event_type=warning.event_type if warning is not None else None,
                bulletin_id=int(ident) if source.value == "content" and kind == "bulletin" else None,
                announcement_id=int(ident) if source.value == "content" and kind == "announcement" else None,
                targets=targets, repeat=int(repeat.value), request_id=request_id,
                expires_at=utcnow() + dt.timedelta(minutes=float(span)))

        confirm = ConfirmDialog(staff, names, request)

        async def review() -> None:
            """The confirmation, with which types are recorded as they are now (one may have been removed)."""
            kinds.update(await asyncio.to_thread(_event_types, staff))
            explain_event()
            await confirm.open()

        ui.button(t("emergency.review"), icon="campaign", on_click=staff.act(review, "emergency preview")) \
            .props("color=red-8 size=lg unelevated no-caps data-testid=em-review").classes("w-full q-py-md text-lg")

    recent = ui.column().classes("w-full gap-2")
    alerts = ui.column().classes("w-full gap-2")
    shown: dict[str, Any] = {"recent": None, "alerts": None}

    async def refresh() -> None:
        try:
            rows, caps = await asyncio.to_thread(_lists, staff)
        except DomainError as e:
            timer.deactivate()
            staff.fail(e, "emergency list")
            return
        if rows != shown["recent"]:
            shown["recent"] = rows
            recent.clear()
            with recent:
                _recent(rows, names)
        if caps != shown["alerts"]:
            shown["alerts"] = caps
            alerts.clear()
            with alerts:
                _alerts(caps)

    timer = ui.timer(3.0, refresh)


def _event_types(staff: Staff) -> dict[str, WarningPublic]:
    """Every event type, and whether it has a pre-recorded warning (`services.warnings`)."""
    with staff.ctx() as ctx:
        return {w.event_type: w for w in warnings.list_warnings(ctx).data}


def _choices(staff: Staff) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """The communes and villages the person may reach (names by code) and the approved content to choose from."""
    with staff.ctx() as ctx:
        communes = {c.code: c.name for c in list_communes(ctx, Page(limit=1000)).data}
        villages: dict[str, str] = {}
        offset = 0
        while True:
            got = list_receivers(ctx, Page(limit=1000, offset=offset))
            for r in got.data:
                if r.village and r.commune in communes:
                    villages[f"{r.commune}/{r.village}"] = t("emergency.village_option", village=r.village_name,
                                                             commune=r.commune_name)
            offset += len(got.data)
            if not got.data or offset >= got.count:
                break
        content: dict[str, str] = {}
        if ctx.who.has(Right.CONTENT_READ):
            for a in list_announcements(ctx, Page(limit=100), approved=True).data:
                content[f"announcement:{a.id}"] = t("emergency.content_announcement", title=a.title)
            for b in list_bulletins(ctx, Page(limit=100), approved=True).data:
                content[f"bulletin:{b.id}"] = t("emergency.content_bulletin", title=b.title)
    return communes, dict(sorted(villages.items())), content


class ConfirmDialog:
    """What will be said, where and to how many receivers — checked by the service as the trigger checks it —
    with one big button that sends it. One request id per opening: a double tap sends once."""

    def __init__(self, staff: Staff, names: dict[str, str],
                 request: Callable[[str], EmergencyCreate | None]) -> None:
        self.staff, self.names, self.request = staff, names, request
        self.body: EmergencyCreate | None = None
        self.heard_path: Path | None = None
        ui.context.client.on_delete(self.forget)
        with ui.dialog().props("persistent") as self.dialog, \
                ui.card().classes("w-full max-w-lg gap-3 border-t-8 border-red-8").props("data-testid=em-confirm"):
            ui.label(t("emergency.confirm.title")).classes("text-h6 text-red-9 font-bold")
            self.content = ui.column().classes("w-full gap-2")
            self.listen = ui.button(t("emergency.confirm.listen"), icon="headphones",
                                    on_click=staff.act(self.hear, "emergency listen")).classes("w-full").props(
                "outline color=red-8 no-caps data-testid=em-listen")
            self.heard = ui.column().classes("w-full gap-1").props("data-testid=em-heard")
            with ui.column().classes("w-full gap-2"):
                self.send = ui.button(t("emergency.confirm.send"), icon="campaign",
                                      on_click=staff.act(self.confirmed, "emergency trigger")).classes(
                    "w-full q-py-md text-lg").props("color=red-8 size=xl unelevated no-caps data-testid=em-send")
                ui.button(t("emergency.confirm.cancel"), on_click=self.dialog.close).classes("w-full").props(
                    "outline color=grey-8 size=lg no-caps data-testid=em-send-cancel")

    async def open(self) -> None:
        body = self.request(f"ui:{uuid.uuid4()}")
        if body is None:
            return
        plan = await asyncio.to_thread(self._preview, body)
        self.body = body
        self.content.clear()
        with self.content:
            self._describe(plan)
        self.forget()
        self.heard.clear()
        self.listen.set_visibility(body.text is not None and plan.engine is None)  # a text still to be read
        self.send.enable()
        self.dialog.open()

    def _preview(self, body: EmergencyCreate) -> EmergencyPreview:
        with self.staff.ctx() as ctx:
            return emergencies.preview(ctx, body)

    def forget(self) -> None:
        if self.heard_path is not None:
            self.heard_path.unlink(missing_ok=True)
            self.heard_path = None

    async def hear(self) -> None:
        """The audio this emergency will send, made now (nothing stored nor sent), and which voice read it."""
        body = self.body
        if body is None:
            return
        directory = Path(host.state().settings.data_dir) / "ui-listen"  # compose's: a day's leftovers go
        directory.mkdir(parents=True, exist_ok=True)

        def make() -> emergencies.EmergencyListening:
            with self.staff.ctx() as ctx:
                return emergencies.listen(ctx, body, directory)

        self.listen.props("loading")
        self.send.disable()
        try:
            made = await asyncio.to_thread(make)
        finally:
            self.listen.props(remove="loading")
            self.send.enable()
        self.forget()
        self.heard_path = made.path
        self.heard.clear()
        with self.heard:
            ui.label(t("voices.spoke", voice=voice_vi(made.engine))).classes("text-body1 font-bold").props(
                "data-testid=em-engine-spoke")
            if made.note:
                ui.label(t("voices.fallback")).classes("text-caption text-orange-9")
            ui.label(t("emergency.confirm.listened", duration=duration_vi(made.duration_s))).classes("text-body2")
            ui.audio(made.path, autoplay=True).props("data-testid=em-audio").classes("w-full")

    def _describe(self, plan: EmergencyPreview) -> None:
        if plan.recorded and plan.event_type in EVENT_TYPES:
            ui.label(t("emergency.confirm.recorded", name=EVENT_TYPES[plan.event_type].name)).classes(
                "text-subtitle2 text-grey-8").props("data-testid=em-confirm-recorded")
            if plan.warning_url:
                player(plan.warning_url, "em-warning-audio")
        elif plan.spoken_text is not None:
            ui.label(t("emergency.confirm.spoken")).classes("text-subtitle2 text-grey-8")
        if plan.spoken_text is not None:
            ui.label(plan.spoken_text).classes(
                "text-lg bg-red-1 text-red-10 q-pa-md rounded-borders w-full break-words whitespace-pre-wrap"
            ).props("data-testid=em-confirm-spoken")
        else:
            ui.label(t("emergency.confirm.recording", title=plan.title, duration=duration_vi(plan.duration_s or 0))) \
                .classes("text-lg bg-red-1 text-red-10 q-pa-md rounded-borders w-full break-words") \
                .props("data-testid=em-confirm-spoken")
        with ui.row().classes("items-baseline gap-2 w-full no-wrap"):
            ui.label(t("emergency.confirm.where")).classes("text-subtitle2 text-grey-8")
            assert self.body is not None
            where = (t("emergency.where_district") if self.body.targets.all
                     else ", ".join(self.names.get(c, c) for c in plan.communes))
            ui.label(where).classes("text-subtitle1 font-bold break-words").props("data-testid=em-confirm-where")
        with ui.row().classes("items-baseline gap-2"):
            ui.label(t("emergency.confirm.count")).classes("text-subtitle2 text-grey-8")
            ui.label(str(len(plan.receivers))).classes("text-h6 text-red-9 font-bold").props(
                "data-testid=em-confirm-count")
        ui.label(t("emergency.confirm.repeat", repeat=plan.repeat, expires=datetime_vi(plan.expires_at))).classes(
            "text-body2")
        ui.label(t("emergency.confirm.warning")).classes("text-body2 text-red-9 font-bold")

    async def confirmed(self) -> None:
        if self.body is None:
            return
        self.send.disable()
        self.send.props("loading")  # the speech is made first: a few seconds for a long text
        body, self.body = self.body, None
        try:
            with self.staff.ctx() as ctx:
                sent = await emergencies.trigger(ctx, body)
        except BaseException:
            self.body = body  # the same request id again: a retry cannot send twice
            self.send.enable()
            raise
        finally:
            self.send.props(remove="loading")
        self.dialog.close()
        self.forget()
        ui.notify(t("emergency.confirm.sent", count=len(sent.receivers)), type="positive")
        ui.navigate.to(href(f"{paths.EMERGENCY}/{sent.id}"))


def _lists(staff: Staff) -> tuple[list[EmergencyPublic], list[cap.CapAlertPublic]]:
    with staff.ctx() as ctx:
        ids = [e.id for e in emergencies.list_emergencies(ctx, Page(limit=RECENT)).data]
        rows = [emergencies.get_emergency(ctx, eid) for eid in ids]
        return rows, cap.list_alerts(ctx, Page(limit=RECENT)).data


def _recent(rows: list[EmergencyPublic], names: dict[str, str]) -> None:
    ui.label(t("emergency.recent.title")).classes("text-h6 q-mt-md")
    if not rows:
        ui.label(t("emergency.recent.none")).classes("text-grey-7")
        return
    for e in rows:
        with ui.link(target=href(f"{paths.EMERGENCY}/{e.id}")).classes("no-underline text-grey-10 w-full") \
                .props(f"data-testid=em-row-{e.id}"):
            with ui.card().classes("w-full gap-1 q-pa-sm hover:bg-red-1").props("flat bordered"):
                with ui.row().classes("w-full items-center gap-2"):
                    ui.label(datetime_vi(e.created_at)).classes("text-caption text-grey-8")
                    ui.space()
                    state_badge(e.state)
                ui.label(e.title).classes("text-subtitle1 font-bold break-words w-full ellipsis-2-lines")
                with ui.row().classes("w-full items-center gap-x-4 gap-y-0"):
                    ui.label(where_text(e.targets, names)).classes("text-body2 break-words")
                    ui.label(t("emergency.recent.receivers", count=e.totals.targeted)).classes("text-body2")
                    ui.label(t("emergency.recent.done", percent=percent_done(e))).classes("text-body2 font-bold") \
                        .props("data-testid=em-row-percent")


def _alerts(rows: list[cap.CapAlertPublic]) -> None:
    ui.label(t("emergency.cap.title")).classes("text-h6 q-mt-md")
    if not rows:
        ui.label(t("emergency.cap.none")).classes("text-grey-7")
        return
    for a in rows:
        with ui.card().classes("w-full gap-1 q-pa-sm").props(f"flat bordered data-testid=cap-{a.emergency_id}"):
            with ui.row().classes("w-full items-center gap-2"):
                ui.label(t("emergency.cap.received", time=datetime_vi(a.received_at))).classes(
                    "text-caption text-grey-8")
                ui.space()
                status = a.status or ""
                ui.badge(t(f"emergency.cap_status.{status}") if status in ("Actual", "Test", "Exercise") else status,
                         color="red-8" if status == "Actual" else "blue-grey-6")
            ui.label(a.headline).classes("text-subtitle1 font-bold break-words w-full")
            ui.label(f"{t('emergency.cap.sender')}: {a.sender}").classes("text-body2 break-all")
            if a.area_desc:
                ui.label(f"{t('emergency.cap.area')}: {a.area_desc}").classes("text-body2 break-words")
            if a.sent:
                ui.label(t("emergency.cap.sent", time=datetime_vi(a.sent))).classes("text-caption text-grey-8")
            ui.link(t("emergency.cap.became"), href(f"{paths.EMERGENCY}/{a.emergency_id}")).classes("text-red-9")


# ------------------------------------------------------------------------------------------ progress


@staff_page(paths.EMERGENCY + "/{eid}", Right.EMERGENCY, "emergency.progress_title", plain=True)
async def progress_page(staff: Staff, eid: str) -> None:
    first = await asyncio.to_thread(_progress, staff, eid)  # Hidden / NotFound: the not-found page
    names = await asyncio.to_thread(commune_names, staff)
    fleet = host.state().fleet_view

    back_links(to_list=True)
    ui.label(t("emergency.progress_title")).classes("text-h5 text-red-9 font-bold")
    with ui.card().classes("w-full gap-2 border-2 border-red-7").props("flat bordered"):
        with ui.row().classes("w-full items-center gap-2"):
            # A text's title is its start: then the text alone is shown.
            heading = "" if first.text and first.text.strip().startswith(first.title) else first.title
            ui.label(heading).classes("text-h6 break-words").style("min-width:0;flex:1 1 12rem")
            badge = ui.element("div")
        if first.text:
            ui.label(first.text).classes("text-body1 bg-red-1 q-pa-sm rounded-borders w-full break-words "
                                         "whitespace-pre-wrap").props("data-testid=em-text")
        if first.source == "cap":
            ui.label(t("emergency.progress.source_cap", area=first.area_desc or "")).classes("text-body2")
        ui.label(t("emergency.progress.targets", where=where_text(first.targets, names))).classes(
            "text-body2 break-words").props("data-testid=em-where")
        ui.label(t("emergency.progress.created", time=datetime_vi(first.created_at), who=_person(first.created_by))) \
            .classes("text-body2 text-grey-8")
        ui.label(t("emergency.progress.expires", time=datetime_vi(first.expires_at))).classes("text-body2 text-grey-8")
        if first.engine:
            ui.label(t("voices.spoke", voice=voice_vi(first.engine))).classes("text-body2").props(
                "data-testid=em-engine")
        stopped_at = ui.label().classes("text-body2 text-brown-8 font-bold").props("data-testid=em-cancelled-at")

    with ui.card().classes("w-full gap-2").props("flat bordered"):
        percent = ui.label().classes("text-h5 font-bold text-red-9").props("data-testid=em-percent")
        bar = ui.linear_progress(value=0, show_value=False, size="14px", color="positive").props("rounded")
        counts: dict[str, ui.label] = {}
        cells: dict[str, ui.column] = {}
        with ui.element("div").classes("grid grid-cols-2 sm:grid-cols-4 lg:grid-cols-8 gap-2 w-full"):
            for key in COUNTS:
                with ui.column().classes("items-center gap-0 q-pa-xs rounded-borders bg-grey-2") as cells[key]:
                    counts[key] = ui.label("0").classes("text-h6").props(f"data-testid=count-{key}")
                    ui.label(t(f"emergency.count.{key}")).classes("text-caption text-grey-8 text-center")
        updated = ui.label().classes("text-caption text-grey-7")

    stop = ui.button(t("emergency.progress.stop"), icon="stop_circle").classes("w-full q-py-md text-lg").props(
        "color=red-10 outline size=lg no-caps data-testid=em-stop")

    ui.label(t("emergency.progress.receivers")).classes("text-h6")
    columns: list[dict[str, Any]] = [
        {"name": "receiver", "label": t("emergency.progress.receiver"), "field": "receiver", "align": "left",
         "sortable": True},
        {"name": "commune", "label": t("emergency.progress.commune"), "field": "commune", "align": "left",
         "sortable": True},
        {"name": "status", "label": t("emergency.progress.status"), "field": "status", "align": "left",
         "sortable": True},
        {"name": "reason", "label": t("emergency.progress.reason"), "field": "reason", "align": "left"},
    ]
    table = ui.table(columns=columns, rows=[], row_key="id", pagination=50).classes("w-full").props(
        "flat bordered dense wrap-cells data-testid=em-receivers")
    table.add_slot("body-cell-status", '<q-td :props="props"><q-badge :color="props.row.color" '
                                       ':label="props.value" :data-testid="\'status-\' + props.row.id" /></q-td>')

    shown: dict[str, Any] = {"at": None}

    def draw(e: EmergencyPublic) -> None:
        badge.clear()
        with badge:
            state_badge(e.state)
        stopped_at.set_text(t("emergency.progress.cancelled_at", time=datetime_vi(e.cancelled_at))
                            if e.cancelled_at else "")
        stopped_at.set_visibility(e.cancelled_at is not None)
        done = percent_done(e)
        percent.set_text(t("emergency.progress.percent", percent=done))
        bar.set_value(done / 100)
        totals = e.totals.model_dump()
        totals["received"] += totals.pop("fetched")
        for key, label in counts.items():
            label.set_text(str(totals.get(key, 0)))
        cells["cancelled"].set_visibility(totals.get("cancelled", 0) > 0)
        stop.set_visibility(e.state == "active")
        receivers = fleet.snapshot.receivers
        rows = [{"id": r.id, "receiver": receivers[r.id].name if r.id in receivers else r.id,
                 "commune": names.get(r.commune or "", r.commune or ""), "status": t(f"emergency.status.{r.status}"),
                 "color": STATUS_COLOR.get(r.status, "grey-7"), "reason": r.reason or ""} for r in e.receivers]
        if rows != table.rows:
            table.update_rows(rows)
        updated.set_text(t("emergency.progress.updated", time=time_vi(utcnow(), seconds=True)))

    async def refresh() -> None:
        try:
            e = await asyncio.to_thread(_progress, staff, eid)
        except DomainError as err:  # the session ended, or the emergency is no longer the person's to see
            timer.deactivate()
            staff.fail(err, "emergency progress")
            return
        draw(e)
        if e.state != "active":
            shown["at"] = shown["at"] or utcnow()
            if utcnow() - shown["at"] > dt.timedelta(seconds=10):  # late acks settled: nothing more will change
                timer.deactivate()

    async def stop_now() -> None:
        with staff.ctx() as ctx:
            e = await emergencies.cancel_emergency(ctx, eid)
        ask.close()
        draw(e)
        ui.notify(t("emergency.progress.stopped"), type="warning")

    with ui.dialog() as ask, ui.card().classes("w-full max-w-md gap-3 border-t-8 border-red-10").props(
            "data-testid=em-stop-dialog"):
        ui.label(t("emergency.progress.stop_title")).classes("text-h6 text-red-10 font-bold")
        ui.label(first.title).classes("text-subtitle1 break-words")
        ui.label(t("emergency.progress.stop_text")).classes("text-body2")
        ui.button(t("emergency.progress.stop_confirm"), icon="stop_circle",
                  on_click=staff.act(stop_now, "emergency cancel")).classes("w-full q-py-sm text-lg").props(
            "color=red-10 size=lg unelevated no-caps data-testid=em-stop-confirm")
        ui.button(t("emergency.progress.stop_keep"), on_click=ask.close).classes("w-full").props(
            "outline color=grey-8 size=lg no-caps data-testid=em-stop-keep")
    stop.on_click(ask.open)

    draw(first)
    timer = ui.timer(1.0, refresh, immediate=False)


def _progress(staff: Staff, eid: str) -> EmergencyPublic:
    with staff.ctx() as ctx:
        return emergencies.get_emergency(ctx, eid)


def _person(actor: str) -> str:
    """'user:3:duty' → 'duty' (the audit's actor, as a person reads it)."""
    return actor.split(":", 2)[-1]
