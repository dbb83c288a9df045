"""Coinbase Advanced Trade ``level2`` sync."""

from __future__ import annotations

from tradewind.exchanges.common.book import BookSync, BookUpdate, SyncResult, SyncState


class CoinbaseSync(BookSync):
    """Coinbase Advanced ``level2``: no per-product sequence, so continuity is
    the connection's ``sequence_num`` (checked by ``ConnectionSequence``, which
    invalidates every book of the connection on a gap); an update without a
    snapshot under it is reported, never applied."""

    def on_update(self, upd: BookUpdate) -> SyncResult:
        if upd.snapshot:
            self.book.clear()
            self.book.apply(upd.bids, upd.asks)
            self.last_id = upd.last_id
            self._synced_from_snapshot()
            return SyncResult(events=[self._snapshot_event(upd)])
        if self.state is SyncState.AWAITING_SNAPSHOT:
            return self._missing_base()
        self.book.apply(upd.bids, upd.asks)
        self.last_id = upd.last_id
        self.applied += 1
        crossed = self._check_crossed()
        if crossed is not None:
            return crossed
        return SyncResult(events=[upd.to_event()])
