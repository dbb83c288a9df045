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

from tradewind.exchanges.common.book import BookUpdate, ChecksummedSync, L2Book, SyncResult

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


class OkxSync(ChecksummedSync):
    def checksum(self) -> int:
        return okx_checksum(self.book)

    def on_update(self, upd: BookUpdate) -> SyncResult:
        if upd.snapshot:
            return self._apply_snapshot(upd)
        if not self.synced:
            return self._missing_base()
        if upd.prev_id is not None and upd.prev_id != self.last_id:
            if upd.prev_id < self.last_id and upd.last_id <= self.last_id:
                return SyncResult()
            return self._gap()
        return self._apply_update(upd)
