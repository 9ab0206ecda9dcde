"""A fresh machine has no `ffmpeg` on PATH (only the imageio-ffmpeg wheel's): the application must still
import with warnings as errors, and an announcement must still be composed and encoded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from audio.ingest import BroadcastFormat

SCRIPT = r"""
import sys, warnings
from pathlib import Path

warnings.simplefilter("error")  # as pytest.ini_options has it
warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
import controller.app  # noqa: F401  (pydub used to warn here, and warnings were errors)
from audio.ffmpeg import ffmpeg_exe
from audio.ingest import BroadcastFormat, ingest
from audio.tts import EspeakEngine
from controller.content import speak

class Layout:
    chime_before = chime_after = True
    repeat = 2
    gap_s = 1.0

out = sys.argv[1]
wav = out + ".wav"
speak(EspeakEngine(), "Bà con chú ý, sáng mai có mưa lớn.", "vi", Path(out + ".cache"),
      Path(wav), Layout())
result = ingest(Path(wav), Path(out), BroadcastFormat())
print(ffmpeg_exe())
print(result.duration_s, result.loudness_after)
"""


def test_app_imports_and_composes_an_announcement_without_ffmpeg_on_path(tmp_path: Path) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    env = {"HOME": str(tmp_path), "PATH": str(empty), "PYTHONPATH": str(Path(__file__).parents[2])}
    if "LD_LIBRARY_PATH" in os.environ:
        env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
    out = tmp_path / "announcement.mp3"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    exe, figures = done.stdout.strip().splitlines()[-2:]
    assert "imageio_ffmpeg" in exe  # not a system ffmpeg: PATH had none
    duration, loudness = map(float, figures.split())
    # Two readings of the sentence, a gap and two chimes: several seconds, at the broadcast loudness.
    assert duration > 5.0
    assert abs(loudness - BroadcastFormat().target_lufs) <= 1.0
    assert out.stat().st_size > 10_000
