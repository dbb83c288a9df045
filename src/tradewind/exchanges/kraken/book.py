"""Kraken book sync and its CRC32 checksum."""

from __future__ import annotations

import zlib

from tradewind.exchanges.common.book import (
    BookUpdate,
    ChecksummedSync,
    L2Book,
    SyncResult,
    SyncState,
)


def _checksum_text(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def kraken_checksum(book: L2Book) -> int:
    """CRC32 over the top ten asks (low → high) then bids (high → low), each
    price and quantity as sent with the dot and leading zeros removed."""
    parts: list[str] = []
    for p in sorted(book.text_asks)[:10]:
        pt, qt = book.text_asks[p]
        parts.append(_checksum_text(pt))
        parts.append(_checksum_text(qt))
    for p in sorted(book.text_bids, reverse=True)[:10]:
        pt, qt = book.text_bids[p]
        parts.append(_checksum_text(pt))
        parts.append(_checksum_text(qt))
    return zlib.crc32("".join(parts).encode())


class KrakenSync(ChecksummedSync):
    """Kraken v1/v2 book: snapshot, then updates whose CRC32 over the top ten
    levels must match ours after applying them and truncating to the depth."""

    def __init__(self, exchange: str, symbol: str, depth: int = 10) -> None:
        super().__init__(exchange, symbol, depth)

    def checksum(self) -> int:
        return kraken_checksum(self.book)

    def on_update(self, upd: BookUpdate) -> SyncResult:
        if upd.snapshot:
            return self._apply_snapshot(upd)
        if self.state is SyncState.AWAITING_SNAPSHOT:
            return self._missing_base()
        return self._apply_update(upd)
