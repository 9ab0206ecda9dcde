"""Short pieces assembled with pydub: the attention chime (synthesised, never downloaded) and an
announcement's layout — chime, speech, gap, speech again…, chime.

Works on WAV in memory, which is fine for what it is for (announcements of seconds to a few minutes);
long recordings never come here, they go through `audio.ingest`, which streams.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from audio.ffmpeg import FfmpegError, ffmpeg_exe

# pydub looks for `ffmpeg` on PATH while its module is imported and warns when there is none (a fresh
# machine whose only ffmpeg is the imageio-ffmpeg wheel's). We use only its WAV paths, which need no
# ffmpeg, so the probe's verdict does not matter: silence that one warning and hand pydub the ffmpeg we use.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Couldn't find ffmpeg or avconv", RuntimeWarning)
    from pydub import AudioSegment
    from pydub.generators import Sine
try:
    AudioSegment.converter = ffmpeg_exe()
except FfmpegError:
    pass  # no ffmpeg at all: WAV in and out still works

RATE = 22050


def chime(rate: int = RATE) -> AudioSegment:
    """A three-note descending attention chime (E6, C6, G5) with soft attack and long decay, ~1.6 s."""
    notes = [(1318.5, 0), (1046.5, 380), (784.0, 760)]
    out = AudioSegment.silent(duration=1650, frame_rate=rate)
    for freq, at in notes:
        tone = (Sine(freq, sample_rate=rate).to_audio_segment(duration=850, volume=-14)
                .overlay(Sine(freq * 2, sample_rate=rate).to_audio_segment(duration=850, volume=-28))
                .fade_in(15).fade_out(700))
        out = out.overlay(tone, position=at)
    return out.set_channels(1)


def layout(speech: AudioSegment, *, chime_before: bool, chime_after: bool, repeat: int, gap_s: float,
           rate: int = RATE) -> AudioSegment:
    """The announcement as broadcast: [chime, pause] speech ([gap] speech)… [pause, chime]."""
    speech = speech.set_frame_rate(rate).set_channels(1)
    pause = AudioSegment.silent(duration=400, frame_rate=rate)
    gap = AudioSegment.silent(duration=int(gap_s * 1000), frame_rate=rate)
    body = speech
    for _ in range(repeat - 1):
        body = body + gap + speech
    if chime_before:
        body = chime(rate) + pause + body
    if chime_after:
        body = body + pause + chime(rate)
    return body


def compose_file(speech_wav: Path, out_wav: Path, **options: object) -> None:
    with speech_wav.open("rb") as f:
        speech = AudioSegment.from_wav(f)
    with out_wav.open("wb") as f:
        layout(speech, **options).export(f, format="wav")  # type: ignore[arg-type]
