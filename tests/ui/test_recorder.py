"""Staff's own voice: recording from the browser microphone, trimming, listening and saving as a bulletin.

Chromium's fake microphone plays a WAV made here (a 440 Hz tone, modulated at syllable rate, that Chromium
loops): the bulletin saved from it is checked through the API for the trimmed length, the broadcast
loudness and the tone itself (its spectrum: silence or noise would fail). A part kept that is too short is
refused on screen with nothing saved; on the compose page, at a phone's width, a recording is thrown away
("Ghi lại") and the next one saved."""

from __future__ import annotations

import io
import subprocess
import wave
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.samples import FFMPEG

from .conftest import CHROMIUM, UiWorld, sign_in
from .test_library import bulletins_titled, unique

LIBRARY = "/ui/thu-vien"
COMPOSE = "/ui/soan-tin"
TONE_HZ = 440.0


@pytest.fixture(scope="module")
def mic_browser(ui_world: UiWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Chromium whose microphone is a looped WAV (16-bit PCM, as Chromium requires), granted without asking."""
    from playwright.sync_api import sync_playwright

    wav = tmp_path_factory.mktemp("mic") / "mic.wav"
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"aevalsrc='0.5*sin(2*PI*{TONE_HZ:g}*t)*(0.6+0.4*sin(2*PI*3*t))':s=48000:d=4",
                    "-ac", "1", "-c:a", "pcm_s16le", str(wav)], check=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}", "--autoplay-policy=no-user-gesture-required"])
        yield browser
        browser.close()


def _page(browser: Any, **viewport: Any) -> Iterator[Any]:
    ctx = browser.new_context(locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh", permissions=["microphone"],
                              **viewport)
    ctx.set_default_timeout(15_000)
    yield ctx.new_page()
    ctx.close()


@pytest.fixture
def page(mic_browser: Any) -> Iterator[Any]:
    yield from _page(mic_browser, viewport={"width": 1280, "height": 800})


@pytest.fixture
def phone(mic_browser: Any) -> Iterator[Any]:
    yield from _page(mic_browser, viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)


def record(page: Any, card: Any, seconds: float) -> float:
    """Record about `seconds` through `card`'s recorder; the length the page then shows."""
    card.get_by_test_id("recorder-record").click()
    card.get_by_test_id("recorder-recording").wait_for()
    # The live meter moves with the tone (its level is in the page as a number).
    page.wait_for_function("el => parseFloat(el.dataset.level) > 0.5",
                           arg=card.get_by_test_id("recorder-level").element_handle())
    page.wait_for_function("([el, s]) => { const [m, sec] = el.textContent.trim().split(' ')[0].split(':');"
                           " return 60 * Number(m) + Number(sec) >= s; }",
                           arg=[card.get_by_test_id("recorder-elapsed").element_handle(), seconds],
                           timeout=seconds * 1000 + 10_000)
    card.get_by_test_id("recorder-stop").click()
    card.get_by_test_id("recorder-recorded").wait_for()
    return float(card.get_by_test_id("recorder-end").input_value())


def keep(card: Any, start: float, end: float) -> None:
    for name, value in (("recorder-start", start), ("recorder-end", end)):
        field = card.get_by_test_id(name)
        field.fill(f"{value}")
        field.press("Tab")  # the value is taken on change


def spectrum_share(mp3: bytes, hz: float) -> tuple[float, float]:
    """(the strongest frequency, the share of the energy within ±25 Hz of `hz`) of the decoded audio."""
    wav = subprocess.run([FFMPEG, "-loglevel", "error", "-i", "pipe:0", "-ac", "1", "-ar", "16000", "-f", "wav",
                          "pipe:1"], input=mp3, capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
    power = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / 16000)
    near = np.abs(freqs - hz) <= 25
    return float(freqs[int(np.argmax(power))]), float(power[near].sum() / power.sum())


def test_an_operator_records_trims_listens_and_saves_a_normalised_bulletin(page: Any, ui_world: UiWorld) -> None:
    title = unique("Ghi âm họp dân")
    sign_in(page, ui_world, "op-nu", next_path=LIBRARY)
    card = page.get_by_test_id("record-card")
    length = record(page, card, 6)
    assert 6.0 <= length <= 8.0, length
    assert card.get_by_test_id("recorder-duration").inner_text().startswith(f"Đã ghi 0:0{int(length)}")

    # Too short a part: refused on screen, nothing saved, the recording still there to fix.
    card.get_by_test_id("record-title").fill(title)
    keep(card, 2.0, 2.5)
    card.get_by_test_id("recorder-save").click()
    page.get_by_text("Đoạn ghi âm giữ lại ngắn quá").wait_for()
    assert bulletins_titled(ui_world, title) == 0
    assert card.get_by_test_id("recorder-recorded").is_visible()

    keep(card, 1.5, 5.5)
    assert "dài 0:04,0" in card.get_by_test_id("recorder-kept").inner_text()
    card.get_by_test_id("recorder-listen").click()  # plays 1,5 s → 5,5 s, then stops by itself
    audio = card.get_by_test_id("recorder-audio").element_handle()
    page.wait_for_function("a => !a.paused && a.currentTime > 1.5", arg=audio)
    page.wait_for_function("a => a.paused && a.currentTime >= 5.4 && a.currentTime < 6.5", arg=audio, timeout=10_000)

    card.get_by_test_id("recorder-save").click()
    done = card.get_by_test_id("record-done")
    done.wait_for(timeout=60_000)
    assert title in done.inner_text() and "LUFS" in done.inner_text()
    assert card.get_by_test_id("recorder-record").is_visible()  # ready for the next recording

    listed = ui_world.api.get("/api/v1/bulletins", params={"limit": 1000}).json()["data"]
    made = next(b for b in listed if b["title"] == title)
    assert made["commune"] == "tra-nu" and made["source_filename"].endswith(".webm")
    assert abs(made["duration_s"] - 4.0) <= 0.25, made["duration_s"]
    target = ui_world.testbed.settings.audio.target_lufs
    assert abs(made["loudness_after"] - target) <= 1.0, (made["loudness_after"], target)
    mp3 = ui_world.api.get(made["media_url"])
    assert mp3.status_code == 200
    strongest, share = spectrum_share(mp3.content, TONE_HZ)
    assert abs(strongest - TONE_HZ) <= 5 and share > 0.5, (strongest, share)
    # The library lists it, for whoever may see the commune's content.
    page.get_by_test_id("library-items").get_by_text(title).wait_for()


def test_the_compose_page_records_at_a_phone_width(phone: Any, ui_world: UiWorld) -> None:
    title = unique("Giọng của tôi")
    sign_in(phone, ui_world, "op-nu", next_path=COMPOSE)
    card = phone.get_by_test_id("record-card")
    assert "Ghi âm giọng của bạn" in card.inner_text()
    record(phone, card, 1)
    card.get_by_test_id("recorder-again").click()  # "Ghi lại": this one is thrown away
    card.get_by_test_id("recorder-record").wait_for()
    assert not card.get_by_test_id("recorder-recorded").is_visible()
    record(phone, card, 2)
    card.get_by_test_id("record-title").fill(title)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360  # nothing sticks out sideways
    card.get_by_test_id("recorder-save").click()
    card.get_by_test_id("record-done").wait_for(timeout=60_000)
    assert bulletins_titled(ui_world, title) == 1



@pytest.mark.parametrize(("start", "end", "duration", "code"), [
    (0.0, 1e7, 1e7, "recording_too_long"),  # would hold an ingest slot while a slow upload trickles in
    (0.0, float("inf"), float("inf"), "recording_range"),
    (0.0, float("nan"), 10.0, "recording_range"),
    (-5.0, 3.0, 10.0, "recording_range"),
])
def test_the_server_refuses_a_part_the_browser_cannot_have_recorded(monkeypatch: pytest.MonkeyPatch, start: float,
                                                                    end: float, duration: float, code: str) -> None:
    from types import SimpleNamespace

    from controller.errors import Invalid
    from controller.ui import recorder
    from controller.ui.i18n import t

    monkeypatch.setattr(recorder, "max_seconds", lambda: 900.0)
    uploads: list[str] = []
    fake = SimpleNamespace(_limit=10**9, _span=None, run_method=uploads.append)
    with pytest.raises(Invalid) as refused:
        recorder.Recorder._save(fake, SimpleNamespace(args={"start": start, "end": end, "duration": duration,  # type: ignore[arg-type]
                                                            "size": 1000}))
    assert refused.value.code == code and not uploads and fake._span is None
    assert "900" in t(f"errors.{code}", **refused.value.params) or code != "recording_too_long"
