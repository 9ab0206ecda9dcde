"""Speech from the first engine of an order that can speak it (`first_speech`): which voice speaks when.

Each `Candidate` (an engine, its voice, an optional deadline) is tried in turn. Speech already in the cache
for it is used at once; otherwise the engine synthesises. An engine that fails (`TtsUnavailable`, or any
error) gives way to the next. An engine with a deadline (the online one) runs in a worker thread, and once
the deadline passes it is abandoned: the caller goes on with the next engine, and whatever the worker
makes afterwards is thrown away — it never enters the cache (a late answer is not trusted to be whole, and
the cache must only hold what the chain itself accepted). Engines without a deadline run in the caller's
thread. The result says which engine spoke, with which voice, and why the ones before it did not.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from audio.tts import TtsEngine, TtsUnavailable, cache_path

log = logging.getLogger(__name__)

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
    parts = [f"{LABELS.get(s.engine, s.engine)} could not "
             f"{'be reached' if s.engine == 'gtts' else 'be used'} ({s.reason})" for s in skipped]
    return "; ".join(parts) + f"; {LABELS.get(spoke, spoke)} read it instead."


class NoEngineSpoke(TtsUnavailable):
    """Every engine of the order failed."""

    def __init__(self, skipped: Sequence[Skipped]) -> None:
        self.skipped = tuple(skipped)
        super().__init__("no text-to-speech engine could read the text: "
                         + "; ".join(f"{s.engine}: {s.reason}" for s in skipped))


class _Attempt:
    """One engine's synthesis in a worker thread; `abandon` makes a late result be discarded."""

    def __init__(self, c: Candidate, text: str, final: Path) -> None:
        self.c, self.text, self.final = c, text, final
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.abandoned = False
        self.result: Path | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = _synthesize_into(self.c, self.text, self.final, self)
        except BaseException as e:  # handed to the waiting caller, or logged if it left
            self.error = e
            if self.abandoned:
                log.info("%s finished after its deadline, discarded: %s", self.c.engine.name, e)
        finally:
            self.done.set()

    def wait(self, timeout: float) -> Path | None:
        """The speech, or None when the deadline passed (the attempt is then abandoned). Raises its error."""
        self.done.wait(timeout)
        with self.lock:
            if self.result is None and self.error is None:
                self.abandoned = True
                return None
        self.done.wait()  # it has finished (or is just returning): its outcome is set
        if self.error is not None:
            raise self.error
        return self.result


def _synthesize_into(c: Candidate, text: str, final: Path, attempt: _Attempt | None = None) -> Path:
    """Synthesise into a private file, then move it into the cache as `final` — unless `attempt` was
    abandoned meanwhile (checked under its lock, so the caller's decision and this move cannot cross)."""
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
    finally:
        Path(tmp).unlink(missing_ok=True)
    return final


def _reason(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "…"


def first_speech(candidates: Sequence[Candidate], text: str, cache_dir: Path) -> Speech:
    """Speech of `text` from the first candidate that can make it (see the module's docstring). Raises
    `NoEngineSpoke` (a `TtsUnavailable`) when none could."""
    skipped: list[Skipped] = []
    for c in candidates:
        name = c.engine.name
        final = cache_path(c.engine, c.voice, text, cache_dir)
        if final.exists() and final.stat().st_size > 0:
            return Speech(final, name, c.voice, tuple(skipped))
        try:
            if c.deadline_s is None:
                _synthesize_into(c, text, final)
            else:
                attempt = _Attempt(c, text, final)
                threading.Thread(target=attempt.run, name=f"tts-{name}", daemon=True).start()
                if attempt.wait(c.deadline_s) is None:
                    log.warning("%s gave no speech within %g s: the next engine reads it", name, c.deadline_s)
                    skipped.append(Skipped(name, f"no answer within {c.deadline_s:g} s"))
                    continue
        except TtsUnavailable as e:
            log.info("%s unavailable: %s", name, e)
            skipped.append(Skipped(name, _reason(e)))
            continue
        except Exception as e:  # an engine's own failure must not silence the text: the next one reads it
            log.exception("%s failed; the next engine reads the text", name)
            skipped.append(Skipped(name, _reason(e)))
            continue
        return Speech(final, name, c.voice, tuple(skipped))
    raise NoEngineSpoke(skipped)
