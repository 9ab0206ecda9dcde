"""`RecordingSink`: the simulated loudspeaker. It decodes what it is given with ffmpeg (as ALSA would get
it), "plays" it in real time, and records exactly what came out: the SHA-256 of the PCM it played (all of
it, or up to where it was cut), start and stop times, volume and whether the amplifier was on. Tests
compare that hash with the decoded source."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from audio.ffmpeg import ffmpeg_exe
from receivers.agent.hardware import Hardware

RATE = 44100  # decoded as mono s16le at the broadcast rate


async def decode_pcm(path: Path) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", str(RATE),
        "-", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"cannot decode {path}: {err.decode(errors='replace')[-200:]}")
    return out


@dataclass
class Played:
    item_id: str
    pcm_sha256: str
    from_s: float
    to_s: float
    completed: bool
    volume: int
    amplifier_on: bool
    started: float = field(default_factory=time.time)  # wall clock
    stopped: float = 0.0


class RecordingSink:
    def __init__(self, hardware: Hardware, *, speed: float = 1.0, log_path: Path | None = None) -> None:
        self.hardware = hardware
        self.speed = speed  # > 1 plays faster than real time (benchmarks); tests keep 1
        self.played: list[Played] = []
        self.log_path = log_path  # JSON lines, for a simulated receiver running in its own process

    async def play(self, path: Path, *, item_id: str, volume: int, offset_s: float,
                   on_start: Callable[[], None] | None = None) -> None:
        pcm = await decode_pcm(path)
        start = min(len(pcm), int(offset_s * RATE) * 2)
        duration = (len(pcm) - start) / 2 / RATE
        record = Played(item_id, "", start / 2 / RATE, 0.0, False, volume, self.hardware.amplifier_on())
        t0 = time.monotonic()
        if on_start:
            on_start()
        try:
            await asyncio.sleep(duration / self.speed)
            end = len(pcm)
            record.completed = True
        except asyncio.CancelledError:
            end = min(len(pcm), start + int((time.monotonic() - t0) * self.speed * RATE) * 2)
            raise
        finally:
            record.to_s, record.stopped = end / 2 / RATE, time.time()
            record.pcm_sha256 = hashlib.sha256(pcm[start:end]).hexdigest()
            self.played.append(record)
            if self.log_path is not None:
                with self.log_path.open("a") as f:
                    f.write(json.dumps(dataclasses.asdict(record)) + "\n")
