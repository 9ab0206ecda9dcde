"""Content-addressed audio store: every file is kept once, under its SHA-256, in `{root}/ab/cd/<sha>.mp3`.

- `MediaStore.put(path)` hashes while copying in (never reading a file whole into memory), fsyncs, and
  renames into place atomically; storing the same content twice is a no-op.
- `MediaStore.verified_path(sha)` re-hashes the file before it is served and raises `CorruptMedia` when the
  bytes no longer match their name (an SD card or disk going bad): corrupted audio is reported, never
  served. A verification is remembered while the file's size and mtime are unchanged, for at most
  `verify_ttl_s`, so a thousand receivers fetching one bulletin do not cost a thousand hashes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


class CorruptMedia(Exception):
    """A stored file whose content no longer matches its hash."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class MediaStore:
    def __init__(self, root: Path, *, verify_ttl_s: float = 60.0) -> None:
        self.root = root
        self.verify_ttl_s = verify_ttl_s
        self._verified: dict[str, tuple[int, int, float]] = {}  # sha -> (size, mtime_ns, when)
        root.mkdir(parents=True, exist_ok=True)

    def path(self, sha: str) -> Path:
        if not SHA256.match(sha):
            raise ValueError(f"not a SHA-256: {sha!r}")
        return self.root / sha[:2] / sha[2:4] / f"{sha}.mp3"

    def exists(self, sha: str) -> bool:
        return self.path(sha).exists()

    def put(self, source: Path) -> str:
        """Copy `source` into the store; return its SHA-256."""
        h = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        tmp = Path(tmp_name)
        try:
            with source.open("rb") as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            sha = h.hexdigest()
            final = self.path(sha)
            if final.exists() and sha256_file(final) == sha:
                tmp.unlink()
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, 0o644)
                os.replace(tmp, final)
            return sha
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def verified_path(self, sha: str) -> Path:
        """The file's path after checking its content; FileNotFoundError or CorruptMedia otherwise."""
        path = self.path(sha)
        st = path.stat()
        seen = self._verified.get(sha)
        now = time.monotonic()
        if seen and seen[:2] == (st.st_size, st.st_mtime_ns) and now - seen[2] < self.verify_ttl_s:
            return path
        if sha256_file(path) != sha:
            self._verified.pop(sha, None)
            raise CorruptMedia(f"{path} does not match its SHA-256")
        self._verified[sha] = (st.st_size, st.st_mtime_ns, now)
        return path

    def delete(self, sha: str) -> None:
        self.path(sha).unlink(missing_ok=True)
        self._verified.pop(sha, None)

    def copy_out(self, sha: str, dest: Path) -> None:
        shutil.copyfile(self.verified_path(sha), dest)
