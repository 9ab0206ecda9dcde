"""Soạn tin: writing an announcement that the system reads aloud (thông báo), for people who may write content.

- The text, with its character count against `settings.audio.max_text_chars`, and a live preview of what the
  engine will actually read (`services.content.preview_text`: numbers, dates, units and the district's and
  the commune's abbreviations as words), refreshed half a second after the typing stops.
- The commune's own abbreviations, added or changed in place (`services.abbreviations`): the preview changes.
- Engine — automatic (the order of `TT_TTS__ANNOUNCEMENTS`: Google, the installed neural voice, eSpeak), or one
  tried first — voice, chimes, repeats, the commune it is for. "Nhắc lại ý chính ở cuối": the key instruction,
  prefilled with the text's last sentence, read again after "Xin nhắc lại:" (shown prominently for long texts).
- Which voice read it, after listening and after saving (`voices.engine.*`), and why a preferred one was not used.
- "Ghi âm giọng của bạn", beside the text: the browser recorder (`library.recording_form`), saved as a
  bulletin like an upload, for staff who would rather read the text themselves.
- "Nghe thử": `services.content.listen_announcement` makes exactly what saving would make (broadcast-ready
  MP3) into a temporary file the page plays, keeping nothing: no library item, no draft to clean up if the
  person walks away. "Lưu vào thư viện" then makes the announcement (`create_announcement`; the speech is
  cached, so it is quick the second time). Both run in a worker thread so the page stays live.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Any

from nicegui import run, ui
from pydantic import ValidationError

from controller.content import engines
from controller.db.models import AnnouncementPublic
from controller.errors import Invalid
from controller.policy import Right
from controller.services import Page, content
from controller.services import abbreviations as abbr_service
from controller.services.abbreviations import AbbreviationPut
from controller.services.content import AnnouncementCreate, Listening, PreviewRequest

from .. import host, paths
from ..fmt import duration_vi, voice_vi
from ..i18n import t
from ..shell import Staff, staff_page
from .library import commune_choices, commune_names, lufs_vi, player, recording_form

DEBOUNCE_S = 0.5
LISTEN_KEPT_S = 24 * 3600.0
ENGINES = ("gtts", "neural", "offline")
AUTO = "auto"
LONG_TEXT = 300  # characters: from here the repeat of the key instruction is offered prominently
KEY_MAX = 500


def last_sentence(text: str) -> str:
    """The text's last sentence (what the key instruction is prefilled with)."""
    parts = [p.strip() for p in re.split(r"(?<=[.!?…])\s+", text.strip()) if p.strip()]
    return (parts[-1] if parts else "")[:KEY_MAX]


def _voice_label(engine: str, voice: str) -> str:
    key = f"compose.voices.{voice}" if engine == "offline" else f"compose.voices.gtts_{voice.replace('.', '-')}"
    try:
        return t(key)
    except KeyError:
        return voice


def _listen_dir() -> Path:
    """Where heard-before-saving audio waits for its page; a page closes and deletes its own, and what a
    crash left behind goes after a day."""
    directory = Path(host.state().settings.data_dir) / "ui-listen"
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("listen-*.mp3"):
        with contextlib.suppress(FileNotFoundError):  # another page's, deleted meanwhile
            if time.time() - old.stat().st_mtime > LISTEN_KEPT_S:
                old.unlink()
    return directory


class _Form:
    """The page's inputs, read into the services' shapes."""

    def __init__(self, staff: Staff, choices: dict[str, str]) -> None:
        settings = staff.settings.audio
        self.voices = {name: e.voices for name, e in engines(settings, staff.settings.neural_dir).items()
                       if name in ENGINES}
        with ui.card().classes("w-full gap-2"):
            ui.label(t("compose.heading_text")).classes("text-subtitle1 font-bold")
            self.headline = ui.input(t("compose.headline"), placeholder=t("compose.headline_hint")).props(
                "outlined dense maxlength=200 data-testid=compose-title").classes("w-full")
            self.text = ui.textarea(t("compose.text"), placeholder=t("compose.text_placeholder")).props(
                f"outlined counter autogrow maxlength={settings.max_text_chars} data-testid=compose-text"
            ).classes("w-full")
            self.commune = ui.select(choices, value=next(iter(choices), None), label=t("compose.commune")).props(
                "outlined dense data-testid=compose-commune").classes("w-full sm:w-80")
            with ui.column().classes("w-full gap-1").props("data-testid=compose-key-card") as self.key_card:
                self.key_on = ui.checkbox(t("compose.key_repeat"), on_change=lambda: self._key_shown()).props(
                    "data-testid=compose-key-on")
                self.key_hint = ui.label(t("compose.key_hint_long")).classes("text-caption text-teal-9")
                self.key = ui.textarea(t("compose.key_text")).props(
                    f"outlined dense autogrow counter maxlength={KEY_MAX} data-testid=compose-key").classes("w-full")
            self.text.on_value_change(lambda: self._key_shown())
            self._key_shown()

    def _key_shown(self) -> None:
        """The key instruction's field appears once asked for, prefilled with the last sentence (until edited);
        for a long text the option is highlighted."""
        long = len(self.text.value or "") > LONG_TEXT
        self.key_hint.set_visibility(long and not self.key_on.value)
        self.key_card.classes(add="bg-teal-1 q-pa-sm rounded-borders" if long else "",
                              remove="" if long else "bg-teal-1 q-pa-sm rounded-borders")
        self.key.set_visibility(bool(self.key_on.value))
        if self.key_on.value and not (self.key.value or "").strip():
            self.key.set_value(last_sentence(self.text.value or ""))

    def voice_card(self, staff: Staff) -> None:
        settings = staff.settings.audio
        with ui.card().classes("w-full gap-2"):
            ui.label(t("compose.heading_voice")).classes("text-subtitle1 font-bold")
            with ui.row().classes("w-full gap-2 items-start"):
                default = settings.default_engine if settings.default_engine in ENGINES else AUTO
                self.engine = ui.select({AUTO: t("voices.auto"), **{e: voice_vi(e) for e in ENGINES}}, value=default,
                                        label=t("compose.engine"), on_change=lambda: self._voices()).props(
                    "outlined dense data-testid=compose-engine").classes("col-12 col-sm")
                self.voice = ui.select({}, label=t("compose.voice")).props(
                    "outlined dense data-testid=compose-voice").classes("col-12 col-sm")
            with ui.row().classes("w-full gap-x-4 gap-y-1 items-center"):
                self.chime_before = ui.checkbox(t("compose.chime_before")).props("data-testid=compose-chime-before")
                self.chime_after = ui.checkbox(t("compose.chime_after")).props("data-testid=compose-chime-after")
            with ui.row().classes("w-full gap-2 items-start"):
                self.repeat = ui.number(t("compose.repeat"), value=1, min=1, max=10, step=1, precision=0).props(
                    "outlined dense data-testid=compose-repeat").classes("col-6 col-sm-3")
                self.gap = ui.number(t("compose.gap"), value=2, min=0, max=60, step=0.5).props(
                    "outlined dense data-testid=compose-gap").classes("col-6 col-sm-3")
        self._voices()

    def _voices(self) -> None:
        voices = self.voices.get(self.engine.value, ())
        self.voice.set_options({v: _voice_label(self.engine.value, v) for v in voices},
                               value=voices[0] if voices else None)
        self.voice.set_visibility(len(voices) > 1)  # automatic: each engine its own first voice

    @property
    def where(self) -> str | None:
        return self.commune.value or None

    def body(self) -> AnnouncementCreate:
        if not (self.text.value or "").strip():
            raise Invalid("The text is empty.", code="compose_empty")
        try:
            auto = self.engine.value == AUTO
            key = (self.key.value or "").strip() if self.key_on.value else ""
            return AnnouncementCreate(
                text=self.text.value, title=(self.headline.value or "").strip() or None,
                engine=None if auto else self.engine.value, voice=None if auto else self.voice.value,
                key_instruction=key or None, chime_before=bool(self.chime_before.value),
                chime_after=bool(self.chime_after.value), repeat=int(self.repeat.value or 1),
                gap_s=float(self.gap.value if self.gap.value is not None else 2), commune=self.where)
        except ValidationError as e:  # the inputs' own limits keep to the shape's; this is a last guard
            raise Invalid(str(e)) from None


def _abbreviations(staff: Staff, form: _Form, on_change: Any) -> None:
    """The chosen commune's own list (editable in place) and the district's (read only here)."""
    names = dict(form.commune.options) if isinstance(form.commune.options, dict) else {}
    with ui.card().classes("w-full gap-2").props("data-testid=abbr-card"):
        heading = ui.label().classes("text-subtitle1 font-bold")
        with ui.row().classes("w-full gap-2 items-start"):
            abbr = ui.input(t("compose.abbr")).props("outlined dense maxlength=40 data-testid=abbr-abbr").classes(
                "col-12 col-sm-3")
            expansion = ui.input(t("compose.abbr_expansion")).props(
                "outlined dense maxlength=200 data-testid=abbr-expansion").classes("col-12 col-sm")

            def put() -> None:
                word, said = (abbr.value or "").strip(), (expansion.value or "").strip()
                if not word or not said:
                    ui.notify(t("compose.abbr_missing"), type="warning")
                    return
                try:
                    body = AbbreviationPut(expansion=said, commune=form.where)
                except ValidationError:
                    raise Invalid("The expansion has nothing to read.", code="abbr_expansion") from None
                with staff.ctx() as ctx:
                    saved = abbr_service.put_abbreviation(ctx, word, body)
                ui.notify(t("compose.abbr_saved", abbr=saved.abbr, expansion=saved.expansion), type="positive")
                abbr.set_value("")
                expansion.set_value("")
                listing.refresh()
                on_change()

            ui.button(t("compose.abbr_save"), icon="save", on_click=staff.act(put, "abbreviation.put")).props(
                "color=teal-8 data-testid=abbr-save")

        def edit(word: str, said: str) -> None:
            abbr.set_value(word)
            expansion.set_value(said)

        def remove(word: str) -> None:
            with staff.ctx() as ctx:
                abbr_service.delete_abbreviation(ctx, word, form.where)
            ui.notify(t("compose.abbr_deleted", abbr=word), type="positive")
            listing.refresh()
            on_change()

        @ui.refreshable
        def listing() -> None:
            where = form.where
            heading.set_text(t("compose.heading_abbr", where=names.get(where, where)) if where
                             else t("compose.heading_abbr_district"))
            with staff.ctx() as ctx:
                rows = abbr_service.list_abbreviations(ctx, Page(limit=1000), where).data
            own = [a for a in rows if a.commune == where]
            district = [a for a in rows if a.commune is None] if where else []
            editable = where is not None or (staff.who.has(Right.ADMIN) and staff.who.district)
            with ui.column().classes("w-full gap-1").props("data-testid=abbr-list"):
                if not own:
                    ui.label(t("compose.abbr_none")).classes("text-caption text-grey-7")
                for a in own:
                    with ui.row().classes("w-full items-center gap-2 no-wrap").props(f"data-testid=abbr-{a.abbr}"):
                        ui.label(f"{a.abbr} → {a.expansion}").classes("col break-words")
                        if editable:
                            ui.button(icon="edit", on_click=lambda a=a: edit(a.abbr, a.expansion)).props(
                                f"flat dense round aria-label={t('compose.abbr_edit')}")
                            ui.button(icon="delete", on_click=staff.act(lambda a=a: remove(a.abbr),
                                                                        "abbreviation.delete")).props(
                                f"flat dense round color=negative aria-label={t('common.delete')}")
            if district:
                ui.label(t("compose.abbr_district_note")).classes("text-caption text-grey-8")
                ui.label(", ".join(f"{a.abbr} → {a.expansion}" for a in district)).classes(
                    "text-caption text-grey-8 break-words")

        listing()
    form.commune.on_value_change(lambda: listing.refresh())


@staff_page(paths.COMPOSE, Right.CONTENT_WRITE, "compose.title")
def compose(staff: Staff) -> None:
    ui.label(t("compose.title")).classes("text-h5")
    ui.label(t("compose.intro")).classes("text-body2 text-grey-8")
    with staff.ctx() as ctx:
        names = commune_names(ctx)
    choices = commune_choices(staff.who, names)
    # Desktop: the text beside what will be read, the abbreviations below them, the voice beside those;
    # a phone reads them in that order: text, what will be read, how to correct it, then the voice.
    with ui.element("div").classes("grid gap-3 w-full grid-cols-1 md:grid-cols-2 items-start"):
        with ui.column().classes("gap-3 min-w-0"):
            form = _Form(staff, choices)
            recording_form(staff, names, lambda: None, heading=t("recorder.heading_compose"),
                           intro=t("recorder.intro_compose"))
        with ui.column().classes("gap-3 min-w-0"):
            with ui.card().classes("w-full gap-1"):
                with ui.row().classes("items-center gap-2"):
                    ui.label(t("compose.heading_preview")).classes("text-subtitle1 font-bold")
                    updating = ui.spinner(size="xs")
                    updating.set_visibility(False)
                preview = ui.label(t("compose.preview_empty")).classes(
                    "text-body1 break-words whitespace-pre-wrap").props("data-testid=compose-preview")
                ui.label(t("compose.preview_hint")).classes("text-caption text-grey-7")
        changed = {"at": 0.0, "dirty": False}

        def mark() -> None:
            changed["at"], changed["dirty"] = time.monotonic(), True
            updating.set_visibility(True)

        def refresh_preview() -> None:
            changed["dirty"] = False
            updating.set_visibility(False)
            text = form.text.value or ""
            if not text.strip():
                preview.set_text(t("compose.preview_empty"))
                return
            with staff.ctx() as ctx:
                shown = content.preview_text(ctx, PreviewRequest(text=text, commune=form.where))
            preview.set_text(shown.normalized_text)

        show_preview = staff.act(refresh_preview, "announcement.preview")

        async def tick() -> None:
            if changed["dirty"] and time.monotonic() - changed["at"] >= DEBOUNCE_S:
                await show_preview()

        form.text.on_value_change(mark)
        form.commune.on_value_change(mark)
        with ui.column().classes("gap-3 min-w-0"):
            _abbreviations(staff, form, mark)
        with ui.column().classes("gap-3 min-w-0"):
            form.voice_card(staff)
    ui.timer(0.1, tick)  # outside the grid: an element of its own, it would take a cell
    _actions(staff, form)


def _actions(staff: Staff, form: _Form) -> None:
    with ui.card().classes("w-full gap-2"):
        with ui.row().classes("gap-2"):
            listen = ui.button(t("compose.listen"), icon="headphones").props(
                "outline color=teal-8 data-testid=compose-listen")
            save = ui.button(t("compose.save"), icon="save").props("color=teal-8 data-testid=compose-save")
        with ui.row().classes("items-center gap-2 text-teal-9").props("data-testid=compose-busy") as busy:
            ui.spinner(size="sm")
            busy_text = ui.label()
        busy.set_visibility(False)
        result = ui.column().classes("w-full gap-1").props("data-testid=compose-result")
    heard: dict[str, Path | None] = {"path": None}

    def forget() -> None:
        if heard["path"] is not None:
            heard["path"].unlink(missing_ok=True)
            heard["path"] = None

    ui.context.client.on_delete(forget)

    def working(text: str | None) -> None:
        busy_text.set_text(text or "")
        busy.set_visibility(text is not None)
        listen.set_enabled(text is None)
        save.set_enabled(text is None)

    async def do_listen() -> None:
        body = form.body()
        directory = _listen_dir()

        def make() -> Listening:
            with staff.ctx() as ctx:
                return content.listen_announcement(ctx, body, directory)

        working(t("compose.synthesising"))
        try:
            made = await run.io_bound(make)
            assert made is not None  # None only while the app shuts down
        finally:
            working(None)
        forget()
        heard["path"] = made.path
        result.clear()
        with result:
            ui.label(t("compose.listened", duration=duration_vi(made.duration_s))).classes("text-body2")
            ui.label(t("library.loudness", before=lufs_vi(made.loudness_before),
                       after=lufs_vi(made.loudness_after))).classes("text-caption text-grey-8")
            ui.label(t("voices.spoke", voice=voice_vi(made.engine))).classes("text-body2 font-bold").props(
                "data-testid=compose-engine-spoke")
            if made.note:
                ui.label(t("voices.fallback")).classes("text-caption text-orange-9")
            ui.audio(made.path, autoplay=True).props("data-testid=compose-audio").classes("w-full").style(
                "max-width: 28rem")

    async def do_save() -> None:
        body = form.body()

        def make() -> AnnouncementPublic:
            with staff.ctx() as ctx:
                return content.create_announcement(ctx, body)

        working(t("compose.saving"))
        try:
            made = await run.io_bound(make)
            assert made is not None  # None only while the app shuts down
        finally:
            working(None)
        forget()
        result.clear()
        with result:
            ui.label(t("compose.saved", title=made.title)).classes("text-positive").props("data-testid=compose-saved")
            ui.label(t("voices.spoke", voice=voice_vi(made.engine))).classes("text-body2").props(
                "data-testid=compose-saved-engine")
            if made.note:
                ui.label(t("voices.fallback")).classes("text-caption text-orange-9")
            if not made.approved:
                ui.label(t("compose.saved_pending")).classes("text-caption text-grey-8")
            with ui.row().classes("items-center gap-3"):
                player(made.media_url, "compose-saved-audio")
                # NiceGUI puts its mount point (/ui) before a root-relative link: the path below it.
                ui.link(t("compose.to_library"), paths.page_path(paths.LIBRARY)).props(
                    "data-testid=compose-to-library")

            def again() -> None:
                form.text.set_value("")
                form.headline.set_value("")
                form.key.set_value("")
                form.key_on.set_value(False)
                result.clear()

            ui.button(t("compose.discard"), icon="edit_note", on_click=again).props(
                "flat color=teal-8 data-testid=compose-new")

    listen.on_click(staff.act(do_listen, "announcement.listen"))
    save.on_click(staff.act(do_save, "announcement.create"))
