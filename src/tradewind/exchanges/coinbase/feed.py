"""Live Coinbase Advanced Trade: ``level2``, ``market_trades``, ``ticker`` and
``heartbeats`` (which keep a quiet connection from looking stale).

``sequence_num`` counts the connection's messages across channels: a skipped
number may have been any product's book update, so every book of the
connection is resynced (by resubscribing ``level2``, which starts with a
snapshot) and ``market_trades`` is resubscribed, whose snapshot of recent
trades backfills what dedup has not seen.
"""

from __future__ import annotations

import json
import time

from tradewind.events import MarketEvent
from tradewind.exchanges.coinbase.parser import CoinbaseParser
from tradewind.exchanges.common.book import BookSync, BookUpdate, CoinbaseSync, ConnectionSequence
from tradewind.exchanges.common.feed import Connection, Parser, VenueFeed, invalidate_all, log

CHANNELS = ("heartbeats", "market_trades", "ticker", "level2")
"""Subscribe order: heartbeats first, so a quiet product never looks stale."""


def _msg(kind: str, channel: str, products: list[str]) -> str:
    return json.dumps({"type": kind, "product_ids": products, "channel": channel})


class CoinbaseFeed(VenueFeed):
    exchange = "coinbase"
    default_ws_url = "wss://advanced-trade-ws.coinbase.com"
    max_symbols_per_connection = 50
    known_channels = CHANNELS
    default_channels = CHANNELS
    book_channel = "level2"
    trade_channel = "market_trades"
    symbol_pattern = r"[A-Z0-9]+(-[A-Z0-9]+)+"
    symbol_example = "BTC-USD"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sequences: dict[str, ConnectionSequence] = {}
        self.sequence_gaps = 0

    def parser(self) -> Parser:
        return CoinbaseParser()

    def new_book(self, symbol: str) -> BookSync:
        return CoinbaseSync(self.exchange, symbol)

    async def on_open(self, conn: Connection) -> None:
        self.sequences[conn.name] = ConnectionSequence()
        if self.books_on:
            invalidate_all(self, conn.symbols, "reconnect")
            now = time.monotonic()
            for s in conn.symbols:
                conn.resync_pending[s] = now
        for channel in self.channels:
            await conn.send(_msg("subscribe", channel, conn.symbols))

    def before_items(self, conn: Connection, items: list[MarketEvent | BookUpdate]) -> None:
        parser = conn.parser
        assert isinstance(parser, CoinbaseParser)
        seq = self.sequences.setdefault(conn.name, ConnectionSequence())
        skipped = seq.check(parser.last_sequence)
        if not skipped:
            return
        self.sequence_gaps += 1
        log.warning("coinbase sequence gap", connection=conn.name, skipped=skipped)
        for s in conn.symbols:
            sync = self.book(s)
            if sync.synced:
                sync._gap()
        again: list[str] = [c for c in ("level2", "market_trades") if c in self.channels]
        if again:
            self.spawn(self._resubscribe(conn, again, conn.symbols), "gap")
        if self.books_on:
            now = time.monotonic()
            for s in conn.symbols:
                conn.resync_pending[s] = now

    async def _resubscribe(
        self, conn: Connection, channels: list[str], products: list[str]
    ) -> None:
        for channel in channels:
            await conn.send(_msg("unsubscribe", channel, products))
            await conn.send(_msg("subscribe", channel, products))

    async def resync(self, conn: Connection, symbol: str, reason: str) -> None:
        await self._resubscribe(conn, ["level2"], [symbol])

    def handle(self, conn: Connection, frame: bytes, ts_recv: int) -> list[MarketEvent]:
        out = super().handle(conn, frame, ts_recv)
        for e in out:
            if type(e).__name__ == "BookDelta" and getattr(e, "snapshot", False):
                conn.resynced(e.symbol)
        return out
