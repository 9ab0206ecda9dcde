"""How well is synthesised Vietnamese understood? Word error rate of an offline recogniser on each engine and
setting, clean and with village-like noise at 10 dB SNR (issue 13).

Each sentence of `SENTENCES` (announcements and warnings of Bắc Trà My: dates, times, numbers, place names,
instructions) is read as the controller reads it (`audio.vi_text.normalize`, numbers and abbreviations
written out), synthesised by every engine setting of `SETTINGS`, turned into 16 kHz mono, transcribed by
`viet-asr` (its wheel embeds its model; nothing is downloaded) and scored with `jiwer` against the text that
was read, both sides lower-cased and stripped of punctuation. The noise is pink noise with a slow wind-like
swell, mixed at the given SNR over the speech.

    pip install -e '.[bench]'          # viet-asr and jiwer: bench dependencies only, never the server's
    python bench/tts_intelligibility.py [--sentences 30] [--snr 10]

It prints one row per setting: mean word error rate (and its spread across sentences) clean and noisy, and
the synthesis speed (seconds of audio per second of CPU). The first row is today's default; the ratio
column compares each setting's clean WER with it, measured in the same run.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audio.ffmpeg import ffmpeg_exe  # noqa: E402
from audio.tts import EspeakEngine  # noqa: E402
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


# Today's default first: the ratio column is against it.
SETTINGS = [
    Setting("eSpeak vi, 150 wpm (default)", "vi", 150),
    Setting("eSpeak vi, 125 wpm", "vi", 125),
    Setting("eSpeak vi, 110 wpm", "vi", 110),
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=len(SENTENCES))
    ap.add_argument("--snr", type=float, default=10.0)
    args = ap.parse_args(argv)
    try:
        import jiwer
        from vietasr import Pipeline
    except ImportError as e:
        print(f"needs the bench extras: pip install -e '.[bench]' ({e})", file=sys.stderr)
        return 2
    asr = Pipeline.preset("transcribe")
    rng = np.random.default_rng(12)
    texts = [normalize(s) for s in SENTENCES[:args.sentences]]
    print(f"{len(texts)} sentences, noise at {args.snr:g} dB SNR, recogniser viet-asr preset 'transcribe'\n")
    print(f"{'setting':36} {'WER clean':>16} {'WER noisy':>16} {'vs default':>10} {'audio s / CPU s':>16}")
    baseline: float | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for setting in SETTINGS:
            engine = EspeakEngine(rate_wpm=setting.rate_wpm)
            clean: list[float] = []
            noisy: list[float] = []
            audio_s = cpu_s = 0.0
            for i, text in enumerate(texts):
                wav = Path(tmp) / f"{i}.wav"
                t0 = time.process_time()
                engine.synthesize(text, setting.voice, wav)
                cpu_s += time.process_time() - t0
                pcm = to_pcm16k(wav)
                audio_s += len(pcm) / 16000
                for scores, signal in ((clean, pcm), (noisy, with_noise(pcm, args.snr, rng))):
                    heard = asr.transcribe(signal.astype(np.int16), 16000.0).text
                    scores.append(min(1.0, jiwer.wer(words(text), words(heard) or "_")))
            mean_clean = statistics.mean(clean)
            baseline = mean_clean if baseline is None else baseline
            print(f"{setting.label:36} {mean_clean:6.3f} ± {statistics.pstdev(clean):5.3f}  "
                  f"{statistics.mean(noisy):6.3f} ± {statistics.pstdev(noisy):5.3f}  "
                  f"{mean_clean / baseline if baseline else float('nan'):9.2f}× {audio_s / max(cpu_s, 1e-9):15.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
