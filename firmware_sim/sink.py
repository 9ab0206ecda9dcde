"""`RecordingSink`: the simulated loudspeaker. It decodes what it is given with ffmpeg (as ALSA would get
it), "plays" it in real time, and records exactly what came out: the SHA-256 of the PCM it played (all of
it, or up to where it was cut), start and stop times, volume and whether the amplifier was on. Tests
compare that hash with the decoded source.

Decoding takes an ffmpeg process and tens of milliseconds, which a real sound card does not add to a
start, so `prepare` decodes ahead and `play` then starts at once. Decoded audio is kept in `PCM_CACHE`,
one per process and shared by every simulated receiver in it (a fleet plays the same bulletin on all
of them), keyed by the file's name — in the agent's cache, its SHA-256 — and bounded in bytes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from audio.ffmpeg import ffmpeg_exe
from receivers.agent.hardware import Hardware

RATE = 44100  # decoded as mono s16le at the broadcast rate
PCM_CACHE_BYTES = 64 * 1024 * 1024
_CONTENT_NAME = re.compile(r"^[0-9a-f]{64}$")  # a file named by its content: the same name, the same audio


async def decode_pcm(path: Path) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", str(RATE),
        "-", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"cannot decode {path}: {err.decode(errors='replace')[-200:]}")
    return out


class PcmCache:
    """Decoded audio by file name, least recently used out first once over `budget` bytes. Only files named
    by their content are kept (anything else, e.g. the self-test's tone, is decoded each time). Several
    receivers asking for the same file at once share one decoding."""

    def __init__(self, budget: int = PCM_CACHE_BYTES) -> None:
        self.budget = budget
        self._pcm: OrderedDict[str, bytes] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()  # fleets in several threads (tests) share the process's cache
        self._decoding: dict[str, asyncio.Task[bytes]] = {}
        self._digests: dict[str, str] = {}  # of whole files: a fleet finishing together hashes each once

    def get(self, path: Path) -> bytes | None:
        with self._lock:
            pcm = self._pcm.get(path.stem)
            if pcm is not None:
                self._pcm.move_to_end(path.stem)
            return pcm

    async def load(self, path: Path) -> bytes:
        """The decoded audio of `path`, from the cache or decoded now (and kept, if it is cacheable)."""
        pcm = self.get(path)
        if pcm is not None:
            return pcm
        key = path.stem
        if not _CONTENT_NAME.match(key):
            return await decode_pcm(path)
        loop = asyncio.get_running_loop()
        task = self._decoding.get(key)
        if task is None or task.get_loop() is not loop:
            task = loop.create_task(decode_pcm(path))
            self._decoding[key] = task
            task.add_done_callback(lambda t: self._decoded(key, t))
        # One receiver giving up (its item stopped) must not cancel the decoding others wait for.
        return await asyncio.shield(task)

    def digest(self, path: Path, pcm: bytes, start: int, end: int) -> str:
        """SHA-256 of `pcm[start:end]`."""
        whole = start == 0 and end == len(pcm) and _CONTENT_NAME.match(path.stem)
        if whole and (known := self._digests.get(path.stem)) is not None:
            return known
        digest = hashlib.sha256(pcm[start:end]).hexdigest()
        if whole:
            with self._lock:
                if len(self._digests) > 10_000:
                    self._digests.clear()
                self._digests[path.stem] = digest
        return digest

    def _decoded(self, key: str, task: asyncio.Task[bytes]) -> None:
        if self._decoding.get(key) is task:
            del self._decoding[key]
        if task.cancelled() or task.exception() is not None:
            return
        pcm = task.result()
        if len(pcm) > self.budget:
            return
        with self._lock:
            if key in self._pcm:
                return
            self._pcm[key] = pcm
            self._used += len(pcm)
            while self._used > self.budget:
                _, old = self._pcm.popitem(last=False)
                self._used -= len(old)

    def clear(self) -> None:
        with self._lock:
            self._pcm.clear()
            self._used = 0


PCM_CACHE = PcmCache()


@dataclass
class Played:
    item_id: str
    pcm_sha256: str
    from_s: float
    to_s: float
    completed: bool
    volume: int
    amplifier_on: bool
    started: float = field(default_factory=time.time)  # wall clock, when the sound began
    stopped: float = 0.0


class RecordingSink:
    def __init__(self, hardware: Hardware, *, speed: float = 1.0, log_path: Path | None = None,
                 cache: PcmCache = PCM_CACHE) -> None:
        self.hardware = hardware
        self.speed = speed  # > 1 plays faster than real time (benchmarks); tests keep 1
        self.played: list[Played] = []
        self.log_path = log_path  # JSON lines, for a simulated receiver running in its own process
        self.cache = cache

    async def prepare(self, path: Path) -> None:
        await self.cache.load(path)

    async def play(self, path: Path, *, item_id: str, volume: int, offset_s: float,
                   on_start: Callable[[], None] | None = None) -> None:
        pcm = await self.cache.load(path)
        start = min(len(pcm), int(offset_s * RATE) * 2)
        duration = (len(pcm) - start) / 2 / RATE
        record = Played(item_id, "", start / 2 / RATE, 0.0, False, volume, self.hardware.amplifier_on())
        t0 = time.monotonic()
        record.started = time.time()
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
            record.pcm_sha256 = self.cache.digest(path, pcm, start, end)
            self.played.append(record)
            if self.log_path is not None:
                with self.log_path.open("a") as f:
                    f.write(json.dumps(dataclasses.asdict(record)) + "\n")
