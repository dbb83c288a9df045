"""Live exchange market data: ``run_feeds`` runs every configured exchange's
connections and yields batches of normalized events (see ``base``);
``validate_feed_settings`` checks the feed settings before anything starts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence

from tradewind.config import Settings
from tradewind.events import MarketEvent
from tradewind.exchanges.binance.feed import BinanceCoinmFeed, BinanceFeed, BinanceUsdmFeed
from tradewind.exchanges.bybit.feed import BybitFeed, BybitLinearFeed
from tradewind.exchanges.coinbase.feed import CoinbaseFeed
from tradewind.exchanges.common.feed import Factory, Out, VenueFeed, log
from tradewind.exchanges.common.recording import Recorder
from tradewind.exchanges.common.validate import check
from tradewind.exchanges.kraken.feed import KrakenFeed
from tradewind.exchanges.okx.feed import OkxFeed
from tradewind.observability import metrics

FEEDS: dict[str, Factory] = {
    f.exchange: f
    for f in (
        BinanceFeed,
        BinanceUsdmFeed,
        BinanceCoinmFeed,
        CoinbaseFeed,
        KrakenFeed,
        BybitFeed,
        BybitLinearFeed,
        OkxFeed,
    )
}
OUT_QUEUE = 4096
MAX_BATCH = 4096

__all__ = ["FEEDS", "Feeds", "run_feeds", "validate_feed_settings"]


def validate_feed_settings(settings: Settings) -> None:
    """Every check ``run_feeds`` makes of the feed settings, without connecting:
    exchanges known, symbols present and well written, URLs well formed,
    channels known per exchange, no unknown exchange id in a per-exchange map.

    Raises ``tradewind.config.ConfigError`` naming the key, so the service can
    exit 2 before anything starts.
    """
    check(settings, FEEDS)


class Feeds:
    """Every configured venue and its connection tasks, owned and cancelled together."""

    def __init__(self, settings: Settings, out: Out | None = None) -> None:
        validate_feed_settings(settings)
        feed = settings.feed
        self.out: Out = out or asyncio.Queue(maxsize=OUT_QUEUE)
        self.venues: dict[str, VenueFeed] = {
            name: FEEDS[name](settings, self.out, FEEDS[name].symbols_for(feed))
            for name in feed.exchanges
        }
        self.tasks: list[asyncio.Task[None]] = []

    def record_to(self, recorder: Recorder) -> None:
        """Every raw frame of every venue also goes to ``recorder``."""
        for venue in self.venues.values():
            venue.recorder = recorder

    def start(self, stopping: asyncio.Event) -> None:
        for venue in self.venues.values():
            for conn in venue.connections:
                self.tasks.append(asyncio.create_task(conn.run(stopping), name=f"feed:{conn.name}"))

    def rejected(self) -> dict[str, str]:
        """``exchange:symbol`` → why the venue refuses its subscription."""
        return {
            f"{name}:{symbol}": reason
            for name, venue in self.venues.items()
            for symbol, reason in venue.rejected.items()
        }

    def failed(self) -> BaseException | None:
        for t in self.tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                return t.exception()
        return None

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for venue in self.venues.values():
            await venue.stop()


async def run_feeds(
    settings: Settings, stopping: asyncio.Event, feeds: Feeds | None = None
) -> AsyncIterator[Sequence[MarketEvent]]:
    """Batches of events from every live feed until ``stopping`` is set;
    ``feeds``, when given, is the caller's (to watch its connections and
    subscriptions)."""
    feeds = feeds or Feeds(settings)
    feeds.start(stopping)
    latency = {name: metrics.PUBLISH_LATENCY.labels(name) for name in feeds.venues}
    out = feeds.out
    try:
        while not stopping.is_set():
            err = feeds.failed()
            if err is not None:
                raise err
            try:
                first = await asyncio.wait_for(out.get(), 0.25)
            except TimeoutError:
                continue
            batch = list(first)
            while len(batch) < MAX_BATCH:
                try:
                    batch.extend(out.get_nowait())
                except asyncio.QueueEmpty:
                    break
            now = time.time_ns()
            seen: set[str] = set()
            for e in batch:
                if e.exchange not in seen and e.ts_recv:
                    seen.add(e.exchange)
                    child = latency.get(e.exchange)
                    if child is not None:
                        child.observe(max(0, now - e.ts_recv) / 1e9)
            yield batch
    finally:
        log.info("feeds stopping")
        await feeds.stop()
