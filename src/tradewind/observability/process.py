"""Event-loop lag sampling for a service process.

A callback scheduled every ``interval`` seconds measures how late it runs:
that lateness is what every message waiting on this loop also suffers, so it
shows a blocked or saturated loop before latencies do. Memory and CPU come
from prometheus-client's process collector (``process_resident_memory_bytes``).
"""

from __future__ import annotations

import asyncio
import contextlib

from tradewind.observability import metrics


class LoopLagSampler:
    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.last_lag = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.last_lag = max(0.0, loop.time() - due)
            metrics.EVENT_LOOP_LAG.observe(self.last_lag)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
