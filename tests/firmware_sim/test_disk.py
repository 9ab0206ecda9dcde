"""`LimitedDisk`: a real size-limited tmpfs. Writing past its size fails with ENOSPC; fill and free move the
free space where the test wants it; the mount never outlives the `with` block."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim.disk import FILLER, DiskSimUnavailable, LimitedDisk

SIZE = 256 * 1024
PAGE = 4096


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[LimitedDisk]:
    d = LimitedDisk(tmp_path / "rx", SIZE)
    try:
        d.__enter__()
    except DiskSimUnavailable as e:
        pytest.skip(f"no size-limited disk here: {e}")
    try:
        yield d
    finally:
        d.__exit__(None, None, None)
    assert not os.path.ismount(d.path)


def write(path: Path, n: int) -> None:
    with path.open("wb") as f:
        f.write(os.urandom(n))


def test_writing_past_the_size_fails_with_enospc(disk: LimitedDisk) -> None:
    assert os.path.ismount(disk.path) and disk.total_bytes == SIZE
    with pytest.raises(OSError) as e:
        write(disk.path / "too-big.mp3", SIZE + 50_000)
    assert e.value.errno == errno.ENOSPC
    (disk.path / "too-big.mp3").unlink()
    assert disk.free_bytes == SIZE


def test_fill_leaves_what_was_asked_and_free_gives_it_back(disk: LimitedDisk) -> None:
    write(disk.path / "state.json", 10_000)  # 3 pages
    disk.fill(leave_bytes=64 * 1024)
    assert disk.free_bytes == 64 * 1024
    write(disk.path / "fits.mp3", 64 * 1024)
    with pytest.raises(OSError) as e:
        write(disk.path / "one-byte-more", 1)
    assert e.value.errno == errno.ENOSPC
    (disk.path / "fits.mp3").unlink()
    (disk.path / "one-byte-more").unlink()

    disk.fill(leave_bytes=100_000)  # less full than now: the filler shrinks, to whole pages
    assert 100_000 <= disk.free_bytes < 100_000 + PAGE
    disk.fill(leave_bytes=0)
    assert disk.free_bytes == 0
    disk.free()
    assert not (disk.path / FILLER).exists()
    assert disk.free_bytes == SIZE - 3 * PAGE
    assert (disk.path / "state.json").stat().st_size == 10_000


def test_files_stay_until_the_disk_is_unmounted_even_when_one_is_held_open(tmp_path: Path) -> None:
    path = tmp_path / "rx"
    try:
        with LimitedDisk(path, SIZE) as disk:
            write(disk.path / "state.json", 100)
            held = (disk.path / "state.json").open("rb")  # an agent that was not stopped holds a file open
    except DiskSimUnavailable as e:
        pytest.skip(f"no size-limited disk here: {e}")
    try:
        assert not os.path.ismount(path) and list(path.iterdir()) == []  # detached all the same
        assert len(held.read()) == 100
    finally:
        held.close()


def test_refuses_to_hide_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text("{}")
    with pytest.raises(ValueError, match="not empty"), LimitedDisk(tmp_path, SIZE):
        pass
    assert not os.path.ismount(tmp_path)


def test_says_so_when_it_cannot_mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no mount program to be found
    with pytest.raises(DiskSimUnavailable), LimitedDisk(tmp_path / "rx", SIZE):
        pass


def test_fill_needs_the_mount(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        LimitedDisk(tmp_path, SIZE).fill()
