"""Live Coinbase Advanced Trade: ``level2``, ``market_trades``, ``ticker`` and
``heartbeats`` (which keep a quiet connection from looking stale).

``sequence_num`` counts the connection's messages across channels: a skipped
number may have been any product's book update, so every book of the
connection is resynced (by resubscribing ``level2``, which starts with a
snapshot) and ``market_trades`` is resubscribed, whose snapshot of recent
trades backfills what dedup has not seen.

Coinbase allows 8 unauthenticated messages a second per IP, so every
subscribe of every shard goes through one pacer. A subscription it refuses
(``{"type":"error"}``) marks the connection's unconfirmed products unhealthy
(or the ones the error names) and is retried with backoff until the
``subscriptions`` listing confirms them. Coinbase answers ``-USDC`` products
on market channels as ``-USD``; those events are mapped back to the product
that was subscribed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import msgspec

from tradewind.events import MarketEvent
from tradewind.exchanges.coinbase.book import CoinbaseSync
from tradewind.exchanges.coinbase.parser import CoinbaseParser
from tradewind.exchanges.common.book import BookSync, BookUpdate, ConnectionSequence
from tradewind.exchanges.common.feed import Connection, Parser, VenueFeed, invalidate_all, log

CHANNELS = ("heartbeats", "market_trades", "ticker", "level2")
"""Subscribe order: heartbeats first, so a quiet product never looks stale."""


RETRY_MIN_S = 1.0
RETRY_MAX_S = 60.0


def _msg(kind: str, channel: str, products: list[str]) -> str:
    return json.dumps({"type": kind, "product_ids": products, "channel": channel})


class _Listing(msgspec.Struct):
    subscriptions: dict[str, list[str]] = {}


class _Subscriptions(msgspec.Struct):
    events: list[_Listing] = []


class _Error(msgspec.Struct):
    type: str
    message: str = ""
    reason: str = ""


_subscriptions = msgspec.json.Decoder(_Subscriptions)
_error = msgspec.json.Decoder(_Error)


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
    sends_per_s = 8

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sequences: dict[str, ConnectionSequence] = {}
        self.sequence_gaps = 0
        self.unconfirmed: dict[str, set[str]] = {}
        self.retries: dict[str, int] = {}
        self.aliases = {
            s[:-1]: s for s in self.symbols if s.endswith("-USDC") and s[:-1] not in self.symbols
        }
        """Product Coinbase answers with → the ``-USDC`` product subscribed."""

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
        self.unconfirmed[conn.name] = set(conn.symbols)
        for channel in self.channels:
            await conn.send(_msg("subscribe", channel, conn.symbols))

    def _confirmed(self, conn: Connection, frame: bytes) -> None:
        """A ``subscriptions`` listing: the products it names are accepted."""
        try:
            listing = _subscriptions.decode(frame)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return
        named = {
            self.aliases.get(p, p)
            for e in listing.events
            for ps in e.subscriptions.values()
            for p in ps
        }
        pending = self.unconfirmed.get(conn.name, set())
        for s in conn.symbols:
            if s in named:
                pending.discard(s)
                self.retries.pop(s, None)
                self.accept(s)

    def _refused(self, conn: Connection, frame: bytes) -> None:
        try:
            err = _error.decode(frame)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return
        text = f"{err.message} {err.reason}".strip()
        named = [s for s in conn.symbols if s in text or s[:-1] in text.split()]
        pending = self.unconfirmed.get(conn.name, set())
        refused = named or sorted(pending)
        for s in refused:
            self.reject(s, text[:200] or "error")
        if refused:
            self.spawn(self._retry(conn, refused), f"retry:{conn.name}")

    async def _retry(self, conn: Connection, products: list[str]) -> None:
        attempt = max(self.retries.get(p, 0) for p in products)
        for p in products:
            self.retries[p] = attempt + 1
        await asyncio.sleep(min(RETRY_MAX_S, RETRY_MIN_S * 2**attempt))
        still = [p for p in products if p in self.rejected]
        for channel in self.channels if still else ():
            await conn.send(_msg("subscribe", channel, still))

    def _alias(self, item: MarketEvent | BookUpdate) -> MarketEvent | BookUpdate:
        subscribed = self.aliases[item.symbol]
        new_id = item.id.replace(f":{item.symbol}:", f":{subscribed}:", 1)
        if isinstance(item, BookUpdate):
            return dataclasses.replace(item, symbol=subscribed, id=new_id)
        return msgspec.structs.replace(item, symbol=subscribed, id=new_id)

    def before_items(self, conn: Connection, items: list[MarketEvent | BookUpdate]) -> None:
        if self.aliases:
            for i, item in enumerate(items):
                if item.symbol in self.aliases:
                    items[i] = self._alias(item)
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
        if frame.startswith(b'{"type":"error"'):
            self._refused(conn, frame)
            return []
        if frame.startswith(b'{"channel":"subscriptions"'):
            self._confirmed(conn, frame)
        out = super().handle(conn, frame, ts_recv)
        for e in out:
            if type(e).__name__ == "BookDelta" and getattr(e, "snapshot", False):
                conn.resynced(e.symbol)
        return out
