"""L2 order books and the machinery every venue's book sync shares.

A book is trusted only while every update since its snapshot has been seen:
each exchange proves that differently (Binance spot ``U``/``u`` contiguity,
USD-M ``pu``, Bybit ``u``, Coinbase's per-connection ``sequence_num``, Kraken's
CRC32 of the top ten levels), and each venue's sync class lives in its own
folder (``exchanges/<venue>/book.py``). A sync object turns the exchange's book messages
(``BookUpdate``) into the ``BookDelta`` events downstream may apply blindly: a
full snapshot first, then only contiguous deltas. Anything that breaks the
proof (a gap, a checksum mismatch, a crossed book, an update without a base
book) is counted, drops the book, and asks the feed for a fresh snapshot of
that symbol only; nothing is published for it until the book is whole again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from tradewind.events import BookDelta
from tradewind.exchanges.common.errors import ParseError
from tradewind.observability import metrics

Level = tuple[float, float]
TextLevel = tuple[str, str]


def price(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ParseError("invalid_price", text[:40]) from None
    if not (v > 0.0 and math.isfinite(v)):
        raise ParseError("invalid_price", text[:40])
    return v


def quantity(text: str, *, allow_zero: bool = True) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ParseError("invalid_qty", text[:40]) from None
    if not math.isfinite(v) or v < 0.0 or (v == 0.0 and not allow_zero):
        raise ParseError("invalid_qty", text[:40])
    return v


def levels(raw: list[tuple[str, str]]) -> list[Level]:
    return [(price(p), quantity(q)) for p, q in raw]


@dataclass(slots=True)
class BookUpdate:
    """One exchange book message, before sync rules decide whether it may be applied.

    ``first_id``/``last_id``/``prev_id`` carry whatever sequence the exchange
    gives (Binance ``U``/``u``/``pu``, Bybit ``u``, Coinbase ``sequence_num``);
    Kraken gives none and sends ``checksum`` plus the level texts it is computed on.
    """

    id: str
    exchange: str
    symbol: str
    bids: list[Level]
    asks: list[Level]
    snapshot: bool
    first_id: int
    last_id: int
    ts_event: int
    ts_recv: int
    prev_id: int | None = None
    checksum: int | None = None
    text_bids: list[TextLevel] | None = None
    text_asks: list[TextLevel] | None = None

    def to_event(self) -> BookDelta:
        return BookDelta(
            id=self.id,
            ts_event=self.ts_event,
            exchange=self.exchange,
            symbol=self.symbol,
            bids=self.bids,
            asks=self.asks,
            snapshot=self.snapshot,
            first_update_id=self.first_id,
            last_update_id=self.last_id,
            prev_update_id=self.prev_id,
            ts_recv=self.ts_recv,
        )


class L2Book:
    """Price → quantity per side; quantity 0 deletes. ``depth`` truncates after
    each update for exchanges that never delete levels falling out of scope."""

    __slots__ = ("_best_ask", "_best_bid", "asks", "bids", "depth", "text_asks", "text_bids")

    def __init__(self, depth: int | None = None) -> None:
        self.depth = depth
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.text_bids: dict[float, TextLevel] = {}
        self.text_asks: dict[float, TextLevel] = {}
        self._best_bid: float | None = None
        self._best_ask: float | None = None

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.text_bids.clear()
        self.text_asks.clear()
        self._best_bid = self._best_ask = None

    def __bool__(self) -> bool:
        return bool(self.bids or self.asks)

    def apply(self, bids: list[Level], asks: list[Level]) -> None:
        b, a = self.bids, self.asks
        best_b, best_a = self._best_bid, self._best_ask
        for p, q in bids:
            if q == 0.0:
                if b.pop(p, None) is not None and p == best_b:
                    best_b = None
            else:
                b[p] = q
                if best_b is not None and p > best_b:
                    best_b = p
        for p, q in asks:
            if q == 0.0:
                if a.pop(p, None) is not None and p == best_a:
                    best_a = None
            else:
                a[p] = q
                if best_a is not None and p < best_a:
                    best_a = p
        self._best_bid = best_b if b else None
        self._best_ask = best_a if a else None
        if best_b is None and b:
            self._best_bid = max(b)
        if best_a is None and a:
            self._best_ask = min(a)
        if self.depth is not None:
            self._truncate(self.depth)

    def apply_text(self, bids: list[TextLevel], asks: list[TextLevel]) -> None:
        """Like ``apply``, keeping each level's text as sent (for text checksums)."""
        for side, text, raw in (
            (self.bids, self.text_bids, bids),
            (self.asks, self.text_asks, asks),
        ):
            for p_text, q_text in raw:
                p, q = price(p_text), quantity(q_text)
                if q == 0.0:
                    side.pop(p, None)
                    text.pop(p, None)
                else:
                    side[p] = q
                    text[p] = (p_text, q_text)
        self._best_bid = max(self.bids) if self.bids else None
        self._best_ask = min(self.asks) if self.asks else None
        if self.depth is not None:
            self._truncate(self.depth)

    def _truncate(self, depth: int) -> None:
        if len(self.bids) > depth:
            for p in sorted(self.bids, reverse=True)[depth:]:
                del self.bids[p]
                self.text_bids.pop(p, None)
        if len(self.asks) > depth:
            for p in sorted(self.asks)[depth:]:
                del self.asks[p]
                self.text_asks.pop(p, None)

    def best_bid(self) -> Level | None:
        p = self._best_bid
        return None if p is None else (p, self.bids[p])

    def best_ask(self) -> Level | None:
        p = self._best_ask
        return None if p is None else (p, self.asks[p])

    def crossed(self) -> bool:
        b, a = self._best_bid, self._best_ask
        return b is not None and a is not None and b >= a

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        bids = sorted(self.bids.items(), reverse=True)[:n]
        asks = sorted(self.asks.items())[:n]
        return bids, asks

    def snapshot_levels(self) -> tuple[list[Level], list[Level]]:
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())


class SyncState(StrEnum):
    AWAITING_SNAPSHOT = "awaiting_snapshot"
    SYNCED = "synced"


@dataclass
class SyncResult:
    """What one update produced: events to publish, and whether the feed must
    fetch a fresh snapshot (``resync`` names why)."""

    events: list[BookDelta] = field(default_factory=list)
    resync: str | None = None


class BookSync:
    """Base: one symbol's book, its state, and the counting every exchange shares."""

    max_buffer = 10_000

    def __init__(self, exchange: str, symbol: str, depth: int | None = None) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.book = L2Book(depth)
        self.state = SyncState.AWAITING_SNAPSHOT
        self.last_id = 0
        self.pending_reason: str | None = "initial"
        self.gaps = 0
        self.resyncs = 0
        self.checksum_failures = 0
        self.crossed = 0
        self.no_snapshot = 0
        self.applied = 0

    @property
    def synced(self) -> bool:
        return self.state is SyncState.SYNCED

    def on_update(self, upd: BookUpdate) -> SyncResult:
        raise NotImplementedError

    def invalidate(self, reason: str) -> SyncResult:
        """Drop the book and ask for a fresh snapshot; ``reason`` labels the resync."""
        self.book.clear()
        self.state = SyncState.AWAITING_SNAPSHOT
        if self.pending_reason is None:
            self.pending_reason = reason
        return SyncResult(resync=reason)

    def _gap(self) -> SyncResult:
        self.gaps += 1
        metrics.FEED_GAPS.labels(self.exchange, self.symbol).inc()
        return self.invalidate("gap")

    def _missing_base(self) -> SyncResult:
        """An update with no snapshot under it: report, never invent a book."""
        self.no_snapshot += 1
        return SyncResult(resync="no_snapshot")

    def _synced_from_snapshot(self) -> None:
        self.state = SyncState.SYNCED
        reason, self.pending_reason = self.pending_reason, None
        if reason is not None and reason != "initial":
            self.resyncs += 1
            metrics.BOOK_RESYNCS.labels(self.exchange, self.symbol, reason).inc()

    def _snapshot_event(self, upd: BookUpdate) -> BookDelta:
        bids, asks = self.book.snapshot_levels()
        return BookDelta(
            id=upd.id,
            ts_event=upd.ts_event,
            exchange=self.exchange,
            symbol=self.symbol,
            bids=bids,
            asks=asks,
            snapshot=True,
            first_update_id=upd.last_id,
            last_update_id=upd.last_id,
            ts_recv=upd.ts_recv,
        )

    def _check_crossed(self) -> SyncResult | None:
        if self.book.crossed():
            self.crossed += 1
            metrics.BOOK_CROSSED.labels(self.exchange, self.symbol).inc()
            return self.invalidate("crossed")
        return None


class ChecksummedSync(BookSync):
    """A book whose venue sends a checksum of its top levels with each message
    (Kraken, OKX): a snapshot, then text updates after which our checksum must
    match the venue's, or the book is dropped and resynced."""

    def __init__(self, exchange: str, symbol: str, depth: int | None = None) -> None:
        super().__init__(exchange, symbol, depth)
        self.checksums_ok = 0

    def checksum(self) -> int:
        raise NotImplementedError

    def _apply_snapshot(self, upd: BookUpdate) -> SyncResult:
        self.book.clear()
        self.book.apply_text(upd.text_bids or [], upd.text_asks or [])
        self.last_id = upd.last_id
        if upd.checksum is not None and self.checksum() != upd.checksum:
            return self._checksum_failed()
        self._synced_from_snapshot()
        return SyncResult(events=[self._snapshot_event(upd)])

    def _apply_update(self, upd: BookUpdate) -> SyncResult:
        self.book.apply_text(upd.text_bids or [], upd.text_asks or [])
        self.last_id = upd.last_id
        self.applied += 1
        if upd.checksum is not None:
            if self.checksum() != upd.checksum:
                return self._checksum_failed()
            self.checksums_ok += 1
        crossed = self._check_crossed()
        if crossed is not None:
            return crossed
        return SyncResult(events=[upd.to_event()])

    def _checksum_failed(self) -> SyncResult:
        self.checksum_failures += 1
        metrics.BOOK_CHECKSUM_FAILURES.labels(self.exchange, self.symbol).inc()
        return self.invalidate("checksum")


class ConnectionSequence:
    """A per-connection message counter that must grow by exactly one (Coinbase
    ``sequence_num``); ``check`` returns how many messages were skipped."""

    def __init__(self) -> None:
        self.last: int | None = None

    def reset(self) -> None:
        self.last = None

    def check(self, seq: int) -> int:
        last, self.last = self.last, seq
        if last is None or seq == last + 1:
            return 0
        if seq <= last:
            return 0
        return seq - last - 1
