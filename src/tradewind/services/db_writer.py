"""The db_writer service: every topic into the store, acked only after commit.

Batches are written as they arrive (the bus already batches); every row's key
is its event id, so a batch redelivered after a crash inserts nothing new.

The db_writer process also trims the order-flow streams (``StreamTrimmer``):
its own group exists on every stream once it has subscribed, and trimming
never goes past what a group has not acknowledged, so nothing is trimmed
before it is in the store.

It also maintains the store: partitions created ahead of the clock, expired
ones dropped (retention, against ``ts_event``), the database's size exported
for the disk-full alert. The clock is the run's: the wall clock live, the
replayed exchange time in a replay, so ``tradewind run --db postgresql://…``
of a 2024 recording keeps what it stores (on the wall clock every partition
was already expired), and a replay that has not yet read an event does no
pass at all (its clock still says 1970). When the database is full,
the batch in hand is retried (without a deadline) and nothing is
acknowledged; ``/readyz`` and ``tradewind_db_full`` say so until a write
succeeds again. A full WAL volume does not refuse a write, it stops the
server (PANIC, then a failed recovery): the store reports the lost
connection's "No space left on device" as full, and the outage that follows
keeps the batch held the same way. Any other outage holds it too, past the
store's own retries (``/readyz``: database unavailable): an unreachable
database is never the messages' fault, so they are never failed or
dead-lettered for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from tradewind.bus import BusError, Message, Subscription
from tradewind.bus.trimmer import StreamTrimmer
from tradewind.events import Event, Fill
from tradewind.observability import metrics
from tradewind.services.base import Service, ServiceContext
from tradewind.services.downsample import Downsampler
from tradewind.storage import Store
from tradewind.storage.base import StoreFullError
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
        self.full = False
        self.unavailable = False
        """True while writes fail for want of a database (not of space)."""
        store = ctx.settings.store
        self.downsampler = Downsampler(store.downsample_quotes_ms, store.downsample_book_s)
        """True while the database refuses writes for lack of space."""
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
        metrics.DB_VOLUME.set(self.settings.store.volume_bytes)
        self.spawn(self._maintain_loop(), "maintain")

    def ready(self) -> tuple[bool, str]:
        if self.full:
            return False, "database full: writes held, nothing acknowledged"
        if self.unavailable:
            return False, "database unavailable: writes held, nothing acknowledged"
        return super().ready()

    async def maintain(self) -> None:
        """One pass: partitions ahead, expired ones dropped, the size reported."""
        now = self.ctx.clock.now_ns()
        if now <= 0:
            return
        done = await self.store.maintain(now)
        for name in done.created:
            metrics.PARTITIONS_CREATED.labels(name.rsplit("_p", 1)[0]).inc()
        for table, names in done.dropped.items():
            metrics.PARTITIONS_DROPPED.labels(table).inc(len(names))
            log.info("retention dropped partitions", table=table, partitions=names)
        if done.freed_bytes:
            metrics.RETENTION_FREED.inc(done.freed_bytes)
        if done.size_bytes is not None:
            metrics.DB_SIZE.set(done.size_bytes)

    async def _maintain_loop(self) -> None:
        every = self.settings.store.maintenance_interval_s
        while not self._stopping.is_set():
            try:
                await self.maintain()
            except (OSError, ConnectionError, TimeoutError, StoreFullError) as exc:
                metrics.DB_ERRORS.labels("maintenance").inc()
                log.warning("store maintenance failed; next pass later", error=str(exc))
            except Exception as exc:  # a database error must not end the writer
                metrics.DB_ERRORS.labels("maintenance").inc()
                log.error("store maintenance failed", error=repr(exc)[:500])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), every)

    async def _on_batch(self, sub: Subscription, msgs: list[Message]) -> None:
        events = [m.event for m in msgs]
        if self.downsampler.active:
            events = self.downsampler.filter(events)
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
        """Retry with backoff, without a deadline, while the store is full or
        down; nothing is acked meanwhile. Only a stop leaves the batch pending
        (not failed) for whoever comes next. In one process (``fail_fast``:
        ``run``, ``backtest``) there is no one to wait for: past
        ``retry_max_s`` the error ends the run."""
        delay = 0.05
        deadline = time.monotonic() + self.settings.store.retry_max_s
        while True:
            try:
                written = await self.store.write(events)
            except StoreFullError as exc:
                if not self.full:
                    log.error("database full: holding batches until space returns", error=str(exc))
                self.full = True
                metrics.DB_FULL.set(1)
            except (OSError, ConnectionError, TimeoutError) as exc:
                self.errors += 1
                metrics.DB_ERRORS.labels("write").inc()
                if self.ctx.fail_fast and time.monotonic() > deadline:
                    raise
                if not self.unavailable and not self.full:
                    log.error("database unavailable: holding batches", error=str(exc))
                # Still full while the server that ran out of space is down.
                self.unavailable = not self.full
                log.warning("store write failed; retrying", error=str(exc), delay=delay)
            else:
                if self.full or self.unavailable:
                    log.info("database writable again; writing")
                self.full = self.unavailable = False
                metrics.DB_FULL.set(0)
                return written
            if self._stopping.is_set():
                # Not the messages' fault: left pending, not failed.
                raise BusError("database full or unavailable; batch left pending") from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
