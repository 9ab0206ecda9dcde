"""ffmpeg on files nobody vouches for: playlists, images, text and subtitles dressed as audio are refused by
name before anything is decoded; truncated recordings; every ffmpeg run stopped (its whole process group) at
its time; the ingest gate's bounded queue."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from audio import ffmpeg
from audio.ingest import BroadcastFormat, IngestBusy, IngestError, IngestGate, Limits, ingest
from tests.samples import make

REPEATS = 100_000


def finishes(call: Callable[[], Any], within: float, what: str) -> Any:
    """`call()` in a thread: its result or exception, or a failure if it has not returned within `within`
    seconds (before the fix these calls decoded for hours or never returned)."""
    out: dict[str, Any] = {}

    def go() -> None:
        try:
            out["value"] = call()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(within)
    if thread.is_alive():
        pytest.fail(f"{what} was still running after {within:.0f} s")
    if "error" in out:
        raise out["error"]
    return out.get("value")


def ffconcat(path: Path, target: str, times: int = REPEATS) -> Path:
    path.write_text("ffconcat version 1.0\n" + f"file '{target}'\n" * times)
    return path


def png(path: Path) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 8 for _ in range(8))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", bytes.fromhex("0000000800000008") + b"\x08\x02\x00\x00\x00")
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def test_an_ffconcat_naming_stored_audio_100000_times_is_refused_as_a_playlist(tmp_path: Path) -> None:
    """The attack of issue 12: a 2 MB 'WAV' that is a playlist of a stored file, 10^5 times over — hours of
    decoding. Refused by its name, before any of it is decoded."""
    (tmp_path / "ab").mkdir()
    make(tmp_path / "ab" / "stored.mp3", seconds=2)
    crafted = ffconcat(tmp_path / "bulletin.wav", "ab/stored.mp3")
    with pytest.raises(IngestError, match="playlist.*'concat'") as refused:
        finishes(lambda: ingest(crafted, tmp_path / "out.mp3", BroadcastFormat()), 60, "the ingest of the playlist")
    assert refused.value.code == "audio_format"
    assert not (tmp_path / "out.mp3").exists()


TEXT = b"THONG BAO: mai 7 gio hop dan tai nha van hoa thon.\r\n" * 200
HLS = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nseg.ts\n#EXT-X-ENDLIST\n"
SRT = "1\n00:00:01,000 --> 00:00:02,000\nXin chào\n"


@pytest.mark.parametrize(("name", "content", "words"), [
    ("notes.mp3", TEXT, "not audio that can be read"),  # ffmpeg's mp3 reader finds no frame in it
    ("notes.txt", TEXT, "not audio but a text file"),
    ("photo.mp3", None, "not audio but an image"),
    ("list.m4a", HLS.encode(), "not audio but a playlist"),
    ("speech.wav", SRT.encode(), "not audio but subtitles"),
])
def test_mislabelled_files_are_refused_saying_what_they_are(tmp_path: Path, name: str, content: bytes | None,
                                                            words: str) -> None:
    path = tmp_path / name
    png(path) if content is None else path.write_bytes(content)
    with pytest.raises(IngestError, match=words):
        ingest(path, tmp_path / "out.mp3", BroadcastFormat())


def test_a_playlist_naming_a_url_is_refused_without_a_connection(tmp_path: Path) -> None:
    """An HLS playlist pointing at a local port: refused by its format, and nothing connects (the ingest has
    returned when the listener is asked, so any connection would have been made)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        playlist = tmp_path / "news.mp3"
        playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:{port}/a.ts\n"
                            "#EXT-X-ENDLIST\n")
        with pytest.raises(IngestError, match="playlist.*'hls'"):
            ingest(playlist, tmp_path / "out.mp3", BroadcastFormat())
        with pytest.raises(BlockingIOError):
            listener.accept()


@pytest.mark.parametrize("ext", ["wav", "mp3"])
def test_a_truncated_recording_is_made_of_what_is_there(tmp_path: Path, ext: str) -> None:
    """A recording cut short (a phone's battery, a transfer stopped) keeps the audio it has: it is accepted
    at the length really present (the header's length is not believed), and staff hear it before approving."""
    whole = make(tmp_path / f"whole.{ext}", seconds=20)
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 5])
    result = ingest(cut, tmp_path / "out.mp3", BroadcastFormat())
    assert 5 <= result.duration_s <= 10, result


def test_a_truncated_m4a_without_its_index_is_refused(tmp_path: Path) -> None:
    whole = make(tmp_path / "whole.m4a", seconds=10)
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    data = cut.read_bytes()
    if b"moov" in data:  # the encoder put the index first: cutting the tail leaves a readable file
        cut.write_bytes(data[data.index(b"moov") + 64:])
    with pytest.raises(IngestError, match="not audio"):
        ingest(cut, tmp_path / "out.mp3", BroadcastFormat())


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_ffmpeg_past_its_time_is_killed_with_its_process_group() -> None:
    """A run that would never end (an endless generated source) stops at its timeout, and nothing of it is
    left running. Before, the timeout was only looked at after ffmpeg had closed its output: never."""
    started: list[int] = []
    real_popen = subprocess.Popen

    class Spy(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            started.append(self.pid)

    subprocess.Popen = Spy  # type: ignore[misc]
    try:
        with pytest.raises(ffmpeg.FfmpegTimeout):
            finishes(lambda: ffmpeg.run(["-f", "lavfi", "-i", "sine=frequency=440", "-f", "null", "-"],
                                        on_time=lambda t: None, timeout=1.0), 60, "ffmpeg with a 1 s timeout")
    finally:
        subprocess.Popen = real_popen  # type: ignore[misc]
    assert started and not _group_alive(started[0])


def test_an_ingest_that_decodes_past_its_limit_is_stopped_with_a_reason(tmp_path: Path) -> None:
    source = make(tmp_path / "long.wav", seconds=120, source="tone")
    with pytest.raises(IngestError, match="took too long") as refused:
        finishes(lambda: ingest(source, tmp_path / "out.mp3", BroadcastFormat(),
                                limits=Limits(floor_s=0.05, per_audio_s=0.0)), 60, "the time-limited ingest")
    assert refused.value.code == "audio_timeout"


def test_the_gate_runs_so_many_queues_a_few_and_refuses_the_rest_at_once() -> None:
    gate = IngestGate(running=1, waiting=1, wait_s=60)
    release, waiting_in, waiter_ran = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        with gate.slot():
            release.wait(60)

    def wait_then_run() -> None:
        waiting_in.set()
        with gate.slot():
            waiter_ran.set()

    holder = threading.Thread(target=hold)
    holder.start()
    while gate._slots._value != 0:  # noqa: SLF001 - the holder has its slot
        time.sleep(0.01)
    waiter = threading.Thread(target=wait_then_run)
    waiter.start()
    waiting_in.wait(10)
    while gate._waiting != 1:  # noqa: SLF001 - the waiter is in the queue
        time.sleep(0.01)
    with pytest.raises(IngestBusy, match="queue is full"):
        with gate.slot():
            pass
    release.set()
    assert waiter_ran.wait(30), "the queued ingest never ran"
    holder.join(10)
    waiter.join(10)
    with gate.slot():  # all free again
        pass


def test_a_wait_for_a_slot_runs_out() -> None:
    gate = IngestGate(running=1, waiting=4, wait_s=0.2)
    with gate.slot(), pytest.raises(IngestBusy, match="within"):
        with gate.slot():
            pass
