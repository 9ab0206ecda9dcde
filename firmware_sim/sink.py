"""`RecordingSink`: the simulated loudspeaker. It decodes what it is given with ffmpeg (as ALSA would get
it), "plays" it in real time, and records exactly what came out: the SHA-256 of the PCM it played (all of
it, or up to where it was cut), start and stop times, volume and whether the amplifier was on. Tests
compare that hash with the decoded source.

Decoding takes an ffmpeg process and tens of milliseconds, which a real sound card does not add to a
start, so `prepare` decodes ahead and `play` then starts at once. Decoded audio is kept in `PCM_CACHE`,
one per process and shared by every simulated receiver in it (a fleet plays the same bulletin on all
of them), bounded in bytes and keyed by the SHA-256 of the bytes each receiver's file holds when it is
played — never by its name — so a receiver whose copy differs (damaged, truncated, wrongly named) decodes
and hashes its own copy, and "every receiver played bit-identical audio" compares what each one played.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import subprocess
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


async def decode_pcm(path: Path) -> bytes:
    """The file decoded by ffmpeg, in a worker thread: a decoding shared by a fleet outlives the receiver that
    started it, and maybe its event loop (a test's), which would leave an asyncio subprocess's pipes open."""
    done = await asyncio.to_thread(subprocess.run, [
        ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", str(RATE),
        "-"], capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"cannot decode {path}: {done.stderr.decode(errors='replace')[-200:]}")
    return done.stdout


def file_sha256(path: Path) -> str:
    """SHA-256 of the bytes in `path` now (a receiver's copy, whatever its name says)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class PcmCache:
    """Decoded audio by the SHA-256 of the file's bytes, least recently used out first once over `budget`
    bytes. Several receivers asking for the same bytes at once share one decoding; equal bytes decode to
    equal audio, so sharing never hides a receiver's own copy."""

    def __init__(self, budget: int = PCM_CACHE_BYTES) -> None:
        self.budget = budget
        self._pcm: OrderedDict[str, bytes] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()  # fleets in several threads (tests) share the process's cache
        self._decoding: dict[str, asyncio.Task[bytes]] = {}
        self._keys: dict[tuple[int, int, int, int], str] = {}  # file version → content key (`content_key`)
        self._digests: dict[str, str] = {}  # PCM digests of whole files: a fleet finishing together hashes once

    def get(self, key: str) -> bytes | None:
        with self._lock:
            pcm = self._pcm.get(key)
            if pcm is not None:
                self._pcm.move_to_end(key)
            return pcm

    async def load(self, path: Path) -> tuple[str, bytes]:
        """The content key of `path` (SHA-256 of its bytes, read now) and its decoded audio, from the cache
        or decoded now (and kept)."""
        key = self.content_key(path)
        pcm = self.get(key)
        if pcm is not None:
            return key, pcm
        loop = asyncio.get_running_loop()
        task = self._decoding.get(key)
        if task is None or task.get_loop() is not loop:
            task = loop.create_task(decode_pcm(path))
            self._decoding[key] = task
            task.add_done_callback(lambda t: self._decoded(key, t))
        # One receiver giving up (its item stopped) must not cancel the decoding others wait for.
        return key, await asyncio.shield(task)

    def content_key(self, path: Path) -> str:
        """SHA-256 of the bytes in `path` now; remembered per file version (device, inode, size, modification
        time in ns), so a fleet playing the same file hashes it once, and a copy changed in any way (a write
        sets the modification time) is hashed again."""
        st = path.stat()
        version = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            known = self._keys.get(version)
        if known is not None:
            return known
        key = file_sha256(path)
        with self._lock:
            if len(self._keys) > 100_000:
                self._keys.clear()
            self._keys[version] = key
        return key

    def digest(self, key: str, pcm: bytes, start: int, end: int) -> str:
        """SHA-256 of `pcm[start:end]`, the audio decoded from the file whose content key is `key`."""
        whole = start == 0 and end == len(pcm)
        if whole and (known := self._digests.get(key)) is not None:
            return known
        digest = hashlib.sha256(pcm[start:end]).hexdigest()
        if whole:
            with self._lock:
                if len(self._digests) > 10_000:
                    self._digests.clear()
                self._digests[key] = digest
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
        key, pcm = await self.cache.load(path)
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
            record.pcm_sha256 = self.cache.digest(key, pcm, start, end)
            self.played.append(record)
            if self.log_path is not None:
                with self.log_path.open("a") as f:
                    f.write(json.dumps(dataclasses.asdict(record)) + "\n")
