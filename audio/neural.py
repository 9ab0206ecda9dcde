"""A neural voice that the operator installs once: a Piper (VITS) voice run by ONNX Runtime (issue 13).

- `NeuralEngine(model_dir)` — the `TtsEngine` named "neural". Its voices are the Piper voices installed in
  `model_dir` (`<name>.onnx` with `<name>.onnx.json` beside it, as rhasspy/piper-voices publishes them; the
  first in name order is the default). It loads a voice on first use, once per file, shared by every
  engine object and thread; constructing one only lists the directory. `status()` says, without loading
  anything, whether a voice is installed and which.
- `install_voice(model, config, model_dir)` — check that a voice loads and speaks, then copy it in atomically
  (`truyenthanh install-voice`).

How it speaks, as Piper does: the text is cut into sentences and clauses at punctuation (a line break ends a
clause too, read as a comma: a pasted list has no full stops), each clause turned
into IPA phonemes by eSpeak NG (the same library as the offline engine, `audio.tts.EspeakEngine`, with the
voice's `espeak.voice`), the clause's punctuation put back, every phoneme (a Unicode code point after NFD)
mapped to ids through the voice's `phoneme_id_map` with the pad id between them, and the model run on each
sentence; sentences are joined with a short pause. The model's memory grows with what it reads at once, so
no run gets more than `MAX_IDS` ids: a longer sentence is read clause by clause, a longer clause in halves
cut between words. ONNX Runtime (MIT) runs the model, not `piper-tts`
(GPL-3.0) nor sherpa-onnx, which would need each voice converted (metadata and tokens.txt) first.

Nothing is downloaded: when no voice is installed, or ONNX Runtime or eSpeak NG's library is missing, or
a voice file is damaged, `synthesize` raises `TtsUnavailable` saying what is missing, where it looked and
how to install it, and the caller falls back to the offline engine. A voice that failed to load is not tried
again for `RETRY_FAILED_S` unless its files change: every emergency meanwhile gets the error at once.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import unicodedata
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audio.tts import EspeakEngine, TtsUnavailable

log = logging.getLogger(__name__)

HOW_TO_INSTALL = ("install a Piper voice (for Vietnamese e.g. vi_VN-vais1000-medium.onnx and its .onnx.json from "
                  "rhasspy/piper-voices) with `truyenthanh install-voice VOICE.onnx`")

# Piper's special symbols in `phoneme_id_map`.
PAD, BOS, EOS = "_", "^", "$"
CLAUSE_END = ".,;:!?"
MAX_IDS = 400  # the most phoneme ids one model run reads (≈ 8 s of speech; memory grows with it)
SENTENCE_END = ".!?"
RETRY_FAILED_S = 60.0  # a voice that failed to load is not loaded again before this, unless its files change


@dataclass(frozen=True)
class VoiceFiles:
    name: str
    model: Path
    config: Path


def installed_voices(model_dir: Path) -> list[VoiceFiles]:
    """The Piper voices in `model_dir`, by name: each `<name>.onnx` that has its `<name>.onnx.json`."""
    try:
        models = sorted(p for p in model_dir.glob("*.onnx") if p.is_file())
    except OSError:
        return []
    return [VoiceFiles(m.stem, m, m.with_name(m.name + ".json")) for m in models
            if m.with_name(m.name + ".json").is_file()]


@dataclass
class _Voice:
    """A loaded voice: its ONNX session and what its .onnx.json says."""

    session: Any  # onnxruntime.InferenceSession
    input_names: frozenset[str]
    id_map: dict[str, list[int]]
    phoneme_map: dict[str, list[str]]
    phoneme_type: str
    espeak_voice: str
    sample_rate: int
    noise_scale: float
    length_scale: float
    noise_w: float
    num_speakers: int


# (model path, model size, model mtime, config size, config mtime): one file version of a voice
_Version = tuple[Path, int, int, int, int]
_cache: dict[_Version, _Voice] = {}
_failed: dict[_Version, tuple[float, str]] = {}  # a version that did not load: when, and why
_cache_lock = threading.Lock()


def _threads() -> int:
    """ONNX Runtime threads for one synthesis: both cores of a small controller, not more (TT_NEURAL_THREADS)."""
    return int(os.environ.get("TT_NEURAL_THREADS") or min(2, os.cpu_count() or 1))


def _version(files: VoiceFiles) -> _Version:
    """Which version of the voice's files is installed (both files: either may be replaced alone)."""
    try:
        model, config = files.model.stat(), files.config.stat()
    except OSError as e:
        raise TtsUnavailable(f"neural voice {e.filename} cannot be read: {e.strerror}") from None
    return files.model.resolve(), model.st_size, model.st_mtime_ns, config.st_size, config.st_mtime_ns


def _load(files: VoiceFiles) -> _Voice:
    """The voice in `files`, loaded once per file version for the whole process; a newer version of the same
    path takes the older one's place (its memory is freed once no synthesis uses it). A version that failed
    to load raises the same error at once for `RETRY_FAILED_S`."""
    key = _version(files)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        now = time.monotonic()
        for old in [k for k, (when, _) in _failed.items() if now - when >= RETRY_FAILED_S]:
            del _failed[old]
        if key in _failed:
            raise TtsUnavailable(_failed[key][1])
        for old in [k for k in _cache if k[0] == key[0]]:
            del _cache[old]
        try:
            _cache[key] = _open(files)
        except TtsUnavailable as e:
            _failed[key] = (now, str(e))
            raise
        return _cache[key]


def _open(files: VoiceFiles) -> _Voice:
    try:
        import onnxruntime
    except ImportError:
        raise TtsUnavailable("the neural voice needs ONNX Runtime, which is not installed: "
                             "pip install onnxruntime") from None
    try:
        config = json.loads(files.config.read_text(encoding="utf-8"))
        id_map = {str(k): [int(i) for i in v] for k, v in config["phoneme_id_map"].items()}
        voice = _Voice(
            session=None, input_names=frozenset(), id_map=id_map,
            phoneme_map={str(k): list(v) for k, v in (config.get("phoneme_map") or {}).items()},
            phoneme_type=str(config.get("phoneme_type", "espeak")),
            espeak_voice=str((config.get("espeak") or {}).get("voice", "")),
            sample_rate=int(config["audio"]["sample_rate"]),
            noise_scale=float((config.get("inference") or {}).get("noise_scale", 0.667)),
            length_scale=float((config.get("inference") or {}).get("length_scale", 1.0)),
            noise_w=float((config.get("inference") or {}).get("noise_w", 0.8)),
            num_speakers=int(config.get("num_speakers", 1)))
        if PAD not in id_map or voice.phoneme_type not in ("espeak", "text") or not 8000 <= voice.sample_rate <= 48000:
            raise ValueError("not a Piper voice configuration (phoneme_id_map, phoneme_type, audio.sample_rate)")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise TtsUnavailable(f"neural voice configuration {files.config} is not usable: {e}") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = _threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    try:
        session = onnxruntime.InferenceSession(str(files.model), sess_options=options,
                                               providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for damaged or foreign files
        raise TtsUnavailable(f"neural voice model {files.model} could not be loaded (damaged or not a Piper "
                             f"voice): {str(e).strip()[:300]}; install it again") from None
    voice.session = session
    voice.input_names = frozenset(i.name for i in session.get_inputs())
    if not {"input", "input_lengths", "scales"} <= voice.input_names:
        raise TtsUnavailable(f"neural voice model {files.model} is not a Piper voice "
                             f"(its inputs are {', '.join(sorted(voice.input_names))})")
    return voice


# ------------------------------------------------------------------------------------------- phonemes


def _espeak_phonemes(clauses: list[str], espeak_voice: str) -> list[str]:
    """IPA phonemes of each clause, by eSpeak NG's library (serialised with the offline engine's calls)."""
    with EspeakEngine._lock:
        lib = EspeakEngine._library()
        if lib is None:
            raise TtsUnavailable("the neural voice needs eSpeak NG's library for its phonemes: "
                                 "pip install espeakng-loader")
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        if lib.espeak_SetVoiceByName(espeak_voice.encode()) != 0:
            raise TtsUnavailable(f"eSpeak NG has no voice {espeak_voice!r}, which this neural voice needs")
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        out = []
        for clause in clauses:
            buf = ctypes.create_string_buffer(clause.encode("utf-8"))
            pointer = ctypes.c_void_p(ctypes.addressof(buf))
            parts: list[str] = []
            while pointer.value:
                # espeakCHARS_UTF8 = 1; phoneme mode 2 = IPA
                result = lib.espeak_TextToPhonemes(ctypes.byref(pointer), 1, 2)
                if result:
                    parts.append(result.decode("utf-8", "replace"))
            # eSpeak marks a switch of language as "(en)"; Piper's voices were trained without the marks.
            out.append(re.sub(r"\([^)]*\)", "", " ".join(parts)).strip())
        return out


def sentences(text: str) -> list[list[tuple[str, str]]]:
    """`text` as sentences of (clause, its punctuation) — punctuation only where a space or the end follows,
    so "3,5" stays one clause. A line break ends a clause: one without punctuation is read as with a comma."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line if line[-1] in CLAUSE_END else line + "," for line in lines if line]
    if lines and text.rstrip()[-1] not in CLAUSE_END:
        lines[-1] = lines[-1][:-1]  # the text's own end has no punctuation added
    result: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for piece in re.split(r"(?<=[.,;:!?])\s+", " ".join(lines)):
        stripped = piece.rstrip(CLAUSE_END)
        punctuation = piece[len(stripped):][:1]
        if stripped.strip():
            current.append((stripped.strip(), punctuation))
        if punctuation in SENTENCE_END and punctuation and current:
            result.append(current)
            current = []
    if current:
        result.append(current)
    return result


def phoneme_ids(voice: _Voice, sentence: list[tuple[str, str]]) -> list[int]:
    """Piper's ids for one sentence: BOS, each phoneme followed by the pad, EOS; unknown phonemes skipped."""
    if voice.phoneme_type == "espeak":
        spoken = _espeak_phonemes([clause for clause, _ in sentence], voice.espeak_voice)
    else:
        spoken = [clause.lower() for clause, _ in sentence]
    text = " ".join(p + punct for p, (_, punct) in zip(spoken, sentence, strict=True) if p or punct)
    symbols: list[str] = []
    for ch in unicodedata.normalize("NFD", text):
        symbols.extend(voice.phoneme_map.get(ch, [ch]))
    pad = voice.id_map[PAD]
    ids = [*voice.id_map.get(BOS, []), *pad]
    for symbol in symbols:
        if symbol in voice.id_map:
            ids.extend(voice.id_map[symbol])
            ids.extend(pad)
    ids.extend(voice.id_map.get(EOS, []))
    return ids


def _bounded_ids(voice: _Voice, sentence: list[tuple[str, str]]) -> list[list[int]]:
    """The ids of `sentence` in parts of at most MAX_IDS, for one model run each: the model's memory grows
    with what it reads at once (≈ 1.4 GB for 20 s). Whole when short enough, else clause by clause, a long
    clause in halves between words (a single long word between characters, a single symbol's ids cut)."""
    ids = phoneme_ids(voice, sentence)
    if len(ids) <= MAX_IDS:
        return [ids]
    if len(sentence) > 1:
        return [part for clause in sentence for part in _bounded_ids(voice, [clause])]
    clause, punctuation = sentence[0]
    words = clause.split()
    if len(words) > 1:
        first, rest = " ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2:])
    elif len(clause) > 1:
        first, rest = clause[: len(clause) // 2], clause[len(clause) // 2:]
    else:
        step = MAX_IDS - 2
        return [[ids[0], *ids[i:i + step], ids[-1]] for i in range(1, len(ids) - 1, step)]
    return _bounded_ids(voice, [(first, "")]) + _bounded_ids(voice, [(rest, punctuation)])


# --------------------------------------------------------------------------------------------- engine


class NeuralEngine:
    """The installed Piper voices of `model_dir`, behind `TtsEngine`."""

    name: str = "neural"

    def __init__(self, model_dir: Path, *, sentence_pause_s: float = 0.3, speaker_id: int = 0) -> None:
        self.model_dir = Path(model_dir)
        self.sentence_pause_s = sentence_pause_s
        self.speaker_id = speaker_id
        self.voices: tuple[str, ...] = tuple(v.name for v in installed_voices(self.model_dir)) or ("default",)

    @property
    def cache_tag(self) -> str:
        """Part of the speech cache's key (`audio.tts.cache_path`): the installed voice files (name, sizes and
        times written of the model and its config) and how they are read, so a voice replaced under the same
        name, or its config alone, is not served old speech."""
        files = []
        for v in installed_voices(self.model_dir):
            try:
                _, *version = _version(v)
            except TtsUnavailable:
                continue
            files.append(":".join([v.name, *map(str, version)]))
        return f"{self.sentence_pause_s}/{self.speaker_id}/{','.join(files)}"

    def warm(self) -> bool:
        """Load the default voice now (seconds, hundreds of MB) so the first warning does not wait for it;
        False when none is installed or it cannot load (said when it is used)."""
        try:
            _load(self._files("default"))
        except TtsUnavailable as e:
            log.info("neural voice not loaded at start: %s", e)
            return False
        return True

    def status(self) -> tuple[bool, str]:
        """(installed, what the operator reads): the voice that would speak, or what is missing and where."""
        if importlib.util.find_spec("onnxruntime") is None:
            return False, "ONNX Runtime is not installed (pip install onnxruntime); eSpeak speaks instead"
        found = installed_voices(self.model_dir)
        if not found:
            return False, f"no neural voice in {self.model_dir}: {HOW_TO_INSTALL}; eSpeak speaks instead"
        first = found[0]
        size_mb = first.model.stat().st_size / 1e6
        more = f" (and {', '.join(v.name for v in found[1:])})" if len(found) > 1 else ""
        return True, f"{first.name}, {size_mb:.0f} MB, in {self.model_dir}{more}"

    def _files(self, voice: str) -> VoiceFiles:
        found = installed_voices(self.model_dir)
        if not found:
            state = "does not exist" if not self.model_dir.is_dir() else "holds no voice"
            raise TtsUnavailable(f"no neural voice is installed: {self.model_dir} {state} "
                                 f"(looked for NAME.onnx with NAME.onnx.json); {HOW_TO_INSTALL}")
        if voice == "default":
            return found[0]
        for files in found:
            if files.name == voice:
                return files
        raise TtsUnavailable(f"neural voice {voice!r} is not installed in {self.model_dir} "
                             f"(installed: {', '.join(f.name for f in found)})")

    def synthesize(self, text: str, voice: str, out: Path) -> None:
        self._speak_with(_load(self._files(voice)), text, out)

    def _speak_with(self, loaded: _Voice, text: str, out: Path) -> None:
        pause = np.zeros(int(loaded.sample_rate * self.sentence_pause_s), dtype=np.float32)
        short_pause = pause[: len(pause) // 2]
        # Ids that are no sound (pad, start, end, spaces, punctuation): a part of only these is not read, so
        # text the voice has no phonemes for raises TtsUnavailable (eSpeak reads it) instead of a noise.
        silent = {i for symbol, ids in loaded.id_map.items() for i in ids
                  if symbol in (PAD, BOS, EOS) or all(unicodedata.category(c)[0] in "PZ" for c in symbol)}
        pieces: list[np.ndarray] = []
        for sentence in sentences(text):
            for i, part in enumerate(p for p in _bounded_ids(loaded, sentence) if not set(p) <= silent):
                if pieces:
                    pieces.append(short_pause if i else pause)
                pieces.append(self._run(loaded, part))
        if not pieces:
            raise TtsUnavailable("the neural voice found nothing to say in the text")
        pcm = (np.clip(np.concatenate(pieces), -1.0, 1.0) * 32767).astype("<i2")
        with wave.open(str(out), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(loaded.sample_rate)
            w.writeframes(pcm.tobytes())

    def _run(self, loaded: _Voice, ids: list[int]) -> np.ndarray:
        inputs = {"input": np.array([ids], dtype=np.int64),
                  "input_lengths": np.array([len(ids)], dtype=np.int64),
                  "scales": np.array([loaded.noise_scale, loaded.length_scale, loaded.noise_w], dtype=np.float32)}
        if "sid" in loaded.input_names:
            inputs["sid"] = np.array([min(self.speaker_id, max(0, loaded.num_speakers - 1))], dtype=np.int64)
        try:
            audio = loaded.session.run(None, inputs)[0]
        except Exception as e:  # a model that loads but cannot run these inputs
            raise TtsUnavailable(f"the neural voice failed to synthesise: {str(e).strip()[:300]}") from None
        return np.asarray(audio, dtype=np.float32).reshape(-1)



# ---------------------------------------------------------------------------------------------- install


def install_voice(model: Path, config: Path | None, model_dir: Path) -> tuple[VoiceFiles, str]:
    """Check that the Piper voice `model` (+ `config`, default `<model>.json`) loads and speaks, then copy both
    into `model_dir` atomically (the config last: a voice is seen only when both are complete). Returns the
    installed files and a line saying what was installed. Raises TtsUnavailable for a voice that does not work."""
    config = config or model.with_name(model.name + ".json")
    for path in (model, config):
        if not path.is_file():
            raise TtsUnavailable(f"{path} does not exist (a Piper voice is NAME.onnx and NAME.onnx.json)")
    name = model.name.removesuffix(".onnx")
    with tempfile.TemporaryDirectory() as tmp:
        loaded = _open(VoiceFiles(name, model, config))
        try:
            NeuralEngine(Path(tmp))._speak_with(loaded, "Một, hai, ba.", Path(tmp) / "trial.wav")
        except TtsUnavailable as e:
            raise TtsUnavailable(f"voice {model} loads but does not speak: {e}") from None
    model_dir.mkdir(parents=True, exist_ok=True)
    target = VoiceFiles(name, model_dir / f"{name}.onnx", model_dir / f"{name}.onnx.json")
    for source, dest in ((model, target.model), (config, target.config)):
        fd, part = tempfile.mkstemp(dir=model_dir, prefix=".install-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f, source.open("rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)
                f.flush()
                os.fsync(f.fileno())
            os.replace(part, dest)
        finally:
            Path(part).unlink(missing_ok=True)
    size_mb = target.model.stat().st_size / 1e6
    return target, (f"installed neural voice {name} ({size_mb:.0f} MB, {loaded.sample_rate} Hz, "
                    f"eSpeak phonemes '{loaded.espeak_voice}') into {model_dir}")
