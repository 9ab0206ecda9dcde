"""Downloading audio over the receiver's (paid, flaky) link: HTTP with Range resume, retries with backoff,
and the SHA-256 checked before anything may play. Each file crosses the link once: the cache is asked
first, and a cut download continues from its `.part` file instead of starting again."""

from __future__ import annotations

import asyncio
import errno
import logging
import random
from pathlib import Path
from urllib.parse import urljoin

import httpx

from receivers.protocol import MediaRef
from receivers.transport import backoff_delay

from .cache import MediaCache, sha256_of

log = logging.getLogger(__name__)


class FetchFailed(Exception):
    """The audio could not be fetched intact; the message says why."""


class NotRetryable(FetchFailed):
    """Asking again cannot help (the audio is not there, or no URL to ask)."""


class Fetcher:
    def __init__(self, cache: MediaCache, base_url: str | None, *, attempts: int = 6,
                 backoff: tuple[float, float] = (0.5, 30.0), timeout_s: float = 30.0,
                 rng: random.Random | None = None) -> None:
        self.cache = cache
        self.base_url = base_url
        self.attempts = attempts
        self.backoff = backoff
        self.timeout_s = timeout_s
        self.rng = rng or random.Random()
        self.bytes_fetched = 0  # what crossed the link, for the benchmark and telemetry
        self._locks: dict[str, asyncio.Lock] = {}
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def _client(self, url: str) -> httpx.AsyncClient:
        """One client per kind of URL for the agent's life: connections are reused, and the certificate
        store (megabytes on a Pi Zero) is loaded only if an https URL is ever fetched."""
        secure = url.startswith("https://")
        if secure not in self._clients:
            # Idle connections go before the server's keep-alive timeout (uvicorn: 5 s) closes them mid-request.
            self._clients[secure] = httpx.AsyncClient(timeout=self.timeout_s, verify=secure, trust_env=False,
                                                      limits=httpx.Limits(keepalive_expiry=2.0))
        return self._clients[secure]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def url(self, ref: MediaRef) -> str:
        if ref.url.startswith(("http://", "https://")):
            return ref.url
        if not self.base_url:
            raise NotRetryable(f"relative media URL {ref.url!r} but no controller_url configured")
        return urljoin(self.base_url.rstrip("/") + "/", ref.url.lstrip("/"))

    def lock(self, sha: str) -> asyncio.Lock:
        """One writer per piece of audio at a time (downloads and inline audio alike)."""
        return self._locks.setdefault(sha, asyncio.Lock())

    async def fetch(self, ref: MediaRef) -> Path:
        """The verified local file for `ref`, downloading (or resuming) it if needed."""
        async with self.lock(ref.sha256):  # two items with the same audio share one download
            cached = await asyncio.to_thread(self.cache.get, ref.sha256)
            if cached:
                return cached
            last = "no attempt"
            for attempt in range(self.attempts):
                try:
                    return await self._download(ref)
                except OSError as e:
                    if e.errno == errno.ENOSPC:
                        # Retrying cannot help; give the space back so the outbox can still record this.
                        self.cache.part(ref.sha256).unlink(missing_ok=True)
                        raise FetchFailed(f"disk full: no space for {ref.size} bytes of audio ({e})") from None
                    last = f"{type(e).__name__}: {e}"
                    log.warning("fetch %s failed (attempt %d): %s", ref.sha256[:12], attempt + 1, last)
                    await asyncio.sleep(backoff_delay(attempt, *self.backoff, self.rng))
                except NotRetryable:
                    raise
                except (httpx.HTTPError, FetchFailed) as e:
                    last = f"{type(e).__name__}: {e}"
                    log.warning("fetch %s failed (attempt %d): %s", ref.sha256[:12], attempt + 1, last)
                    await asyncio.sleep(backoff_delay(attempt, *self.backoff, self.rng))
            raise FetchFailed(f"could not fetch {ref.sha256[:12]} after {self.attempts} attempts: {last}")

    async def _download(self, ref: MediaRef) -> Path:
        part = self.cache.part(ref.sha256)
        have = part.stat().st_size if part.exists() else 0
        if have > ref.size:
            part.unlink()
            have = 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        url = self.url(ref)
        async with self._client(url).stream("GET", url, headers=headers) as r:
            if r.status_code == 416 and have == ref.size:
                pass  # already complete: fall through to verification
            elif r.status_code == 206 and have:
                await self._append(r, part, "ab")
            elif r.status_code == 200:
                await self._append(r, part, "wb")
            elif 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                raise NotRetryable(f"HTTP {r.status_code} for {url}: the controller does not have this audio")
            else:
                raise FetchFailed(f"HTTP {r.status_code} for {url}")
        digest = await asyncio.to_thread(sha256_of, part)
        if digest != ref.sha256:
            part.unlink(missing_ok=True)  # damaged on the way: never played, fetched again from zero
            raise FetchFailed(f"downloaded audio does not match its SHA-256 ({digest[:12]}…)")
        return await asyncio.to_thread(self.cache.admit, ref.sha256, part)

    async def _append(self, response: httpx.Response, part: Path, mode: str) -> None:
        with part.open(mode) as f:
            async for chunk in response.aiter_bytes(64 * 1024):
                f.write(chunk)
                self.bytes_fetched += len(chunk)
            f.flush()
