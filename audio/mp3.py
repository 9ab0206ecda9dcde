"""What an MP3 file is encoded as, read from its first audio frame header (no ffmpeg, no decoding): enough to
tell whether stored audio was made in today's format (speech made at 64 kbps before the speech format came
in is made again at the speech bitrate, not reused).

- `Mp3Format`: sample rate, bitrate and channel count of a CBR file.
- `parse_format(head)`: pure; the format of the first audio frame in `head` (the file's first few KiB), past
  an ID3v2 tag and the Xing/Info frame (ffmpeg's muxer writes one, whose bitrate is only what fits its data).
- `MPEG_BITRATES`: the bitrates (kbps) Layer III allows at each sample rate, for checking a configured format.
"""

from __future__ import annotations

from dataclasses import dataclass

_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by MPEG version id
_KBPS_V1 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_KBPS_V2 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)  # MPEG-2 and 2.5
MPEG_BITRATES: dict[int, tuple[int, ...]] = {
    **{rate: _KBPS_V1[1:] for rate in _RATES[3]}, **{rate: _KBPS_V2[1:] for rate in _RATES[2] + _RATES[0]}}


@dataclass(frozen=True)
class Mp3Format:
    sample_rate: int
    bitrate_kbps: int
    channels: int


def _id3_end(head: bytes) -> int:
    if head[:3] != b"ID3" or len(head) < 10:
        return 0
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]  # syncsafe
    return 10 + size + (10 if head[5] & 0x10 else 0)  # a footer, when flagged


def _frame(head: bytes, at: int) -> tuple[Mp3Format, int] | None:
    """The Layer III frame header at `at`: its format and the frame's length in bytes."""
    if at + 4 > len(head) or head[at] != 0xFF or head[at + 1] & 0xE0 != 0xE0:
        return None
    version, layer = (head[at + 1] >> 3) & 3, (head[at + 1] >> 1) & 3
    bitrate_index, rate_index = head[at + 2] >> 4, (head[at + 2] >> 2) & 3
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # reserved, not Layer III, free format or bad
    rate = _RATES[version][rate_index]
    kbps = (_KBPS_V1 if version == 3 else _KBPS_V2)[bitrate_index]
    padding = (head[at + 2] >> 1) & 1
    length = (144 if version == 3 else 72) * kbps * 1000 // rate + padding
    return Mp3Format(rate, kbps, 1 if head[at + 3] >> 6 == 3 else 2), length


def parse_format(head: bytes) -> Mp3Format | None:
    """The format of the first audio frame in `head` (the first 8 KiB of a file are plenty), or None when
    `head` does not start (past an ID3v2 tag) with a Layer III frame."""
    at = _id3_end(head)
    first = _frame(head, at)
    if first is None:
        return None
    fmt, length = first
    # The Xing/Info tag sits after the side information: 32 bytes (MPEG-1 stereo) at most past the header.
    if any(tag in head[at + 4:at + 4 + 40] for tag in (b"Xing", b"Info")):
        following = _frame(head, at + length)
        return following[0] if following else None
    return fmt
