"""OKX ``books`` sync: a snapshot, then updates whose signed CRC32 over the
top 25 levels must match ours after applying them, and (on connections that
send them) ``prevSeqId`` equal to the last ``seqId``. A mismatch or a gap
drops the book and asks for a fresh snapshot (OKX sends one on resubscribe).

The checksum's input interleaves the sides level by level,
``bid1:bidSz1:ask1:askSz1:bid2:…``, over prices and sizes as sent; when one
side is shorter the other's remaining levels follow alone.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from tradewind.exchanges.common.book import BookSync, BookUpdate, L2Book, SyncResult
from tradewind.observability import metrics

LEVELS = 25


def okx_checksum(book: L2Book) -> int:
    bids = [book.text_bids[p] for p in sorted(book.text_bids, reverse=True)[:LEVELS]]
    asks = [book.text_asks[p] for p in sorted(book.text_asks)[:LEVELS]]
    return checksum_of(bids, asks)


def checksum_of(bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]]) -> int:
    """Of the best-first levels ``[price, size, …]`` as sent (the first 25 count)."""
    bids, asks = bids[:LEVELS], asks[:LEVELS]
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts += bids[i][:2]
        if i < len(asks):
            parts += asks[i][:2]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


class OkxSync(BookSync):
    def __init__(self, exchange: str, symbol: str) -> None:
        super().__init__(exchange, symbol)
        self.checksums_ok = 0

    def on_update(self, upd: BookUpdate) -> SyncResult:
        if upd.snapshot:
            self.book.clear()
            self.book.apply_text(upd.text_bids or [], upd.text_asks or [])
            self.last_id = upd.last_id
            if upd.checksum is not None and okx_checksum(self.book) != upd.checksum:
                return self._checksum_failed()
            self._synced_from_snapshot()
            return SyncResult(events=[self._snapshot_event(upd)])
        if not self.synced:
            return self._missing_base()
        if upd.prev_id is not None and upd.prev_id != self.last_id:
            if upd.prev_id < self.last_id and upd.last_id <= self.last_id:
                return SyncResult()
            return self._gap()
        self.book.apply_text(upd.text_bids or [], upd.text_asks or [])
        self.last_id = upd.last_id
        self.applied += 1
        if upd.checksum is not None:
            if okx_checksum(self.book) != upd.checksum:
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
