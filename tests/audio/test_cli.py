"""The command-line twins of the upload and announcement APIs."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from controller.cli import app
from tests.samples import integrated_lufs, make

runner = CliRunner()


def test_ingest_command(tmp_path: Path) -> None:
    source = make(tmp_path / "phone.amr", gain_db=-30, lead_silence_s=2)
    r = runner.invoke(app, ["ingest", str(source), "-o", str(tmp_path / "out.mp3")])
    assert r.exit_code == 0, r.output
    assert "LUFS" in r.output and "silence trimmed" in r.output
    assert abs(integrated_lufs(tmp_path / "out.mp3")[0] + 16) <= 1


def test_ingest_refuses_junk_with_a_message(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(os.urandom(20_000))
    r = runner.invoke(app, ["ingest", str(junk)])
    assert r.exit_code == 2 and "not audio" in r.output
    assert not (tmp_path / "junk.broadcast.mp3").exists()


def test_tts_command(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TT_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "a.mp3"
    r = runner.invoke(app, ["tts", "Bà con thôn 3 họp lúc 8h.", "-o", str(out), "--chime", "--repeat", "2"])
    assert r.exit_code == 0, r.output
    assert "reading: Bà con thôn ba họp lúc tám giờ." in r.output
    assert out.stat().st_size > 10_000 and abs(integrated_lufs(out)[0] + 16) <= 1
    assert runner.invoke(app, ["tts", "x", "-o", str(out), "--engine", "festival"]).exit_code == 2
