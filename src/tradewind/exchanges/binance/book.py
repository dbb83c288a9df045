"""Binance diff-depth sync (spot, USD-M and COIN-M) against a REST snapshot."""

from __future__ import annotations

from collections import deque

import msgspec

from tradewind.events import BookDelta
from tradewind.exchanges.common.book import BookSync, BookUpdate, SyncResult, SyncState


class BinanceSync(BookSync):
    """Binance diff depth against a REST snapshot.

    Diffs are buffered until the snapshot arrives (the straddling diff usually
    comes first). Spot: drop ``u <= L``, the first applied has ``U <= L+1 <= u``,
    then ``U == prev u + 1``. USD-M (``futures``): drop ``u < L``, the first has
    ``U <= L <= u``, then ``pu == prev u``.
    """

    def __init__(self, exchange: str, symbol: str, futures: bool = False) -> None:
        super().__init__(exchange, symbol)
        self.futures = futures
        self.buffer: deque[BookUpdate] = deque()
        self.stale_snapshots = 0
        self._fresh = False
        self._undated: BookDelta | None = None
        """A snapshot applied with no stream time known yet: its row goes out
        with the first diff after it, dated with that diff's time."""

    def on_update(self, upd: BookUpdate) -> SyncResult:
        if upd.snapshot:
            return self._on_snapshot(upd)
        if self.state is SyncState.AWAITING_SNAPSHOT:
            if len(self.buffer) >= self.max_buffer:
                self.buffer.popleft()
            self.buffer.append(upd)
            return SyncResult(resync="awaiting_snapshot")
        return self._apply([upd])

    def _stale(self, upd: BookUpdate) -> bool:
        if self._fresh and self.futures:
            return upd.last_id < self.last_id
        return upd.last_id <= self.last_id

    def _follows(self, upd: BookUpdate) -> bool:
        """The first diff after a snapshot straddles it; later ones chain."""
        last = self.last_id
        if self.futures:
            if self._fresh:
                return upd.first_id <= last <= upd.last_id or upd.prev_id == last
            return upd.prev_id == last if upd.prev_id is not None else upd.first_id == last + 1
        return upd.first_id <= last + 1 <= upd.last_id

    def _on_snapshot(self, snap: BookUpdate) -> SyncResult:
        if not snap.ts_event:
            snap.ts_event = self._stream_time(snap)
        self.book.clear()
        self.book.apply(snap.bids, snap.asks)
        self.last_id = snap.last_id
        self._fresh = True
        buffered = [u for u in self.buffer if not self._stale(u)]
        self.buffer.clear()
        if buffered and not self._follows(buffered[0]):
            self.stale_snapshots += 1
            self.book.clear()
            self.buffer.extend(buffered)
            return SyncResult(resync="stale_snapshot")
        self._synced_from_snapshot()
        # The snapshot as fetched, then the buffered diffs: what a replay of
        # the recorded snapshot and diffs rebuilds (taken after the diffs, the
        # row would hold levels no snapshot ever had).
        first = self._snapshot_event(snap)
        self._undated = None if first.ts_event else first
        out = self._apply(buffered)
        if first.ts_event:
            out.events.insert(0, first)
        return out

    def _stream_time(self, snap: BookUpdate) -> int:
        """A time for a snapshot whose body has none (spot), on the stream's
        clock: the last buffered diff it already holds, else the first it
        precedes; with nothing buffered, 0 and the row waits for the next diff
        (``_undated``). Never the wall clock (a replayed or skewed stream would
        see its book jump in time) and never a stored 0 (filed under 1970)."""
        held = [u.ts_event for u in self.buffer if u.last_id <= snap.last_id and u.ts_event]
        if held:
            return max(held)
        after = [u.ts_event for u in self.buffer if u.ts_event]
        return min(after) if after else 0

    def _apply(self, updates: list[BookUpdate]) -> SyncResult:
        out = SyncResult()
        for i, upd in enumerate(updates):
            if self._stale(upd):
                continue
            if not self._follows(upd):
                out.resync = self._gap().resync
                self.buffer.extend(updates[i:])
                return out
            self._fresh = False
            self.book.apply(upd.bids, upd.asks)
            self.last_id = upd.last_id
            self.applied += 1
            if self._undated is not None:
                out.events.append(msgspec.structs.replace(self._undated, ts_event=upd.ts_event))
                self._undated = None
            out.events.append(upd.to_event())
            crossed = self._check_crossed()
            if crossed is not None:
                out.resync = crossed.resync
                return out
        return out
