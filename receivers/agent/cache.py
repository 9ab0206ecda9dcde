"""The receiver's audio cache on its SD card: files named by SHA-256, kept under a byte budget.

Least recently used files go first, but never one that an upcoming item needs (`protect`). A file that
no longer matches its hash is deleted (and so fetched again). Partial downloads live beside as `.part`
files, so a download cut by a dropped link or a power cut resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

# A file used is marked recently used (its modification time) at most this often: least recently used to the
# minute is enough, and each mark is a metadata write on the SD card.
TOUCH_AFTER_S = 60.0


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class MediaCache:
    def __init__(self, root: Path, budget_bytes: int) -> None:
        self.root = root
        self.budget_bytes = budget_bytes
        self.protected: set[str] = set()
        root.mkdir(parents=True, exist_ok=True)

    def path(self, sha: str) -> Path:
        return self.root / f"{sha}.mp3"

    def part(self, sha: str) -> Path:
        return self.root / f"{sha}.part"

    def get(self, sha: str) -> Path | None:
        """The cached file if present and intact (a damaged one is deleted); marks it recently used."""
        path = self.path(sha)
        if not path.exists():
            return None
        if sha256_of(path) != sha:
            path.unlink(missing_ok=True)
            return None
        if time.time() - path.stat().st_mtime > TOUCH_AFTER_S:
            os.utime(path)
        return path

    def admit(self, sha: str, incoming: Path) -> Path:
        """Move a verified download into the cache, then evict down to the budget."""
        final = self.path(sha)
        os.replace(incoming, final)
        self.evict()
        return final

    def used_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.iterdir() if p.is_file())

    def evict(self) -> list[str]:
        """Delete least recently used, unprotected files until the cache fits its budget."""
        files = sorted((p for p in self.root.glob("*.mp3")), key=lambda p: p.stat().st_mtime)
        used = self.used_bytes()
        evicted = []
        for p in files:
            if used <= self.budget_bytes:
                break
            if p.stem in self.protected:
                continue
            used -= p.stat().st_size
            p.unlink(missing_ok=True)
            evicted.append(p.stem)
        return evicted
