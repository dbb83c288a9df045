"""The db_writer service: every topic into the store, acked only after commit.

Batches are written as they arrive (the bus already batches); every row's key
is its event id, so a batch redelivered after a crash inserts nothing new.

The db_writer process also trims the order-flow streams (``StreamTrimmer``):
its own group exists on every stream once it has subscribed, and trimming
never goes past what a group has not acknowledged, so nothing is trimmed
before it is in the store.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from tradewind.bus import Message, Subscription
from tradewind.bus.trimmer import StreamTrimmer
from tradewind.events import Event, Fill
from tradewind.observability import metrics
from tradewind.services.base import Service, ServiceContext
from tradewind.storage import Store
from tradewind.topics import ALL, DEAD_LETTER

log = structlog.get_logger("tradewind.db_writer")


class DbWriterService(Service):
    name = "db_writer"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        if ctx.store is None:
            raise ValueError("db_writer needs a store")
        self.store: Store = ctx.store
        self.rows: dict[str, int] = {}
        self.errors = 0
        # Dead letters are not trimmed here: the bus caps them (dead_letter_maxlen).
        self.trimmer = StreamTrimmer(
            self.bus, ALL, required_groups=(self.name,), keep_ms=ctx.settings.bus.keep_ms
        )

    async def start(self) -> None:
        await super().start()
        store = self.settings.store
        await self.consume(
            [*ALL, DEAD_LETTER],
            self._on_batch,
            batch=store.batch_size,
            linger_s=store.linger_ms / 1000,
        )
        self.spawn(self.trimmer.run(self._stopping), "trim")

    async def _on_batch(self, sub: Subscription, msgs: list[Message]) -> None:
        events = [m.event for m in msgs]
        t0 = time.perf_counter()
        written = await self._write(events)
        metrics.DB_WRITE_SECONDS.observe(time.perf_counter() - t0)
        await sub.commit(msgs)
        for table, n in written.items():
            self.rows[table] = self.rows.get(table, 0) + n
            metrics.ROWS_WRITTEN.labels(table).inc(n)
        now = time.time_ns()
        for e in events:
            if type(e) is Fill:
                metrics.HOP_LATENCY.labels("fill_to_persisted").observe((now - e.ts_recv) / 1e9)

    async def _write(self, events: list[Event]) -> dict[str, int]:
        """Retry with backoff while the store is down; nothing is acked meanwhile."""
        delay = 0.05
        deadline = time.monotonic() + self.settings.store.retry_max_s
        while True:
            try:
                return await self.store.write(events)
            except (OSError, ConnectionError, TimeoutError) as exc:
                self.errors += 1
                metrics.DB_ERRORS.labels("write").inc()
                if time.monotonic() > deadline or self._stopping.is_set():
                    raise
                log.warning("store write failed; retrying", error=str(exc), delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
