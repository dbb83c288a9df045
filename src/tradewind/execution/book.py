"""The market as the paper exchange sees it, per symbol, with a bounded history.

``MarketState`` folds trades, quotes and L2 deltas into the current book.
``MarketHistory`` keeps the recent events of one symbol in stream order, with
copies of the state every ``checkpoint_every`` events, so that an order that
reaches the paper exchange *after* the market stream has moved past its
arrival time can still be matched against the market as of that time, and
against every event after it, exactly as if it had come on time. This is what
makes paper fills independent of how the order path and the market path
happen to interleave in a run.

The bound: events older than ``history_s`` of event time (and beyond
``max_events``) are dropped, whole checkpoint intervals at a time. An order
whose insertion point lies before the retained history is matched from the
oldest retained state instead, and counted (``late beyond history``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from tradewind.events import BookDelta, MarketEvent, Quote, Side, Trade

Level = tuple[Decimal, Decimal]


def dec(x: float) -> Decimal:
    """A float from market data as the exact decimal it was written as."""
    return Decimal(repr(x))


@dataclass(slots=True)
class MarketState:
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)
    book_id: int = 0
    synced: bool = False
    quote: Quote | None = None
    last: float | None = None

    def copy(self) -> MarketState:
        return MarketState(
            dict(self.bids), dict(self.asks), self.book_id, self.synced, self.quote, self.last
        )

    def apply(self, e: MarketEvent) -> None:
        if type(e) is Trade:
            self.last = e.price
        elif type(e) is Quote:
            self.quote = e
        elif type(e) is BookDelta:
            if e.snapshot:
                self.bids = {p: q for p, q in e.bids if q > 0}
                self.asks = {p: q for p, q in e.asks if q > 0}
                self.book_id = e.last_update_id
                self.synced = True
            elif self.synced and e.last_update_id > self.book_id:
                for side, levels in ((self.bids, e.bids), (self.asks, e.asks)):
                    for p, q in levels:
                        if q > 0:
                            side[p] = q
                        else:
                            side.pop(p, None)
                self.book_id = e.last_update_id

    def levels(self, side: Side) -> list[Level] | None:
        """Resting liquidity on ``side`` (asks for SELL), best first.

        The L2 book overlaid with the latest quote (the quote stream is real
        time, depth diffs come every 100 ms): levels better than the quote are
        stale and dropped. None when neither a book nor a quote is known.
        """
        q = self.quote
        if not self.synced:
            if q is None:
                return None
            return (
                [(dec(q.ask), dec(q.ask_qty))]
                if side is Side.SELL
                else [(dec(q.bid), dec(q.bid_qty))]
            )
        if side is Side.SELL:
            items = sorted(self.asks.items())
            if q is not None:
                items = [(q.ask, q.ask_qty)] + [(p, v) for p, v in items if p > q.ask]
        else:
            items = sorted(self.bids.items(), reverse=True)
            if q is not None:
                items = [(q.bid, q.bid_qty)] + [(p, v) for p, v in items if p < q.bid]
        return [(dec(p), dec(v)) for p, v in items if v > 0]

    def level_qty(self, side: Side, price: Decimal) -> Decimal:
        """Visible quantity resting at ``price`` on ``side`` (BUY = bids)."""
        q = self.quote
        p = float(price)
        if q is not None:
            best, qty = (q.bid, q.bid_qty) if side is Side.BUY else (q.ask, q.ask_qty)
            if best == p:
                return dec(qty)
            if (side is Side.BUY and p > best) or (side is Side.SELL and p < best):
                return Decimal(0)
        book = self.bids if side is Side.BUY else self.asks
        v = book.get(p)
        return Decimal(0) if v is None else dec(v)


@dataclass(slots=True)
class _Checkpoint:
    pos: int
    state: MarketState


class HistoryChunk(msgspec.Struct, array_like=True):
    """One checkpoint interval: the state at ``pos`` and the events after it."""

    pos: int
    state: MarketState
    events: list[MarketEvent]


class HistoryMeta(msgspec.Struct, array_like=True):
    """What a saved history needs besides its sealed chunks: where they start,
    the bounds, and the open interval (the tail) with its events so far."""

    start: int
    watermark: int
    evicted_max_ts: int
    chunks: list[int]
    tail: HistoryChunk


class MarketHistory:
    """The live state of one symbol plus its recent past (see the module doc)."""

    def __init__(
        self, history_ns: int, max_events: int = 200_000, checkpoint_every: int = 512
    ) -> None:
        self.state = MarketState()
        self.history_ns = history_ns
        self.max_events = max_events
        self.every = checkpoint_every
        self.events: deque[MarketEvent] = deque()
        self.start = 0
        self.checkpoints: deque[_Checkpoint] = deque([_Checkpoint(0, MarketState())])
        self.watermark = -1
        self.evicted_max_ts = -1

    @property
    def end(self) -> int:
        return self.start + len(self.events)

    def apply(self, e: MarketEvent) -> None:
        self.state.apply(e)
        self.events.append(e)
        if e.ts_event > self.watermark:
            self.watermark = e.ts_event
        if self.end % self.every == 0:
            self.checkpoints.append(_Checkpoint(self.end, self.state.copy()))
            self._evict()

    def _evict(self) -> None:
        horizon = self.watermark - self.history_ns
        while len(self.checkpoints) > 1:
            nxt = self.checkpoints[1]
            last_dropped = self.events[nxt.pos - self.start - 1]
            too_many = self.end - nxt.pos >= self.max_events
            if not too_many and last_dropped.ts_event > horizon:
                break
            for _ in range(nxt.pos - self.start):
                ev = self.events.popleft()
                if ev.ts_event > self.evicted_max_ts:
                    self.evicted_max_ts = ev.ts_event
            self.start = nxt.pos
            self.checkpoints.popleft()

    def insertion_point(self, ts: int) -> tuple[int, bool]:
        """Stream position just before the first event later than ``ts``, and
        whether it lies inside the retained history."""
        exact = self.evicted_max_ts <= ts
        for i, e in enumerate(self.events):
            if e.ts_event > ts:
                return self.start + i, exact
        return self.end, exact

    def state_at(self, pos: int) -> MarketState:
        """The market after every event before stream position ``pos``."""
        pos = max(pos, self.start)
        cp = self.checkpoints[0]
        for c in self.checkpoints:
            if c.pos <= pos:
                cp = c
            else:
                break
        st = cp.state.copy()
        for i in range(cp.pos, pos):
            st.apply(self.events[i - self.start])
        return st

    def since(self, pos: int) -> list[MarketEvent]:
        pos = max(pos, self.start)
        return [self.events[i - self.start] for i in range(pos, self.end)]

    # --- persistence (``tradewind.execution.paper_store``) ----------------------------
    def _chunk(self, i: int) -> HistoryChunk:
        cp = self.checkpoints[i]
        stop = self.checkpoints[i + 1].pos if i + 1 < len(self.checkpoints) else self.end
        evs = [self.events[j - self.start] for j in range(max(cp.pos, self.start), stop)]
        return HistoryChunk(cp.pos, cp.state, evs)

    def sealed(self) -> list[int]:
        """Positions of the complete checkpoint intervals (all but the open one)."""
        return [c.pos for c in list(self.checkpoints)[:-1]]

    def chunk_at(self, pos: int) -> HistoryChunk:
        for i, c in enumerate(self.checkpoints):
            if c.pos == pos:
                return self._chunk(i)
        raise KeyError(pos)

    def meta(self) -> HistoryMeta:
        return HistoryMeta(
            self.start,
            self.watermark,
            self.evicted_max_ts,
            self.sealed(),
            self._chunk(len(self.checkpoints) - 1),
        )

    def restore(self, meta: HistoryMeta, chunks: list[HistoryChunk | None]) -> None:
        """Rebuild from ``meta`` and its sealed ``chunks`` (in order, checked by
        position); a missing chunk drops everything before it, as eviction would."""
        usable: list[HistoryChunk] = []
        dropped = False
        for want, got in zip(meta.chunks, chunks, strict=True):
            if got is None or got.pos != want or len(got.events) != self.every:
                usable, dropped = [], True
                continue
            usable.append(got)
        parts = [*usable, meta.tail]
        self.start = parts[0].pos
        self.watermark = meta.watermark
        self.evicted_max_ts = meta.evicted_max_ts
        if dropped:
            first = next((p.events[0].ts_event for p in parts if p.events), meta.watermark)
            self.evicted_max_ts = max(self.evicted_max_ts, first - 1)
        self.events = deque(e for p in parts for e in p.events)
        self.checkpoints = deque(_Checkpoint(p.pos, p.state) for p in parts)
        st = meta.tail.state.copy()
        for e in meta.tail.events:
            st.apply(e)
        self.state = st
