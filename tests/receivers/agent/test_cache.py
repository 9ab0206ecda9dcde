"""The audio cache keeps to its budget, evicts the least recently used first, never what is still needed,
and throws away a file that no longer matches its hash."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from receivers.agent.cache import MediaCache


def put(cache: MediaCache, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    part = cache.part(sha)
    part.write_bytes(data)
    cache.admit(sha, part)
    return sha


def test_lru_within_budget_never_evicting_protected(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path, budget_bytes=3000)
    a, b = put(cache, os.urandom(1000)), put(cache, os.urandom(1000))
    time.sleep(0.01)
    cache.protected = {a}
    c = put(cache, os.urandom(1000))
    time.sleep(0.01)
    assert cache.get(a)  # touched: now the most recently used
    d = put(cache, os.urandom(1000))  # over budget: b is the least recently used unprotected
    assert [s for s in (a, b, c, d) if cache.path(s).exists()] == [a, c, d]
    cache.protected = {a, c, d}
    put(cache, os.urandom(1000))  # nothing may go: over budget rather than lose what is needed
    assert all(cache.path(s).exists() for s in (a, c, d))


def test_damaged_file_is_dropped(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path, budget_bytes=10_000)
    sha = put(cache, b"x" * 2000)
    path = cache.path(sha)
    path.write_bytes(b"y" * 2000)
    assert cache.get(sha) is None and not path.exists()
