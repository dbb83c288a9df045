"""Bybit v5 orderbook sync, held to what Bybit's v5 docs promise and no more.

The public v5 ``orderbook`` stream documents ``u`` only as the "Update ID"
(the "is always in sequence" wording of the pre-v5 pages is gone; strict
``u + 1`` continuity is promised only for the MMWS-only SBE level-50 stream),
and ``seq`` as the cross sequence, "for the smaller seq, the data is generated
earlier". So what proves a lost update here is a step backwards, never a step
forwards: a jump in ``u`` is applied and counted (``u_jumps``), while a ``u``
or ``seq`` below the last applied one is a gap. ``u == 1`` is Bybit's reset
(service restart, delisting, auction start, tick change): whatever the
message's type says, it replaces the book.
"""

from __future__ import annotations

from tradewind.exchanges.common.book import BookSync, BookUpdate, SyncResult, SyncState


class BybitSync(BookSync):
    def __init__(self, exchange: str, symbol: str) -> None:
        super().__init__(exchange, symbol)
        self.last_seq: int | None = None
        self.u_jumps = 0

    def on_update(self, upd: BookUpdate) -> SyncResult:
        if upd.snapshot or upd.last_id == 1:
            self.book.clear()
            self.book.apply(upd.bids, upd.asks)
            self.last_id = upd.last_id
            self.last_seq = upd.prev_id
            self._synced_from_snapshot()
            return SyncResult(events=[self._snapshot_event(upd)])
        if self.state is SyncState.AWAITING_SNAPSHOT:
            return self._missing_base()
        if upd.last_id == self.last_id:
            return SyncResult()
        if upd.last_id < self.last_id or self._seq_regressed(upd.prev_id):
            return self._gap()
        if upd.last_id != self.last_id + 1:
            self.u_jumps += 1
        self.book.apply(upd.bids, upd.asks)
        self.last_id = upd.last_id
        if upd.prev_id is not None:
            self.last_seq = upd.prev_id
        self.applied += 1
        crossed = self._check_crossed()
        if crossed is not None:
            return crossed
        return SyncResult(events=[upd.to_event()])

    def _seq_regressed(self, seq: int | None) -> bool:
        return seq is not None and self.last_seq is not None and seq < self.last_seq
