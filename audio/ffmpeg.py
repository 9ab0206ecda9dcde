"""Running ffmpeg: finding the binary, and the pure parsers for what it prints.

The binary is the system's `ffmpeg` where installed, else the one shipped inside the `imageio-ffmpeg`
wheel, so `make demo` needs no root. Only `ffmpeg` is used (no `ffprobe`: the wheel does not ship it);
`parse_probe` reads the stream description ffmpeg prints for its input.

- `ffmpeg_exe()`, `run(args, on_time, timeout, nice, feed)`: run ffmpeg (fed, if asked, by a second one at
  once), streaming its `-progress` output to a callback; past `timeout` their process groups are killed
  (`FfmpegTimeout`).
- `safe_input(demuxer)`: the input options for a file nobody vouches for (an upload): only the `file`
  protocol, only the demuxers of `DEMUXERS` — no playlists (`concat`, `hls`), images, text, subtitles or
  generated sources, which would make a small file read other files, the network or decode for hours.
- `parse_probe(stderr) -> Probe`, `parse_demuxer(stderr)`, `parse_ebur128(stderr) -> Ebur128`,
  `parse_silence(stderr, duration)`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


class FfmpegError(RuntimeError):
    """ffmpeg failed; the message carries the end of what it said, `stderr` all of it."""

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


class FfmpegTimeout(FfmpegError):
    """ffmpeg ran past its time and was killed."""


# The demuxers (ffmpeg's names) that read what staff upload: phone recordings (M4A/AAC, 3GP/AMR, OGG/Opus,
# WebM), MP3s, WAVs and FLACs. None of them opens another file or URL (mov's external references are off by
# default and, with only the `file` protocol, could not reach beyond the disk anyway).
DEMUXERS = ("mp3", "wav", "ogg", "flac", "mov", "aac", "matroska", "amr", "amrnb", "amrwb")


def safe_input(demuxer: str | None = None) -> list[str]:
    """Options to put before `-i` for an untrusted file: the `file` protocol only, the demuxers of
    `DEMUXERS` only, and (once probed) that very demuxer, so no later pass can read it as something else."""
    options = ["-protocol_whitelist", "file", "-format_whitelist", ",".join(DEMUXERS)]
    return options + (["-f", demuxer] if demuxer else [])


@lru_cache
def ffmpeg_exe() -> str:
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as e:
        raise FfmpegError("ffmpeg not found: install it (apt-get install ffmpeg) or pip install imageio-ffmpeg") from e


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its own group: whatever it started goes too
    except (ProcessLookupError, PermissionError):
        pass


def run(args: list[str], *, on_time: Callable[[float], None] | None = None, timeout: float | None = None,
        nice: int = 0, feed: Sequence[list[str]] = ()) -> str:
    """Run ffmpeg with `args`; return its stderr. `on_time(seconds)` is called as it goes with how much
    of the input it has processed (the last call says how long the input was). stderr is drained by a
    thread all along: ffmpeg blocks once a pipe's buffer is full, so reading one pipe to the end before
    the other would hang it. ffmpeg runs in a process group of its own: past `timeout` seconds (wall
    clock) a watchdog kills the group, whatever this thread is doing, and `FfmpegTimeout` is raised.
    `nice` lowers its CPU priority (ingests of uploads must not slow the API and the emergencies).

    `feed`: the arguments of more ffmpegs, run at the same time as a pipeline: each one's standard output
    (`pipe:1`) is the next one's standard input (`pipe:0`), the last one's is this one's. So the steps of a
    long job run on several cores (ingest decodes and filters, encodes, and measures what it wrote, at once).
    They run under the same watchdog and priority; the first that fails is the error raised (those after it
    only saw their input end)."""
    base = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats"]
    cmd = base + (["-progress", "pipe:1"] if on_time else []) + args
    timed_out = threading.Event()
    procs: list[subprocess.Popen[Any]] = []
    drains: list[tuple[threading.Thread, list[Any]]] = []

    def start(command: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(command, stderr=subprocess.PIPE, start_new_session=True, **kwargs)
        procs.append(proc)
        if nice:
            try:
                os.setpriority(os.PRIO_PROCESS, proc.pid, nice)
            except (ProcessLookupError, PermissionError):
                pass
        lines: list[Any] = []
        drain = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
        drain.start()
        drains.append((drain, lines))
        return proc

    def expire() -> None:
        timed_out.set()
        for p in procs:
            _kill_group(p)

    watchdog = threading.Timer(timeout, expire) if timeout is not None else None
    try:
        stdin: Any = subprocess.DEVNULL
        for i, step in enumerate(feed):
            writer = start(base + step, stdin=stdin, stdout=subprocess.PIPE)
            if i:
                stdin.close()  # the reader holds it now: if it dies, the writer gets EPIPE instead of blocking
            stdin = writer.stdout
        proc = start(cmd, stdin=stdin, stdout=subprocess.PIPE, text=True, encoding="utf-8", errors="replace")
        if feed:
            stdin.close()
        if watchdog is not None:
            watchdog.daemon = True
            watchdog.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            if on_time and line.startswith("out_time_us="):
                try:
                    on_time(int(line.split("=", 1)[1]) / 1e6)
                except ValueError:
                    pass  # "N/A" before the first frame
        for p in procs:
            p.wait()
        for drain, _ in drains:
            drain.join()
    finally:
        if watchdog is not None:
            watchdog.cancel()
        for p in procs:
            if p.poll() is None:  # left early (an exception in on_time): do not leave it running
                _kill_group(p)
                p.wait()
            for stream in (p.stdout, p.stderr):
                if stream is not None:
                    stream.close()
    if timed_out.is_set():
        raise FfmpegTimeout(f"ffmpeg took longer than {timeout:.0f} s and was stopped")
    said = ["".join(x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in lines) for _, lines in drains]
    # In pipeline order, the first failure is the cause; but a writer whose reader failed dies of a broken pipe.
    failed = sorted((i for i, p in enumerate(procs) if p.returncode != 0), key=lambda i: "Broken pipe" in said[i])
    if failed:
        tail = "\n".join(said[failed[0]].strip().splitlines()[-5:])
        raise FfmpegError(f"ffmpeg exited with {procs[failed[0]].returncode}: {tail}", said[failed[0]])
    return said[-1]


# ---------------------------------------------------------------------------------------------- parsers


@dataclass(frozen=True)
class Probe:
    container: str
    codec: str
    sample_rate: int | None
    channels: str | None
    duration_s: float | None  # None when the container does not say (raw AMR, some streams)


_INPUT = re.compile(r"^Input #0, ([^,]+(?:,[^,]+)*?), from ", re.M)
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_AUDIO = re.compile(r"Stream #0:\d+(?:\[[^\]]*\])?(?:\([^)]*\))?: Audio: ([^,\s]+)[^,]*(?:, (\d+) Hz)?(?:, ([^,]+))?")


_PROBED = re.compile(r"Format (\S+) probed with size=")


def parse_demuxer(stderr: str) -> str | None:
    """The demuxer ffmpeg chose for its input, from what it says at `-v debug` (also when a whitelist then
    refused it)."""
    found = _PROBED.search(stderr)
    return found.group(1) if found else None


def parse_probe(stderr: str) -> Probe | None:
    """What `ffmpeg -i FILE` said about FILE's first audio stream; None when it has none (not audio)."""
    audio = _AUDIO.search(stderr)
    if not audio:
        return None
    container = _INPUT.search(stderr)
    duration = _DURATION.search(stderr)
    seconds = None
    if duration:
        h, m, s = duration.groups()
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
    return Probe(container=container.group(1) if container else "unknown", codec=audio.group(1),
                 sample_rate=int(audio.group(2)) if audio.group(2) else None,
                 channels=audio.group(3).strip() if audio.group(3) else None, duration_s=seconds)


@dataclass(frozen=True)
class Ebur128:
    integrated: float
    true_peak: float | None


def parse_ebur128(stderr: str) -> Ebur128:
    """The summary that ffmpeg's ebur128 filter prints at the end of a run."""
    summary = stderr[stderr.rfind("Summary:"):]
    i = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    if not i:
        raise FfmpegError("ebur128 printed no summary")
    peak = re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    return Ebur128(float(i.group(1)), float(peak.group(1)) if peak else None)


_SIL_START = re.compile(r"silence_start: (-?[\d.]+)")
_SIL_END = re.compile(r"silence_end: (-?[\d.]+)")
def parse_silence(stderr: str, duration_s: float) -> tuple[float, float]:
    """(start, end) of the audible part, from silencedetect's report: leading silence is a silence that
    starts at 0, trailing silence one that has no end (or ends at the end)."""
    starts = [max(0.0, float(x)) for x in _SIL_START.findall(stderr)]
    ends = [float(x) for x in _SIL_END.findall(stderr)]
    begin, finish = 0.0, duration_s
    if starts and starts[0] <= 0.01 and ends:
        begin = ends[0]
    if starts and (len(starts) > len(ends) or (ends and ends[-1] >= duration_s - 0.01)):
        finish = starts[-1]
    if finish <= begin:  # all silence: leave it to the silence check to refuse
        return 0.0, duration_s
    return begin, finish
