"""Audio output behind one interface, `AudioSink`: `AlsaSink` on the Raspberry Pi (ffmpeg decoding to an
ALSA device — a standard player process, no hand-written decoder); the simulator's recording sink is
`firmware_sim.sink.RecordingSink`. On the Pi, ffmpeg is the system's (`find_ffmpeg`); the agent never
imports `audio`, whose dependencies it does not install.

`prepare` is called once an item's audio is on disk, ahead of its start, for slow work the start must not
wait for. `play` returns when the audio has been played to the end; cancelling the task stops the sound at
once. The caller keeps time, so it knows the position at which an item was cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Protocol


class SinkError(RuntimeError):
    """The audio output failed; the message says why."""


def find_ffmpeg() -> str:
    """The system's ffmpeg, or SinkError saying how to install it."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise SinkError("ffmpeg not found on PATH: install it with `sudo apt-get install ffmpeg`")
    return exe


class AudioSink(Protocol):
    async def prepare(self, path: Path) -> None:
        """Get ready to play `path` (its name is its SHA-256) without delay; may be a no-op."""

    async def play(self, path: Path, *, item_id: str, volume: int, offset_s: float,
                   on_start: Callable[[], None] | None = None) -> None:
        """Play from `offset_s` to the end; call `on_start` the moment sound begins (positions are counted
        from there)."""


class AlsaSink:
    def __init__(self, device: str = "default") -> None:
        self.device = device

    async def prepare(self, path: Path) -> None:
        pass  # ffmpeg starts in a few milliseconds and streams: nothing worth doing ahead

    async def play(self, path: Path, *, item_id: str, volume: int, offset_s: float,
                   on_start: Callable[[], None] | None = None) -> None:
        proc = await asyncio.create_subprocess_exec(
            find_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-ss", f"{offset_s:.3f}", "-i", str(path),
            "-f", "alsa", self.device, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        if on_start:
            on_start()
        try:
            _, err = await proc.communicate()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            raise SinkError(f"audio output failed: {err.decode(errors='replace').strip()[-200:]}")
