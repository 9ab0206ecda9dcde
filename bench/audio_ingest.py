"""Audio benchmark: ingesting a long speech recording against a plain ffmpeg transcode, and offline TTS speed.

    .venv/bin/python bench/audio_ingest.py [--minutes 60] [--short-minutes 10] [--source espeak|speechlike]

What the issue asks: ingest time and peak memory for a 60-minute speech recording, against a plain ffmpeg
transcode of the same file measured in the same run (goal: within 1.5x of it, under 150 MB whatever the
length), and offline TTS speed as seconds of audio per second of CPU.

1. The recording. `espeak`: three and a half minutes of varied Vietnamese announcements (`CORPUS`, normalised with
   `audio.vi_text.normalize`, synthesised with `audio.tts.EspeakEngine`, voice "vi", three speaking rates),
   joined with pauses of varying length. `speechlike`: the test suite's synthetic voice (`tests.samples`).
   That base is looped to the wanted length, brought to a phone-like -24 LUFS over a faint pink-noise room
   floor, with 1.5 s of room noise at each end, and encoded as a typical upload: MP3 128 kbps stereo 44.1 kHz.
2. Plain transcode: the ffmpeg that `audio.ffmpeg.ffmpeg_exe()` returns, same input, the broadcast format
   (mono, 44.1 kHz, libmp3lame 64 kbps), no loudness work at all, at ingest's priority (nice 10).
3. Ingest: `audio.ingest.ingest(src, out, BroadcastFormat(), trim_silence=True)`.

Each measurement runs in a fresh child Python (`--child transcode|ingest`, this file), so that a peak RSS
is that process's own. The child times only the work (not its interpreter start) and reads its own peak
RSS (VmHWM) and its largest ffmpeg child's (RUSAGE_CHILDREN); ingest runs up to three ffmpegs at once (a
pipeline), so a thread of the child also samples, every 50 ms, the RSS and PSS of the child and all its
ffmpegs together (`MemorySampler`), and the report gives the largest sums. The ingest child also wraps
`audio.ffmpeg.run` to record each ffmpeg call (probe, analyse, trial, encode; a call with `feed` is one
pipeline of ffmpegs) with its wall and CPU time, without changing what it does. Transcode and ingest
alternate, `--repeats` times each; the report gives medians, for `--minutes` and for `--short-minutes` (to
show memory does not grow with length).

In this file:
- `CORPUS`, `make_base`, `make_recording`: the source recording.
- `child_transcode`, `child_ingest`: the bodies of the `--child` modes; `run_child`: the parent's side;
  `MemorySampler`: the memory of a child and its ffmpegs at once.
- `measure_length`, `report_length`: one length's measurements and its table.
- `tts_speed`: offline TTS, seconds of audio per CPU second.
- `main`: arguments, the run, the temporary directory's removal.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# `tests` and `bench` live in the repository, not in the installed distribution.
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import wave  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

# Only what the `--child` runs need is imported here: their peak RSS should be ingest's, not that of the TTS
# engines (gTTS, requests) that the parent imports in `make_base` and `tts_speed`.
from audio import ffmpeg  # noqa: E402
from audio.ingest import NICE, BroadcastFormat, ingest  # noqa: E402

MiB = 1024 * 1024
SOURCE_LUFS = -24.0  # a phone recording held at arm's length: well below the broadcast target of -16
EDGE_S = 1.5  # room noise before the first and after the last word: what trim_silence should remove
NOISE_AMPLITUDE = 0.001  # pink noise around -65 dBFS: a quiet room, below silencedetect's -50 dB threshold

# Announcements of the kind a commune broadcasts, with the numbers, dates and abbreviations staff type.
CORPUS = [
    "Thông báo của UBND xã Trà Sơn: từ 7h30 ngày 15/3/2025, trạm y tế xã tổ chức tiêm vắc-xin phòng bệnh "
    "sởi cho trẻ em từ 9 tháng đến 5 tuổi tại nhà văn hóa thôn 2. Đề nghị các gia đình đưa con em đến đúng giờ.",
    "Theo bản tin dự báo thời tiết, trong 24 giờ tới khu vực huyện có mưa vừa đến mưa to, lượng mưa phổ biến "
    "từ 50-100 mm, có nơi trên 150 mm. Nguy cơ cao xảy ra lũ quét và sạt lở đất ở vùng núi.",
    "Ban chỉ huy PCTT&TKCN xã đề nghị bà con không đi qua ngầm tràn khi nước đang chảy xiết, không vào rừng "
    "khai thác lâm sản và chủ động di dời người, tài sản ra khỏi khu vực nguy hiểm.",
    "Kính thưa bà con, hợp tác xã nông nghiệp thông báo: giá thu mua quế khô năm nay là 32.000 đồng/kg, "
    "tăng 12% so với năm trước. Hộ nào có nhu cầu bán xin liên hệ số điện thoại 0905 123 456.",
    "Thực hiện kế hoạch xây dựng NTM, thôn 4 tổ chức ra quân làm đường bê tông dài 1,2 km vào sáng Chủ nhật "
    "ngày 23/3. Mỗi hộ cử một lao động tham gia, mang theo cuốc, xẻng và xe rùa.",
    "Đoàn thanh niên xã phát động phong trào thu gom rác thải nhựa, làm sạch môi trường sống. Mỗi chi đoàn "
    "đăng ký ít nhất 2 công trình thanh niên trong quý hai.",
    "Bảo hiểm xã hội huyện thông báo: người dân tham gia BHYT hộ gia đình năm 2025 được hỗ trợ 30% mức đóng. "
    "Hạn chót nộp hồ sơ là ngày 30/6/2025 tại bộ phận một cửa của xã.",
    "Công an xã khuyến cáo bà con cảnh giác với các cuộc gọi giả danh cơ quan nhà nước yêu cầu chuyển tiền. "
    "Khi có nghi vấn, hãy báo ngay cho CAX hoặc gọi số 113.",
    "Nhiệt độ thấp nhất đêm nay từ 12-14 °C. Đề nghị bà con che chắn chuồng trại, giữ ấm cho gia súc, "
    "không thả trâu bò lên núi cao trong những ngày rét đậm.",
    "Trường THCS xã thông báo lịch tựu trường năm học mới vào ngày 28/8, khai giảng lúc 7h00 ngày 5/9. "
    "Phụ huynh chuẩn bị đầy đủ sách vở và đồng phục cho các em.",
    "Hội LHPN xã tổ chức lớp tập huấn kỹ thuật trồng sâm Ngọc Linh dưới tán rừng trong hai ngày 10 và 11 "
    "tháng tư, tại hội trường UBND xã. Mỗi thôn cử 5 chị em tham dự.",
    "Ngày 18/5 tới, xã tổ chức hội nghị tiếp xúc cử tri với ĐBQH tỉnh. Kính mời bà con đến dự và đóng góp "
    "ý kiến về các vấn đề dân sinh, đất đai, giao thông và thủy lợi.",
    "Trạm y tế xã nhắc nhở: mùa mưa là mùa sốt xuất huyết. Bà con hãy diệt lăng quăng, đậy kín dụng cụ "
    "chứa nước, ngủ màn kể cả ban ngày, và đến cơ sở y tế ngay khi sốt cao.",
    "Kết quả thu ngân sách quý một đạt 1.250.000.000 đồng, bằng 35% kế hoạch năm. Diện tích trồng rừng mới "
    "đạt 120 ha, diện tích lúa nước vụ đông xuân đạt 85,5 ha.",
    "Đề nghị các hộ dân dọc tuyến tỉnh lộ 616 không lấn chiếm hành lang an toàn giao thông, không phơi nông "
    "sản trên mặt đường. Vi phạm sẽ bị xử lý theo quy định.",
    "Đài truyền thanh xã xin kết thúc chương trình phát thanh buổi sáng hôm nay. Chương trình buổi chiều bắt "
    "đầu lúc 17h00. Xin cảm ơn bà con đã chú ý lắng nghe.",
]
RATES_WPM = (140, 160, 175)  # one speaking rate per sentence in turn: reading, announcing, hurrying
PAUSES_S = (0.6, 1.1, 0.4, 1.6, 0.8)  # between sentences, in turn: breath pauses, page turns


# ------------------------------------------------------------------------------------------- recording


def _ffmpeg(*args: str, timeout: float = 900) -> str:
    out = subprocess.run([ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", *args],
                         capture_output=True, text=True, errors="replace", timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {out.stderr[-800:]}")
    return out.stderr


def loudness(path: Path) -> tuple[float, float | None]:
    """Integrated loudness (LUFS) and true peak (dBTP) by ffmpeg's ebur128 scanner, independent of ingest."""
    m = ffmpeg.parse_ebur128(_ffmpeg("-i", str(path), "-af", "ebur128=peak=true", "-f", "null", "-"))
    return m.integrated, m.true_peak


def make_base(tmp: Path, source: str) -> Path:
    """A few minutes of mono speech at 22.05 kHz, the unit that `make_recording` loops."""
    base = tmp / "base.wav"
    from audio.tts import EspeakEngine
    from audio.vi_text import normalize

    if source == "speechlike":
        from tests.samples import SPEECHLIKE

        _ffmpeg("-f", "lavfi", "-i", SPEECHLIKE.format(d=240), "-c:a", "pcm_s16le", "-y", str(base))
        return base
    frames: list[bytes] = []
    rate = 0
    for i, text in enumerate(CORPUS):
        wav = tmp / f"sentence-{i}.wav"
        EspeakEngine(rate_wpm=RATES_WPM[i % len(RATES_WPM)]).synthesize(normalize(text), "vi", wav)
        with wave.open(str(wav)) as w:
            rate = w.getframerate()
            frames.append(w.readframes(w.getnframes()))
            frames.append(b"\0\0" * int(PAUSES_S[i % len(PAUSES_S)] * rate))
        wav.unlink()
    with wave.open(str(base), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(frames))
    return base


def make_recording(base: Path, minutes: float, out: Path) -> None:
    """Loop `base` to `minutes`, at SOURCE_LUFS over a room-noise floor, as MP3 128 kbps stereo 44.1 kHz."""
    seconds = minutes * 60
    base_lufs, _ = loudness(base)
    # The mono base becomes dual-mono stereo, which measures 3 LU louder than the mono it came from.
    gain = SOURCE_LUFS - (base_lufs + 3.01)
    speech = (f"[0:a]volume={gain:.2f}dB,aresample=44100,atrim=duration={seconds - 2 * EDGE_S:.3f},"
              f"adelay={int(EDGE_S * 1000)}:all=1,apad=whole_dur={seconds:.3f},pan=stereo|c0=c0|c1=c0[s]")
    noise = f"anoisesrc=color=pink:amplitude={NOISE_AMPLITUDE}:sample_rate=44100:duration={seconds:.3f}"
    _ffmpeg("-stream_loop", "-1", "-i", str(base), "-f", "lavfi", "-i", noise,
            "-filter_complex", f"{speech};[1:a]pan=stereo|c0=c0|c1=c0[n];[s][n]amix=inputs=2:duration=first:"
                               "normalize=0",
            "-t", f"{seconds:.3f}", "-c:a", "libmp3lame", "-b:a", "128k", "-ar", "44100", "-ac", "2", "-y", str(out),
            timeout=120 + 4 * seconds)


# -------------------------------------------------------------------------------------------- children


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _own_peak_mib() -> float:
    """This process's peak RSS since exec (VmHWM). Not RUSAGE_SELF's ru_maxrss: at exec, Linux records the
    peak RSS of the memory the process leaves as its own, and a child spawned with vfork leaves its
    parent's, so ru_maxrss reads at least the parent's peak. That is also why the ffmpeg figure,
    RUSAGE_CHILDREN's ru_maxrss, is the largest ffmpeg's own peak only when it exceeds this process's
    (`report_length` says when it does not)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MemorySampler:
    """The largest RSS and PSS sums of this process and its child processes at one instant, sampled every
    `interval_s` by a thread. PSS counts a page shared by n processes as 1/n in each: ffmpegs running at once
    share their libraries (most of an ffmpeg's 55 MiB RSS), so the RSS sum counts those pages once per process
    and overstates what they take together, while the PSS sum is what they take."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s, self.rss_mib, self.pss_mib, self.most_processes = interval_s, 0.0, 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rollup(pid: int) -> tuple[float, float]:
        rss = pss = 0.0
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) / 1024
        except (OSError, ValueError):
            pass  # it ended between the listing and the read
        return rss, pss

    def _children(self) -> list[int]:
        pids: list[int] = []
        for task in Path("/proc/self/task").iterdir():
            try:
                pids += [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                pass
        return pids

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            pids = [os.getpid(), *self._children()]
            sums = [self._rollup(pid) for pid in pids]
            self.rss_mib = max(self.rss_mib, sum(r for r, _ in sums))
            self.pss_mib = max(self.pss_mib, sum(p for _, p in sums))
            self.most_processes = max(self.most_processes, len(pids) - 1)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _figures(wall_s: float, cpu0: float, children_cpu0: float, memory: MemorySampler) -> dict[str, Any]:
    return {"wall_s": wall_s, "python_cpu_s": time.process_time() - cpu0,
            "ffmpeg_cpu_s": _children_cpu() - children_cpu0,
            "python_peak_mib": _own_peak_mib(),
            "ffmpeg_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "together_rss_mib": memory.rss_mib, "together_pss_mib": memory.pss_mib,
            "most_ffmpegs": memory.most_processes}


def child_transcode(src: Path, out: Path) -> dict[str, Any]:
    """The baseline: the same ffmpeg, the same input and output format as ingest, and nothing else; at ingest's
    CPU priority (`audio.ingest.NICE`), so that on a busy machine both yield alike to the rest."""
    fmt = BroadcastFormat()
    cmd = [ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-i", str(src), "-map", "0:a:0", "-vn",
           "-map_metadata", "-1", "-ac", "1", "-ar", str(fmt.sample_rate), "-c:a", "libmp3lame",
           "-b:a", f"{fmt.bitrate_kbps}k", "-f", "mp3", "-y", str(out)]
    cpu0, children_cpu0, t0 = time.process_time(), _children_cpu(), time.perf_counter()
    with MemorySampler() as memory:
        with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
            os.setpriority(os.PRIO_PROCESS, proc.pid, NICE)  # as `audio.ffmpeg.run` does
            _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"the transcode failed: {err[-800:]!r}")
    return _figures(time.perf_counter() - t0, cpu0, children_cpu0, memory)


def _stage(args: list[str], feed: list[list[str]]) -> str:
    """Which of ingest's steps an ffmpeg call is: the probe reads nothing (-t 0), the encode's pipeline
    writes MP3, the analysis is fed the decoded file, the limiter's trials are the other calls."""
    if any("libmp3lame" in step for step in [args, *feed]):
        return "encode"
    if "-t" in args and args[args.index("-t") + 1] == "0":
        return "probe"
    return "analyse" if feed else "trial"


def child_ingest(src: Path, out: Path) -> dict[str, Any]:
    """`audio.ingest.ingest` as the controller runs it, with each of its ffmpeg calls timed on the way."""
    calls: list[dict[str, Any]] = []
    real_run = ffmpeg.run

    def observed_run(args: list[str], **kwargs: Any) -> str:
        t0, c0 = time.perf_counter(), _children_cpu()
        try:
            return real_run(args, **kwargs)
        finally:
            calls.append({"stage": _stage(args, list(kwargs.get("feed", ()))), "wall_s": time.perf_counter() - t0,
                          "cpu_s": _children_cpu() - c0})

    ffmpeg.run = observed_run  # an observer only: the real run does the work
    cpu0, children_cpu0, t0 = time.process_time(), _children_cpu(), time.perf_counter()
    with MemorySampler() as memory:
        result = ingest(src, out, BroadcastFormat(), trim_silence=True)
    figures = _figures(time.perf_counter() - t0, cpu0, children_cpu0, memory)
    return {**figures, "calls": calls, "loudness_before": result.loudness_before,
            "loudness_after": result.loudness_after, "true_peak_after": result.true_peak_after,
            "duration_s": result.duration_s, "trimmed_s": result.trimmed_s}


def run_child(mode: str, src: Path, out: Path, timeout: float) -> dict[str, Any]:
    """Run `--child mode` in a fresh interpreter; kill its whole process group if it overruns or we stop."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", mode, str(src), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"--child {mode} failed ({proc.returncode}): {stderr[-1500:]}")
    figures: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return figures


# ------------------------------------------------------------------------------------------ measuring


@dataclass
class LengthResult:
    minutes: float
    source_mib: float
    transcodes: list[dict[str, Any]]
    ingests: list[dict[str, Any]]
    output_lufs: float
    output_true_peak: float | None


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs)


def measure_length(base: Path, tmp: Path, minutes: float, repeats: int, timeout: float) -> LengthResult:
    src = tmp / f"speech-{minutes:g}min.mp3"
    t0 = time.perf_counter()
    make_recording(base, minutes, src)
    print(f"  {minutes:g}-minute recording made in {time.perf_counter() - t0:.0f} s "
          f"({src.stat().st_size / MiB:.1f} MiB)", flush=True)
    transcodes, ingests = [], []
    out_t, out_i = tmp / "transcoded.mp3", tmp / "ingested.mp3"
    # Alternating, so that a slow spell of this shared machine falls on both sides alike.
    for i in range(repeats):
        transcodes.append(run_child("transcode", src, out_t, timeout))
        ingests.append(run_child("ingest", src, out_i, timeout))
        t, g = transcodes[-1], ingests[-1]
        calls = ", ".join(f"{c['stage']} {c['wall_s']:.1f}" for c in g["calls"])
        print(f"  run {i + 1}/{repeats}: transcode {t['wall_s']:.1f} s, ingest {g['wall_s']:.1f} s ({calls})",
              flush=True)
    lufs, peak = loudness(out_i)
    result = LengthResult(minutes, src.stat().st_size / MiB, transcodes, ingests, lufs, peak)
    for f in (src, out_t, out_i):
        f.unlink(missing_ok=True)  # a 60-minute source is ~55 MiB: do not keep two lengths' worth around
    return result


def _walls(runs: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['wall_s']:.1f}" for r in runs)


def report_length(r: LengthResult) -> None:
    t, g = r.transcodes, r.ingests
    t_wall, g_wall = median(t, "wall_s"), median(g, "wall_s")
    t_cpu = statistics.median(x["python_cpu_s"] + x["ffmpeg_cpu_s"] for x in t)
    g_cpu = statistics.median(x["python_cpu_s"] + x["ffmpeg_cpu_s"] for x in g)
    print(f"\n{r.minutes:g} minutes of speech ({r.source_mib:.1f} MiB MP3 128 kbps stereo), median of {len(t)} runs "
          f"(walls: transcode {_walls(t)}; ingest {_walls(g)})")
    print("| | wall s | CPU s | Python peak RSS MiB | ffmpeg peak RSS MiB | ffmpeg runs |")
    print("|---|---|---|---|---|---|")
    for name, runs, wall, cpu in (("plain transcode", t, t_wall, t_cpu), ("ingest", g, g_wall, g_cpu)):
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {median(runs, 'python_peak_mib'):.1f} | "
              f"{median(runs, 'ffmpeg_peak_mib'):.1f} | "
              f"{statistics.median(len(x['calls']) if 'calls' in x else 1 for x in runs):g} |")
    print(f"| **ratio ingest / transcode** | **{g_wall / t_wall:.2f}** | {g_cpu / t_cpu:.2f} | | | |")
    if any(x["ffmpeg_peak_mib"] <= x["python_peak_mib"] + 0.5 for x in t + g):
        print("(some ffmpeg peak is no larger than its Python's: it may be the Python's, see `_own_peak_mib`)")
    for name, runs in (("plain transcode", t), ("ingest", g)):
        print(f"{name} peak memory, Python + its ffmpegs at once (up to {max(x['most_ffmpegs'] for x in runs)} "
              f"ffmpegs), sampled every 50 ms: RSS sum {median(runs, 'together_rss_mib'):.1f} MiB, "
              f"PSS sum {median(runs, 'together_pss_mib'):.1f} MiB")
    stages: dict[str, list[tuple[float, float]]] = {}
    for run in g:
        seen: dict[str, int] = {}
        for c in run["calls"]:
            seen[c["stage"]] = seen.get(c["stage"], 0) + 1
            name = f"{c['stage']} #{seen[c['stage']]}" if c["stage"] in ("trial", "encode") else c["stage"]
            stages.setdefault(name, []).append((c["wall_s"], c["cpu_s"]))
    print("ingest's ffmpeg calls, median wall / CPU s (in how many runs): " + ", ".join(
        f"{k} {statistics.median(w for w, _ in v):.1f} / {statistics.median(c for _, c in v):.1f} ({len(v)})"
        for k, v in stages.items()))
    last = g[-1]
    print(f"loudness: source {last['loudness_before']} LUFS; ingest says {last['loudness_after']} LUFS, "
          f"true peak {last['true_peak_after']} dBTP; independent ebur128 of the output: {r.output_lufs} LUFS, "
          f"true peak {r.output_true_peak} dBTP; trimmed {last['trimmed_s']} s")


# ----------------------------------------------------------------------------------------------- TTS

TTS_SENTENCES = 10


def tts_speed(tmp: Path, rounds: int) -> None:
    """Seconds of speech made per CPU second by the offline engine (in-process through ctypes, so the
    process's own CPU time is the engine's), over TTS_SENTENCES varied sentences, median of `rounds`."""
    from audio.tts import EspeakEngine
    from audio.vi_text import normalize

    engine = EspeakEngine()
    texts = [normalize(t) for t in CORPUS[:TTS_SENTENCES]]
    engine.synthesize("xin chào", "vi", tmp / "warmup.wav")  # loads the library and voice data: not timed
    speeds, walls = [], []
    audio_s = 0.0
    for _ in range(rounds):
        audio_s, cpu0, t0 = 0.0, time.process_time(), time.perf_counter()
        for i, text in enumerate(texts):
            wav = tmp / f"tts-{i}.wav"
            engine.synthesize(text, "vi", wav)
            with wave.open(str(wav)) as w:
                audio_s += w.getnframes() / w.getframerate()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        speeds.append(audio_s / cpu)
        walls.append(audio_s / wall)
    for f in tmp.glob("tts-*.wav"):
        f.unlink()
    chars = sum(len(t) for t in texts)
    print(f"\nOffline TTS (eSpeak NG, voice vi, {TTS_SENTENCES} sentences, {chars} characters after normalising, "
          f"{audio_s:.1f} s of speech), median of {rounds}: {statistics.median(speeds):.0f} s of audio per CPU "
          f"second ({', '.join(f'{s:.0f}' for s in speeds)}); {statistics.median(walls):.0f} per wall second")


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--short-minutes", type=float, default=10.0,
                        help="a second, shorter length, to show that memory does not grow with length (0: none)")
    parser.add_argument("--source", choices=("espeak", "speechlike"), default="espeak")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds allowed for one child run (default: 120 + 20 s per minute of audio)")
    parser.add_argument("--child", choices=("transcode", "ingest"), help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.child and min(args.minutes, args.short_minutes or args.minutes) * 60 < 2 * EDGE_S + 5:
        parser.error("a recording needs at least 8 s: speech between the edges of room noise")
    if args.child:
        src, out = args.paths
        print(json.dumps((child_transcode if args.child == "transcode" else child_ingest)(src, out)))
        return

    # SIGTERM takes the same way out as Ctrl-C: through the finally blocks, children killed, files removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    lengths = [args.minutes] + ([args.short_minutes] if 0 < args.short_minutes != args.minutes else [])
    version = subprocess.run([ffmpeg.ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    print(f"{version} ({ffmpeg.ffmpeg_exe()}); source: {args.source}; {os.cpu_count()} CPUs; "
          f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    with _tmpdir() as tmp:
        t0 = time.perf_counter()
        base = make_base(tmp, args.source)
        with wave.open(str(base)) as w:
            base_s = w.getnframes() / w.getframerate()
        print(f"base speech: {base_s:.0f} s ({args.source}), made in {time.perf_counter() - t0:.1f} s", flush=True)
        results = []
        for minutes in lengths:
            timeout = args.timeout or 120 + 20 * minutes
            results.append(measure_length(base, tmp, minutes, args.repeats, timeout))
        for r in results:
            report_length(r)
        tts_speed(tmp, args.repeats)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


@contextmanager
def _tmpdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-audio-") as d:
        yield Path(d)


if __name__ == "__main__":
    main()
