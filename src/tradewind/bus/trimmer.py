"""Periodic trimming of consumed stream entries.

Order-flow streams have no length cap (a cap could drop what db_writer has not
persisted), so without this they grow for as long as the system runs. One
pass calls ``Bus.trim_consumed`` per topic; it is idempotent, so any number of
processes may run it, and a pass that fails or times out is simply retried on
the next tick. Each pass is bounded in time so a slow Redis cannot stall the
process's shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence

import structlog

from tradewind.bus.base import Bus, BusError
from tradewind.observability import metrics

log = structlog.get_logger("tradewind.bus.trimmer")

TRIM_INTERVAL_S = 30.0
"""Seconds between passes (each jittered by ±20 % so replicas do not align)."""
TRIM_KEEP_MS = 600_000
"""Entries younger than this stay even when consumed: a window for operators
(``redis-cli XRANGE``, ``Bus.read_all``) and post-run checks, bounded by the
order-flow rate times the window. The default of ``TRADEWIND_BUS__KEEP_MS``."""
TRIM_TIMEOUT_S = 10.0


class StreamTrimmer:
    def __init__(
        self,
        bus: Bus,
        topics: Sequence[str],
        required_groups: Sequence[str],
        interval_s: float = TRIM_INTERVAL_S,
        keep_ms: int = TRIM_KEEP_MS,
        timeout_s: float = TRIM_TIMEOUT_S,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.bus = bus
        self.topics = tuple(topics)
        self.required_groups = tuple(required_groups)
        self.interval_s = interval_s
        self.keep_ms = keep_ms
        self.timeout_s = timeout_s
        self._jitter = jitter
        self.trimmed: dict[str, int] = {}

    async def run_once(self) -> int:
        """One pass over every topic; returns the entries dropped."""
        total = 0
        for topic in self.topics:
            try:
                n = await asyncio.wait_for(
                    self.bus.trim_consumed(
                        topic, keep_ms=self.keep_ms, required_groups=self.required_groups
                    ),
                    self.timeout_s,
                )
            except (BusError, TimeoutError, OSError) as exc:
                metrics.STREAM_TRIM_ERRORS.labels(topic).inc()
                log.warning("stream trim failed; next pass retries", topic=topic, error=str(exc))
                continue
            if n:
                metrics.STREAM_TRIMMED.labels(topic).inc(n)
                self.trimmed[topic] = self.trimmed.get(topic, 0) + n
                total += n
        try:
            await asyncio.wait_for(self.bus.cap_dead_letters(), self.timeout_s)
        except (BusError, TimeoutError, OSError) as exc:
            log.warning("dead-letter cap failed; next pass retries", error=str(exc))
        return total

    def _delay(self) -> float:
        return self.interval_s * (0.8 + 0.4 * self._jitter())

    async def run(self, stop: asyncio.Event) -> None:
        """A pass every jittered interval until ``stop`` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._delay())
            if stop.is_set():
                return
            await self.run_once()
