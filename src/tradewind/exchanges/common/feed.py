"""What every live feed shares: connections that heal themselves, books kept
in sync per symbol, trades deduplicated across reconnects, and the metrics.

A ``VenueFeed`` owns its symbols' book syncs, trade dedup and side tasks
(snapshots, backfills), so they outlive any one connection. Each ``Connection``
carries a shard of the symbols and loops: connect, subscribe, read until the
connection closes, goes quiet for ``stale_after_s``, misses pongs or reaches
its planned lifetime, then reconnects after exponential backoff with jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Coroutine, Sequence
from typing import Any, ClassVar, Protocol

import msgspec
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from tradewind.config import FeedSettings, Settings
from tradewind.events import BookDelta, MarketEvent, Trade
from tradewind.exchanges.common.book import BookSync, BookUpdate
from tradewind.exchanges.common.dedup import TradeDedup
from tradewind.exchanges.common.errors import ParseError
from tradewind.exchanges.common.recording import Recorder
from tradewind.exchanges.common.rest import RateLimiter, RestError, WindowLimiter
from tradewind.exchanges.common.validate import channels_for
from tradewind.observability import metrics

log = structlog.get_logger("tradewind.feeds")

Out = asyncio.Queue[list[MarketEvent]]


class Parser(Protocol):
    exchange: str

    def decode(self, frame: bytes | str, ts_recv: int) -> list[MarketEvent | BookUpdate]: ...


class VenueFeed:
    """One exchange: its protocol (subclasses) and the state that survives reconnects."""

    exchange: ClassVar[str] = ""
    default_ws_url: ClassVar[str] = ""
    default_rest_url: ClassVar[str] = ""
    max_symbols_per_connection: ClassVar[int] = 50
    known_channels: ClassVar[tuple[str, ...]] = ()
    default_channels: ClassVar[tuple[str, ...]] = ()
    book_channel: ClassVar[str] = ""
    trade_channel: ClassVar[str] = ""
    symbol_pattern: ClassVar[str] = r"\S+"
    symbol_example: ClassVar[str] = "BTCUSDT"
    sends_per_s: ClassVar[int | None] = None
    """The venue's limit on messages we send in any second, shared by all its
    connections (Coinbase: 8 per IP), or None."""
    ping_when_idle: ClassVar[bool] = False
    """Send the application ping only after ``ping_interval_s()`` without a
    message (OKX), rather than every interval (Bybit)."""

    # --- settings, resolved the same way by ``validate.check`` and here ---
    @classmethod
    def symbols_for(cls, feed: FeedSettings) -> list[str]:
        return list(dict.fromkeys(feed.symbols_by_exchange.get(cls.exchange, feed.symbols)))

    @classmethod
    def ws_url_for(cls, feed: FeedSettings) -> str:
        return feed.ws_urls.get(cls.exchange, cls.default_ws_url).rstrip("/")

    @classmethod
    def rest_url_for(cls, feed: FeedSettings) -> str:
        return feed.rest_urls.get(cls.exchange, cls.default_rest_url).rstrip("/")

    @classmethod
    def channels_for(cls, feed: FeedSettings) -> tuple[str, ...]:
        return channels_for(feed, cls.exchange, cls.known_channels, cls.default_channels)

    def __init__(self, settings: Settings, out: Out, symbols: Sequence[str]) -> None:
        feed = settings.feed
        self.settings = settings
        self.out = out
        self.symbols = list(dict.fromkeys(symbols))
        self.ws_base = self.ws_url_for(feed)
        self.rest_base = self.rest_url_for(feed)
        self.channels = self.channels_for(feed)
        self.limiter = RateLimiter(feed.rest_requests_per_s)
        sends = self.sends_per_s
        self.send_limiter = None if sends is None else WindowLimiter(sends)
        self.rejected: dict[str, str] = {}
        """Symbols whose subscription the venue refused, with its reason."""
        self.books: dict[str, BookSync] = {}
        self.dedup: dict[str, TradeDedup] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.resync_tasks: dict[str, asyncio.Task[None]] = {}
        self.parse_errors = 0
        self.garbage: dict[str, int] = {}
        self._children: dict[tuple[str, str], Any] = {}
        self.recorder: Recorder | None = None
        """Gets every frame as received (``tradewind record``, ``trade --record``)."""
        per = min(feed.symbols_per_connection, self.connection_limit())
        self.connections = [
            Connection(self, self.symbols[i : i + per], i // per)
            for i in range(0, len(self.symbols), per)
        ]

    @property
    def books_on(self) -> bool:
        """Books are kept (and resynced) only when the book channel is subscribed."""
        return self.book_channel in self.channels

    @property
    def trades_on(self) -> bool:
        """Trades are backfilled only when the trade channel is subscribed: a
        backfill of trades nobody asked for would publish them."""
        return self.trade_channel in self.channels

    def reject(self, symbol: str, reason: str) -> None:
        """The venue refused ``symbol``: unhealthy (metric, ``/readyz``) until accepted."""
        if symbol not in self.rejected:
            log.warning(
                "subscription rejected", exchange=self.exchange, symbol=symbol, reason=reason
            )
        self.rejected[symbol] = reason
        metrics.FEED_SUBSCRIPTION_REJECTED.labels(self.exchange, symbol).set(1)

    def accept(self, symbol: str) -> None:
        if self.rejected.pop(symbol, None) is not None:
            log.info("subscription accepted", exchange=self.exchange, symbol=symbol)
        metrics.FEED_SUBSCRIPTION_REJECTED.labels(self.exchange, symbol).set(0)

    @classmethod
    def symbol_problem(cls, symbol: str) -> str | None:
        """Why the venue would refuse ``symbol`` though it is well written (an alias)."""
        return None

    # --- protocol hooks (subclasses) -------------------------------------
    def connection_limit(self) -> int:
        """Symbols one connection may carry within the exchange's limits."""
        return self.max_symbols_per_connection

    def parser(self) -> Parser:
        raise NotImplementedError

    def url(self, conn: Connection) -> str:
        return self.ws_base

    async def on_open(self, conn: Connection) -> None:
        """Subscribe; every book of the connection starts unsynced."""

    def ping_message(self) -> str | None:
        return None

    def ping_interval_s(self) -> float:
        return self.settings.feed.ping_interval_s

    async def resync(self, conn: Connection, symbol: str, reason: str) -> None:
        """Get a fresh snapshot of one symbol's book."""
        raise NotImplementedError

    def new_book(self, symbol: str) -> BookSync:
        raise NotImplementedError

    def before_items(self, conn: Connection, items: list[MarketEvent | BookUpdate]) -> None:
        """Per frame, before its items are processed (sequence checks)."""

    def on_trade(self, conn: Connection, trade: Trade) -> None:
        """A new trade passed dedup (gap checks)."""

    # --- shared machinery ------------------------------------------------
    def book(self, symbol: str) -> BookSync:
        sync = self.books.get(symbol)
        if sync is None:
            sync = self.books[symbol] = self.new_book(symbol)
        return sync

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=f"feed:{self.exchange}:{name}")
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("feed task failed", task=task.get_name(), error=repr(task.exception()))

    async def stop(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        for t in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    def count(self, symbol: str, kind: str) -> None:
        child = self._children.get((symbol, kind))
        if child is None:
            child = self._children[(symbol, kind)] = metrics.FEED_MESSAGES.labels(
                self.exchange, symbol, kind
            )
        child.inc()

    def _rejected(self, reason: str) -> None:
        self.parse_errors += 1
        self.garbage[reason] = self.garbage.get(reason, 0) + 1
        metrics.FEED_PARSE_ERRORS.labels(self.exchange, reason).inc()

    def handle(self, conn: Connection, frame: bytes, ts_recv: int) -> list[MarketEvent]:
        """One frame → the events to publish; never raises on bad input, and a
        bug in handling one frame costs that frame, not the connection."""
        try:
            return self._handle(conn, frame, ts_recv)
        except ParseError as exc:
            self._rejected(exc.reason)
            log.warning("bad frame skipped", exchange=self.exchange, reason=exc.reason)
        except Exception:
            self._rejected("handler_error")
            log.exception("frame handling failed", exchange=self.exchange, frame=frame[:200])
        return []

    def _handle(self, conn: Connection, frame: bytes, ts_recv: int) -> list[MarketEvent]:
        items = conn.parser.decode(frame, ts_recv)
        self.before_items(conn, items)
        if not items:
            self.count("", "ignored")
            return []
        out: list[MarketEvent] = []
        now = time.time()
        for item in items:
            if type(item) is BookUpdate:
                sync = self.book(item.symbol)
                res = sync.on_update(item)
                out.extend(res.events)
                if res.resync is not None:
                    conn.request_resync(item.symbol, res.resync)
                self.count(item.symbol, "book")
            elif type(item) is Trade:
                self.count(item.symbol, "trade")
                dedup = self.dedup.get(item.symbol)
                if dedup is None:
                    dedup = self.dedup[item.symbol] = TradeDedup()
                if not dedup.add(item.trade_id):
                    metrics.FEED_DUPLICATES.labels(self.exchange, item.symbol).inc()
                    continue
                self.on_trade(conn, item)
                out.append(item)
            else:
                assert not isinstance(item, BookUpdate)
                self.count(item.symbol, type(item).__name__.lower())
                out.append(item)
        last = ""
        for e in out:
            if e.symbol != last:
                last = e.symbol
                metrics.FEED_LAST_EVENT.labels(self.exchange, last).set(now)
        return out

    def handle_trades_only(
        self, conn: Connection, parser: Parser, frame: bytes, ts_recv: int
    ) -> list[MarketEvent]:
        """A frame of a connection being replaced: its trades (deduplicated)
        and nothing else, since books now follow the new connection."""
        try:
            items = parser.decode(frame, ts_recv)
        except ParseError as exc:
            self._rejected(exc.reason)
            return []
        fresh = self.fresh_trades([i for i in items if type(i) is Trade])
        for t in fresh:
            self.on_trade(conn, t)
        return list[MarketEvent](fresh)

    def fresh_trades(self, trades: list[Trade]) -> list[Trade]:
        """Backfilled trades that were never published (and now are remembered)."""
        out = []
        for t in trades:
            dedup = self.dedup.setdefault(t.symbol, TradeDedup())
            if dedup.add(t.trade_id):
                out.append(t)
            else:
                metrics.FEED_DUPLICATES.labels(self.exchange, t.symbol).inc()
        return out


class TimedBackfillFeed(VenueFeed):
    """A venue whose REST backfill asks for trades since a time (Bybit, OKX):
    it keeps the newest exchange time seen, overall and per symbol's trades,
    so a reconnect backfills from where the feed left off."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.last_trade_ms: dict[str, int] = {}
        self.exchange_ms = 0
        self.backfilled = 0

    def on_trade(self, conn: Connection, trade: Trade) -> None:
        ms = trade.ts_event // 1_000_000
        if ms > self.last_trade_ms.get(trade.symbol, 0):
            self.last_trade_ms[trade.symbol] = ms

    def handle(self, conn: Connection, frame: bytes, ts_recv: int) -> list[MarketEvent]:
        out = super().handle(conn, frame, ts_recv)
        for e in out:
            if type(e) is BookDelta and e.snapshot:
                conn.resynced(e.symbol)
        if out:
            ms = max(e.ts_event for e in out) // 1_000_000
            if ms > self.exchange_ms:
                self.exchange_ms = ms
        return out

    async def recent_trades(self, symbol: str, since: int) -> list[Trade]:
        """The venue's REST trades at or after ``since`` (exchange ms), oldest first."""
        raise NotImplementedError

    async def backfill(self, symbol: str, since: int) -> None:
        """Recent trades from REST at or after ``since`` (exchange ms) that dedup has not seen."""
        try:
            trades = await self.recent_trades(symbol, since)
        except (
            RestError,
            ParseError,
            msgspec.ValidationError,
            msgspec.DecodeError,
            ValueError,
        ) as exc:
            log.warning(
                "trade backfill failed", exchange=self.exchange, symbol=symbol, error=str(exc)[:200]
            )
            return
        fresh = self.fresh_trades(trades)
        if fresh:
            self.backfilled += len(fresh)
            await self.out.put(list[MarketEvent](fresh))


class Connection:
    """One WebSocket carrying a shard of a venue's symbols."""

    def __init__(self, venue: VenueFeed, symbols: list[str], index: int) -> None:
        self.venue = venue
        self.symbols = symbols
        self.index = index
        self.name = f"{venue.exchange}-{index}"
        self.ws: ClientConnection | None = None
        self.parser = venue.parser()
        self.connects = 0
        self.reconnect_reasons: dict[str, int] = {}
        self.resync_pending: dict[str, float] = {}
        self.messages = 0
        self.opened_at = 0.0
        self.last_message_at = 0.0
        self.handovers = 0
        self.pending_frame: bytes | None = None
        """The new connection's first frame, read during a handover."""

    async def send(self, message: str) -> None:
        limiter = self.venue.send_limiter
        if limiter is not None:
            await limiter.acquire()
        if self.ws is not None:
            await self.ws.send(message)

    def request_resync(self, symbol: str, reason: str, restart: bool = False) -> None:
        """At most one resync per symbol in flight; a stuck one is retried, and
        ``restart`` (a new connection) replaces one still running."""
        now = time.monotonic()
        started = self.resync_pending.get(symbol)
        running = self.venue.resync_tasks.get(symbol)
        window = self.venue.settings.feed.timeout_s * 2
        if not restart and started is not None and now - started < window:
            return
        if running is not None and not running.done():
            if not restart:
                return
            running.cancel()
        self.resync_pending[symbol] = now
        self.venue.resync_tasks[symbol] = self.venue.spawn(
            self._resync(symbol, reason), f"resync:{symbol}"
        )

    async def _resync(self, symbol: str, reason: str) -> None:
        try:
            await self.venue.resync(self, symbol, reason)
        except (ConnectionClosed, OSError, TimeoutError) as exc:
            log.warning(
                "resync failed", exchange=self.venue.exchange, symbol=symbol, error=str(exc)
            )
            self.resync_pending.pop(symbol, None)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("resync failed", exchange=self.venue.exchange, symbol=symbol)
            self.resync_pending.pop(symbol, None)

    def resynced(self, symbol: str) -> None:
        self.resync_pending.pop(symbol, None)

    def backoff(self, attempt: int) -> float:
        feed = self.venue.settings.feed
        ceiling = min(feed.reconnect_max_s, feed.reconnect_min_s * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)

    def _connect(self) -> Any:
        feed = self.venue.settings.feed
        return connect(
            self.venue.url(self),
            open_timeout=feed.timeout_s,
            ping_interval=feed.ping_interval_s,
            ping_timeout=feed.timeout_s,
            close_timeout=2,
            max_size=2**24,
            max_queue=256,
            compression=None,
        )

    async def _opened(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.connects += 1
        self.opened_at = time.monotonic()
        self.resync_pending.clear()
        metrics.FEED_CONNECTED.labels(self.venue.exchange, self.name).set(1)
        log.info("feed connected", exchange=self.venue.exchange, connection=self.name)
        await self.venue.on_open(self)

    async def run(self, stopping: asyncio.Event) -> None:
        exchange = self.venue.exchange
        connected = metrics.FEED_CONNECTED.labels(exchange, self.name)
        attempt = 0
        successor: ClientConnection | None = None
        while not stopping.is_set():
            reason = "closed"
            try:
                ready, successor = successor, None
                ws: ClientConnection = ready if ready is not None else await self._connect()
                try:
                    if ready is None:
                        await self._opened(ws)
                    reason = await self._receive(ws, stopping)
                    if self.messages:
                        attempt = 0
                    if reason == "stale" and ws.transport is not None:
                        ws.transport.abort()
                    if reason == "lifetime":
                        successor = await self._hand_over(ws, stopping)
                finally:
                    if successor is not None:
                        # Unread frames hold up its close handshake: not this loop's.
                        self.venue.spawn(_close(ws), f"close:{self.name}")
                    else:
                        await ws.close()
            except ConnectionClosed as exc:
                reason = "ping_timeout" if "keepalive ping timeout" in str(exc) else "closed"
                log.warning(
                    "feed connection closed",
                    exchange=exchange,
                    connection=self.name,
                    error=str(exc)[:200],
                )
            except (InvalidHandshake, OSError, TimeoutError) as exc:
                reason = "error"
                log.warning(
                    "feed connection lost",
                    exchange=exchange,
                    connection=self.name,
                    error=str(exc)[:200],
                )
            except InvalidURI as exc:
                log.error("invalid feed URL", exchange=exchange, error=str(exc))
                raise
            finally:
                if successor is None:
                    self.ws = None
                    connected.set(0)
            if stopping.is_set():
                if successor is not None:
                    await successor.close()
                break
            self.reconnect_reasons[reason] = self.reconnect_reasons.get(reason, 0) + 1
            metrics.FEED_RECONNECTS.labels(exchange, reason).inc()
            if successor is not None:
                continue
            delay = 0.0 if reason == "lifetime" else self.backoff(attempt)
            attempt += 1
            log.info(
                "feed reconnecting",
                exchange=exchange,
                connection=self.name,
                reason=reason,
                delay_s=round(delay, 3),
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)

    async def _hand_over(
        self, old: ClientConnection, stopping: asyncio.Event
    ) -> ClientConnection | None:
        """A planned reconnect loses nothing: the new connection is opened and
        subscribed first, the old one is read until the new one speaks (its
        trades only: dedup drops the overlap, and books resync on the new
        one), then closed. None (a plain reconnect) if the new one fails."""
        timeout = self.venue.settings.feed.timeout_s
        try:
            new: ClientConnection = await self._connect()
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            log.warning("feed handover failed", connection=self.name, error=str(exc)[:200])
            return None
        old_parser, self.parser = self.parser, self.venue.parser()
        try:
            await self._opened(new)
            first = asyncio.create_task(new.recv(decode=False))
            deadline = time.monotonic() + timeout
            with contextlib.suppress(ConnectionClosed):
                while not first.done() and not stopping.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    recv = asyncio.ensure_future(old.recv(decode=False))
                    done, _ = await asyncio.wait(
                        {recv, first}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                    )
                    if recv not in done:
                        recv.cancel()
                        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                            await recv
                        continue
                    trades = self.venue.handle_trades_only(
                        self, old_parser, recv.result(), time.time_ns()
                    )
                    if trades:
                        await self.venue.out.put(trades)
            if not first.done():
                first.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await first
                self.pending_frame = None
            else:
                self.pending_frame = first.result()
        except (ConnectionClosed, OSError, TimeoutError) as exc:
            log.warning("feed handover failed", connection=self.name, error=str(exc)[:200])
            await new.close()
            return None
        self.handovers += 1
        log.info("feed handed over", exchange=self.venue.exchange, connection=self.name)
        return new

    async def _receive(self, ws: ClientConnection, stopping: asyncio.Event) -> str:
        """Until the connection ends; returns why (stale, lifetime, stopping)."""
        feed = self.venue.settings.feed
        venue = self.venue
        deadline = self.opened_at + feed.max_connection_age_s
        self.messages = 0
        ping_task: asyncio.Task[None] | None = None
        if venue.ping_message() is not None:
            ping_task = asyncio.create_task(self._app_ping(ws))
        try:
            frame = self.pending_frame
            self.pending_frame = None
            if frame is not None:
                self.last_message_at = time.monotonic()
                self.messages += 1
                events = venue.handle(self, frame, time.time_ns())
                if events:
                    await venue.out.put(events)
            while not stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "lifetime"
                try:
                    async with asyncio.timeout(min(feed.stale_after_s, remaining)):
                        frame = await ws.recv(decode=False)
                except TimeoutError:
                    if time.monotonic() >= deadline:
                        return "lifetime"
                    log.warning(
                        "feed stale",
                        exchange=venue.exchange,
                        connection=self.name,
                        after_s=feed.stale_after_s,
                    )
                    return "stale"
                ts_recv = time.time_ns()
                self.last_message_at = time.monotonic()
                self.messages += 1
                if venue.recorder is not None:
                    venue.recorder.put(frame)
                events = venue.handle(self, frame, ts_recv)
                if events:
                    await venue.out.put(events)
            return "stopping"
        finally:
            if ping_task is not None:
                ping_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ping_task

    async def _app_ping(self, ws: ClientConnection) -> None:
        venue = self.venue
        message = venue.ping_message()
        assert message is not None
        interval = venue.ping_interval_s()
        sent_at = time.monotonic()
        with contextlib.suppress(ConnectionClosed):
            while True:
                if venue.ping_when_idle:
                    quiet_since = max(self.last_message_at, self.opened_at, sent_at)
                    wait = quiet_since + interval - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                        continue
                else:
                    await asyncio.sleep(interval)
                await ws.send(message)
                sent_at = time.monotonic()


async def _close(ws: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed, OSError):
        await ws.close()


def invalidate_all(venue: VenueFeed, symbols: list[str], reason: str) -> None:
    """A new connection: none of its books can be trusted until resynced."""
    for s in symbols:
        sync = venue.book(s)
        if sync.synced or sync.pending_reason is None:
            sync.invalidate(reason)


Factory = type[VenueFeed]
