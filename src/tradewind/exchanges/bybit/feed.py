"""Live Bybit v5 public spot and linear: ``orderbook.200`` (``u`` contiguity,
snapshot resets), ``publicTrade``, ``tickers``; an application ping every
interval, as Bybit requires. After a reconnect, trades missed meanwhile come
from ``/v5/market/recent-trade``; dedup drops those already published."""

from __future__ import annotations

import json
import time
from typing import ClassVar

import msgspec

from tradewind.events import Side, Trade
from tradewind.exchanges.bybit.book import BybitSync
from tradewind.exchanges.bybit.parser import BybitLinearParser, BybitParser
from tradewind.exchanges.common import rest
from tradewind.exchanges.common.book import BookSync, price, quantity
from tradewind.exchanges.common.errors import ParseError
from tradewind.exchanges.common.feed import (
    Connection,
    Parser,
    TimedBackfillFeed,
    invalidate_all,
)

ARGS_PER_REQUEST = 10
TOPICS = {"orderbook": "orderbook.200", "publicTrade": "publicTrade", "tickers": "tickers"}
"""Channel → topic prefix (the book at depth 200, whose deltas the sync checks)."""


class _Row(msgspec.Struct):
    execId: str
    symbol: str
    price: str
    size: str
    side: str
    time: str


class _Result(msgspec.Struct):
    rows: list[_Row] = msgspec.field(name="list")


class _Recent(msgspec.Struct):
    retCode: int
    retMsg: str = ""
    result: _Result | None = None


_recent = msgspec.json.Decoder(_Recent)


class BybitFeed(TimedBackfillFeed):
    exchange = "bybit"
    default_ws_url = "wss://stream.bybit.com/v5/public/spot"
    default_rest_url = "https://api.bybit.com"
    category: ClassVar[str] = "spot"
    backfill_limit: ClassVar[int] = 60
    max_symbols_per_connection = 100
    known_channels = ("publicTrade", "tickers", "orderbook")
    default_channels = known_channels
    book_channel = "orderbook"
    trade_channel = "publicTrade"
    symbol_pattern = r"[^\sa-z/@?&#%.]+"

    def parser(self) -> Parser:
        return BybitParser() if self.category == "spot" else BybitLinearParser()

    def new_book(self, symbol: str) -> BookSync:
        return BybitSync(self.exchange, symbol)

    def ping_message(self) -> str:
        return '{"op":"ping"}'

    async def _op(self, conn: Connection, op: str, args: list[str]) -> None:
        for i in range(0, len(args), ARGS_PER_REQUEST):
            await conn.send(json.dumps({"op": op, "args": args[i : i + ARGS_PER_REQUEST]}))

    async def on_open(self, conn: Connection) -> None:
        if self.books_on:
            invalidate_all(self, conn.symbols, "reconnect")
            now = time.monotonic()
            for s in conn.symbols:
                conn.resync_pending[s] = now
        topics = [f"{TOPICS[c]}.{s}" for s in conn.symbols for c in self.channels]
        await self._op(conn, "subscribe", topics)
        if self.exchange_ms and self.trades_on:
            for s in conn.symbols:
                since = self.last_trade_ms.get(s, self.exchange_ms)
                self.spawn(self.backfill(s, since), f"backfill:{s}")

    async def resync(self, conn: Connection, symbol: str, reason: str) -> None:
        await self._op(conn, "unsubscribe", [f"orderbook.200.{symbol}"])
        await self._op(conn, "subscribe", [f"orderbook.200.{symbol}"])

    async def recent_trades(self, symbol: str, since: int) -> list[Trade]:
        url = (
            f"{self.rest_base}/v5/market/recent-trade?category={self.category}"
            f"&symbol={symbol}&limit={self.backfill_limit}"
        )
        body = await rest.get(url, self.limiter, self.settings.feed.timeout_s)
        msg = _recent.decode(body)
        if msg.retCode != 0 or msg.result is None:
            raise ParseError("exchange_error", f"{msg.retCode} {msg.retMsg}")
        return [
            Trade(
                id=f"{self.exchange}:{symbol}:t{r.execId}",
                ts_event=int(r.time) * 1_000_000,
                exchange=self.exchange,
                symbol=symbol,
                price=price(r.price),
                qty=quantity(r.size, allow_zero=False),
                side=Side.BUY if r.side == "Buy" else Side.SELL,
                trade_id=r.execId,
                ts_recv=time.time_ns(),
            )
            for r in reversed(msg.result.rows)
            if int(r.time) >= since
        ]


class BybitLinearFeed(BybitFeed):
    exchange = "bybit-linear"
    default_ws_url = "wss://stream.bybit.com/v5/public/linear"
    category = "linear"
    backfill_limit = 1000
