"""Failed credentials counted in a sliding window: `FailedAttempts`. The staff sign-in (`services.sessions.
LoginThrottle`) and a receiver's plan fetches (`api.plans`, per receiver and address) are limited with it."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class FailedAttempts:
    """Failed credentials per key in a sliding window of `window_s`; `limits(key)` says how many one key may
    have. While a key is over its limit, `wait_s` is how long until it may try again (the right credentials
    included: guessing stops). Keys without failures in the window are forgotten."""

    def __init__(self, limit: Callable[[str], int], window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.get(key) or deque()
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def wait_s(self, keys: list[str]) -> float:
        now = time.monotonic()
        with self._lock:
            waits = [q[0] + self.window_s - now for k in keys if len(q := self._recent(k, now)) >= self.limit(k)]
        return max(waits, default=0.0)

    def recent(self, key: str) -> int:
        """How many failures `key` has in the window."""
        with self._lock:
            return len(self._recent(key, time.monotonic()))

    def failed(self, keys: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for k in keys:
                q = self._recent(k, now)
                q.append(now)
                self._failures[k] = q
            if now - self._swept > self.window_s:  # keys of a spray of made-up ids do not pile up
                self._swept = now
                for k in [k for k, q in self._failures.items() if not self._recent(k, now)]:
                    del self._failures[k]

    def succeeded(self, keys: list[str]) -> None:
        with self._lock:
            for k in keys:
                self._failures.pop(k, None)
