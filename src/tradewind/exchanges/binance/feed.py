"""Live Binance spot and USD-M: combined streams, REST depth snapshots, and
trade backfill from REST recent trades. The channels come from
``FeedSettings.channels`` (``trade``, ``aggTrade``, ``bookTicker``, ``depth``,
``kline`` at ``kline_interval``); a connection carries as many symbols as fit
in the exchange's stream limit (spot 1024, USD-M 200) at that many streams each.

Trade ids are contiguous per symbol on Binance, so a jump in them, or a new
connection, is followed by a (rate-limited) backfill of the missed trades from
``/trades``; dedup drops those that did arrive. Books resync from a fresh REST
snapshot while the diffs that arrive meanwhile are buffered.
"""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

from tradewind.events import MarketEvent, Trade
from tradewind.exchanges.binance import urls
from tradewind.exchanges.binance.book import BinanceSync
from tradewind.exchanges.binance.parser import BinanceCoinmParser, BinanceParser, BinanceUsdmParser
from tradewind.exchanges.common import rest
from tradewind.exchanges.common.book import BookSync
from tradewind.exchanges.common.errors import ParseError
from tradewind.exchanges.common.feed import Connection, Parser, VenueFeed, invalidate_all, log
from tradewind.observability import metrics

SNAPSHOT_LIMIT = 1000
BACKFILL_LIMIT = 1000
STREAMS = {"trade": "trade", "aggTrade": "aggTrade", "bookTicker": "bookTicker"}
"""Channel → stream suffix; ``depth`` and ``kline`` take their speed and interval."""


class BinanceFeed(VenueFeed):
    exchange = "binance"
    default_ws_url = urls.SPOT_WS
    default_rest_url = urls.SPOT_REST
    rest_prefix: ClassVar[str] = "/api/v3"
    max_streams: ClassVar[int] = 1024
    futures: ClassVar[bool] = False
    known_channels: ClassVar[tuple[str, ...]] = (
        "trade",
        "aggTrade",
        "bookTicker",
        "depth",
        "kline",
    )
    # aggTrade is opt-in: it carries the same fills as trade, so subscribing
    # both would count every fill twice in bars, volumes and paper fills.
    default_channels: ClassVar[tuple[str, ...]] = ("trade", "bookTicker", "depth", "kline")
    book_channel = "depth"
    trade_channel = "trade"
    backfill_path: ClassVar[str] = "trades"
    symbol_pattern = r"[^\sa-z/@?&#%]+"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.last_trade: dict[str, int] = {}
        self.first_trade: dict[str, int] = {}
        self.exchange_ms = 0
        self.backfills = 0
        self.backfilled = 0
        if "trade" in self.channels and "aggTrade" in self.channels:
            log.warning(
                "trade and aggTrade both subscribed: every fill arrives twice (ids t… and a…)",
                exchange=self.exchange,
            )

    def parser(self) -> Parser:
        return BinanceUsdmParser() if self.futures else BinanceParser()

    def new_book(self, symbol: str) -> BookSync:
        return BinanceSync(self.exchange, symbol, futures=self.futures)

    @property
    def streams(self) -> list[str]:
        """Stream suffixes of the configured channels (``depth@100ms``, ``kline_1m``)."""
        interval = self.settings.feed.kline_interval
        out = []
        for c in self.channels:
            if c == "depth":
                out.append("depth@100ms")
            elif c == "kline":
                out.append(f"kline_{interval}")
            else:
                out.append(STREAMS[c])
        return out

    def connection_limit(self) -> int:
        return max(1, self.max_streams // len(self.streams))

    def url(self, conn: Connection) -> str:
        streams = self.streams
        names = "/".join(f"{s.lower()}@{k}" for s in conn.symbols for k in streams)
        return f"{self.ws_base}/stream?streams={names}"

    async def on_open(self, conn: Connection) -> None:
        since = self.exchange_ms
        if self.books_on:
            invalidate_all(self, conn.symbols, "reconnect")
        for s in conn.symbols:
            if self.books_on:
                conn.request_resync(s, "reconnect", restart=True)
            if since and self.trades_on:
                self.spawn(self.backfill(s, since), f"backfill:{s}")

    def handle(self, conn: Connection, frame: bytes, ts_recv: int) -> list[MarketEvent]:
        out = super().handle(conn, frame, ts_recv)
        if out:
            ms = out[-1].ts_event // 1_000_000
            if ms > self.exchange_ms:
                self.exchange_ms = ms
        return out

    def trade_seq(self, trade: Trade) -> int | None:
        """The contiguous per-symbol id of a trade of the backfilled channel.
        Spot backfills ``trade`` (plain ids); aggregate trades (``a…``) count
        in their own sequence and pass through as they come."""
        tid = trade.trade_id
        return None if tid.startswith("a") else int(tid)

    def on_trade(self, conn: Connection, trade: Trade) -> None:
        """Trade ids are contiguous per symbol, so a jump is a loss to backfill."""
        if not self.trades_on:
            return
        tid = self.trade_seq(trade)
        if tid is None:
            return
        last = self.last_trade.get(trade.symbol)
        if last is None:
            self.first_trade.setdefault(trade.symbol, tid)
        elif tid > last + 1:
            self.spawn(self.backfill(trade.symbol, self.exchange_ms), f"backfill:{trade.symbol}")
        if last is None or tid > last:
            self.last_trade[trade.symbol] = tid

    async def resync(self, conn: Connection, symbol: str, reason: str) -> None:
        """A REST snapshot for ``symbol``, applied to its book and recorded
        (with the symbol, which the body lacks) where it was applied, so a
        replay of the recording syncs the book as this feed did."""
        parser = self.parser()
        assert isinstance(parser, BinanceParser)
        timeout = self.settings.feed.timeout_s
        for attempt in range(20):
            url = f"{self.rest_base}{self.rest_prefix}/depth?symbol={symbol}&limit={SNAPSHOT_LIMIT}"
            try:
                body = await rest.get(url, self.limiter, timeout)
                snap = parser.snapshot(body, symbol, time.time_ns())
            except (rest.RestError, ParseError) as exc:
                log.warning(
                    "depth snapshot failed",
                    exchange=self.exchange,
                    symbol=symbol,
                    error=str(exc)[:200],
                    attempt=attempt,
                )
                if isinstance(exc, rest.RestError) and exc.status == 400:
                    break
                delay = min(self.settings.feed.reconnect_max_s, 0.25 * 2**attempt)
                if isinstance(exc, rest.RestError) and exc.rate_limited:
                    delay = max(delay, exc.retry_after or 60.0)
                await asyncio.sleep(delay)
                continue
            if self.recorder is not None:
                self.recorder.put(recorded_snapshot(body, symbol))
            res = self.book(symbol).on_update(snap)
            if res.events:
                await self.out.put(list[MarketEvent](res.events))
            if res.resync != "stale_snapshot":
                conn.resynced(symbol)
                if res.resync is not None:
                    conn.request_resync(symbol, res.resync)
                return
        conn.resynced(symbol)

    async def backfill(self, symbol: str, since_ms: int) -> None:
        """Trades missed while disconnected or skipped by the stream, from REST:
        those after the first trade seen, or (no trade seen yet) those at or
        after ``since_ms``, the exchange time when the connection was lost."""
        parser = self.parser()
        assert isinstance(parser, BinanceParser)
        url = f"{self.rest_base}{self.rest_prefix}/{self.backfill_path}?symbol={symbol}"
        try:
            body = await rest.get(
                f"{url}&limit={BACKFILL_LIMIT}", self.limiter, self.settings.feed.timeout_s
            )
            trades = (
                parser.rest_agg_trades(body, symbol, 0)
                if self.backfill_path == "aggTrades"
                else parser.rest_trades(body, symbol, 0)
            )
        except (rest.RestError, ParseError) as exc:
            log.warning(
                "trade backfill failed", exchange=self.exchange, symbol=symbol, error=str(exc)[:200]
            )
            return
        self.backfills += 1
        first = self.first_trade.get(symbol, 0)
        known = self.last_trade.get(symbol, 0)
        seqs = {t.trade_id: self.trade_seq(t) or 0 for t in trades}
        ids = list(seqs.values())
        if ids and known and min(ids) > known + 1:
            metrics.FEED_GAPS.labels(self.exchange, symbol).inc()
            log.error(
                "trades lost beyond the backfill window",
                exchange=self.exchange,
                symbol=symbol,
                from_id=known + 1,
                to_id=min(ids) - 1,
            )
        if symbol in self.first_trade:
            missed = [t for t in trades if seqs[t.trade_id] > first]
        else:
            missed = [t for t in trades if t.ts_event >= since_ms * 1_000_000]
            if missed:
                self.first_trade[symbol] = seqs[missed[0].trade_id] - 1
        fresh = self.fresh_trades(missed)
        if fresh:
            self.backfilled += len(fresh)
            top = max(seqs[t.trade_id] for t in fresh)
            if top > self.last_trade.get(symbol, 0):
                self.last_trade[symbol] = top
            await self.out.put(list[MarketEvent](fresh))


class BinanceUsdmFeed(BinanceFeed):
    """USD-M (fstream) on the split paths of 2026: ``/public`` carries depth and
    bookTicker, ``/market`` carries aggTrade and kline (the legacy combined
    URL stopped sending klines on 2026-04-23). ``@trade`` is not a documented
    USD-M stream, so trades come as ``aggTrade``, whose ids are contiguous per
    symbol and backfilled from ``/fapi/v1/aggTrades``. Each shard of symbols
    has one connection per path that has channels."""

    exchange = "binance-usdm"
    default_ws_url = urls.USDM_WS
    default_rest_url = urls.USDM_REST
    rest_prefix = "/fapi/v1"
    max_streams = 200
    futures = True
    known_channels = ("aggTrade", "bookTicker", "depth", "kline")
    default_channels = ("aggTrade", "bookTicker", "depth", "kline")
    trade_channel = "aggTrade"
    backfill_path = "aggTrades"
    PATHS: ClassVar[dict[str, str]] = {
        "depth": "public",
        "bookTicker": "public",
        "aggTrade": "market",
        "kline": "market",
    }

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.routes: dict[int, tuple[str, list[str]]] = {}
        conns: list[Connection] = []
        for shard in self.connections:
            for path in ("public", "market"):
                streams = [
                    s
                    for c, s in zip(self.channels, self.streams, strict=True)
                    if self.PATHS[c] == path
                ]
                if streams:
                    conn = Connection(self, shard.symbols, len(conns))
                    self.routes[conn.index] = (path, streams)
                    conns.append(conn)
        self.connections = conns

    def trade_seq(self, trade: Trade) -> int | None:
        tid = trade.trade_id
        return int(tid[1:]) if tid.startswith("a") else None

    def connection_limit(self) -> int:
        per_path = [
            sum(1 for c in self.channels if self.PATHS[c] == p) for p in ("public", "market")
        ]
        return max(1, self.max_streams // max(1, *per_path))

    def url(self, conn: Connection) -> str:
        path, streams = self.routes[conn.index]
        names = "/".join(f"{s.lower()}@{k}" for s in conn.symbols for k in streams)
        return f"{self.ws_base}/{path}/stream?streams={names}"

    async def on_open(self, conn: Connection) -> None:
        """Books resync on the public connection, trades backfill on the market one."""
        path = self.routes[conn.index][0]
        since = self.exchange_ms
        if path == "public" and self.books_on:
            invalidate_all(self, conn.symbols, "reconnect")
            for s in conn.symbols:
                conn.request_resync(s, "reconnect", restart=True)
        if path == "market" and since and self.trades_on:
            for s in conn.symbols:
                self.spawn(self.backfill(s, since), f"backfill:{s}")


class BinanceCoinmFeed(BinanceFeed):
    """COIN-M (dstream, inverse): USD-M's protocol with quantities in
    contracts. Its trades come as ``aggTrade`` (no ``/dapi`` trade ids to
    backfill under the same ids), so trades are not backfilled."""

    exchange = "binance-coinm"
    default_ws_url = urls.COINM_WS
    default_rest_url = urls.COINM_REST
    rest_prefix = "/dapi/v1"
    max_streams = 200
    futures = True
    default_channels = ("aggTrade", "bookTicker", "depth", "kline")
    trade_channel = ""
    symbol_example = "BTCUSD_PERP"

    def parser(self) -> Parser:
        return BinanceCoinmParser()


def recorded_snapshot(body: bytes, symbol: str) -> bytes:
    """The depth body as one recording line, naming its symbol the way
    COIN-M's bodies do (``"symbol"`` after ``lastUpdateId``), so a recording of
    several symbols replays each snapshot into its own book."""
    line = b" ".join(body.split())
    head, sep, rest = line.partition(b",")
    if not line.startswith(b'{"lastUpdateId":') or not sep or b'"symbol":' in line:
        return line
    return head + b',"symbol":"' + symbol.encode() + b'",' + rest
