"""How well is synthesised Vietnamese understood? Word error rate of an offline recogniser on each engine and
setting, clean and with village-like noise at 10 dB SNR (issue 13).

Each sentence of `SENTENCES` (announcements and warnings of Bắc Trà My: dates, times, numbers, place names,
instructions) is read as the controller reads it (`audio.vi_text.normalize`, numbers and abbreviations
written out), synthesised by every engine setting of `SETTINGS`, turned into 16 kHz mono, transcribed by
`viet-asr` (its wheel embeds its model; nothing is downloaded) and scored with `jiwer` against the text that
was read, both sides lower-cased and stripped of punctuation. The noise is pink noise with a slow wind-like
swell, mixed at the given SNR over the speech.

    pip install -e '.[bench]'          # viet-asr and jiwer: bench dependencies only, never the server's
    python bench/tts_intelligibility.py --screen [--only LABEL]     # SCREEN's settings, clean, 12 sentences
    python bench/tts_intelligibility.py [--natural-dir DIR] [--neural-dir VOICES]   # SETTINGS, clean and noisy
    python bench/tts_intelligibility.py --resources [--neural-dir VOICES]   # speed, memory, time to audio ready

It prints one row per setting: mean word error rate (and its spread across sentences) clean and noisy, the
per-sentence difference of the clean WER from the old default (first row, same run) with how many sentences
improved, and the synthesis speed (seconds of audio per second of CPU). `--natural-dir`: natural recordings
(NAME.wav with NAME.txt) scored the same way; `--neural-dir`: the installed Piper voice (a WER only for a
Vietnamese voice). `--resources` runs each engine in a fresh process for its speed, peak memory and the time
from an emergency's text to its broadcast MP3.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audio.ffmpeg import ffmpeg_exe  # noqa: E402
from audio.neural import NeuralEngine  # noqa: E402
from audio.tts import EspeakEngine, TtsEngine  # noqa: E402
from audio.vi_text import normalize  # noqa: E402

SENTENCES = [
    "Ủy ban nhân dân xã Trà Bui thông báo: từ 7 giờ sáng ngày 15/12 sẽ tiêm phòng cho trẻ em dưới 5 tuổi "
    "tại trạm y tế xã.",
    "Cảnh báo lũ quét: mưa lớn trên 200 mm, các hộ dân ven sông Trường ở thôn 1 và thôn 2 khẩn trương di dời "
    "lên chỗ cao.",
    "Nguy cơ sạt lở đất tại thôn 3 xã Trà Giác, người dân không đi qua đèo và không ở lại trong nhà dưới chân đồi.",
    "Bão số 9 sẽ đổ bộ vào Quảng Nam chiều nay, gió giật cấp 12, bà con chằng chống nhà cửa và không ra khỏi nhà.",
    "Cấp độ rủi ro cháy rừng đang ở mức 4, nghiêm cấm đốt nương rẫy và mang lửa vào rừng trong tháng này.",
    "Thị trấn Trà My tổ chức họp dân lúc 19 giờ 30 tối thứ Bảy tại nhà văn hóa tổ dân phố 1.",
    "Xã Trà Đốc nhắc bà con mang theo căn cước công dân khi đến nhận gạo hỗ trợ vào sáng mai.",
    "Mực nước sông Tranh đang lên nhanh, thủy điện Sông Tranh 2 xả lũ với lưu lượng 1500 mét khối mỗi giây.",
    "Các hộ dân thôn 4 xã Trà Tân chuẩn bị lương thực, nước uống và đèn pin cho ít nhất 3 ngày.",
    "Xin thông báo lịch cắt điện: từ 8 giờ đến 16 giờ ngày 20 tháng 12, khu vực xã Trà Sơn mất điện để sửa đường dây.",
    "Trường tiểu học Trà Giang cho học sinh nghỉ học ngày mai vì mưa lớn, phụ huynh giữ các cháu ở nhà.",
    "Đội xung kích xã Trà Ka tập trung tại trụ sở ủy ban lúc 6 giờ sáng để hỗ trợ người dân di dời.",
    "Không lội qua suối khi nước đang chảy xiết, không vớt củi trên sông trong mùa mưa lũ.",
    "Giá thu mua quế tại xã Trà Kót hôm nay là 45 nghìn đồng một ký, bà con cân nhắc trước khi bán.",
    "Chương trình khám bệnh miễn phí cho người cao tuổi diễn ra từ ngày 10 đến ngày 12 tại trạm y tế xã Trà Nú.",
    "Động đất 3,5 độ richter vừa xảy ra gần thủy điện Sông Tranh 2, người dân bình tĩnh và theo dõi thông báo.",
    "Đường ĐT 616 đoạn qua xã Trà Dương bị sạt lở, các phương tiện không lưu thông cho đến khi có thông báo mới.",
    "Bà con xã Trà Giáp đưa gia súc vào chuồng, không thả trâu bò lên đồi trong những ngày rét đậm.",
    "Nhiệt độ đêm nay xuống dưới 10 độ, các gia đình giữ ấm cho trẻ nhỏ và người già.",
    "Ủy ban xã Trà Đông mời đại diện mỗi hộ dự họp bàn kế hoạch làm đường bê tông vào lúc 14 giờ thứ Năm.",
    "Thông báo khẩn: vỡ đập tràn hồ chứa nước thôn 5, người dân phía hạ lưu rời khỏi nhà ngay lập tức.",
    "Nhà văn hóa thôn 2 là điểm tránh trú an toàn, mỗi người mang theo áo mưa và thuốc men cần thiết.",
    "Lực lượng công an xã tuần tra suốt đêm, người dân thấy dấu hiệu nứt đất báo ngay cho trưởng thôn.",
    "Từ ngày 1 tháng 1 năm 2027, lệ phí làm giấy khai sinh được miễn hoàn toàn cho mọi gia đình.",
    "Xe cứu thương của trung tâm y tế huyện Bắc Trà My trực 24 giờ, số điện thoại 0235 3882 115.",
    "Phiên chợ phiên sáng Chủ nhật được dời sang sáng thứ Hai do thời tiết xấu.",
    "Cảnh báo mưa đá và lốc xoáy chiều nay, không trú dưới gốc cây to và cột điện.",
    "Thôn 6 xã Trà Bui còn 12 hộ chưa nhận giống ngô, bà con đến nhà trưởng thôn để nhận trước ngày 25.",
    "Chiến dịch tiêm vắc xin sởi đợt 2 bắt đầu ngày 5/1, trẻ từ 1 đến 5 tuổi cần được tiêm đủ hai mũi.",
    "Hết cảnh báo lũ, bà con có thể trở về nhà nhưng cần kiểm tra điện và nước trước khi sử dụng.",
    "Người dân tuyệt đối không đến gần khu vực sạt lở ở km 32 cho đến khi chính quyền cho phép.",
    "Ban chỉ huy phòng chống thiên tai huyện yêu cầu các xã trực ban 24 trên 24 giờ trong ba ngày tới.",
]


@dataclass(frozen=True)
class Setting:
    label: str
    voice: str
    rate_wpm: int
    pitch: int = 50
    pitch_range: int = 50
    word_gap_10ms: int = 0
    comma_pause_ms: int = 0
    sentence_pause_ms: int = 0

    def engine(self) -> EspeakEngine:
        return EspeakEngine(rate_wpm=self.rate_wpm, pitch=self.pitch, pitch_range=self.pitch_range,
                            word_gap_10ms=self.word_gap_10ms, comma_pause_ms=self.comma_pause_ms,
                            sentence_pause_ms=self.sentence_pause_ms)


DEFAULT = Setting("eSpeak vi, 150 wpm (old default)", "vi", 150)
BEST_RATE = Setting("eSpeak vi, 110 wpm", "vi", 110)  # the best voice and rate of the first run (below)

# Screening (`--screen`, clean, the first sentences only): pitch, pitch range, word gap and pauses at
# punctuation, each on top of the best voice and rate.
SCREEN = [
    DEFAULT,
    BEST_RATE,
    Setting("eSpeak vi, 95 wpm", "vi", 95),
    Setting("vi 110, pitch 35", "vi", 110, pitch=35),
    Setting("vi 110, pitch 65", "vi", 110, pitch=65),
    Setting("vi 110, range 20", "vi", 110, pitch_range=20),
    Setting("vi 110, range 80", "vi", 110, pitch_range=80),
    Setting("vi 110, word gap 20 ms", "vi", 110, word_gap_10ms=2),
    Setting("vi 110, word gap 50 ms", "vi", 110, word_gap_10ms=5),
    Setting("vi 110, pauses 250/500 ms", "vi", 110, comma_pause_ms=250, sentence_pause_ms=500),
    Setting("vi 110, pauses 400/900 ms", "vi", 110, comma_pause_ms=400, sentence_pause_ms=900),
    Setting("vi 110, pitch 80", "vi", 110, pitch=80),
    Setting("vi 110, pitch 65, range 80", "vi", 110, pitch=65, pitch_range=80),
    Setting("vi 110, word gap 80 ms", "vi", 110, word_gap_10ms=8),
    Setting("vi 110, pitch 65, word gap 50 ms", "vi", 110, pitch=65, word_gap_10ms=5),
    Setting("vi 110, pitch 65, range 80, word gap 50 ms", "vi", 110, pitch=65, pitch_range=80, word_gap_10ms=5),
    Setting("vi 110, pitch 65, range 80, word gap 50 ms, pauses 400/900 ms", "vi", 110, pitch=65, pitch_range=80,
            word_gap_10ms=5, comma_pause_ms=400, sentence_pause_ms=900),
]

# The full run (clean and noisy, every sentence): the old default first (the comparison is against it), the
# best voice and rate, then the shortlist of the screening; the last is the best, now EspeakEngine's default.
SETTINGS = [
    DEFAULT,
    BEST_RATE,
    Setting("eSpeak vi, 110 wpm, pitch 65, word gap 50 ms", "vi", 110, pitch=65, word_gap_10ms=5),
    Setting("eSpeak vi, 110 wpm, word gap 50 ms (new default)", "vi", 110, word_gap_10ms=5),
]
# Voices and rates of the first run (docs/PERFORMANCE.md), screened again with `--screen --only`.
SCREEN += [
    Setting("eSpeak vi, 125 wpm", "vi", 125),
    Setting("eSpeak vi-vn-x-central, 125 wpm", "vi-vn-x-central", 125),
    Setting("eSpeak vi-vn-x-south, 125 wpm", "vi-vn-x-south", 125),
]


def words(text: str) -> str:
    """Both sides the same: lower case, NFC, no punctuation, single spaces."""
    text = unicodedata.normalize("NFC", text.lower())
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text)).strip()


def to_pcm16k(wav: Path) -> np.ndarray:
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(wav), "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.int16).astype(np.float64)


def village_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink noise (1/f, by filtering white noise in the frequency domain) under a slow swell, like wind."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / 16000)
    f[0] = f[1]
    pink = np.fft.irfft(spectrum / np.sqrt(f), n)
    swell = 1 + 0.5 * np.sin(2 * np.pi * 0.3 * np.arange(n) / 16000 + rng.uniform(0, 6.3))
    return pink * swell


def with_noise(speech: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    noise = village_noise(len(speech), rng)
    gain = np.sqrt(np.mean(speech ** 2) / (np.mean(noise ** 2) * 10 ** (snr_db / 10)))
    mixed = speech + gain * noise
    return np.clip(mixed * min(1.0, 32000 / max(1.0, np.abs(mixed).max())), -32768, 32767)


@dataclass
class Scores:
    clean: list[float]
    noisy: list[float]
    audio_s: float = 0.0
    cpu_s: float = 0.0


def score(asr: Any, jiwer: Any, speech: list[tuple[str, np.ndarray]], snr_db: float | None,
          rng: np.random.Generator) -> Scores:
    """WER of each (text read, 16 kHz audio), clean and (unless `snr_db` is None) with noise."""
    out = Scores([], [])
    for text, pcm in speech:
        signals = [(out.clean, pcm)] + ([(out.noisy, with_noise(pcm, snr_db, rng))] if snr_db is not None else [])
        for scores, signal in signals:
            heard = asr.transcribe(signal.astype(np.int16), 16000.0).text
            scores.append(min(1.0, jiwer.wer(words(text), words(heard) or "_")))
    return out


def synthesised(engine: TtsEngine, voice: str, texts: list[str], tmp: Path) -> tuple[list[tuple[str, np.ndarray]],
                                                                                    float, float]:
    """Each text read by `engine` as 16 kHz audio, with the seconds of audio and of CPU it took."""
    speech = []
    audio_s = cpu_s = 0.0
    for i, text in enumerate(texts):
        wav = tmp / f"{i}.wav"
        t0 = time.process_time()
        engine.synthesize(text, voice, wav)
        cpu_s += time.process_time() - t0
        pcm = to_pcm16k(wav)
        audio_s += len(pcm) / 16000
        speech.append((text, pcm))
    return speech, audio_s, cpu_s


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):6.3f} ± {statistics.pstdev(values):5.3f}" if values else f"{'—':>14}"


def natural_speech(directory: Path) -> list[tuple[str, np.ndarray]]:
    """NAME.wav with NAME.txt (its transcript) in `directory`, e.g. the six Vietnamese voice samples inside the
    `vieneu` 3.8.3 wheel (vieneu/assets/samples, Apache-2.0)."""
    return [(normalize(wav.with_suffix(".txt").read_text(encoding="utf-8").strip()), to_pcm16k(wav))
            for wav in sorted(directory.glob("*.wav")) if wav.with_suffix(".txt").is_file()]


def is_vietnamese(engine: NeuralEngine) -> bool:
    return engine.voices[0].startswith("vi")


# --------------------------------------------------------------------------- speed, memory, time to audio


# For speed and memory only, an English test voice reads English: Vietnamese text through an English voice's
# phonemes is spelled out letter by letter and says nothing about a Vietnamese voice's cost.
ENGLISH = [
    "The people's committee of Tra Bui commune announces vaccinations for children under five at the commune "
    "health station from seven o'clock on the fifteenth of December.",
    "Flash flood warning: heavy rain above two hundred millimetres; households along the Truong river in villages "
    "one and two must move to high ground at once.",
    "Risk of landslides in village three of Tra Giac commune: do not cross the pass and do not stay in houses at "
    "the foot of the hill.",
    "Storm number nine will make landfall in Quang Nam this afternoon with gusts of force twelve; secure your "
    "houses and stay indoors.",
    "The forest fire risk is at level four: burning fields and carrying fire into the forest are forbidden this "
    "month.",
    "The water level of the Tranh river is rising fast; the Song Tranh two dam is releasing fifteen hundred cubic "
    "metres per second.",
    "Do not wade across streams while the water is running fast, and do not collect firewood from the river in "
    "the flood season.",
    "Urgent notice: the spillway of the reservoir in village five has broken; people downstream must leave their "
    "houses immediately.",
]
ENGLISH_WARNING = ("Flash flood warning: heavy rain above two hundred millimetres. Households along the river in "
                   "villages one and two must move to high ground now. Do not wade across streams.")
ENGLISH_WARNING_2 = ("Urgent notice: the spillway of the reservoir in village five has broken. People downstream "
                     "must leave their houses immediately. The village two cultural house is a safe shelter.")

WARNING = ("Cảnh báo lũ quét: mưa lớn trên 200 mm, các hộ dân ven sông Trường ở thôn 1 và thôn 2 khẩn trương di dời "
           "lên chỗ cao. Không lội qua suối khi nước đang chảy xiết.")
WARNING_2 = ("Thông báo khẩn: vỡ đập tràn hồ chứa nước thôn 5, người dân phía hạ lưu rời khỏi nhà ngay lập tức. "
             "Nhà văn hóa thôn 2 là điểm tránh trú an toàn.")


def measure_one(spec: str) -> dict[str, float]:
    """In this (fresh) process: the time from an emergency's text to its broadcast MP3 (synthesis, the chime
    layout, ingest), the first time (libraries and model loaded) and again with another text; then the speed
    of synthesis over every sentence, and this process's peak memory."""
    import resource
    from types import SimpleNamespace

    from audio.ingest import ingest
    from controller.config import AudioSettings
    from controller.content import broadcast_format, speak

    kind, _, arg = spec.partition(":")
    engine: TtsEngine
    warnings, texts = (WARNING, WARNING_2), [normalize(s) for s in SENTENCES]
    if kind == "neural":
        engine, voice = NeuralEngine(Path(arg)), "default"
        if not is_vietnamese(engine):
            warnings, texts = (ENGLISH_WARNING, ENGLISH_WARNING_2), ENGLISH
    else:
        setting = {s.label: s for s in SCREEN + SETTINGS}[arg]
        engine, voice = setting.engine(), setting.voice
    layout = SimpleNamespace(chime_before=True, chime_after=False, repeat=1, gap_s=0.0)
    fmt = broadcast_format(AudioSettings())
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, text in zip(("ready_first_s", "ready_again_s"), warnings, strict=True):
            t0 = time.perf_counter()
            wav = Path(tmp) / f"{key}.wav"
            speak(engine, normalize(text) if texts is not ENGLISH else text, voice, Path(tmp) / "cache", wav, layout)
            ingest(wav, Path(tmp) / f"{key}.mp3", fmt, trim_silence=False)
            result[key] = time.perf_counter() - t0
        audio_s = cpu_s = wall_s = 0.0
        for i, text in enumerate(texts):
            wav = Path(tmp) / f"{i}.wav"
            t0, c0 = time.perf_counter(), time.process_time()
            engine.synthesize(text, voice, wav)
            cpu_s += time.process_time() - c0
            wall_s += time.perf_counter() - t0
            with wave.open(str(wav)) as w:
                audio_s += w.getnframes() / w.getframerate()
    result.update(audio_s=audio_s, cpu_s=cpu_s, wall_s=wall_s,
                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def resources(specs: list[tuple[str, str]]) -> None:
    print(f"{'engine':44} {'audio s / CPU s':>15} {'× real time':>11} {'peak RSS':>9} "
          f"{'ready, first':>12} {'ready, again':>12}")
    for label, spec in specs:
        run = subprocess.run([sys.executable, __file__, "--measure-one", spec], capture_output=True, text=True)
        if run.returncode != 0:
            print(f"{label:44} failed: {run.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"{label:44} {r['audio_s'] / r['cpu_s']:15.1f} {r['audio_s'] / r['wall_s']:11.1f} "
              f"{r['peak_rss_mb']:7.0f} MB {r['ready_first_s']:10.2f} s {r['ready_again_s']:10.2f} s", flush=True)


# ------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=None, help="how many sentences (default all; 12 to screen)")
    ap.add_argument("--snr", type=float, default=10.0)
    ap.add_argument("--screen", action="store_true", help="screen SCREEN's settings, clean only")
    ap.add_argument("--only", action="append", help="only the settings whose label contains this (repeatable)")
    ap.add_argument("--neural-dir", type=Path, help="a directory with an installed Piper voice: a neural row")
    ap.add_argument("--natural-dir", type=Path, help="natural recordings, NAME.wav with NAME.txt: a natural row")
    ap.add_argument("--resources", action="store_true",
                    help="only speed, peak memory and time to audio ready, each engine in a fresh process")
    ap.add_argument("--measure-one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure_one:
        print(json.dumps(measure_one(args.measure_one)))
        return 0
    best = SETTINGS[-1]
    if args.resources:
        specs = [(DEFAULT.label, f"espeak:{DEFAULT.label}"), (best.label, f"espeak:{best.label}")]
        if args.neural_dir:
            specs.append((f"neural {NeuralEngine(args.neural_dir).voices[0]}", f"neural:{args.neural_dir}"))
        resources(specs)
        return 0
    try:
        import jiwer
        from vietasr import Pipeline
    except ImportError as e:
        print(f"needs the bench extras: pip install -e '.[bench]' ({e})", file=sys.stderr)
        return 2
    asr = Pipeline.preset("transcribe")
    rng = np.random.default_rng(12)
    count = args.sentences or (12 if args.screen else len(SENTENCES))
    texts = [normalize(s) for s in SENTENCES[:count]]
    snr = None if args.screen else args.snr
    print(f"{len(texts)} sentences, {'clean only' if snr is None else f'noise at {snr:g} dB SNR'}, "
          "recogniser viet-asr preset 'transcribe'\n")
    print(f"{'setting':40} {'WER clean':>16} {'WER noisy':>16} {'clean − default':>16} {'better':>7} "
          f"{'audio s / CPU s':>15}", flush=True)
    baseline: list[float] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        chosen = [s for s in (SCREEN if args.screen else SETTINGS)
                  if s is DEFAULT or not args.only or any(o in s.label for o in args.only)]
        rows: list[tuple[str, TtsEngine, str]] = [(s.label, s.engine(), s.voice) for s in chosen]
        neural = NeuralEngine(args.neural_dir) if args.neural_dir else None
        if neural is not None:
            rows.append((f"neural {neural.voices[0]}", neural, "default"))
        for label, engine, voice in rows:
            speech, audio_s, cpu_s = synthesised(engine, voice, texts, Path(tmp))
            if isinstance(engine, NeuralEngine) and not is_vietnamese(engine):
                # An English test voice reading Vietnamese: its WER would say nothing about a Vietnamese voice.
                print(f"{label:40} {'not Vietnamese: no WER':>34} {'':>25} {audio_s / max(cpu_s, 1e-9):15.1f}")
                continue
            s = score(asr, jiwer, speech, snr, rng)
            baseline = s.clean if baseline is None else baseline
            diff = [a - b for a, b in zip(s.clean, baseline, strict=True)]
            print(f"{label:40} {spread(s.clean)}  {spread(s.noisy)}  {spread(diff)} "
                  f"{sum(d < 0 for d in diff):3d}/{len(diff):<3d} {audio_s / max(cpu_s, 1e-9):15.1f}", flush=True)
        if args.natural_dir:
            natural = natural_speech(args.natural_dir)
            s = score(asr, jiwer, natural, snr, rng)
            print(f"{f'natural recordings ({len(natural)}, other sentences)':40} {spread(s.clean)}  {spread(s.noisy)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
