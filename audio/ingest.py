"""From any recording to broadcast-ready audio, as a pipeline of small steps over files:

1. `probe`    — is it audio at all, what is it, how long (ffmpeg's own description of its input)
2. `analyse`  — one decoding pass: EBU R128 loudness (loudnorm, measure mode) and, if asked, where the
                audible part starts and ends (silencedetect)
3. `encode`   — one decoding pass: trim, normalise with the measured values (loudnorm linear mode: one gain
                for the whole file, so speech keeps its dynamics), downmix, resample, encode MP3
4. the caller stores the result (`audio.store.MediaStore`)

ffmpeg streams throughout: memory does not grow with the length of the recording. Every refusal is an
`IngestError` with a message fit for the person who uploaded the file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import ffmpeg
from .ffmpeg import FfmpegError, Loudnorm, Probe


class IngestError(ValueError):
    """The input cannot become broadcast audio; the message says why, for the uploader."""


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
    loudness: Loudnorm
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


def probe(path: Path) -> Probe:
    try:
        stderr = ffmpeg.run(["-i", str(path), "-f", "null", "-t", "0", "-"])
    except FfmpegError as e:
        raise IngestError("This file is not audio that can be read (it may be damaged or in an unknown format).") \
            from e
    info = ffmpeg.parse_probe(stderr)
    if info is None:
        raise IngestError("This file has no audio track.")
    return info


def analyse(path: Path, info: Probe, fmt: BroadcastFormat, *, trim_silence: bool,
            on_progress: Callable[[float], None] | None = None) -> Analysis:
    filters = [f"loudnorm=I={fmt.target_lufs}:TP={fmt.true_peak_dbtp}:LRA={fmt.lra}:print_format=json"]
    if trim_silence:
        filters.insert(0, f"silencedetect=n={fmt.silence_threshold_db}dB:d={fmt.silence_min_s}")
    try:
        stderr = ffmpeg.run(["-i", str(path), "-map", "0:a:0", "-vn", "-af", ",".join(filters), "-f", "null", "-"],
                            duration_s=info.duration_s, on_progress=on_progress)
    except FfmpegError as e:
        raise IngestError("The audio could not be decoded to the end (the file may be damaged).") from e
    duration = ffmpeg.parse_duration_from_run(stderr) or info.duration_s or 0.0
    if duration <= 0.05:
        raise IngestError("The audio is empty.")
    if duration > fmt.max_duration_s:
        raise IngestError(f"The audio lasts {duration / 60:.0f} minutes; the limit is {fmt.max_duration_s / 60:.0f}.")
    loudness = ffmpeg.parse_loudnorm(stderr)
    if not math.isfinite(loudness.input_i) or loudness.input_i < -60:
        raise IngestError("The audio is silent (nothing louder than -60 LUFS).")
    start, end = ffmpeg.parse_silence(stderr, duration) if trim_silence else (0.0, duration)
    return Analysis(loudness, duration, start, end)


def encode(path: Path, out: Path, analysis: Analysis, fmt: BroadcastFormat,
           on_progress: Callable[[float], None] | None = None) -> Loudnorm:
    m = analysis.loudness
    norm = (f"loudnorm=I={fmt.target_lufs}:TP={fmt.true_peak_dbtp}:LRA={fmt.lra}"
            f":measured_I={m.input_i}:measured_TP={m.input_tp}:measured_LRA={m.input_lra}"
            f":measured_thresh={m.input_thresh}:offset={m.target_offset}:linear=true:print_format=json")
    trim = []
    if analysis.start_s > 0 or analysis.end_s < analysis.duration_s:
        trim = ["-ss", f"{analysis.start_s:.3f}", "-to", f"{analysis.end_s:.3f}"]
    stderr = ffmpeg.run([*trim, "-i", str(path), "-map", "0:a:0", "-vn", "-map_metadata", "-1",
                         "-af", f"{norm},aresample={fmt.sample_rate}", "-ac", "1", "-ar", str(fmt.sample_rate),
                         "-c:a", "libmp3lame", "-b:a", f"{fmt.bitrate_kbps}k", "-f", "mp3", "-y", str(out)],
                        duration_s=analysis.end_s - analysis.start_s, on_progress=on_progress)
    return ffmpeg.parse_loudnorm(stderr)


def ingest(path: Path, out: Path, fmt: BroadcastFormat, *, trim_silence: bool = False,
           on_progress: Progress | None = None) -> Ingested:
    """Run the whole pipeline from `path` to an MP3 at `out`."""
    info = probe(path)
    if info.duration_s is not None and info.duration_s > fmt.max_duration_s:
        raise IngestError(f"The audio lasts {info.duration_s / 60:.0f} minutes; "
                          f"the limit is {fmt.max_duration_s / 60:.0f}.")
    analysis = analyse(path, info, fmt, trim_silence=trim_silence,
                       on_progress=(lambda f: on_progress("analyse", f)) if on_progress else None)
    result = encode(path, out, analysis, fmt, on_progress=(lambda f: on_progress("encode", f)) if on_progress else None)
    return Ingested(output=out, probe=info, duration_s=round(analysis.end_s - analysis.start_s, 3),
                    loudness_before=round(analysis.loudness.input_i, 2), loudness_after=round(result.output_i, 2),
                    true_peak_after=round(result.output_tp, 2),
                    trimmed_s=round(analysis.duration_s - (analysis.end_s - analysis.start_s), 3))
