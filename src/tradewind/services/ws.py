"""The ws service: exchange market data onto the ``market`` topic.

In replay mode it reads recordings; in live mode it runs the exchange feeds
(``tradewind.exchanges.feeds``). Either way it publishes normalized events in
batches and keeps the last trade price per symbol as the run's mark.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING

import structlog

from tradewind.bus import NotSettled
from tradewind.bus.redis import RedisBus
from tradewind.clock import ReplayClock
from tradewind.config import Settings
from tradewind.events import Bar, BookDelta, MarketEvent, Quote, Trade
from tradewind.exchanges.replay import ReplaySource, ReplayStats, bundled_recording
from tradewind.observability import metrics
from tradewind.services.base import Service, ServiceContext
from tradewind.topics import MARKET

if TYPE_CHECKING:
    from tradewind.exchanges.feeds import Feeds

# The ``kind`` label of tradewind_feed_messages_total, as the live feeds set it.
_KIND: dict[type, str] = {Trade: "trade", Quote: "quote", BookDelta: "book", Bar: "bar"}
_EXCHANGE = attrgetter("exchange")
_SYMBOL = attrgetter("symbol")
log = structlog.get_logger("tradewind.ws")


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
            source = ReplaySource(
                feed.data or [bundled_recording()], speed=feed.speed, clock=clock, fmt=feed.format
            )
        self.feeds: Feeds | None = None
        if source is None and feed.source == "live":
            from tradewind.exchanges.feeds import Feeds

            # Validates first: a bad feed setting stops the process (exit 2)
            # before it connects. Kept so a dashboard can watch the connections.
            self.feeds = Feeds(ctx.settings)
        self.source = source
        self.events_in = 0
        self.last_price: dict[tuple[str, str], float] = {}
        self.last_event_at: dict[tuple[str, str], float] = {}
        self.done = asyncio.Event()
        self.finished = False
        """The source ended and everything was published (not a stop or a crash)."""
        self.lockstep_broken = ""
        """Why a lockstep replay stopped waiting for its consumers ("" while it
        holds): the run's outcome then depends on timing, not on its data alone."""

    def ready(self) -> tuple[bool, str]:
        """Not ready while a venue refuses a subscription (it is retried meanwhile)."""
        ok, why = super().ready()
        if ok and self.feeds is not None:
            rejected = self.feeds.rejected()
            if rejected:
                names = ", ".join(sorted(rejected))
                return False, f"subscription rejected: {names}"
        return ok, why

    @property
    def replay_stats(self) -> ReplayStats | None:
        return None if self.source is None else self.source.stats

    async def start(self) -> None:
        await super().start()
        if self.source is not None:
            self.spawn(self._pump(self.source.batches(self.settings.bus.batch_size)), "replay")
        else:
            from tradewind.exchanges.feeds import run_feeds

            self.spawn(self._pump(run_feeds(self.settings, self._stopping, self.feeds)), "live")

    @property
    def replay_key(self) -> str | None:
        """State key of the replay's progress, when it must survive a restart.

        On a durable bus a restarted replay skips what it already published
        (the count is committed with each batch) instead of publishing it again.
        """
        if self.source is None or not self.ctx.durable_state:
            return None
        names = ",".join(p.name for p in self.source.paths)
        return "ws:replay:" + hashlib.blake2b(names.encode(), digest_size=8).hexdigest()

    async def _resume_from(self) -> int:
        key = self.replay_key
        raw = None if key is None else await self.bus.get_state(key)
        if raw is None:
            return 0
        saved = json.loads(raw)
        if saved.get("lockstep_broken"):
            self._break_lockstep(str(saved["lockstep_broken"]))
        return int(saved["events"])

    def _progress(self, events: int, done: bool) -> bytes:
        """The replay's committed progress and, once ``done``, its result."""
        state: dict[str, object] = {"events": events, "done": done}
        if self.settle is not None:
            state["deterministic"] = not self.lockstep_broken
        if self.lockstep_broken:
            state["lockstep_broken"] = self.lockstep_broken
        return json.dumps(state).encode()

    def _break_lockstep(self, why: str) -> None:
        if not self.lockstep_broken:
            metrics.LOCKSTEP_BROKEN.set(1)
            log.error(
                "lockstep replay gave up waiting: this run is no longer a function of its data",
                reason=why,
            )
        self.lockstep_broken = why

    async def _settle(self) -> None:
        """Wait for every consumer, unless a wait already gave up: from then on the
        run is not deterministic anyway, and a group gone for good would stall
        every later batch for the whole limit."""
        if self.settle is None or self.lockstep_broken:
            return
        try:
            await self.settle()
        except NotSettled as exc:
            self._break_lockstep(str(exc))
            if self.replay_key is not None:
                await self.bus.put_state(
                    self.replay_key, self._progress(self.events_in, done=False)
                )

    async def _publish(self, batch: Sequence[MarketEvent], done: bool = False) -> None:
        key = self.replay_key
        if key is None:
            await self.bus.publish(MARKET, batch)
            return
        state = {key: self._progress(self.events_in + len(batch), done)}
        if isinstance(self.bus, RedisBus):
            await self.bus.publish_with_state(MARKET, batch, state)
        else:
            await self.bus.publish(MARKET, batch)
            await self.bus.put_state(key, state[key])

    async def _pump(self, batches: AsyncIterator[Sequence[MarketEvent]]) -> None:
        published = metrics.EVENTS_PUBLISHED.labels(self.name, MARKET)
        skip = await self._resume_from()
        speed = self.source.speed if self.source is not None else 0.0
        if skip and self.source is not None:
            self.source.speed = 0.0  # catch up unpaced to where the last run stopped
        finished = False
        try:
            async for full in batches:
                if self._stopping.is_set():
                    break
                batch = full
                if skip:
                    n = min(skip, len(batch))
                    skip -= n
                    self.events_in += n
                    batch = batch[n:]
                    if not skip and self.source is not None:
                        self.source.speed = speed
                    if not batch:
                        continue
                await self._publish(batch)
                self.events_in += len(batch)
                await self._settle()
                published.inc(len(batch))
                self._note(batch)
            finished = not self._stopping.is_set()
            if finished and self.replay_key is not None:
                await self._publish([], done=True)
            self.finished = finished
        finally:
            self.done.set()
            for (ex, sym), at in self.last_event_at.items():
                metrics.FEED_LAST_EVENT.labels(ex, sym).set(at)

    def _note(self, batch: Sequence[MarketEvent]) -> None:
        """Per published batch: each symbol's last event time and trade price, and
        for a replay the feed metrics. Counted with C-level iterators and
        scans that stop early: this runs on every tick of a backtest."""
        now = time.time()
        kinds = Counter(
            zip(map(_EXCHANGE, batch), map(_SYMBOL, batch), map(type, batch), strict=True)
        )
        symbols = {(ex, sym) for ex, sym, _ in kinds}
        for key in symbols:
            self.last_event_at[key] = now
        priced = {(ex, sym) for ex, sym, t in kinds if t is Trade}
        for e in reversed(batch):
            if not priced:
                break
            if type(e) is Trade and (key := (e.exchange, e.symbol)) in priced:
                self.last_price[key] = e.price
                priced.discard(key)
        if self.source is not None:
            self._account_replay(batch, kinds, symbols, now)

    def _account_replay(
        self,
        batch: Sequence[MarketEvent],
        kinds: Counter[tuple[str, str, type]],
        symbols: set[tuple[str, str]],
        now: float,
    ) -> None:
        """Feed metrics for a replay, which has no live feed to set them.

        The live feeds (``tradewind.exchanges.feeds``) count messages, time
        frame-to-publish and stamp each symbol's last message; a replay stands in
        for them, so it does the same per batch. Otherwise the market-data panels
        and the feed-stale alert would see nothing during a replay.
        """
        now_ns = time.time_ns()
        for (exchange, symbol, t), n in kinds.items():
            metrics.FEED_MESSAGES.labels(exchange, symbol, _KIND.get(t, "other")).inc(n)
        exchanges = {ex for ex, _ in symbols}
        first: dict[str, int] = {}
        for e in batch:
            if e.ts_recv and e.exchange not in first:
                first[e.exchange] = e.ts_recv
                if len(first) == len(exchanges):
                    break
        for exchange, ts_recv in first.items():
            metrics.PUBLISH_LATENCY.labels(exchange).observe(max(0, now_ns - ts_recv) / 1e9)
        for exchange, symbol in symbols:
            metrics.FEED_LAST_EVENT.labels(exchange, symbol).set(now)

    def feed_age(self) -> float:
        """Seconds since the stalest symbol's last event (0 when none expected yet)."""
        if not self.last_event_at:
            return 0.0
        return time.time() - min(self.last_event_at.values())


def feed_shard(settings: Settings) -> str:
    """The identity of what one ws replica publishes: replicas with the same
    feed (recording, or exchanges and symbols) are one shard, of which one is
    active at a time (the ``ws:{shard}`` lease) and the rest hot standbys."""
    feed = settings.feed
    if feed.source == "replay":
        what: object = ["replay", sorted(p.name for p in feed.data or [bundled_recording()])]
    else:
        what = ["live", sorted(feed.exchanges), sorted(feed.symbols), feed.symbols_by_exchange]
    raw = json.dumps(what, sort_keys=True).encode()
    return hashlib.blake2b(raw, digest_size=6).hexdigest()
