"""The paper exchange's fill model on bars, for symbols whose data is bars only.

A bar file (daily klines, basana exports) has no trades, quotes or book to
match against, so the paper exchange fills on the bars themselves, the way
NautilusTrader and backtrader do. The model:

- **Which bar.** An order executes on the first bar that ends after it
  arrives (``ts_event + latency``): an order decided on a bar's close arrives
  just after it and executes on the next bar.
- **Market orders** fill at that bar's open, worse by
  ``paper.bar_slippage_ticks`` ticks (buy higher, sell lower), as taker.
- **Limit orders** that the open already crosses take at the open as taker
  (post-only ones are rejected, as on a venue). Otherwise a buy limit fills at
  its price when the bar's low reaches it (a sell limit: the high), as maker,
  and a resting limit does the same on every later bar; a bar that opens
  through the price fills at the open (a gap). IOC and FOK orders only take
  at the open; their remainder expires.
- **High or low first.** A bar is taken to travel open → low → high → close
  when it closed at or above its open, and open → high → low → close when it
  closed below; fills carry the time of the point of that path where they
  happen (open, a third or two thirds into the bar), never before the order
  arrived.
- **Volume cap.** With ``paper.bar_volume_fraction`` > 0 an order takes at
  most that fraction of a bar's volume from each bar; a market order's
  remainder expires, a limit order's keeps resting. The cap is per order and
  bar, so each order's fills depend only on the order and the bars, whatever
  order the bus delivers orders and bars in.
- **Late orders.** The bus may bring an order after bars past its arrival;
  it is matched against the retained bars from its arrival on (the last
  ``KEEP_BARS`` per symbol), exactly as if it had come on time.

A symbol on which the paper exchange has seen trades, quotes or books is
matched on those; its bars (a live kline feed next to trades) are ignored.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections import deque
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

from tradewind.events import (
    Bar,
    Event,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from tradewind.execution.paper.book import dec

if TYPE_CHECKING:
    from tradewind.execution.paper.exchange import PaperExchange, PaperOrder

KEEP_BARS = 10_000
S = OrderStatus
_ZERO = Decimal(0)
Key = tuple[str, str]


def path_offsets(bar: Bar) -> tuple[int, int]:
    """Times into the bar (ns) at which its low and its high are reached."""
    span = max(bar.ts_event - bar.ts_open, 0)
    first, second = span // 3, 2 * span // 3
    if bar.close >= bar.open:
        return bar.ts_open + first, bar.ts_open + second
    return bar.ts_open + second, bar.ts_open + first


class BarFills:
    """Bars per symbol and the matching of orders against them."""

    def __init__(self, paper: PaperExchange) -> None:
        self.paper = paper
        self.bars: dict[Key, deque[Bar]] = {}
        self.count: dict[Key, int] = {}
        """Bars ever kept per symbol: the position after the newest, so the
        saved state (``execution.paper.store``) writes only what is new."""

    def applies(self, key: Key) -> bool:
        return key in self.bars and key not in self.paper.markets

    def restore(self, key: Key, count: int, bars: list[Bar]) -> None:
        """The newest ``bars`` of a symbol that had kept ``count`` bars."""
        self.bars[key] = deque(bars[-KEEP_BARS:], maxlen=KEEP_BARS)
        self.count[key] = count

    # --- inputs ----------------------------------------------------------------
    def on_bar(self, bar: Bar) -> list[Event]:
        key = (bar.exchange, bar.symbol)
        if key in self.paper.markets:
            return []
        hist = self.bars.setdefault(key, deque(maxlen=KEEP_BARS))
        if hist and bar.ts_event <= hist[-1].ts_event:
            return []  # a duplicate or an open (not yet final) bar again
        hist.append(bar)
        self.count[key] = self.count.get(key, 0) + 1
        out: list[Event] = []
        for po in list(self.paper.resting.get(key, {}).values()):
            self._rest_on(po, bar, out)
        flights = self.paper.in_flight.get(key)
        while flights and flights[0].arrival <= bar.ts_event:
            f = heapq.heappop(flights)
            if f.order is not None:
                self._arrive(f.order, bar, out)
            elif f.cancel is not None:
                target = self.paper.orders.get(f.cancel.client_order_id)
                if target is not None:
                    arrival = max(f.arrival, target.arrival)
                    self.paper._do_cancel(target, arrival, f.cancel.reason, out)
        return out

    def late(self, po: PaperOrder) -> list[Event] | None:
        """An order arriving before the newest bar's end: match it against the
        retained bars from its arrival on. None when it is not late."""
        o = po.request
        key = (o.exchange, o.symbol)
        hist = self.bars.get(key)
        if not hist or not self.applies(key) or po.arrival > hist[-1].ts_event:
            return None
        ends = [b.ts_event for b in hist]
        i = bisect_left(ends, po.arrival)
        out: list[Event] = []
        self._arrive(po, hist[i], out)
        for b in list(hist)[i + 1 :]:
            if not self._resting(po):
                break
            self._rest_on(po, b, out)
        return out

    # --- matching --------------------------------------------------------------
    def _resting(self, po: PaperOrder) -> bool:
        r = self.paper.resting.get((po.request.exchange, po.request.symbol))
        return r is not None and po.request.client_order_id in r

    def _cap(self, po: PaperOrder, bar: Bar) -> Decimal:
        frac = self.paper.settings.bar_volume_fraction
        inst = self.paper.instruments.get(po.request.exchange, po.request.symbol)
        if frac <= 0:
            return po.remaining
        return inst.round_qty(min(po.remaining, dec(bar.volume) * frac))

    def _open_price(self, po: PaperOrder, bar: Bar) -> Decimal:
        o = po.request
        inst = self.paper.instruments.get(o.exchange, o.symbol)
        ticks = self.paper.settings.bar_slippage_ticks * inst.tick_size
        if o.side is Side.BUY:
            return inst.round_price(dec(bar.open) + ticks, ROUND_CEILING)
        return inst.round_price(dec(bar.open) - ticks, ROUND_FLOOR)

    def _fill(
        self, po: PaperOrder, px: Decimal, qty: Decimal, liq: Liquidity, ts: int, out: list[Event]
    ) -> None:
        if qty > 0:
            self.paper._fill(po, px, qty, liq, ts, out)

    def _arrive(self, po: PaperOrder, bar: Bar, out: list[Event]) -> None:
        paper = self.paper
        o = po.request
        ts = max(po.arrival, bar.ts_open)
        if po.state.status.terminal:
            return
        if o.reduce_only:
            pos = paper._position((o.exchange, o.symbol), ts)
            reducible = -pos if o.side is Side.BUY else pos
            if reducible <= 0:
                out.extend(po.state.transition(S.REJECTED, ts, "reduce-only: nothing to reduce"))
                return
            po.qty = min(po.qty, reducible)
        tif = o.time_in_force
        if o.order_type is OrderType.MARKET:
            if tif is TimeInForce.FOK and self._cap(po, bar) < po.remaining:
                out.extend(po.state.transition(S.ACCEPTED, ts))
                out.extend(po.state.transition(S.EXPIRED, ts, "fill-or-kill: bar volume cap"))
                return
            out.extend(po.state.transition(S.ACCEPTED, ts))
            self._fill(po, self._open_price(po, bar), self._cap(po, bar), Liquidity.TAKER, ts, out)
            if po.remaining > 0 and not po.state.status.terminal:
                out.extend(po.state.transition(S.EXPIRED, ts, "market order beyond bar volume cap"))
            return
        if o.price is None:
            out.extend(po.state.transition(S.REJECTED, ts, "limit order without a price"))
            return
        buy = o.side is Side.BUY
        limit = o.price
        opened = dec(bar.open)
        crosses = opened <= limit if buy else opened >= limit
        if tif is TimeInForce.POST_ONLY and crosses:
            out.extend(po.state.transition(S.REJECTED, ts, "post-only order would take liquidity"))
            return
        if tif is TimeInForce.FOK and (not crosses or self._cap(po, bar) < po.remaining):
            out.extend(po.state.transition(S.ACCEPTED, ts))
            out.extend(po.state.transition(S.EXPIRED, ts, "fill-or-kill: not enough liquidity"))
            return
        out.extend(po.state.transition(S.ACCEPTED, ts))
        if crosses:
            px = self._open_price(po, bar)
            px = min(px, limit) if buy else max(px, limit)
            self._fill(po, px, self._cap(po, bar), Liquidity.TAKER, ts, out)
            if po.remaining <= 0:
                return
        if tif in (TimeInForce.IOC, TimeInForce.FOK):
            if not po.state.status.terminal:
                out.extend(po.state.transition(S.EXPIRED, ts, "immediate-or-cancel remainder"))
            return
        if po.state.status.terminal:
            return
        paper.resting.setdefault((o.exchange, o.symbol), {})[o.client_order_id] = po
        if not crosses:
            self._touch(po, bar, out)

    def _rest_on(self, po: PaperOrder, bar: Bar, out: list[Event]) -> None:
        """A resting limit order against one later bar."""
        if bar.ts_event <= po.arrival or po.state.status.terminal:
            return
        o = po.request
        limit = o.price
        if limit is None:
            return
        buy = o.side is Side.BUY
        opened = dec(bar.open)
        if (buy and opened <= limit) or (not buy and opened >= limit):
            ts = max(po.arrival, bar.ts_open)
            self._fill(po, opened, self._cap(po, bar), Liquidity.MAKER, ts, out)
            return
        self._touch(po, bar, out)

    def _touch(self, po: PaperOrder, bar: Bar, out: list[Event]) -> None:
        o = po.request
        limit = o.price
        assert limit is not None
        low_at, high_at = path_offsets(bar)
        if o.side is Side.BUY:
            reached, at = dec(bar.low) <= limit, low_at
        else:
            reached, at = dec(bar.high) >= limit, high_at
        if reached:
            ts = min(max(po.arrival, at), bar.ts_event)
            self._fill(po, limit, self._cap(po, bar), Liquidity.MAKER, ts, out)
