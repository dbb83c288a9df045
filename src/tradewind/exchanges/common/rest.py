"""REST GETs for snapshots and trade backfill, rate-limited per exchange.

Requests are rare (a resync, a reconnect), so the standard library's client
runs in a worker thread with a hard timeout rather than adding an HTTP
dependency; the event loop never blocks on it.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections import deque

MAX_BODY = 32 * 1024 * 1024


class RestError(Exception):
    def __init__(self, status: int, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.retry_after = retry_after

    @property
    def rate_limited(self) -> bool:
        """Binance answers 429, then 418 (banned) to a client that goes on."""
        return self.status in (418, 429)


class RateLimiter:
    """Token bucket: at most ``rate`` requests per second after a burst of ``burst``."""

    def __init__(self, rate: float, burst: int = 2) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self.tokens) / self.rate)


class WindowLimiter:
    """At most ``count`` acquisitions in any ``window_s`` (a venue's "N messages
    per second" taken literally: N may go at once, the N+1st waits)."""

    def __init__(self, count: int, window_s: float = 1.0) -> None:
        self.count = count
        self.window_s = window_s
        self.times: deque[float] = deque(maxlen=count)
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            if len(self.times) == self.count:
                wait = self.times[0] + self.window_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            self.times.append(time.monotonic())


def _get(url: str, timeout: float) -> bytes:
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body: bytes = resp.read(MAX_BODY + 1)
    except urllib.error.HTTPError as exc:
        retry = exc.headers.get("Retry-After") if exc.headers is not None else None
        raise RestError(
            exc.code,
            exc.read(500).decode(errors="replace"),
            float(retry) if retry and retry.isdigit() else None,
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise RestError(0, str(exc)) from None
    if len(body) > MAX_BODY:
        raise RestError(0, "response too large")
    return body


async def get(url: str, limiter: RateLimiter, timeout: float) -> bytes:
    await limiter.acquire()
    return await asyncio.wait_for(asyncio.to_thread(_get, url, timeout), timeout + 1.0)
