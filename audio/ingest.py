"""From any recording to broadcast-ready audio, as a pipeline of small steps over files:

1. `probe`    — is it audio at all, what is it, how long (ffmpeg's own description of its input)
2. `analyse`  — one decoding pass: EBU R128 loudness (loudnorm, measure mode) and, if asked, where the
                audible part starts and ends (silencedetect)
3. `encode`   — one decoding pass: trim, downmix, one gain for the whole file (so speech keeps its
                dynamics) with a limiter only where that gain would break the true-peak ceiling, resample,
                encode MP3 — and measure the result (ebur128) on the way out
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


def gain_chain(m: Loudnorm, fmt: BroadcastFormat, correction_db: float = 0.0) -> list[str]:
    """Filters that bring the measured audio to the target loudness with one gain for the whole file,
    limiting only the peaks that the gain would push past the true-peak ceiling. (ffmpeg's loudnorm
    silently switches to dynamic mode in that case, which misses the target by 1-2 LU on short speech.)"""
    gain = fmt.target_lufs - m.input_i + correction_db
    chain = [f"volume={gain:.2f}dB"]
    if m.input_tp + gain > fmt.true_peak_dbtp:
        # alimiter works on sample peaks; 0.5 dB of headroom covers the inter-sample overshoot of speech.
        ceiling = 10 ** ((fmt.true_peak_dbtp - 0.5) / 20)
        chain.append(f"alimiter=limit={ceiling:.4f}:level=false:attack=3:release=60:latency=true")
    return chain


def encode(path: Path, out: Path, analysis: Analysis, fmt: BroadcastFormat,
           on_progress: Callable[[float], None] | None = None) -> ffmpeg.Ebur128:
    """Encode, and encode again (at most twice) with a corrected gain when limiting heavy peaks cost
    more loudness than the tolerance: synthetic speech and clipped phone recordings need it."""
    correction = 0.0
    for _ in range(3):
        result = _encode_once(path, out, analysis, fmt, correction, on_progress)
        miss = fmt.target_lufs - result.integrated
        if abs(miss) <= LOUDNESS_TOLERANCE_LU:
            break
        correction += miss
    return result


LOUDNESS_TOLERANCE_LU = 0.4


def _encode_once(path: Path, out: Path, analysis: Analysis, fmt: BroadcastFormat, correction_db: float,
                 on_progress: Callable[[float], None] | None) -> ffmpeg.Ebur128:
    trim = []
    if analysis.start_s > 0 or analysis.end_s < analysis.duration_s:
        trim = ["-ss", f"{analysis.start_s:.3f}", "-to", f"{analysis.end_s:.3f}"]
    chain = ["aformat=channel_layouts=mono", *gain_chain(analysis.loudness, fmt, correction_db),
             f"aresample={fmt.sample_rate}",
             "ebur128=peak=true"]
    stderr = ffmpeg.run([*trim, "-i", str(path), "-map", "0:a:0", "-vn", "-map_metadata", "-1",
                         "-af", ",".join(chain), "-ac", "1", "-ar", str(fmt.sample_rate),
                         "-c:a", "libmp3lame", "-b:a", f"{fmt.bitrate_kbps}k", "-f", "mp3", "-y", str(out)],
                        duration_s=analysis.end_s - analysis.start_s, on_progress=on_progress)
    return ffmpeg.parse_ebur128(stderr)


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
                    loudness_before=round(analysis.loudness.input_i, 2), loudness_after=round(result.integrated, 2),
                    true_peak_after=round(result.true_peak if result.true_peak is not None else 0.0, 2),
                    trimmed_s=round(analysis.duration_s - (analysis.end_s - analysis.start_s), 3))
