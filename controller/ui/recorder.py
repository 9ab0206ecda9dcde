"""The staff UI's recorder: staff record their own voice from the browser's microphone, listen, trim, and hand
the page a recording. Its browser side is `recorder.js` (one Vue component; every text it shows comes from
`recorder.*` in the locale).

- `Recorder(on_save=…)`: "Ghi âm" → the microphone (a clear message when it is refused, missing, busy, or
  the page is not a secure context: browsers give the microphone to HTTPS pages and localhost only) →
  elapsed time and a live level meter → "Dừng" → the recording with its waveform, a range in seconds to
  keep, the part played back, "Ghi lại" to start over → the page's own fields (placed inside it with
  `with recorder:`) → the save button.
- On save the page's `on_save(recording)` gets a `Recording`: the part to keep (checked: at least
  `MIN_SECONDS`, within the recording) and `receive(directory)`, which a service calls (in its worker
  thread, once it has checked the person's rights) to receive the file: the browser's whole recording
  (WebM/Opus, small enough for a village's mobile link) is copied in against the upload limit and the kept
  part cut out losslessly (`audio.cut`). The bytes travel through a hidden NiceGUI upload element, so the
  upload route's size limit (`ui.upload_limit`) holds for recordings as for chosen files.
- Why the server trims and not the browser (WebAudio, then a WAV): a phone would decode up to 15 minutes
  into memory (≈170 MB of samples) and send a WAV ten times the size of the recording; ffmpeg cuts it in
  a fraction of a second, and the ingest then measures the loudness of exactly the part kept.

`max_s`: recordings stop by themselves after `MAX_SECONDS` (15 minutes) or the controller's longest audio.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nicegui import events, ui

from audio.cut import cut
from audio.ingest import IngestError
from controller.errors import Invalid, TooLarge

from . import host
from .fmt import local
from .i18n import t

MAX_SECONDS = 15 * 60.0
MIN_SECONDS = 1.0
TEXTS = ("record", "elapsed", "stop", "level", "recording_hint", "recorded", "start", "end", "kept",
         "listen_part", "again", "saving", "insecure", "unsupported", "denied", "no_mic", "mic_busy", "mic_failed")


@dataclass(frozen=True)
class Recording:
    """A recording made in the browser, as the page's save action gets it."""

    filename: str  # as the browser named it ("ghi-am-….webm"): a label, never a path
    start_s: float  # the part to keep
    end_s: float
    _upload: Any
    _limit: int
    _loop: asyncio.AbstractEventLoop
    _max_s: float = MAX_SECONDS

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s

    def receive(self, directory: Path) -> Path:
        """The kept part, as a FLAC file in `directory` (the caller deletes it). Blocking: for a service's
        worker thread (the `receive` of `services.content.create_bulletin`)."""
        from .pages.library import save_upload

        whole = asyncio.run_coroutine_threadsafe(save_upload(self._upload, directory, self._limit),
                                                 self._loop).result()
        part = whole.with_name(whole.name + ".flac")
        try:
            cut(whole, part, self.start_s, self.end_s, max_s=self._max_s)
        except IngestError as e:
            part.unlink(missing_ok=True)
            from controller.services.content import refused_audio

            raise refused_audio(e) from None
        finally:
            whole.unlink(missing_ok=True)
        return part


def max_seconds() -> float:
    return min(MAX_SECONDS, host.state().settings.audio.max_duration_s)


class Recorder(ui.element, component="recorder.js"):
    """A recorder; see the module's docstring. `on_save(recording)` (a coroutine or not) is the page's:
    when it returns, the recorder starts afresh; when it raises, the recording stays to try again and the
    error goes on to the caller (use it inside `staff.act`, which shows it). `save_label`: the save
    button's text. Fields placed `with recorder:` show between the player and the save button."""

    def __init__(self, *, on_save: Callable[[Recording], Awaitable[Any] | Any], save_label: str,
                 act: Callable[[Callable[..., Any], str], Callable[..., Awaitable[None]]], what: str,
                 name: str = "ghi-am") -> None:
        super().__init__()
        limit = int(host.state().settings.audio.max_upload_mb * 1e6)
        self._on_save = on_save
        self._limit = limit
        self._span: tuple[float, float] | None = None
        self._saved = False
        # Beside the component, hidden: QUploader's own route, size limit and progress.
        with ui.element("div").style("display: none"):
            self.uploader = ui.upload(auto_upload=True, max_file_size=limit,
                                      on_upload=lambda e: act(lambda: self._received(e), what)(),
                                      on_rejected=lambda: act(self._rejected, what)()).props(
                "data-testid=recorder-uploader")
        self.uploader.on("failed", lambda: act(self._failed, what)())
        longest = max_seconds()
        self._props["texts"] = {**{key: t(f"recorder.{key}") for key in TEXTS}, "save": save_label,
                                "hint": t("recorder.hint", minutes=f"{longest / 60:g}".replace(".", ","))}
        self._props["max_s"] = longest
        self._props["uploader"] = self.uploader.id
        self._props["filename"] = f"{name}-{local(dt.datetime.now(dt.UTC)):%Y%m%d-%H%M%S}"
        self.on("save", lambda e: act(lambda: self._save(e), what)())

    def _save(self, e: events.GenericEventArguments) -> None:
        try:
            start, end = float(e.args.get("start") or 0), float(e.args.get("end") or 0)
            duration = float(e.args.get("duration") or 0)
        except (TypeError, ValueError):
            raise Invalid("Choose the part to keep within the recording.", code="recording_range") from None
        # The browser's word: a huge or infinite end would have ffmpeg wait on a slow upload for long.
        if not (all(math.isfinite(v) for v in (start, end, duration)) and 0 <= start < end <= duration + 0.5):
            raise Invalid("Choose the part to keep within the recording.", code="recording_range")
        longest = max_seconds()
        if end - start > longest + 1:
            raise Invalid(f"The part kept is longer than {longest:g} s.", code="recording_too_long",
                          params={"max": f"{longest:g}"})
        if end - start < MIN_SECONDS:
            raise Invalid("The part kept is too short.", code="recording_short",
                          params={"min": f"{MIN_SECONDS:g}"})
        if float(e.args.get("size") or 0) > self._limit:
            raise TooLarge("The recording is larger than the limit.", code="upload_too_large",
                           params={"mb": f"{self._limit / 1e6:g}"})
        self._span = (start, end)
        self.run_method("upload")

    async def _received(self, e: events.UploadEventArguments) -> None:
        span, self._span = self._span, None
        self.uploader.reset()
        try:
            if span is None:  # a file sent to the hidden element by hand, not by the save button
                raise Invalid("Nothing was recorded.", code="recording_range")
            recording = Recording(filename=e.file.name, start_s=span[0], end_s=span[1], _upload=e.file,
                                  _limit=self._limit, _loop=asyncio.get_running_loop(), _max_s=max_seconds())
            result = self._on_save(recording)
            if inspect.isawaitable(result):
                await result
        except BaseException:
            self.run_method("done", True)
            raise
        self.run_method("done", False)

    def _rejected(self) -> None:
        self.run_method("done", True)
        raise TooLarge("The recording is larger than the limit.", code="upload_too_large",
                       params={"mb": f"{self._limit / 1e6:g}"})

    def _failed(self) -> None:
        self.uploader.reset()
        self.run_method("done", True)
        raise TooLarge("The recording did not reach the server.", code="recording_upload_failed",
                       params={"mb": f"{self._limit / 1e6:g}"})
