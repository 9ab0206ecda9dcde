"""Thư viện: the recordings (bản tin) and text-to-speech announcements (thông báo) a person may see, newest
first, each with its player, loudness before → after, approval state and maker; uploading a recording and
deleting an item, for those who may write.

An upload shows QUploader's own progress while the bytes travel, then "Đang xử lý âm thanh…" with a bar while
the server makes it broadcast-ready (`services.content.create_bulletin`: ffmpeg, seconds to minutes, its
progress reported from the analysis and the encoding), which runs in a worker thread so that the page stays
live. The size limit (`settings.audio.max_upload_mb`) is checked in the
browser and again on the server before anything reaches the service.

"Ghi âm bản tin" (`recording_form`, also on the compose page): the browser recorder (`ui.recorder`: record,
listen, trim) with a title and a commune, saved through the same `create_bulletin` as an upload.

Helpers shared with the compose page: `lufs_vi`, `player`, `commune_choices`, `actor_name`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nicegui import events, run, ui
from sqlmodel import col, select

from controller.db.models import AnnouncementPublic, BulletinPublic, Commune
from controller.errors import Invalid, TooLarge
from controller.policy import Principal, Right
from controller.services import Ctx, Page, content
from controller.services.content import BulletinUpload

from .. import paths
from ..fmt import date_vi, datetime_vi, duration_vi, time_vi, voice_vi
from ..i18n import t
from ..recorder import Recorder, Recording
from ..shell import Staff, staff_page

STEP = 50  # items shown at first, and added by "Xem thêm"
ACCEPT = "audio/*,.mp3,.wav,.ogg,.opus,.m4a,.aac,.flac,.amr,.3gp"
Item = BulletinPublic | AnnouncementPublic



# ------------------------------------------------------------------------------- shared with compose


def lufs_vi(value: float) -> str:
    """`-23.44` → `−23,4` (a true minus sign, the Vietnamese decimal comma)."""
    return f"{value:.1f}".replace("-", "−").replace(".", ",")


def when_vi(value: Any) -> str:
    return f"{date_vi(value)} {time_vi(value)}"


def actor_name(actor: str | None) -> str:
    """`user:3:op-nu` → `op-nu` (the audit's actor string names the account last)."""
    return (actor or "").rsplit(":", 1)[-1] or "—"


def player(url: str, testid: str) -> ui.element:
    """An <audio> of `url`. Not `ui.audio`: it prefixes a root-relative source with the UI's mount point
    (/ui), and media is served by the controller at /media."""
    return (ui.element("audio").props(f"controls preload=none src={url} data-testid={testid}")
            .classes("w-full").style("max-width: 28rem; height: 40px"))


def commune_names(ctx: Ctx) -> dict[str, str]:
    """code → name of the communes the person may see (reading only; no service lists them for content)."""
    rows = ctx.session.exec(select(Commune).order_by(col(Commune.name))).all()
    return {c.code: c.name for c in rows if ctx.who.may_see(c.code)}


def commune_choices(who: Principal, names: dict[str, str]) -> dict[str, str]:
    """Where the person may publish: "" (the whole district, for a district-wide person) and their communes."""
    choices = {"": t("common.district")} if who.district else {}
    choices.update({code: name for code, name in names.items() if who.may_touch(code)})
    return choices


# ------------------------------------------------------------------------------------------- items


def _state(item: Item) -> None:
    if item.approved:
        ui.badge(t("library.approved"), color="positive").props("data-testid=state-approved")
    elif item.returned_at is not None:
        ui.badge(t("library.returned"), color="orange-9").props("data-testid=state-returned")
    else:
        ui.badge(t("library.pending"), color="grey-7").props("data-testid=state-pending")


def _item(staff: Staff, item: Item, names: dict[str, str], on_delete: Any) -> None:
    kind = item.kind
    with ui.card().classes("w-full gap-1").props(f"data-testid={kind}-{item.id}"):
        with ui.row().classes("w-full items-start gap-2 no-wrap"):
            ui.icon("mic" if kind == "bulletin" else "record_voice_over", color="teal-8").classes("q-mt-xs")
            with ui.column().classes("gap-0 col"):
                ui.label(item.title).classes("text-subtitle1 font-bold break-words").props("data-testid=item-title")
                ui.label(" · ".join([
                    t(f"library.kind_{kind}"),
                    names.get(item.commune, item.commune) if item.commune else t("common.district"),
                ])).classes("text-caption text-grey-8")
            _state(item)
        with ui.row().classes("gap-x-4 gap-y-0 text-body2"):
            ui.label(t("library.duration", value=duration_vi(item.duration_s)))
            ui.label(t("library.loudness", before=lufs_vi(item.loudness_before),
                       after=lufs_vi(item.loudness_after))).props("data-testid=item-loudness")
        if isinstance(item, AnnouncementPublic):
            ui.label(t("library.read_as", text=item.normalized_text)).classes(
                "text-body2 text-grey-8 break-words ellipsis-3-lines")
            ui.label(t("voices.spoke", voice=voice_vi(item.engine))).classes("text-caption text-grey-8").props(
                "data-testid=item-engine")
            if item.note:
                ui.label(t("library.note_fallback")).classes("text-caption text-orange-9")
        if item.returned_at is not None and not item.approved:
            with ui.column().classes("gap-0 q-pa-sm rounded bg-orange-1 w-full").props("data-testid=item-returned"):
                ui.label(t("library.returned_by", who=actor_name(item.returned_by),
                           when=when_vi(item.returned_at))).classes("text-caption text-orange-10")
                ui.label(item.returned_comment or "").classes("text-body2 break-words")
        ui.label(t("library.made_by", who=actor_name(item.created_by), when=when_vi(item.created_at))).classes(
            "text-caption text-grey-7")
        if item.approved and item.approved_at is not None:
            ui.label(t("library.approved_by", who=actor_name(item.approved_by),
                       when=when_vi(item.approved_at))).classes("text-caption text-grey-7")
        with ui.row().classes("w-full items-center gap-2"):
            player(item.media_url, "item-audio")
            if _may_delete(staff.who, item):
                ui.space()
                ui.button(t("common.delete"), icon="delete", on_click=lambda: on_delete(item)).props(
                    "flat color=negative dense data-testid=item-delete")


def _may_delete(who: Principal, item: Item) -> bool:
    return who.has(Right.CONTENT_WRITE) and (who.may_touch(item.commune) if item.commune else who.district)


@dataclass
class _View:
    kind: str = "all"  # all | bulletin | announcement
    commune: str | None = None  # None: every item the person may see
    limit: int = STEP


def _load(staff: Staff, view: _View) -> tuple[list[Item], int, dict[str, str]]:
    """The newest `view.limit` items of the chosen kind(s), merged by creation time."""
    with staff.ctx() as ctx:
        items: list[Item] = []
        total = 0
        page = Page(limit=view.limit, offset=0)
        if view.kind in ("all", "bulletin"):
            bulletins = content.list_bulletins(ctx, page, commune=view.commune)
            items += bulletins.data
            total += bulletins.count
        if view.kind in ("all", "announcement"):
            announcements = content.list_announcements(ctx, page, commune=view.commune)
            items += announcements.data
            total += announcements.count
        names = commune_names(ctx)
    items.sort(key=lambda i: i.created_at, reverse=True)
    return items[:view.limit], total, names


# ------------------------------------------------------------------------------------------- upload


def _limit_bytes(staff: Staff) -> int:
    return int(staff.settings.audio.max_upload_mb * 1e6)


def _mb(staff: Staff) -> str:
    return f"{staff.settings.audio.max_upload_mb:g}".replace(".", ",")


async def save_upload(file: Any, directory: Path, limit: int) -> Path:
    """Copy the received file into `directory` (the media store's), counting its bytes against `limit`."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".upload-")
    os.close(fd)
    path = Path(name)
    written = 0
    try:
        with path.open("wb") as out:
            async for chunk in file.iterate():
                written += len(chunk)
                if written > limit:
                    raise TooLarge("The file is larger than the limit.", code="upload_too_large",
                                   params={"mb": f"{limit / 1e6:g}"})
                await run.io_bound(out.write, chunk)
        if written == 0:
            raise Invalid("The file is empty.", code="upload_empty")
        return path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _upload_form(staff: Staff, names: dict[str, str], on_done: Any) -> None:
    limit = _limit_bytes(staff)
    choices = commune_choices(staff.who, names)
    with ui.card().classes("w-full gap-2").props("data-testid=upload-card"):
        ui.label(t("library.upload.heading")).classes("text-subtitle1 font-bold")
        with ui.row().classes("w-full gap-2 items-start"):
            title = ui.input(t("library.upload.title"), placeholder=t("library.upload.title_hint")).props(
                "outlined dense maxlength=200 data-testid=upload-title").classes("col-12 col-sm")
            commune = ui.select(choices, value=next(iter(choices), None), label=t("library.upload.commune")).props(
                "outlined dense data-testid=upload-commune").classes("col-12 col-sm-4")
        ui.label(t("library.upload.hint", mb=_mb(staff))).classes("text-caption text-grey-8")
        with ui.column().classes("w-full gap-1 text-teal-9").props("data-testid=upload-processing") as busy:
            with ui.row().classes("items-center gap-2 no-wrap"):
                ui.spinner(size="sm")
                ui.label(t("library.upload.processing"))
            done = ui.linear_progress(value=0, show_value=False, color="teal-8").props(
                "data-testid=upload-processing-bar")
        busy.set_visibility(False)
        result = ui.column().classes("gap-0 w-full")

        async def receive(e: events.UploadEventArguments) -> None:
            result.clear()
            try:
                await process(e)
            except BaseException:
                uploader.reset()  # the file reached the server, but nothing was kept: it is not shown as done
                raise
            finally:
                busy.set_visibility(False)

        async def process(e: events.UploadEventArguments) -> None:
            if e.file.size() > limit:
                raise TooLarge("The file is larger than the limit.", code="upload_too_large", params={"mb": _mb(staff)})
            loop = asyncio.get_running_loop()

            def received(directory: Path) -> Path:  # called by the service, in the worker thread
                return asyncio.run_coroutine_threadsafe(save_upload(e.file, directory, limit), loop).result()

            form = BulletinUpload(title=(title.value or "").strip() or Path(e.file.name).stem or e.file.name,
                                  filename=e.file.name, commune=commune.value or None)

            def progress(stage: str, fraction: float) -> None:  # in the worker thread, often: coarse steps
                value = round((fraction if stage == "analyse" else 1 + fraction) / 2, 2)
                if value != done.value:
                    loop.call_soon_threadsafe(done.set_value, value)

            def make() -> BulletinPublic:
                with staff.ctx() as ctx:
                    return content.create_bulletin(ctx, form, received, progress)

            done.set_value(0)
            busy.set_visibility(True)
            made = await run.io_bound(make)
            assert made is not None  # None only while the app shuts down
            title.set_value("")
            with result:
                ui.label(t("library.upload.done", title=made.title, before=lufs_vi(made.loudness_before),
                           after=lufs_vi(made.loudness_after))).classes("text-positive").props(
                    "data-testid=upload-done")
                if not made.approved:
                    ui.label(t("library.upload.done_pending")).classes("text-caption text-grey-8")
            on_done()

        def rejected() -> None:  # by the browser, before sending: too large or not audio
            ui.notify(t("library.upload.rejected", mb=_mb(staff)), type="negative", multi_line=True,
                      close_button=t("common.close"))

        def failed() -> None:  # refused by the server (upload_limit) or the connection dropped
            ui.notify(t("library.upload.failed", mb=_mb(staff)), type="negative", multi_line=True,
                      close_button=t("common.close"))
            uploader.reset()

        uploader = ui.upload(
            label=t("library.upload.choose"), auto_upload=True, max_file_size=limit,
            on_upload=lambda e: staff.act(lambda: receive(e), "library.upload")(),
            on_rejected=rejected,
        ).props(f'accept="{ACCEPT}" flat bordered color=teal-8 data-testid=uploader').classes("w-full")
        uploader.on("failed", failed)


# ------------------------------------------------------------------------------------------ recording


def recording_form(staff: Staff, names: dict[str, str], on_done: Any, *, heading: str, intro: str | None = None,
                   testid: str = "record-card") -> None:
    """The browser recorder (`ui.recorder`) with a title and where it is for, saved as a bulletin through
    the very service an upload goes through (`content.create_bulletin`: the same rights, ingest slot,
    loudness normalisation and refusals); the library's and the compose page's."""
    choices = commune_choices(staff.who, names)
    with ui.card().classes("w-full gap-2").props(f"data-testid={testid}"):
        ui.label(heading).classes("text-subtitle1 font-bold")
        if intro:
            ui.label(intro).classes("text-body2 text-grey-8")
        result = ui.column().classes("gap-0 w-full")

        async def save(recording: Recording) -> None:
            result.clear()
            now = datetime_vi(dt.datetime.now(dt.UTC))
            form = BulletinUpload(title=(title.value or "").strip() or t("recorder.default_title", when=now),
                                  filename=recording.filename, commune=commune.value or None)

            def make() -> BulletinPublic:
                with staff.ctx() as ctx:
                    return content.create_bulletin(ctx, form, recording.receive)

            made = await run.io_bound(make)
            assert made is not None  # None only while the app shuts down
            title.set_value("")
            with result:
                ui.label(t("recorder.saved", title=made.title, duration=duration_vi(made.duration_s),
                           before=lufs_vi(made.loudness_before), after=lufs_vi(made.loudness_after))).classes(
                    "text-positive").props("data-testid=record-done")
                if not made.approved:
                    ui.label(t("library.upload.done_pending")).classes("text-caption text-grey-8")
            on_done()

        with Recorder(on_save=save, save_label=t("recorder.save_bulletin"), act=staff.act, what="library.record"):
            with ui.row().classes("w-full gap-2 items-start"):
                title = ui.input(t("library.upload.title"), placeholder=t("recorder.title_hint")).props(
                    "outlined dense maxlength=200 data-testid=record-title").classes("col-12 col-sm")
                commune = ui.select(choices, value=next(iter(choices), None), label=t("library.upload.commune")).props(
                    "outlined dense data-testid=record-commune").classes("col-12 col-sm-4")


# --------------------------------------------------------------------------------------------- page


@staff_page(paths.LIBRARY, Right.CONTENT_READ, "library.title")
def library(staff: Staff) -> None:
    view = _View()
    ui.label(t("library.title")).classes("text-h5")
    ui.label(t("library.intro")).classes("text-body2 text-grey-8")
    with staff.ctx() as ctx:
        names = commune_names(ctx)

    if staff.who.has(Right.CONTENT_WRITE):
        _upload_form(staff, names, lambda: listing.refresh())
        recording_form(staff, names, lambda: listing.refresh(), heading=t("recorder.heading_library"))

    def confirm_delete(item: Item) -> None:
        with ui.dialog() as dialog, ui.card().props("data-testid=delete-dialog"):
            ui.label(t("library.delete_confirm_title", title=item.title)).classes("text-subtitle1 font-bold")
            ui.label(t("library.delete_confirm_text"))
            with ui.row().classes("w-full justify-end"):
                ui.button(t("common.cancel"), on_click=dialog.close).props("flat")

                def delete() -> None:
                    dialog.close()
                    with staff.ctx() as ctx:
                        if item.kind == "bulletin":
                            content.delete_bulletin(ctx, item.id)
                        else:
                            content.delete_announcement(ctx, item.id)
                    ui.notify(t("library.deleted", title=item.title), type="positive")
                    listing.refresh()

                ui.button(t("common.delete"), color="negative", on_click=staff.act(delete, "library.delete")).props(
                    "data-testid=delete-confirm")
        dialog.open()

    def choose(kind: str, commune: str | None) -> None:
        view.kind, view.commune, view.limit = kind, commune or None, STEP
        listing.refresh()

    with ui.row().classes("w-full items-center gap-2"):
        kinds = ui.toggle({"all": t("library.filter_all"), "bulletin": t("library.filter_bulletins"),
                           "announcement": t("library.filter_announcements")}, value="all").props(
            "no-caps dense toggle-color=teal-8 data-testid=kind-filter")
        where = ui.select({"": t("library.filter_communes"), **names}, value="").props(
            "outlined dense options-dense data-testid=commune-filter").classes("w-full sm:w-64")
        where.set_visibility(len(names) > 1)  # one commune: nothing to choose
    kinds.on_value_change(lambda: choose(kinds.value, where.value))
    where.on_value_change(lambda: choose(kinds.value, where.value))

    @ui.refreshable
    def listing() -> None:
        items, total, names = _load(staff, view)
        if not items:
            ui.label(t("library.empty")).classes("text-grey-7 q-pa-md").props("data-testid=library-empty")
            return
        ui.label(t("library.count", shown=len(items), total=total)).classes("text-caption text-grey-7")
        with ui.column().classes("w-full gap-2").props("data-testid=library-items"):
            for item in items:
                _item(staff, item, names, confirm_delete)
        if len(items) < total:
            def more() -> None:
                view.limit += STEP
                listing.refresh()

            ui.button(t("library.more"), on_click=more).props("flat color=teal-8 data-testid=library-more")

    listing()
