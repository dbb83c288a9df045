"""The embedded run: all five services in one process on the in-process bus.

Consumers start before the producer, the replay runs to its end, and the run
stops only once every group has consumed and acknowledged everything, so the
store holds every event the summary counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tradewind.bus import MemoryBus
from tradewind.bus.base import describe
from tradewind.clock import Clock
from tradewind.config import Settings
from tradewind.exchanges.common.recording import open_recording
from tradewind.exchanges.instruments import load_instruments
from tradewind.exchanges.replay import ReplaySource, ReplayStats, bundled_recording
from tradewind.portfolio import Totals
from tradewind.runtime.clock import make_clock
from tradewind.runtime.venues import live_venue
from tradewind.services import (
    DbWriterService,
    ExecutionService,
    RiskService,
    Service,
    ServiceContext,
    SignalService,
    WsService,
)
from tradewind.storage import Store, create_store

Progress = Callable[[int, int], None]


class ServiceFailed(RuntimeError):
    """A service of the run stopped on an error (``fail_fast``): the run ends."""

    def __init__(self, service: str, error: BaseException) -> None:
        super().__init__(f"service {service} failed: {describe(error)}")
        self.service = service
        self.error = error


@dataclass
class PositionSummary:
    exchange: str
    symbol: str
    qty: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    currency: str = ""
    """PnL and fees are in this: the coin for inverse contracts."""
    inverse: bool = False
    """``qty`` counts contracts."""


@dataclass
class RunSummary:
    events_in: int
    parse_errors: dict[str, int]
    bars: int
    signals: int
    approved: int
    rejected: int
    orders: int
    fills: int
    totals: dict[str, Totals]
    """PnL and fees by settlement currency: never added across currencies."""
    positions: list[PositionSummary]
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    rows: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    rejections: dict[str, int] = field(default_factory=dict)
    """Risk's rejections by reason."""
    ignored: dict[str, int] = field(default_factory=dict)
    """Messages read but not used, by reason (see ``ReplayStats.ignored``)."""

    def outcome(self) -> dict[str, Any]:
        """Everything that must be identical between two runs on the same data."""
        return {
            "events_in": self.events_in,
            "parse_errors": dict(self.parse_errors),
            "ignored": dict(sorted(self.ignored.items())),
            "bars": self.bars,
            "signals": self.signals,
            "approved": self.approved,
            "rejected": self.rejected,
            "orders": self.orders,
            "fills": self.fills,
            "by_currency": {c: t.to_json() for c, t in self.totals.items()},
            "positions": [
                (p.exchange, p.symbol, str(p.qty), str(p.avg_price)) for p in self.positions
            ],
        }


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


def count_lines(settings: Settings) -> int:
    total = 0
    for p in settings.feed.data or [bundled_recording()]:
        with open_recording(p) as fh:
            total += sum(1 for line in fh if line.strip())
    return total


class Pipeline:
    """The five services wired to one bus, store and clock.

    ``store=False`` leaves out the store and db_writer (a backtest that needs no
    rows); ``source`` replaces the replay the ws service would build from the
    settings (a backtest reading formats that need per-file options); ``clock``
    is the clock every service reads (give ``source`` the same one);
    ``durable`` has the services keep their state as on a durable bus, so that
    risk, started on a store that already holds a run, rebuilds its positions,
    open orders and trading state from it (``tradewind trade`` on a restart).
    """

    def __init__(
        self,
        settings: Settings,
        bus: MemoryBus | None = None,
        *,
        store: bool = True,
        source: ReplaySource | None = None,
        clock: Clock | None = None,
        fail_fast: bool = True,
        durable: bool = False,
    ) -> None:
        self.settings = settings
        self.failed = False
        b = settings.bus
        self.bus = bus or MemoryBus(
            capacity=b.capacity, max_deliveries=b.max_deliveries, claim_idle_ms=b.claim_idle_ms
        )
        self.clock: Clock = clock or make_clock(settings)
        self.store: Store | None = create_store(settings) if store else None
        instruments = load_instruments()
        ctx = ServiceContext(
            bus=self.bus,
            clock=self.clock,
            settings=settings,
            instruments=instruments,
            store=self.store,
            extras=live_venue(settings, instruments),
            fail_fast=fail_fast,
            durable_state=durable,
        )
        self.db_writer = DbWriterService(ctx) if store else None
        self.execution = ExecutionService(ctx)
        self.risk = RiskService(ctx)
        self.signal = SignalService(ctx)
        lockstep = settings.feed.source == "replay" and settings.feed.speed == 0
        if lockstep and self.db_writer is not None:
            # The store feeds nothing back, so the next batch need not wait for
            # it: its writes (a thread) overlap the services' work on the next.
            self.bus.not_waited_for = frozenset({self.db_writer.name})
        self.ws = WsService(ctx, source, settle=self.bus.wait_idle if lockstep else None)
        self.services: list[Service] = [
            self.ws,
            self.signal,
            self.risk,
            self.execution,
        ]
        if self.db_writer is not None:
            self.services.append(self.db_writer)

    async def start(self) -> None:
        if self.store is not None:
            await self.store.start()
        for s in reversed(self.services):
            await s.start()

    def _check_failed(self) -> None:
        for s in self.services:
            err = s.failed()
            if err is not None:
                self.failed = True
                raise ServiceFailed(s.name, err) from err

    async def wait_done(self, progress: Progress | None = None, total: int = 0) -> None:
        """Until the replay has ended and every event is consumed and acknowledged."""
        stats = self.ws.replay_stats
        while not self.ws.done.is_set():
            self._check_failed()
            if progress is not None and stats is not None:
                progress(stats.lines, total)
            await asyncio.sleep(0.05)
        quiet = 0
        while quiet < 2:
            self._check_failed()
            quiet = quiet + 1 if await self.bus.idle() else 0
            await asyncio.sleep(0.01)
        if progress is not None and stats is not None:
            progress(stats.lines, total)

    async def stop(self) -> None:
        # After a failure the others may wait on what the failed one would
        # have consumed: give them a moment, not the drain timeout.
        if self.failed:
            await asyncio.gather(*(s.stop(0.5) for s in self.services))
        else:
            for s in self.services:
                await s.stop()
        if self.store is not None:
            await self.store.close()

    async def summary(self, duration_s: float) -> RunSummary:
        pf = self.risk.engine.portfolio
        positions = [
            PositionSummary(
                p.exchange,
                p.symbol,
                p.qty,
                p.avg_price,
                p.realized_pnl,
                p.unrealized_pnl,
                p.fees,
                p.currency,
                p.inverse,
            )
            for p in sorted(pf.positions.values(), key=lambda p: (p.exchange, p.symbol))
        ]
        lat = self.execution.latencies
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        stats = self.ws.replay_stats or ReplayStats()
        return RunSummary(
            events_in=self.ws.events_in,
            parse_errors=dict(stats.errors),
            ignored=dict(stats.ignored),
            bars=self.signal.bars_out + self.signal.bars_in,
            signals=self.signal.signals_out,
            approved=self.risk.approved,
            rejected=self.risk.rejected,
            orders=self.execution.orders,
            fills=self.execution.fills,
            totals=pf.totals(),
            positions=positions,
            latency_p50_ms=None if p50 is None else p50 * 1000,
            latency_p99_ms=None if p99 is None else p99 * 1000,
            rows={} if self.db_writer is None else dict(self.db_writer.rows),
            duration_s=duration_s,
            rejections=dict(self.risk.rejected_by),
        )


async def run_embedded(
    settings: Settings,
    progress: Progress | None = None,
    source: ReplaySource | None = None,
    clock: Clock | None = None,
) -> RunSummary:
    pipeline = Pipeline(settings, source=source, clock=clock)
    total = count_lines(settings) if progress is not None else 0
    t0 = time.perf_counter()
    await pipeline.start()
    try:
        await pipeline.wait_done(progress, total)
    finally:
        await pipeline.stop()
    return await pipeline.summary(time.perf_counter() - t0)
