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

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from operator import attrgetter

import msgspec

from tradewind.events import BookDelta, MarketEvent, Quote, Side, Trade

Level = tuple[Decimal, Decimal]

_TS = attrgetter("ts_event")
_POS = attrgetter("pos")
_HI = attrgetter("hi")
_TRADES_ONLY = {Trade}


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
    """A checkpoint interval: the state at ``pos`` and the events after it.

    ``hi`` is the highest event time seen up to the interval's end (set when
    it is sealed), so it never decreases along the history: that is what lets
    ``insertion_point`` bisect instead of scanning every retained event.
    """

    pos: int
    state: MarketState
    events: list[MarketEvent] = field(default_factory=list)
    hi: int = -1


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
    """The live state of one symbol plus its recent past (see the module doc).

    Events are kept per checkpoint interval, so eviction drops whole lists and
    positions map to an interval by bisection, without indexing a long deque.
    """

    def __init__(
        self, history_ns: int, max_events: int = 200_000, checkpoint_every: int = 512
    ) -> None:
        self.state = MarketState()
        self.history_ns = history_ns
        self.max_events = max_events
        self.every = checkpoint_every
        self.start = 0
        self.end = 0
        self.checkpoints: deque[_Checkpoint] = deque([_Checkpoint(0, MarketState())])
        self._tail = self.checkpoints[-1].events
        self.watermark = -1
        self.evicted_max_ts = -1

    @property
    def events(self) -> list[MarketEvent]:
        """Every retained event in stream order (introspection; copies)."""
        return [e for c in self.checkpoints for e in c.events]

    def apply(self, e: MarketEvent) -> None:
        self.state.apply(e)
        self._tail.append(e)
        if e.ts_event > self.watermark:
            self.watermark = e.ts_event
        self.end += 1
        if self.end % self.every == 0:
            self._seal()

    def extend(self, events: list[MarketEvent]) -> None:
        """``apply`` each event in order, a checkpoint interval at a time.

        The common case, a run of trades with no order waiting on the symbol,
        then costs a list extend and a C-level max instead of a call per event:
        only the last trade's price survives in the state.
        """
        i, n = 0, len(events)
        while i < n:
            room = self.every - self.end % self.every
            seg = events[i : i + room] if i or room < n else events
            i += len(seg)
            if set(map(type, seg)) == _TRADES_ONLY:
                self.state.last = seg[-1].price  # type: ignore[union-attr]
            else:
                apply = self.state.apply
                for e in seg:
                    apply(e)
            self._tail.extend(seg)
            top = max(map(_TS, seg))
            if top > self.watermark:
                self.watermark = top
            self.end += len(seg)
            if self.end % self.every == 0:
                self._seal()

    def _seal(self) -> None:
        self.checkpoints[-1].hi = self.watermark
        cp = _Checkpoint(self.end, self.state.copy())
        self.checkpoints.append(cp)
        self._tail = cp.events
        self._evict()

    def _evict(self) -> None:
        horizon = self.watermark - self.history_ns
        cps = self.checkpoints
        while len(cps) > 1:
            first, nxt = cps[0], cps[1]
            too_many = self.end - nxt.pos >= self.max_events
            if not too_many and first.events and first.events[-1].ts_event > horizon:
                break
            if first.events:
                top = max(map(_TS, first.events))
                if top > self.evicted_max_ts:
                    self.evicted_max_ts = top
            self.start = nxt.pos
            cps.popleft()

    def _index(self, pos: int) -> int:
        """The interval holding stream position ``pos`` (the last starting at or before it)."""
        return max(bisect_right(self.checkpoints, pos, key=_POS) - 1, 0)

    def insertion_point(self, ts: int) -> tuple[int, bool]:
        """Stream position just before the first event later than ``ts``, and
        whether it lies inside the retained history."""
        exact = self.evicted_max_ts <= ts
        cps = self.checkpoints
        sealed = len(cps) - 1
        k = bisect_right(cps, ts, hi=sealed, key=_HI)
        for i in range(k, len(cps)):
            c = cps[i]
            for j, e in enumerate(c.events):
                if e.ts_event > ts:
                    return c.pos + j, exact
        return self.end, exact

    def state_at(self, pos: int) -> MarketState:
        """The market after every event before stream position ``pos``."""
        pos = max(pos, self.start)
        cp = self.checkpoints[self._index(pos)]
        st = cp.state.copy()
        for e in cp.events[: pos - cp.pos]:
            st.apply(e)
        return st

    def since(self, pos: int) -> list[MarketEvent]:
        pos = max(pos, self.start)
        cps = self.checkpoints
        k = self._index(pos)
        out = cps[k].events[pos - cps[k].pos :]
        for i in range(k + 1, len(cps)):
            out.extend(cps[i].events)
        return out

    # --- persistence (``tradewind.execution.paper.store``) ----------------------------
    def _chunk(self, i: int) -> HistoryChunk:
        cp = self.checkpoints[i]
        return HistoryChunk(cp.pos, cp.state, list(cp.events))

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
        self.end = parts[-1].pos + len(parts[-1].events)
        self.checkpoints = deque(_Checkpoint(p.pos, p.state, list(p.events)) for p in parts)
        hi = self.evicted_max_ts
        for c in list(self.checkpoints)[:-1]:
            hi = max(hi, *map(_TS, c.events)) if c.events else hi
            c.hi = hi
        self._tail = self.checkpoints[-1].events
        st = meta.tail.state.copy()
        for e in meta.tail.events:
            st.apply(e)
        self.state = st
