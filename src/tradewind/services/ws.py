"""The ws service: exchange market data onto the ``market`` topic.

In replay mode it reads recordings; in live mode it runs the exchange feeds
(``tradewind.exchanges.feeds``). Either way it publishes normalized events in
batches and keeps the last trade price per symbol as the run's mark.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from tradewind.clock import ReplayClock
from tradewind.events import MarketEvent, Trade
from tradewind.exchanges.replay import ReplaySource, ReplayStats, bundled_recording
from tradewind.observability import metrics
from tradewind.services.base import Service, ServiceContext
from tradewind.topics import MARKET


class WsService(Service):
    name = "ws"

    def __init__(
        self,
        ctx: ServiceContext,
        source: ReplaySource | None = None,
        settle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``settle``, when given, is awaited after each published batch: the
        embedded replay passes the bus's ``wait_idle`` to run in lockstep."""
        super().__init__(ctx)
        self.settle = settle
        feed = ctx.settings.feed
        if source is None and feed.source == "replay":
            clock = ctx.clock if isinstance(ctx.clock, ReplayClock) else None
            source = ReplaySource(feed.data or [bundled_recording()], speed=feed.speed, clock=clock)
        self.source = source
        self.events_in = 0
        self.last_price: dict[tuple[str, str], float] = {}
        self.last_event_at: dict[tuple[str, str], float] = {}
        self.done = asyncio.Event()

    @property
    def replay_stats(self) -> ReplayStats | None:
        return None if self.source is None else self.source.stats

    async def start(self) -> None:
        await super().start()
        if self.source is not None:
            self.spawn(self._pump(self.source.batches(self.settings.bus.batch_size)), "replay")
        else:
            from tradewind.exchanges.feeds import run_feeds

            self.spawn(self._pump(run_feeds(self.settings, self._stopping)), "live")

    async def _pump(self, batches: AsyncIterator[Sequence[MarketEvent]]) -> None:
        published = metrics.EVENTS_PUBLISHED.labels(self.name, MARKET)
        try:
            async for batch in batches:
                if self._stopping.is_set():
                    break
                await self.bus.publish(MARKET, batch)
                if self.settle is not None:
                    await self.settle()
                self.events_in += len(batch)
                published.inc(len(batch))
                now = time.time()
                for e in batch:
                    if type(e) is Trade:
                        self.last_price[(e.exchange, e.symbol)] = e.price
                    self.last_event_at[(e.exchange, e.symbol)] = now
        finally:
            self.done.set()
            for (ex, sym), at in self.last_event_at.items():
                metrics.FEED_LAST_EVENT.labels(ex, sym).set(at)

    def feed_age(self) -> float:
        """Seconds since the stalest symbol's last event (0 when none expected yet)."""
        if not self.last_event_at:
            return 0.0
        return time.time() - min(self.last_event_at.values())
