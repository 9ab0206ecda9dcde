"""Speech from the first engine of an order that can speak it (`first_speech`): which voice speaks when.

Each `Candidate` (an engine, its voice, an optional deadline) is tried in turn. Speech already in the cache
for it is used at once; otherwise the engine synthesises. An engine that fails (`TtsUnavailable`, or any
error) gives way to the next. An engine with a deadline (Google; the neural voice for emergencies and CAP)
runs in a worker thread, and once the deadline passes it is abandoned: the caller goes on with the next
engine, and whatever the worker makes afterwards is thrown away — it never enters the cache (a late answer
is not trusted to be whole, and the cache must only hold what the chain itself accepted). At most
`MAX_WAITING` abandoned or running workers per engine: beyond that the engine is skipped at once (a hung
service must not pile up threads). Engines without a deadline run in the caller's thread. `use`, when
given, is tried on each engine's speech (laying it out, making broadcast audio of it): speech it cannot
use (`SpeechUnusable`: a damaged cached file) is deleted from the cache and the next engine reads. The
result says which engine spoke, with which voice, and why the ones before it did not.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from audio.tts import TtsEngine, TtsUnavailable, cache_path

log = logging.getLogger(__name__)

MAX_WAITING = 4  # an engine's workers at once (running, or abandoned and still waiting for it)
_slots: dict[str, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()

# How a note names each engine (English: notes go into the API's answers and the audit log).
LABELS = {"gtts": "Google TTS", "neural": "the neural voice", "offline": "the offline engine (eSpeak NG)",
          "recorded": "a pre-recorded warning"}


@dataclass(frozen=True)
class Candidate:
    engine: TtsEngine
    voice: str
    deadline_s: float | None = None  # None: no deadline (a local engine)


@dataclass(frozen=True)
class Skipped:
    engine: str
    reason: str
    unusable: bool = False  # it spoke, but its speech could not be used


@dataclass(frozen=True)
class Speech:
    path: Path  # in the cache
    engine: str
    voice: str
    skipped: tuple[Skipped, ...] = ()

    @property
    def note(self) -> str | None:
        return skipped_note(self.skipped, self.engine)


def skipped_note(skipped: Sequence[Skipped], spoke: str) -> str | None:
    """Why the engines before the one that spoke did not, in a sentence; None when none was skipped."""
    if not skipped:
        return None
    parts = [f"{LABELS.get(s.engine, s.engine)}'s speech could not be used ({s.reason})" if s.unusable else
             f"{LABELS.get(s.engine, s.engine)} could not "
             f"{'be reached' if s.engine == 'gtts' else 'be used'} ({s.reason})" for s in skipped]
    return "; ".join(parts) + f"; {LABELS.get(spoke, spoke)} read it instead."


class NoEngineSpoke(TtsUnavailable):
    """Every engine of the order failed."""

    def __init__(self, skipped: Sequence[Skipped]) -> None:
        self.skipped = tuple(skipped)
        super().__init__("no text-to-speech engine could read the text: "
                         + "; ".join(f"{s.engine}: {s.reason}" for s in skipped))


class SpeechUnusable(Exception):
    """Raised by `first_speech`'s `use`: this speech cannot be used (its cached file is damaged, say)."""


def _slot(engine: str) -> threading.BoundedSemaphore:
    with _slots_lock:
        return _slots.setdefault(engine, threading.BoundedSemaphore(MAX_WAITING))


class _Attempt:
    """One engine's synthesis in a worker thread, holding one of the engine's `MAX_WAITING` slots until it
    ends. Its outcome (`result` or `error`) and `abandoned` are only set under `lock`: the speech entering the
    cache and the caller giving up on it cannot cross."""

    def __init__(self, c: Candidate, text: str, final: Path, slot: threading.BoundedSemaphore) -> None:
        self.c, self.text, self.final, self.slot = c, text, final, slot
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.abandoned = False
        self.result: Path | None = None  # set with the move into the cache
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            _synthesize_into(self.c, self.text, self.final, self)
        except BaseException as e:  # handed to the waiting caller, or logged if it left
            with self.lock:
                self.error, late = e, self.abandoned
            if late:
                log.info("%s finished after its deadline, discarded: %s", self.c.engine.name, e)
        finally:
            self.slot.release()
            self.done.set()

    def wait(self, timeout: float) -> Path | None:
        """The speech, or None when the deadline passed (the attempt is then abandoned). Raises its error."""
        self.done.wait(timeout)
        with self.lock:
            if self.result is not None:
                return self.result
            if self.error is not None:
                raise self.error
            self.abandoned = True
            return None


def _synthesize_into(c: Candidate, text: str, final: Path, attempt: _Attempt | None = None) -> Path:
    """Synthesise into a private file, then move it into the cache as `final` — unless `attempt` was
    abandoned meanwhile; the move and `attempt.result` happen under its lock, so the caller's decision and
    this move cannot cross."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tts-", suffix=final.suffix)
    os.close(fd)
    try:
        c.engine.synthesize(text, c.voice, Path(tmp))
        if Path(tmp).stat().st_size == 0:
            raise TtsUnavailable(f"{c.engine.name} made no audio")
        if attempt is None:
            os.replace(tmp, final)
        else:
            with attempt.lock:
                if attempt.abandoned:
                    raise TtsUnavailable(f"{c.engine.name} answered after its deadline: discarded")
                os.replace(tmp, final)
                attempt.result = final
    finally:
        Path(tmp).unlink(missing_ok=True)
    return final


def _reason(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "…"


def sweep_temporaries(cache_dir: Path, older_than_s: float = 3600.0) -> int:
    """Remove the private files (`.tts-*`) that workers left in `cache_dir` (a process that died while an
    engine was speaking) and that are older than `older_than_s`; the number removed. At controller start."""
    removed, now = 0, time.time()
    for p in cache_dir.glob(".tts-*"):
        try:
            if now - p.stat().st_mtime > older_than_s:
                p.unlink()
                removed += 1
        except OSError:  # gone meanwhile (a worker finished), or not ours to remove
            continue
    return removed


def first_speech(candidates: Sequence[Candidate], text: str, cache_dir: Path,
                 use: Callable[[Speech], None] | None = None) -> Speech:
    """Speech of `text` from the first candidate that can make it and whose speech `use` (if given) accepts
    (see the module's docstring). Raises `NoEngineSpoke` (a `TtsUnavailable`) when none could."""
    skipped: list[Skipped] = []
    for c in candidates:
        name = c.engine.name
        final = cache_path(c.engine, c.voice, text, cache_dir)
        if not (final.exists() and final.stat().st_size > 0) and not _made(c, text, final, skipped):
            continue
        speech = Speech(final, name, c.voice, tuple(skipped))
        if use is not None:
            try:
                use(speech)
            except SpeechUnusable as e:
                log.warning("%s's speech in %s could not be used, removed: %s", name, final.name, e)
                final.unlink(missing_ok=True)
                skipped.append(Skipped(name, _reason(e), unusable=True))
                continue
        return speech
    raise NoEngineSpoke(skipped)


def _made(c: Candidate, text: str, final: Path, skipped: list[Skipped]) -> bool:
    """`c` synthesises `text` into `final`; False (and why, added to `skipped`) when it did not."""
    name = c.engine.name
    try:
        if c.deadline_s is None:
            _synthesize_into(c, text, final)
        else:
            slot = _slot(name)
            if not slot.acquire(blocking=False):
                log.warning("%s: %d earlier requests still waiting for it: the next engine reads", name, MAX_WAITING)
                skipped.append(Skipped(name, "earlier requests to it are still waiting"))
                return False
            attempt = _Attempt(c, text, final, slot)
            try:
                threading.Thread(target=attempt.run, name=f"tts-{name}", daemon=True).start()
            except BaseException:
                slot.release()
                raise
            if attempt.wait(c.deadline_s) is None:
                log.warning("%s gave no speech within %g s: the next engine reads it", name, c.deadline_s)
                skipped.append(Skipped(name, f"no answer within {c.deadline_s:g} s"))
                return False
    except TtsUnavailable as e:
        log.info("%s unavailable: %s", name, e)
        skipped.append(Skipped(name, _reason(e)))
        return False
    except Exception as e:  # an engine's own failure must not silence the text: the next one reads it
        log.exception("%s failed; the next engine reads the text", name)
        skipped.append(Skipped(name, _reason(e)))
        return False
    return True
