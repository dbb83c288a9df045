"""Bybit v5 orderbook sync."""

from __future__ import annotations

from tradewind.exchanges.common.book import BookSync, BookUpdate, SyncResult, SyncState


class BybitSync(BookSync):
    """Bybit v5 orderbook: a snapshot, or a delta with ``u == 1`` (Bybit's
    reset after a service restart), replaces the book; each delta has
    ``u == prev u + 1``, a repeat of the last is dropped, and any other ``u``
    (a jump, or a regression) is a gap that resyncs the book."""

    def on_update(self, upd: BookUpdate) -> SyncResult:
        if upd.snapshot or upd.last_id == 1:
            # Bybit documents u == 1 as a snapshot after a service restart,
            # whatever the message's type says.
            self.book.clear()
            self.book.apply(upd.bids, upd.asks)
            self.last_id = upd.last_id
            self._synced_from_snapshot()
            return SyncResult(events=[self._snapshot_event(upd)])
        if self.state is SyncState.AWAITING_SNAPSHOT:
            return self._missing_base()
        if upd.last_id == self.last_id:
            return SyncResult()
        if upd.last_id != self.last_id + 1:
            return self._gap()
        self.book.apply(upd.bids, upd.asks)
        self.last_id = upd.last_id
        self.applied += 1
        crossed = self._check_crossed()
        if crossed is not None:
            return crossed
        return SyncResult(events=[upd.to_event()])
