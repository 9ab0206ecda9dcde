"""Cảnh báo ghi sẵn (`/ui/canh-bao-ghi-san`): the pre-recorded warning of every event type (lũ quét, sạt lở
đất, bão, …) — recorded or not, its player, who recorded it and when — and, for those who may change them
(the emergency right over the whole district: `services.warnings`), uploading a file or recording from the
browser's microphone (`ui.recorder`) to set or replace one, and removing one with a confirmation. An
emergency or a CAP alert of a recorded type plays the chime, the recording, then the communes' names.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from nicegui import events, run, ui

from controller.errors import TooLarge
from controller.policy import Right
from controller.services import warnings
from controller.services.warnings import WarningPublic

from .. import paths
from ..fmt import duration_vi
from ..i18n import t
from ..recorder import Recorder, Recording
from ..shell import Staff, staff_page
from .library import ACCEPT, actor_name, player, save_upload, when_vi


def _may_change(staff: Staff) -> bool:
    return staff.who.has(Right.EMERGENCY) and staff.who.district


def _load(staff: Staff) -> list[WarningPublic]:
    with staff.ctx() as ctx:
        return warnings.list_warnings(ctx).data


def _card(staff: Staff, w: WarningPublic, on_change: Any) -> None:
    with ui.card().classes("w-full gap-1").props(f"data-testid=warning-{w.event_type}"):
        with ui.row().classes("w-full items-center gap-2 no-wrap"):
            ui.icon("campaign", color="red-8" if w.recorded else "grey-6")
            ui.label(w.name).classes("text-subtitle1 font-bold col")
            if w.recorded:
                ui.badge(t("warnings.recorded"), color="positive").props("data-testid=warning-state-recorded")
            else:
                ui.badge(t("warnings.not_recorded"), color="grey-7").props("data-testid=warning-state-missing")
        if w.recorded and w.media_url:
            ui.label(t("warnings.made", duration=duration_vi(w.duration_s or 0), file=w.source_filename or "—",
                       who=actor_name(w.created_by), when=when_vi(w.created_at))).classes("text-caption text-grey-8")
            player(w.media_url, "warning-audio")
        else:
            ui.label(t("warnings.synthesised")).classes("text-caption text-grey-8")
        if not _may_change(staff):
            return
        with ui.row().classes("w-full items-center gap-2"):
            _uploader(staff, w, on_change)
            if w.recorded:
                ui.space()
                ui.button(t("warnings.remove"), icon="delete", on_click=lambda: _confirm_remove(staff, w, on_change)
                          ).props("flat color=negative dense data-testid=warning-remove")


def _uploader(staff: Staff, w: WarningPublic, on_change: Any) -> None:
    limit = int(staff.settings.audio.max_upload_mb * 1e6)
    mb = f"{staff.settings.audio.max_upload_mb:g}".replace(".", ",")

    async def receive(e: events.UploadEventArguments) -> None:
        try:
            if e.file.size() > limit:
                raise TooLarge("The file is larger than the limit.", code="upload_too_large", params={"mb": mb})
            loop = asyncio.get_running_loop()

            def received(directory: Path) -> Path:  # called by the service, in the worker thread
                return asyncio.run_coroutine_threadsafe(save_upload(e.file, directory, limit), loop).result()

            def make() -> WarningPublic:
                with staff.ctx() as ctx:
                    return warnings.set_warning(ctx, w.event_type, e.file.name, received)

            made = await run.io_bound(make)
            assert made is not None  # None only while the app shuts down
        finally:
            uploader.reset()
        ui.notify(t("warnings.saved", name=made.name, duration=duration_vi(made.duration_s or 0)), type="positive")
        on_change()

    def rejected() -> None:
        ui.notify(t("library.upload.rejected", mb=mb), type="negative", multi_line=True, close_button=t("common.close"))

    uploader = ui.upload(
        label=t("warnings.replace") if w.recorded else t("warnings.upload"), auto_upload=True, max_file_size=limit,
        on_upload=lambda e: staff.act(lambda: receive(e), "warnings.upload")(), on_rejected=rejected,
    ).props(f'accept="{ACCEPT}" flat bordered dense color=red-8 data-testid=warning-uploader').classes("col").style(
        "max-height: 3.6rem; overflow: hidden")  # the header alone: its progress shows there

    def failed() -> None:  # refused by the server (upload_limit) or the connection dropped
        ui.notify(t("library.upload.failed", mb=mb), type="negative", multi_line=True, close_button=t("common.close"))
        uploader.reset()

    uploader.on("failed", failed)


def _confirm_remove(staff: Staff, w: WarningPublic, on_change: Any) -> None:
    with ui.dialog() as dialog, ui.card().props("data-testid=warning-remove-dialog"):
        ui.label(t("warnings.remove_title", name=w.name)).classes("text-subtitle1 font-bold")
        ui.label(t("warnings.remove_text"))
        with ui.row().classes("w-full justify-end"):
            ui.button(t("common.cancel"), on_click=dialog.close).props("flat")

            def remove() -> None:
                dialog.close()
                with staff.ctx() as ctx:
                    warnings.remove_warning(ctx, w.event_type)
                ui.notify(t("warnings.removed", name=w.name), type="positive")
                on_change()

            ui.button(t("warnings.remove"), color="negative", on_click=staff.act(remove, "warnings.remove")).props(
                "data-testid=warning-remove-confirm")
    dialog.open()


def _recording_form(staff: Staff, names: dict[str, str], on_change: Any) -> None:
    """The browser recorder: record a warning and save it as the recording of the chosen event type."""
    with ui.card().classes("w-full gap-2").props("data-testid=warning-record-card"):
        ui.label(t("warnings.record_heading")).classes("text-subtitle1 font-bold")
        ui.label(t("warnings.record_hint")).classes("text-body2 text-grey-8")

        async def save(recording: Recording) -> None:
            key = kind.value

            def make() -> WarningPublic:
                with staff.ctx() as ctx:
                    return warnings.set_warning(ctx, key, recording.filename, recording.receive)

            made = await run.io_bound(make)
            assert made is not None
            ui.notify(t("warnings.saved", name=made.name, duration=duration_vi(made.duration_s or 0)),
                      type="positive")
            on_change()

        with Recorder(on_save=save, save_label=t("warnings.record_save"), act=staff.act, what="warnings.record",
                      name="canh-bao"):
            kind = ui.select(names, value=next(iter(names)), label=t("warnings.record_type")).props(
                "outlined dense data-testid=warning-record-type").classes("w-full sm:w-80")


@staff_page(paths.WARNINGS, Right.EMERGENCY, "warnings.title")
def warnings_page(staff: Staff) -> None:
    ui.label(t("warnings.title")).classes("text-h5")
    ui.label(t("warnings.intro")).classes("text-body2 text-grey-8")
    if not _may_change(staff):
        ui.label(t("warnings.read_only")).classes("text-body2 text-orange-9").props("data-testid=warnings-read-only")

    @ui.refreshable
    def listing() -> None:
        items = _load(staff)
        with ui.element("div").classes("grid grid-cols-1 lg:grid-cols-2 gap-2 w-full").props(
                "data-testid=warnings-list"):
            for w in items:
                _card(staff, w, listing.refresh)

    if _may_change(staff):
        _recording_form(staff, {w.event_type: w.name for w in _load(staff)}, lambda: listing.refresh())
    listing()
