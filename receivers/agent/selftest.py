"""`self-test`: a short quiet tone through the real output path, with the amplifier checked on the way.

- `check_output(hardware, sink)`: the test itself, on any `Hardware` and `AudioSink`; None when it passed,
  else what failed. `truyenthanh-agent self-test` runs it on the Pi's own hardware.
- `self_test(agent)`: the `self-test` command's handler: refused while the agent plays, else `check_output`;
  the result goes back in the ack: `applied`, or `rejected` with what failed.
"""

from __future__ import annotations

import asyncio
import math
import struct
import tempfile
import wave
from pathlib import Path
from typing import TYPE_CHECKING

from .sink import AudioSink, SinkError

if TYPE_CHECKING:
    from .agent import Agent
    from .hardware import Hardware

TONE_HZ, TONE_S, RATE, LEVEL = 1000.0, 1.0, 22050, 0.05  # quiet: about -26 dBFS


def write_tone(path: Path) -> None:
    frames = b"".join(struct.pack("<h", int(32767 * LEVEL * math.sin(2 * math.pi * TONE_HZ * n / RATE)))
                      for n in range(int(RATE * TONE_S)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(frames)


async def self_test(agent: Agent) -> str | None:
    if agent.player.current is not None:
        return f"busy playing {agent.player.current.cmd.item_id}; try again when idle"
    return await check_output(agent.hardware, agent.sink)


async def check_output(hw: Hardware, sink: AudioSink) -> str | None:
    was_on = hw.amplifier_on()
    hw.set_amplifier(True)
    if not hw.amplifier_on():
        return "amplifier relay did not switch on"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tone = Path(tmp) / "tone.wav"
            await asyncio.to_thread(write_tone, tone)
            await sink.play(tone, item_id="self-test", volume=hw.volume(), offset_s=0.0)
    except (SinkError, OSError) as e:
        return f"audio output failed: {e}"
    finally:
        hw.set_amplifier(was_on)
    return None
