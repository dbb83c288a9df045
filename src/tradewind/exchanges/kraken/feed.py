"""Live Kraken spot WebSocket v2: ``book`` (CRC32-checked), ``trade`` (with a
snapshot of recent trades on subscribe, which backfills after a reconnect)
and ``ticker``. A checksum mismatch resubscribes that symbol's book only."""

from __future__ import annotations

import itertools
import json
import time

from tradewind.events import BookDelta, MarketEvent
from tradewind.exchanges.common.book import BookSync
from tradewind.exchanges.common.feed import Connection, Parser, VenueFeed, invalidate_all
from tradewind.exchanges.kraken.book import KrakenSync
from tradewind.exchanges.kraken.parser import KrakenParser
from tradewind.exchanges.kraken.symbols import v2_name

BOOK_DEPTH = 10


class KrakenFeed(VenueFeed):
    exchange = "kraken"
    default_ws_url = "wss://ws.kraken.com/v2"
    max_symbols_per_connection = 50
    known_channels = ("trade", "ticker", "book")
    default_channels = known_channels
    book_channel = "book"
    trade_channel = "trade"
    symbol_pattern = r"[^\s/]+/[^\s/]+"
    symbol_example = "BTC/USD"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._req = itertools.count(1)

    @classmethod
    def symbol_problem(cls, symbol: str) -> str | None:
        v2 = v2_name(symbol)
        if v2 != symbol:
            return f"symbol {symbol!r} is Kraken's v1 name, which WS v2 refuses; use {v2!r}"
        return None

    def parser(self) -> Parser:
        return KrakenParser()

    def new_book(self, symbol: str) -> BookSync:
        return KrakenSync(self.exchange, symbol, depth=BOOK_DEPTH)

    def ping_message(self) -> str:
        return json.dumps({"method": "ping", "req_id": next(self._req)})

    def _msg(self, method: str, channel: str, symbols: list[str]) -> str:
        params: dict[str, object] = {"channel": channel, "symbol": symbols}
        if channel == "book":
            params["depth"] = BOOK_DEPTH
        if method == "subscribe":
            params["snapshot"] = True
        return json.dumps({"method": method, "params": params, "req_id": next(self._req)})

    async def on_open(self, conn: Connection) -> None:
        if self.books_on:
            invalidate_all(self, conn.symbols, "reconnect")
            now = time.monotonic()
            for s in conn.symbols:
                conn.resync_pending[s] = now
        for channel in self.channels:
            await conn.send(self._msg("subscribe", channel, conn.symbols))

    async def resync(self, conn: Connection, symbol: str, reason: str) -> None:
        await conn.send(self._msg("unsubscribe", "book", [symbol]))
        await conn.send(self._msg("subscribe", "book", [symbol]))

    def handle(self, conn: Connection, frame: bytes, ts_recv: int) -> list[MarketEvent]:
        out = super().handle(conn, frame, ts_recv)
        for e in out:
            if type(e) is BookDelta and e.snapshot:
                conn.resynced(e.symbol)
        return out
