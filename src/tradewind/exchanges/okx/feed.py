"""Live OKX v5 public market data: ``trades``, ``tickers`` and ``books``
(checksummed; a mismatch or gap resubscribes the book, which makes OKX send a
fresh snapshot). OKX drops a connection that stays silent for 30 s, so the
feed sends the text ``ping`` once nothing has arrived for a while (under 30 s)
and OKX answers ``pong``. After a reconnect, trades missed meanwhile come from
``/api/v5/market/trades``; dedup drops those already published."""

from __future__ import annotations

import json
import time

import msgspec

from tradewind.events import Side, Trade
from tradewind.exchanges.common import rest
from tradewind.exchanges.common.book import BookSync, price, quantity
from tradewind.exchanges.common.errors import ParseError
from tradewind.exchanges.common.feed import (
    Connection,
    Parser,
    TimedBackfillFeed,
    invalidate_all,
)
from tradewind.exchanges.okx.book import OkxSync
from tradewind.exchanges.okx.parser import EXCHANGE, OkxParser

ARGS_PER_REQUEST = 20
IDLE_PING_S = 25.0
"""OKX closes a connection silent for 30 s; ping well before."""
BACKFILL_LIMIT = 100


class _Row(msgspec.Struct):
    instId: str
    tradeId: str
    px: str
    sz: str
    side: str
    ts: str


class _Trades(msgspec.Struct):
    code: str
    msg: str = ""
    data: list[_Row] = []


_trades = msgspec.json.Decoder(_Trades)


class OkxFeed(TimedBackfillFeed):
    exchange = EXCHANGE
    default_ws_url = "wss://ws.okx.com:8443/ws/v5/public"
    default_rest_url = "https://www.okx.com"
    max_symbols_per_connection = 100
    known_channels = ("trades", "tickers", "books")
    default_channels = known_channels
    book_channel = "books"
    trade_channel = "trades"
    symbol_pattern = r"[A-Z0-9]+(?:-[A-Z0-9]+){1,3}"
    symbol_example = "BTC-USDT"
    ping_when_idle = True

    def parser(self) -> Parser:
        return OkxParser()

    def new_book(self, symbol: str) -> BookSync:
        return OkxSync(self.exchange, symbol)

    def ping_message(self) -> str:
        return "ping"

    def ping_interval_s(self) -> float:
        return min(self.settings.feed.ping_interval_s, IDLE_PING_S)

    async def _op(self, conn: Connection, op: str, args: list[dict[str, str]]) -> None:
        for i in range(0, len(args), ARGS_PER_REQUEST):
            await conn.send(json.dumps({"op": op, "args": args[i : i + ARGS_PER_REQUEST]}))

    async def on_open(self, conn: Connection) -> None:
        if self.books_on:
            invalidate_all(self, conn.symbols, "reconnect")
            now = time.monotonic()
            for s in conn.symbols:
                conn.resync_pending[s] = now
        args = [{"channel": c, "instId": s} for s in conn.symbols for c in self.channels]
        await self._op(conn, "subscribe", args)
        if self.exchange_ms and self.trades_on:
            for s in conn.symbols:
                since = self.last_trade_ms.get(s, self.exchange_ms)
                self.spawn(self.backfill(s, since), f"backfill:{s}")

    async def resync(self, conn: Connection, symbol: str, reason: str) -> None:
        arg = [{"channel": "books", "instId": symbol}]
        await self._op(conn, "unsubscribe", arg)
        await self._op(conn, "subscribe", arg)

    async def recent_trades(self, symbol: str, since: int) -> list[Trade]:
        url = f"{self.rest_base}/api/v5/market/trades?instId={symbol}&limit={BACKFILL_LIMIT}"
        body = await rest.get(url, self.limiter, self.settings.feed.timeout_s)
        msg = _trades.decode(body)
        if msg.code != "0":
            raise ParseError("exchange_error", f"{msg.code} {msg.msg}")
        return [
            Trade(
                id=f"{self.exchange}:{symbol}:t{r.tradeId}",
                ts_event=int(r.ts) * 1_000_000,
                exchange=self.exchange,
                symbol=symbol,
                price=price(r.px),
                qty=quantity(r.sz, allow_zero=False),
                side=Side.BUY if r.side == "buy" else Side.SELL,
                trade_id=r.tradeId,
                ts_recv=time.time_ns(),
            )
            for r in reversed(msg.data)
            if int(r.ts) >= since
        ]
