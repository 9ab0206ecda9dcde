"""Keeping a part of a recording: `cut(source, out, start_s, end_s)` writes the part from `start_s` to `end_s`
of `source` as FLAC (lossless, so the ingest that follows measures and encodes what was recorded).

Used for a recording made in the staff UI's browser recorder and trimmed there: the browser sends the whole
compressed recording (WebM/Opus, about 0.5 MB a minute, where a WAV would be ten times that on a village's
mobile link) with the part to keep, and the server cuts it before the usual ingest. The input is nobody's
word, as in `audio.ingest`: read through `ffmpeg.safe_input` (the `file` protocol and the whitelisted
demuxers only), at most `end_s - start_s` of it decoded, under a wall-clock limit scaled to that length,
at a lower CPU priority. Every failure is an `IngestError` (the content service says it in the person's words).
"""

from __future__ import annotations

import math
from pathlib import Path

from . import ffmpeg
from .ffmpeg import FfmpegError, FfmpegTimeout
from .ingest import NICE, IngestError, Limits


def cut(source: Path, out: Path, start_s: float, end_s: float, limits: Limits | None = None,
        max_s: float = 3 * 3600.0) -> None:
    """Write `source` from `start_s` to `end_s` (seconds) to `out` as FLAC. The end may lie past the audio's
    end (a browser's clock and its encoder differ by a few milliseconds): the part then ends with the audio.
    At most `max_s` (the controller's longest audio) is kept and the time allowed is that of `max_s` at
    most, whatever end the browser says (1e7, inf): a slow upload must not hold an ingest slot for long."""
    if not (math.isfinite(start_s) and math.isfinite(end_s) and 0 <= start_s < end_s):
        raise IngestError(f"Nothing to keep between {start_s:.1f} s and {end_s:.1f} s.", code="audio_empty")
    length = min(end_s - start_s, max_s)
    limits = limits or Limits()
    try:
        ffmpeg.run([*ffmpeg.safe_input(), "-ss", f"{start_s:.3f}", "-t", f"{length:.3f}", "-i", str(source),
                    "-map", "0:a:0", "-vn", "-map_metadata", "-1", "-c:a", "flac", "-f", "flac", "-y", str(out)],
                   timeout=limits.for_audio(length), nice=NICE)
    except FfmpegTimeout as e:
        raise IngestError(f"Cutting this recording took too long ({e}); it may be damaged.",
                          code="audio_timeout") from e
    except FfmpegError as e:
        raise IngestError("The recording could not be decoded (the file may be damaged).") from e
