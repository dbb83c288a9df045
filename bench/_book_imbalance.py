"""Book imbalance on Tradewind's L2 deltas, for the order-book comparison in
``bench_nautilus.py`` (loaded as ``bench/_book_imbalance.py:L2BookImbalance``).

The built-in ``imbalance`` strategy reads quotes; this one keeps the L2 book
from ``BookDelta`` events itself, as the paper exchange does (a snapshot
replaces the book, a diff applies once a snapshot was seen and only when it is
newer than the book), and decides on the best level after every delta with
the built-in strategy's rules (long at ``imbalance >= threshold``, held at
least ``hold_s`` of exchange time, the hold restarted while the imbalance
still points the same way). Best prices come from heaps with lazy deletion, so
a delta costs its levels, not the book's depth.
"""

from __future__ import annotations

import heapq
from decimal import Decimal
from typing import Any

from pydantic import Field

from tradewind.events import BookDelta
from tradewind.strategies.base import Strategy, StrategyContext, StrategyParams


class L2ImbalanceParams(StrategyParams):
    bar_interval_s: float = 0.0
    threshold: float = Field(0.6, gt=0, lt=1)
    hold_s: float = Field(1.0, ge=0)
    quantity: Decimal = Field(Decimal("0.001"), gt=0)


class _Side:
    __slots__ = ("heap", "levels", "sign")

    def __init__(self, sign: float) -> None:
        self.sign = sign
        self.levels: dict[float, float] = {}
        self.heap: list[float] = []

    def reset(self, levels: list[tuple[float, float]]) -> None:
        self.levels = {p: q for p, q in levels if q > 0}
        self.heap = [self.sign * p for p in self.levels]
        heapq.heapify(self.heap)

    def apply(self, levels: list[tuple[float, float]]) -> None:
        book, heap, sign = self.levels, self.heap, self.sign
        for p, q in levels:
            if q > 0:
                if p not in book:
                    heapq.heappush(heap, sign * p)
                book[p] = q
            else:
                book.pop(p, None)

    def best(self) -> tuple[float, float] | None:
        heap, book, sign = self.heap, self.levels, self.sign
        while heap:
            p = sign * heap[0]
            q = book.get(p)
            if q is not None:
                return p, q
            heapq.heappop(heap)
        return None


class L2BookImbalance(Strategy):
    name = "l2_imbalance"
    Params = L2ImbalanceParams

    def __init__(self, params: StrategyParams, ctx: StrategyContext) -> None:
        super().__init__(params, ctx)
        assert isinstance(params, L2ImbalanceParams)
        self.p = params
        self.hold_ns = int(params.hold_s * 1e9)
        self.entered_ns = 0
        self.bids = _Side(-1.0)
        self.asks = _Side(1.0)
        self.book_id = 0
        self.synced = False
        self.levels_in = 0
        self.books = 0

    def on_book(self, book: BookDelta) -> None:
        if book.snapshot:
            self.bids.reset(book.bids)
            self.asks.reset(book.asks)
            self.synced = True
        elif self.synced and book.last_update_id > self.book_id:
            self.bids.apply(book.bids)
            self.asks.apply(book.asks)
        else:
            return
        self.book_id = book.last_update_id
        self.levels_in += len(book.bids) + len(book.asks)
        self.books += 1
        best_bid, best_ask = self.bids.best(), self.asks.best()
        if best_bid is None or best_ask is None:
            return
        # Risk prices an order from the signal's reference, which the signal
        # service takes from quotes; here the book is the quote.
        self.ctx.bid, b = best_bid
        self.ctx.ask, a = best_ask
        imb = (b - a) / (b + a)
        want = 1 if imb >= self.p.threshold else 0
        pos = self.ctx.position
        held = 1 if pos > 0 else -1 if pos < 0 else 0
        now = self.ctx.now_ns
        if held != 0 and now - self.entered_ns < self.hold_ns:
            return
        if held != 0 and want == held:
            self.entered_ns = now
            return
        if want == held:
            return
        target = self.p.quantity * want
        if target != 0:
            self.entered_ns = now
        delta = target - pos
        if delta > 0:
            self.ctx.buy(delta, reason=f"imbalance {imb:+.2f}")
        elif delta < 0:
            self.ctx.sell(-delta, reason=f"imbalance {imb:+.2f}")

    def save_state(self) -> dict[str, Any]:
        return {"entered_ns": self.entered_ns}

    def load_state(self, state: dict[str, Any]) -> None:
        self.entered_ns = int(state["entered_ns"])
