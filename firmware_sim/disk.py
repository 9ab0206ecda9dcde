"""`LimitedDisk`: a small disk for one simulated receiver, so tests can fill it up.

It mounts a size-limited tmpfs on a directory (meant as the receiver's `state_dir`): writes past its size
fail with `OSError(ENOSPC)`, as on a full SD card, and the agent's `disk_free_mb` reads the real numbers.
What is written survives an agent killed and started again on the same directory, until the `with` block
ends and the tmpfs is unmounted (its contents are then gone).

`fill(leave_bytes)` takes up all but `leave_bytes` of the free space with a hidden filler file (`FILLER`,
at the top of the mount); `free()` deletes it. tmpfs counts space in 4 KiB pages, so the size is rounded up
to a page and `fill` leaves between `leave_bytes` and `leave_bytes + 4095` bytes free.

Mounting needs root (or CAP_SYS_ADMIN); when it fails, `DiskSimUnavailable` says why, and the caller
decides whether that skips or fails the test.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path
from types import TracebackType

FILLER = ".disk-sim-filler"
_CHUNK = 1 << 20


class DiskSimUnavailable(RuntimeError):
    """The size-limited disk could not be mounted (not root, no `mount`, no tmpfs)."""


class LimitedDisk:
    def __init__(self, path: Path, size_bytes: int) -> None:
        if size_bytes <= 0:
            raise ValueError(f"size_bytes must be positive, not {size_bytes}")
        self.path = Path(path)
        self.size_bytes = size_bytes
        self._mounted = False

    @property
    def filler(self) -> Path:
        return self.path / FILLER

    @property
    def free_bytes(self) -> int:
        return shutil.disk_usage(self.path).free

    @property
    def total_bytes(self) -> int:
        return shutil.disk_usage(self.path).total

    def __enter__(self) -> LimitedDisk:
        if self._mounted:
            raise RuntimeError(f"{self.path} is already mounted by this LimitedDisk")
        self.path.mkdir(parents=True, exist_ok=True)
        if any(self.path.iterdir()):
            raise ValueError(f"{self.path} is not empty; a tmpfs mounted on it would hide what is there")
        kib = -(-self.size_bytes // 1024)
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k,mode=0755", "tmpfs", str(self.path)],
                                  capture_output=True, text=True, check=False)
        except OSError as e:  # no mount program
            raise DiskSimUnavailable(f"cannot run mount: {e}") from e
        if done.returncode != 0:
            raise DiskSimUnavailable(f"mount -t tmpfs on {self.path} failed (needs root): {done.stderr.strip()}")
        self._mounted = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.unmount()

    def unmount(self) -> None:
        if not self._mounted:
            return
        done = subprocess.run(["umount", str(self.path)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            # Something still holds a file open (an agent not stopped yet): detach now, the kernel frees the
            # tmpfs when the last file closes, so no mount outlives the test.
            lazy = subprocess.run(["umount", "-l", str(self.path)], capture_output=True, text=True, check=False)
            if lazy.returncode != 0:
                raise OSError(f"umount {self.path} failed: {done.stderr.strip()} / {lazy.stderr.strip()}")
        self._mounted = False

    def fill(self, leave_bytes: int = 0) -> int:
        """Grow (or shrink) the filler until about `leave_bytes` stay free. Returns the filler's size."""
        if not self._mounted:
            raise RuntimeError("fill() outside the with block")
        if leave_bytes < 0:
            raise ValueError(f"leave_bytes must be >= 0, not {leave_bytes}")
        block = os.statvfs(self.path).f_frsize
        have = self.filler.stat().st_size if self.filler.exists() else 0
        change = self.free_bytes - leave_bytes
        if change < 0:  # too little free: give back whole pages, rounding so at least leave_bytes are free
            target = max(0, (have + change) // block * block)
            if have:
                os.truncate(self.filler, target)
            return target
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            todo = change // block * block  # written bytes, not a sparse truncate: tmpfs only counts real pages
            zeros = bytes(min(_CHUNK, todo))
            while todo > 0:
                try:
                    todo -= os.write(fd, zeros[:todo])
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
        finally:
            os.close(fd)
        return self.filler.stat().st_size

    def free(self) -> None:
        """Delete the filler: the disk has its whole size back, less what the receiver wrote."""
        self.filler.unlink(missing_ok=True)
