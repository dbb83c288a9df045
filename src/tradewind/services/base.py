"""What every service shares: its context, its consumer loops, start and stop.

A consumer loop fetches a batch, hands it to the service's handler, and the
handler commits (acks, publishes and saves state atomically). A handler that
raises has the batch retried message by message, so one poison message is
isolated, counted and, after ``max_deliveries``, dead-lettered, while the rest
of the batch goes through.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from abc import ABC
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import structlog

from tradewind.bus import Bus, BusError, Message, Subscription
from tradewind.bus.base import describe
from tradewind.clock import Clock
from tradewind.config import Settings
from tradewind.instruments import InstrumentRegistry
from tradewind.observability import metrics
from tradewind.observability.logging import LogThrottle
from tradewind.storage import Store

Handler = Callable[[Subscription, list[Message]], Awaitable[None]]
log = structlog.get_logger("tradewind.service")
_FAILURE_LOG = LogThrottle(10.0)
"""Poison messages log one line per service, topic and interval, with a count."""

GC_GEN0_THRESHOLD = 10_000
"""Allocations between young-generation collections once a service runs.

Every event allocates a few short-lived objects (the event, its delivery,
rows); with CPython's default of 700 the collector runs every few hundred
events and, through its older generations, keeps re-scanning every long-lived
object of the process (bus entries, strategies, books). Measured on the
in-process pipeline (bench/README.md): 130k → 170k ticks/s. Only raised, never
lowered, so a process that chose its own thresholds keeps them."""


def tune_gc(gen0: int = GC_GEN0_THRESHOLD) -> None:
    """Raise the collector's young-generation threshold to ``gen0`` (idempotent)."""
    t0, t1, t2 = gc.get_threshold()
    if 0 < t0 < gen0:
        gc.set_threshold(gen0, t1, t2)


@dataclass
class ServiceContext:
    bus: Bus
    clock: Clock
    settings: Settings
    instruments: InstrumentRegistry
    store: Store | None = None
    consumer: str = "0"
    durable_state: bool = False
    """Save consumer state with every commit (on a bus that survives restarts)."""
    extras: dict[str, object] = field(default_factory=dict)
    fail_fast: bool = False
    """One process, one run (``tradewind run``/``backtest``): a handler error
    ends the service instead of retrying and dead-lettering, since there it
    would only repeat (a read-only database, a strategy that raises)."""


class Service(ABC):
    name: ClassVar[str] = "service"

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.bus = ctx.bus
        self.settings = ctx.settings
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[Subscription] = []
        self._stopping = asyncio.Event()
        self.started = False

    async def start(self) -> None:
        """Restore state and start the consumer loops."""
        tune_gc()
        self.started = True

    def spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        task.set_name(f"{self.name}:{name}")
        self._tasks.append(task)
        return task

    async def consume(
        self,
        topics: Sequence[str],
        handler: Handler,
        group: str | None = None,
        batch: int | None = None,
        partitions: Sequence[int] | None = None,
        linger_s: float = 0.0,
    ) -> Subscription:
        sub = await self.bus.subscribe(topics, group or self.name, self.ctx.consumer, partitions)
        sub.read_ahead = not linger_s  # a lingering loop reads what the linger gathered
        self._subs.append(sub)
        self.spawn(
            self._loop(sub, handler, batch or self.settings.bus.batch_size, linger_s),
            "+".join(topics),
        )
        return sub

    async def _loop(
        self, sub: Subscription, handler: Handler, batch: int, linger_s: float = 0.0
    ) -> None:
        timeout = self.settings.bus.block_ms / 1000.0
        name = self.name
        while not self._stopping.is_set():
            msgs = await sub.fetch(batch, timeout)
            if not msgs:
                continue
            t0 = time.perf_counter()
            try:
                await handler(sub, msgs)
            except asyncio.CancelledError:
                raise
            except BusError as exc:
                # Not the messages' fault (bus down, lease lost): nothing was
                # committed, they stay pending and come back; count no failure.
                log.warning("commit failed; batch left pending", service=name, error=str(exc))
                await asyncio.sleep(0.05)
                continue
            except Exception as exc:
                if self.ctx.fail_fast:
                    raise
                suppressed = _FAILURE_LOG.allow((name, "batch"))
                if suppressed is not None:
                    log.warning(
                        "batch failed; retrying one by one",
                        service=name,
                        size=len(msgs),
                        error=f"{type(exc).__name__}: {exc}"[:500],
                        not_logged_since_last=suppressed,
                        exc_info=not suppressed,
                    )
                await self._isolate(sub, handler, msgs)
            metrics.PROCESSING_SECONDS.labels(name).observe(time.perf_counter() - t0)
            metrics.BATCH_SIZE.labels(name).observe(len(msgs))
            if linger_s and len(msgs) < batch:
                # Let more arrive: the next fetch takes all of it in one batch.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), linger_s)

    async def _isolate(self, sub: Subscription, handler: Handler, msgs: list[Message]) -> None:
        for m in msgs:
            try:
                await handler(sub, [m])
            except asyncio.CancelledError:
                raise
            except BusError as exc:
                log.warning("commit failed; batch left pending", service=self.name, error=str(exc))
                return
            except Exception as exc:
                await self.reject(sub, m, exc)

    async def reject(self, sub: Subscription, m: Message, exc: BaseException) -> None:
        """Count a failed message; the bus retries it, then dead-letters it."""
        metrics.EVENTS_FAILED.labels(self.name, m.topic).inc()
        dead = await sub.fail(m, f"{type(exc).__name__}: {exc}")
        if dead:
            metrics.DEAD_LETTERS.labels(self.name, m.topic).inc()
        suppressed = _FAILURE_LOG.allow((self.name, m.topic, dead))
        if suppressed is None:
            return
        log.error(
            "message failed",
            service=self.name,
            topic=m.topic,
            id=m.id[:100],
            deliveries=m.deliveries,
            dead_lettered=dead,
            error=f"{type(exc).__name__}: {exc}"[:500],
            not_logged_since_last=suppressed,
        )

    async def stop(self, timeout: float | None = None) -> None:
        """Let every loop finish its current batch, then cancel what is left."""
        self._stopping.set()
        for sub in self._subs:
            await sub.close()
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            _done, pending = await asyncio.wait(
                tasks, timeout=timeout or self.settings.drain_timeout_s
            )
            for t in pending:
                t.cancel()
            for t in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        for t in self._tasks:
            if self.ctx.fail_fast:
                break  # the run reports it, in one line
            exc = t.exception() if t.done() and not t.cancelled() else None
            if exc is not None:
                log.error(
                    "task ended with an error",
                    service=self.name,
                    task=t.get_name(),
                    error=describe(exc),
                )
        self._tasks.clear()

    def subscription(self, topic: str) -> Subscription:
        """The subscription of this service's own group that consumes ``topic``
        (for wiring a hand-off between services grouped in one process)."""
        for sub in self._subs:
            if topic in sub.topics and sub.group == self.name:
                return sub
        raise LookupError(f"{self.name} does not consume {topic} in its own group")

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def failed(self) -> BaseException | None:
        """The first exception that ended one of the service's tasks."""
        for t in self._tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                return t.exception()
        return None

    def ready(self) -> tuple[bool, str]:
        """Whether the service should receive work; the reason when not."""
        if not self.started:
            return False, "not started"
        err = self.failed()
        if err is not None:
            return False, f"task failed: {describe(err)}"
        return True, "ok"
