"""From any recording to broadcast-ready audio, as a pipeline of small steps over files:

1. `probe`     — is it audio at all, what is it, how long (ffmpeg's own description of its input)
2. `analyse`   — one decoding pass over the mono downmix: EBU R128 loudness and sample peak (ebur128) and,
                 if asked, where the audible part starts and ends (silencedetect); decoding and measuring
                 run in two ffmpegs at once (`ffmpeg.run(feed=…)`), one core each
3. `calibrate` — only when peaks must be limited: decode-and-filter trials (no encoding) that find the
                 gain at which the limited audio still reaches the target
4. `encode`    — one pass: trim, downmix, one gain for the whole file (so speech keeps its dynamics),
                 the limiter if needed, resample, encode MP3, in one ffmpeg and LAME in another; the MP3
                 is measured (loudness, true peak) as it is written, by a third fed the same bytes
5. the caller stores the result (`audio.store.MediaStore`)

ffmpeg streams throughout: memory does not grow with the length of the recording. Every refusal is an
`IngestError` with a message fit for the person who uploaded the file (and a `code` the staff UI says in
its own words).

The input is nobody's word: every pass reads it with `ffmpeg.safe_input` (the `file` protocol, the probed
demuxer of `ffmpeg.DEMUXERS` and no other), decodes at most `max_duration_s` of it, and runs under a
wall-clock limit scaled to the audio's length (`Limits`); ffmpeg runs at a lower CPU priority (`NICE`).
`IngestGate` bounds how many ingests run at once and how many wait: the caller (the content service)
holds a slot around `ingest`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import ffmpeg
from .ffmpeg import FfmpegError, FfmpegTimeout, Probe


class IngestError(ValueError):
    """The input cannot become broadcast audio; the message says why, for the uploader. `code` names the
    reason for faces that speak another language (`errors.<code>` of the staff UI)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Limits:
    """Wall-clock limits of the ffmpeg runs on an upload. Decoding runs at ~250× real time here and
    encoding at ~60× (docs/PERFORMANCE.md), so `per_audio_s` = 0.1 (10× real time) leaves a wide margin
    for a busy machine while a file that decodes far slower than its length says is stopped."""

    probe_s: float = 20.0
    floor_s: float = 30.0
    per_audio_s: float = 0.1
    ceiling_s: float = 1800.0

    def for_audio(self, seconds: float) -> float:
        return min(self.ceiling_s, self.floor_s + self.per_audio_s * max(0.0, seconds))


NICE = 10  # ffmpeg on uploads yields the CPU to the API, the bridge and the emergencies

# Demuxers refused, by what a person would call the file (the rest: "a format that is not accepted").
_KINDS = {"a playlist": ("concat", "hls", "dash", "applehttp", "ffmetadata", "mpl2", "smil"),
          "an image": ("image2", "png_pipe", "jpeg_pipe", "gif", "webp_pipe", "bmp_pipe", "svg_pipe", "tiff_pipe"),
          "a text file": ("tty", "lavfi", "txt"),
          "subtitles": ("srt", "ass", "webvtt", "subviewer", "subviewer1", "microdvd", "sami", "jacosub",
                        "realtext", "stl", "pjs", "vplayer", "aqtitle", "mpsub", "lrc", "scc", "sup")}
ACCEPTED = "MP3, WAV, OGG/Opus, M4A/AAC, FLAC, AMR, 3GP or WebM"


def _refused_format(demuxer: str) -> IngestError:
    kind = next((k for k, names in _KINDS.items() if demuxer in names), None)
    what = f"{kind} (ffmpeg reads it as '{demuxer}')" if kind else f"in a format that is not accepted ('{demuxer}')"
    return IngestError(f"This file is not audio but {what}: upload a recording ({ACCEPTED}).", code="audio_format")


class IngestBusy(Exception):
    """Every ingest slot is taken and the queue is full, or the wait for a slot ran out."""


class IngestGate:
    """At most `running` ingests at a time; at most `waiting` more wait, each for at most `wait_s`.

    A waiting upload holds a worker thread of the server, so the queue is short: a staff member whose
    upload arrives while two others are being made broadcast-ready waits a little, while a flood of
    uploads is refused at once (`IngestBusy`) and leaves the server's threads to the other routes."""

    def __init__(self, running: int, waiting: int, wait_s: float) -> None:
        self._slots = threading.BoundedSemaphore(running)
        self._lock = threading.Lock()
        self._waiting = 0
        self.waiting_max, self.wait_s = waiting, wait_s

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            with self._lock:
                if self._waiting >= self.waiting_max:
                    raise IngestBusy("every ingest slot is taken and the queue is full")
                self._waiting += 1
            try:
                got = self._slots.acquire(timeout=self.wait_s)
            finally:
                with self._lock:
                    self._waiting -= 1
            if not got:
                raise IngestBusy(f"no ingest slot came free within {self.wait_s:.0f} s")
        try:
            yield
        finally:
            self._slots.release()


@dataclass(frozen=True)
class BroadcastFormat:
    sample_rate: int = 44100
    bitrate_kbps: int = 64
    target_lufs: float = -16.0
    true_peak_dbtp: float = -1.5
    lra: float = 11.0
    silence_threshold_db: float = -50.0
    silence_min_s: float = 0.3
    max_duration_s: float = 3 * 3600


@dataclass(frozen=True)
class Analysis:
    loudness: ffmpeg.Ebur128  # of the mono downmix, as it will be broadcast; `true_peak` is the sample peak
    duration_s: float
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Ingested:
    output: Path
    probe: Probe
    duration_s: float
    loudness_before: float
    loudness_after: float
    true_peak_after: float
    trimmed_s: float


Progress = Callable[[str, float], None]  # (stage, fraction of that stage)

MONO = "aformat=channel_layouts=mono"
# ebur128's per-frame log goes to the verbose level: only the summary is printed, so a long file's
# stderr (kept in memory) stays small.
METER = "ebur128=peak=true:framelog=verbose"
# The analysis reads the sample peak, not the true peak: it only decides whether the limiter goes in, and
# alimiter limits samples, so a file whose true peak alone passes the ceiling came out the same with the
# limiter (idle) as without it. The true-peak meter (4× oversampling) was a third of the analysis' cost;
# the written file's true peak is still measured, and reported.
ANALYSIS_METER = "ebur128=peak=sample:framelog=verbose"
# Between the ffmpegs of a pipeline (decoding apart from measuring or encoding, each on a core of its own):
# the decoded samples as they are (32-bit float), in NUT, which carries their rate, layout and timestamps.
TO_PIPE = ["-c:a", "pcm_f32le", "-f", "nut", "pipe:1"]
FROM_PIPE = ["-protocol_whitelist", "pipe", "-f", "nut", "-i", "pipe:0"]
# LAME raises true peaks by up to ~1.5 dB and lowers integrated loudness by ~0.4 LU (measured for speech and
# tones at 64 and 128 kbps at 44.1 kHz; for the speech format, 32 kbps at 22.05 kHz, chime and eSpeak speech
# lose 0.4-0.5 LU and peaks rise by at most 0.5 dB, docs/PERFORMANCE.md): limit below the ceiling, aim a
# little above.
MP3_PEAK_OVERSHOOT_DB = 1.5
MP3_LOUDNESS_LOSS_DB = 0.4
LOUDNESS_TOLERANCE_LU = 0.3
# The limiter's trials run on at most this much audio, in CALIBRATION_PIECES pieces spread over the file (its
# beginning alone may be a jingle or an introduction unlike the rest).
CALIBRATION_SAMPLE_S = 120.0
CALIBRATION_PIECES = 4


def _demuxer(info: Probe) -> str:
    """The one demuxer name to force for later passes ("mov,mp4,m4a,…" → "mov")."""
    return info.container.split(",")[0].strip()


def probe(path: Path, limits: Limits = Limits()) -> Probe:
    """What the file is, read only by a whitelisted demuxer. When ffmpeg cannot open it, a second look at
    `-v debug` (where ffmpeg names the demuxer it probed, even one the whitelist then refuses: nothing is
    read past the probe) lets the refusal say what the file is."""
    args = [*ffmpeg.safe_input(), "-i", str(path), "-f", "null", "-t", "0", "-"]
    try:
        stderr = ffmpeg.run(args, timeout=limits.probe_s, nice=NICE)
    except FfmpegTimeout as e:
        raise IngestError(f"Reading this file took longer than {limits.probe_s:.0f} s: it is not audio that can "
                          "be read.", code="audio_timeout") from e
    except FfmpegError as e:
        try:
            ffmpeg.run(["-v", "debug", *args], timeout=limits.probe_s, nice=NICE)
            demuxer = ""
        except FfmpegError as again:
            demuxer = ffmpeg.parse_demuxer(again.stderr) or ""
        if demuxer and demuxer not in ffmpeg.DEMUXERS:
            raise _refused_format(demuxer) from e
        raise IngestError("This file is not audio that can be read (it may be damaged or in an unknown format).") \
            from e
    info = ffmpeg.parse_probe(stderr)
    if info is None:
        raise IngestError("This file has no audio track.")
    if _demuxer(info) not in ffmpeg.DEMUXERS:  # cannot happen past the whitelist; a second lock on the door
        raise _refused_format(_demuxer(info))
    return info


def _timed_out(e: FfmpegTimeout) -> IngestError:
    return IngestError(f"Making this file broadcast-ready took too long ({e}); it may be damaged.",
                       code="audio_timeout")


def _timer(duration_s: float | None, on_progress: Callable[[float], None] | None,
           seen: list[float]) -> Callable[[float], None]:
    def on_time(t: float) -> None:
        seen.append(t)
        if on_progress and duration_s:
            on_progress(min(1.0, t / duration_s))
    return on_time


def analyse(path: Path, info: Probe, fmt: BroadcastFormat, *, trim_silence: bool,
            on_progress: Callable[[float], None] | None = None, limits: Limits = Limits()) -> Analysis:
    """One decoding pass over the mono downmix (what will be broadcast: a stereo phone recording's mono
    peaks are up to 3 dB higher than its channels'): loudness, sample peak, and where the sound is."""
    filters = [ANALYSIS_METER]
    if trim_silence:
        filters.insert(0, f"silencedetect=n={fmt.silence_threshold_db}dB:d={fmt.silence_min_s}")
    seen: list[float] = []
    # Decode at most a little past the limit, whatever the container says of its length.
    bound = ["-t", f"{fmt.max_duration_s + 1:.0f}"]
    decode = [*ffmpeg.safe_input(_demuxer(info)), *bound, "-i", str(path), "-map", "0:a:0", "-vn", "-af", MONO,
              *TO_PIPE]
    try:
        stderr = ffmpeg.run([*FROM_PIPE, "-af", ",".join(filters), "-f", "null", "-"], feed=[decode],
                            on_time=_timer(info.duration_s, on_progress, seen),
                            timeout=limits.for_audio(info.duration_s or fmt.max_duration_s), nice=NICE)
    except FfmpegTimeout as e:
        raise _timed_out(e) from e
    except FfmpegError as e:
        raise IngestError("The audio could not be decoded to the end (the file may be damaged).") from e
    duration = seen[-1] if seen else (info.duration_s or 0.0)
    if duration <= 0.05:
        raise IngestError("The audio is empty.")
    if duration > fmt.max_duration_s:  # the decode stopped at the bound: longer than that
        raise IngestError(f"The audio lasts {duration / 60:.0f} minutes; the limit is {fmt.max_duration_s / 60:.0f}.")
    loudness = ffmpeg.parse_ebur128(stderr)
    if not math.isfinite(loudness.integrated) or loudness.integrated < -60:
        raise IngestError("The audio is silent (nothing louder than -60 LUFS).")
    start, end = ffmpeg.parse_silence(stderr, duration) if trim_silence else (0.0, duration)
    return Analysis(loudness, duration, start, end)


def gain_chain(m: ffmpeg.Ebur128, fmt: BroadcastFormat, correction_db: float = 0.0) -> list[str]:
    """One gain for the whole file, so speech keeps its dynamics, and a limiter only where that gain would
    push peaks past the ceiling. (ffmpeg's loudnorm silently turns dynamic in that case and misses the
    target by 1-2 LU on speech; it also costs three times a transcode.)"""
    gain = fmt.target_lufs - m.integrated + MP3_LOUDNESS_LOSS_DB + correction_db
    ceiling_db = fmt.true_peak_dbtp - MP3_PEAK_OVERSHOOT_DB
    chain = [MONO, f"volume={gain:.2f}dB"]
    if (m.true_peak if m.true_peak is not None else 0.0) + gain > ceiling_db:
        chain.append(f"alimiter=limit={10 ** (ceiling_db / 20):.4f}:level=false:attack=3:release=60:latency=true")
    return chain


def _trim(analysis: Analysis) -> list[str]:
    if analysis.start_s > 0 or analysis.end_s < analysis.duration_s:
        return ["-ss", f"{analysis.start_s:.3f}", "-to", f"{analysis.end_s:.3f}"]
    return []


def sample_pieces(start_s: float, end_s: float) -> list[tuple[float, float]]:
    """(start, length) of the pieces the limiter's trials run on: the whole audible part when it is short,
    else CALIBRATION_PIECES pieces, one in the middle of each equal part, CALIBRATION_SAMPLE_S in all."""
    span = end_s - start_s
    if span <= CALIBRATION_SAMPLE_S:
        return [(start_s, span)]
    piece, part = CALIBRATION_SAMPLE_S / CALIBRATION_PIECES, span / CALIBRATION_PIECES
    return [(start_s + (i + 0.5) * part - piece / 2, piece) for i in range(CALIBRATION_PIECES)]


def calibrate(path: Path, analysis: Analysis, fmt: BroadcastFormat, demuxer: str | None = None,
              limits: Limits = Limits()) -> float:
    """The gain correction that makes a limited file hit the target: limiting heavy peaks (synthetic
    speech, clipped phone recordings) costs loudness. Trials decode and filter a sample of at most
    CALIBRATION_SAMPLE_S (`sample_pieces`) without encoding, and step by the secant, so long files cost
    little more; the written file is measured afterwards in any case, so what is reported is what was made."""
    if not any(f.startswith("alimiter") for f in gain_chain(analysis.loudness, fmt)):
        return 0.0  # a pure gain is exact
    target = fmt.target_lufs + MP3_LOUDNESS_LOSS_DB
    pieces = sample_pieces(analysis.start_s, analysis.end_s)
    inputs = [a for start, length in pieces
              for a in (*ffmpeg.safe_input(demuxer), "-ss", f"{start:.3f}", "-t", f"{length:.3f}", "-i", str(path))]
    joined = "".join(f"[{i}:a:0]" for i in range(len(pieces))) + f"concat=n={len(pieces)}:v=0:a=1"
    tried: list[tuple[float, float]] = []  # (correction, loudness reached)
    correction = 0.0
    for _ in range(3):
        chain = [joined, *gain_chain(analysis.loudness, fmt, correction), "ebur128=framelog=verbose"]
        stderr = ffmpeg.run([*inputs, "-filter_complex", ",".join(chain), "-f", "null", "-"],
                            timeout=limits.for_audio(sum(length for _, length in pieces)), nice=NICE)
        reached = ffmpeg.parse_ebur128(stderr).integrated
        if abs(target - reached) <= LOUDNESS_TOLERANCE_LU:
            break
        tried.append((correction, reached))
        if len(tried) >= 2 and tried[-1][1] != tried[-2][1]:
            (c0, l0), (c1, l1) = tried[-2:]
            correction = c1 + (target - l1) * (c1 - c0) / (l1 - l0)
        else:
            correction += 2 * (target - reached)  # the limiter takes back about half of a raise
    return correction


def _tee(out: Path) -> str:
    """The tee muxer's outputs: the MP3 file `out` (quoted: a path may hold the tee's separators) and the same
    MP3 stream on standard output."""
    quoted = "'" + f"file:{out}".replace("'", "'\\''") + "'"
    return f"[f=mp3]{quoted}|[f=mp3]pipe:1"


def encode(path: Path, out: Path, analysis: Analysis, fmt: BroadcastFormat, correction_db: float,
           on_progress: Callable[[float], None] | None = None, demuxer: str | None = None,
           limits: Limits = Limits()) -> ffmpeg.Ebur128:
    """Encode once, and measure the MP3 as it is written (what receivers will play). Three ffmpegs in a
    pipeline, so LAME (most of the cost) has a core to itself: one decodes, trims and filters; one encodes,
    writing the file and, the same frames, a pipe into the third, which decodes and meters them."""
    chain = [*gain_chain(analysis.loudness, fmt, correction_db), f"aresample={fmt.sample_rate}"]
    length = analysis.end_s - analysis.start_s
    filtered = [*ffmpeg.safe_input(demuxer), *_trim(analysis), "-i", str(path), "-map", "0:a:0", "-vn",
                "-map_metadata", "-1", "-af", ",".join(chain), "-ac", "1", "-ar", str(fmt.sample_rate), *TO_PIPE]
    encoder = [*FROM_PIPE, "-map", "0:a:0", "-map_metadata", "-1", "-c:a", "libmp3lame", "-b:a", f"{fmt.bitrate_kbps}k",
               "-f", "tee", _tee(out)]
    meter = ["-protocol_whitelist", "pipe", "-f", "mp3", "-i", "pipe:0", "-af", METER, "-f", "null", "-"]
    return ffmpeg.parse_ebur128(ffmpeg.run(meter, feed=[filtered, encoder], on_time=_timer(length, on_progress, []),
                                           timeout=limits.for_audio(length), nice=NICE))


def ingest(path: Path, out: Path, fmt: BroadcastFormat, *, trim_silence: bool = False,
           on_progress: Progress | None = None, limits: Limits = Limits()) -> Ingested:
    """Run the whole pipeline from `path` to an MP3 at `out`."""
    info = probe(path, limits)
    if info.duration_s is not None and info.duration_s > fmt.max_duration_s:
        raise IngestError(f"The audio lasts {info.duration_s / 60:.0f} minutes; "
                          f"the limit is {fmt.max_duration_s / 60:.0f}.")
    demuxer = _demuxer(info)
    analysis = analyse(path, info, fmt, trim_silence=trim_silence,
                       on_progress=(lambda f: on_progress("analyse", f)) if on_progress else None, limits=limits)
    try:
        correction = calibrate(path, analysis, fmt, demuxer, limits)
        result = encode(path, out, analysis, fmt, correction,
                        on_progress=(lambda f: on_progress("encode", f)) if on_progress else None, demuxer=demuxer,
                        limits=limits)
    except FfmpegTimeout as e:
        raise _timed_out(e) from e
    return Ingested(output=out, probe=info, duration_s=round(analysis.end_s - analysis.start_s, 3),
                    loudness_before=round(analysis.loudness.integrated, 2), loudness_after=round(result.integrated, 2),
                    true_peak_after=round(result.true_peak if result.true_peak is not None else 0.0, 2),
                    trimmed_s=round(analysis.duration_s - (analysis.end_s - analysis.start_s), 3))
