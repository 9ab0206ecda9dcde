"""Test audio, generated on the spot from tones, noise and speech-like modulation (nothing downloaded)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg

# The wheel's ffmpeg can also *encode* AMR (Debian's can only decode it), so samples come from it.
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()

FORMATS: dict[str, list[str]] = {
    "wav": ["-c:a", "pcm_s16le"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
    "ogg": ["-c:a", "libopus", "-b:a", "48k"],
    "m4a": ["-c:a", "aac", "-b:a", "96k"],
    "flac": ["-c:a", "flac"],
    "amr": ["-c:a", "libopencore_amrnb", "-ar", "8000", "-ac", "1", "-b:a", "12.2k"],
    "3gp": ["-c:a", "libopencore_amrnb", "-ar", "8000", "-ac", "1", "-b:a", "12.2k"],
}

# A voice-like signal: a 150 Hz buzz with harmonics, amplitude-modulated at syllable rate, in pauses.
SPEECHLIKE = ("aevalsrc='(0.5*sin(2*PI*150*t)+0.3*sin(2*PI*300*t)+0.2*sin(2*PI*450*t)+0.1*sin(2*PI*1200*t))"
              "*(0.55+0.45*sin(2*PI*3.5*t))*gt(mod(t,2.2),0.35)':s=22050:d={d}")


def make(path: Path, *, seconds: float = 6.0, gain_db: float = -20.0, source: str = "speech",
         lead_silence_s: float = 0.0, tail_silence_s: float = 0.0) -> Path:
    ext = path.suffix.lstrip(".")
    src = SPEECHLIKE.format(d=seconds) if source == "speech" else f"sine=frequency=440:duration={seconds}"
    filters = [f"volume={gain_db}dB"]
    if lead_silence_s:
        filters.append(f"adelay={int(lead_silence_s * 1000)}:all=1")
    if tail_silence_s:
        filters.append(f"apad=pad_dur={tail_silence_s}")
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-f", "lavfi", "-i", src, "-af", ",".join(filters),
                    *FORMATS.get(ext, []), str(path)], check=True)
    return path


def integrated_lufs(path: Path) -> tuple[float, float]:
    """Integrated loudness and true peak, measured independently with ffmpeg's ebur128 scanner."""
    out = subprocess.run([FFMPEG, "-nostats", "-i", str(path), "-af", "ebur128=peak=true", "-f", "null", "-"],
                         capture_output=True, text=True).stderr
    summary = out[out.rfind("Summary:"):]
    i = float(summary.split("I:")[1].split()[0])
    peak = float(summary.split("Peak:")[1].split()[0])
    return i, peak


def probe_line(path: Path) -> str:
    out = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return next(line for line in out.splitlines() if "Audio:" in line)
