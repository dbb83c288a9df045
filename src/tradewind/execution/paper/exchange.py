"""The paper exchange: a deterministic matching simulator in event time.

An order *arrives* at ``order.ts_event + latency`` (latency drawn from a
generator seeded by ``paper.seed`` and the client order id, so it is the same
in every process). It is matched against the market as of that moment: the
state after every market event of its symbol that comes, in stream order,
before the first event later than the arrival time. A resting remainder is
then matched against each later market event in stream order.

The order path and the market path reach this class in whatever order the
bus delivers them. An order that comes before the market has reached its
arrival time waits in flight; one that comes after is matched against the
retained history (``tradewind.execution.paper.book``) from its insertion point on.
Orders do not take liquidity from each other (the recorded market does not
react to them either), so each order's fills depend only on that order and the
market stream: the same replay gives the same fills however the services are
scheduled, in one process or across several.

Matching rules:

- market orders walk the book (the L2 book overlaid with the latest quote);
  liquidity beyond the visible book expires. With only a quote known the
  whole order fills at the best price; with nothing known yet, at the order's
  reference price worsened by ``slippage_bps``.
- limit orders take what crosses, as taker; the rest rests with a queue
  position: the visible quantity at its price when it arrived. Trades at the
  price on the other side consume the queue first and then fill the order;
  a trade through the price fills the whole remainder; the queue never
  exceeds the visible quantity at the price (cancellations ahead of us).
  Resting fills pay the maker fee.
- post-only orders that would take are rejected; IOC remainders expire; FOK
  orders fill completely at arrival or expire; reduce-only orders are clipped
  to the paper account's position as of their arrival (the rest expires once
  the clipped quantity has filled) and rejected when there is nothing to reduce.
- a cancel takes effect at its own arrival time when the market has not
  passed it yet, else at once; fills already emitted stand (as on a venue,
  where a cancel can lose the race against a fill).

Memory is bounded: a finished order leaves ``orders`` for ``done`` (its client
order id and when it finished), which keeps at least the last ``keep_done``
ids and every id younger than ``keep_done_s`` (the bus's redelivery horizon),
so a duplicate of any order that could still come is recognised and ignored;
fills older than the retained market history are summed into one ledger entry.
The whole state can be saved and restored (``tradewind.execution.paper.store``).
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from operator import attrgetter

from tradewind.config import PaperSettings
from tradewind.events import (
    Bar,
    BookDelta,
    CancelRequest,
    Event,
    Fill,
    Liquidity,
    MarketEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Quote,
    Side,
    TimeInForce,
    Trade,
)
from tradewind.execution.paper.bar_fills import BarFills
from tradewind.execution.paper.book import Level, MarketHistory, MarketState, dec
from tradewind.execution.state import OrderState
from tradewind.instruments import Instrument, InstrumentRegistry
from tradewind.observability import metrics

_BPS = Decimal("0.0001")
_FEE_Q = Decimal("1e-8")
_ZERO = Decimal(0)
S = OrderStatus
_KEY = attrgetter("exchange", "symbol")
LEDGER_COMPACT_AT = 1024
"""Ledger entries per symbol before the ones older than the history are summed."""


@dataclass(slots=True)
class PaperOrder:
    request: OrderRequest
    state: OrderState
    arrival: int
    qty: Decimal
    queue_ahead: Decimal = _ZERO
    fills: int = 0

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.state.filled_qty


@dataclass(order=True, slots=True)
class InFlight:
    arrival: int
    seq: int
    order: PaperOrder | None = field(compare=False, default=None)
    cancel: CancelRequest | None = field(compare=False, default=None)


class PaperExchange:
    name = "paper"

    def __init__(
        self,
        settings: PaperSettings,
        instruments: InstrumentRegistry,
        *,
        keep_done: int = 10_000,
        keep_done_s: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.instruments = instruments
        self.markets: dict[tuple[str, str], MarketHistory] = {}
        self.orders: dict[str, PaperOrder] = {}
        """Orders not finished yet (finished ones move to ``done``)."""
        self.done: dict[str, float] = {}
        """Finished client order ids → wall time they finished, oldest first."""
        self.keep_done = keep_done
        self.keep_done_s = keep_done_s
        self.clock = clock
        self.resting: dict[tuple[str, str], dict[str, PaperOrder]] = {}
        self.in_flight: dict[tuple[str, str], list[InFlight]] = {}
        self.ledger: dict[tuple[str, str], list[tuple[int, Decimal]]] = {}
        self._ledger_kept: dict[tuple[str, str], int] = {}
        self._seq = 0
        self.late_orders = 0
        self.beyond_history = 0
        self.version = 0
        """Bumped by every change to the order side (what ``paper_store`` saves)."""
        self.bar_fills = BarFills(self)
        """Symbols with bars only are matched on their bars (``execution.paper.bar_fills``)."""

    def knows(self, coid: str) -> bool:
        return coid in self.orders or coid in self.done

    def _settle(self, out: list[Event]) -> list[Event]:
        """Move the orders ``out`` finished to ``done``; expire old done ids."""
        now = -1.0
        for e in out:
            if type(e) is OrderUpdate and e.status.terminal:
                if now < 0:
                    now = self.clock()
                if self.orders.pop(e.client_order_id, None) is not None:
                    self.done[e.client_order_id] = now
        if now >= 0:
            self.expire_done(now)
        return out

    def expire_done(self, now: float) -> None:
        """Forget finished ids beyond ``keep_done`` that are older than ``keep_done_s``."""
        excess = len(self.done) - self.keep_done
        if excess <= 0:
            return
        horizon = now - self.keep_done_s
        old: list[str] = []
        for coid, t in self.done.items():
            if len(old) >= excess or t > horizon:
                break
            old.append(coid)
        for coid in old:
            del self.done[coid]

    # --- model parameters ------------------------------------------------------
    def latency_ns(self, coid: str) -> int:
        s = self.settings
        u = random.Random(f"{s.seed}:{coid}").random()
        return int((s.latency_ms + s.latency_jitter_ms * u) * 1_000_000)

    def _market(self, key: tuple[str, str]) -> MarketHistory:
        m = self.markets.get(key)
        if m is None:
            s = self.settings
            m = self.markets[key] = MarketHistory(
                int(s.history_s * 1e9), s.history_max_events, s.checkpoint_every
            )
        return m

    def _fee(self, inst: Instrument, px: Decimal, qty: Decimal, liq: Liquidity) -> Decimal:
        """On the traded value: in the quote, or in the coin for inverse contracts."""
        bps = self.settings.taker_fee_bps if liq is Liquidity.TAKER else self.settings.maker_fee_bps
        value = inst.coin_value(qty, px) if inst.inverse else inst.notional(qty, px)
        return (value * bps * _BPS).quantize(_FEE_Q)

    def fill_price(self, o: OrderRequest) -> Decimal | None:
        """The reference-price fallback for a market order with no market known."""
        ref = o.ref_ask if o.side is Side.BUY else o.ref_bid
        if ref is None:
            ref = o.ref_last
        if ref is None:
            return None
        inst = self.instruments.get(o.exchange, o.symbol)
        slip = self.settings.slippage_bps * _BPS
        raw = dec(ref)
        if o.side is Side.BUY:
            return inst.round_price(raw * (1 + slip), ROUND_CEILING)
        return inst.round_price(raw * (1 - slip), ROUND_FLOOR)

    # --- inputs ------------------------------------------------------------------
    def submit(self, o: OrderRequest) -> list[Event]:
        """An order reaches the exchange; the events it causes so far."""
        if self.knows(o.client_order_id):
            return []
        self.version += 1
        return self._settle(self._submit(o))

    def _submit(self, o: OrderRequest) -> list[Event]:
        st = OrderState.of(o)
        st.exchange_order_id = f"paper-{o.client_order_id}"
        po = PaperOrder(o, st, o.ts_event + self.latency_ns(o.client_order_id), o.quantity)
        self.orders[o.client_order_id] = po
        out: list[Event] = list(st.transition(S.SUBMITTED, o.ts_event))
        key = (o.exchange, o.symbol)
        late = self.bar_fills.late(po)
        if late is not None:
            out.extend(late)
            return out
        m = self.markets.get(key)
        if m is None or po.arrival >= m.watermark:
            self._seq += 1
            heapq.heappush(self.in_flight.setdefault(key, []), InFlight(po.arrival, self._seq, po))
            return out
        self.late_orders += 1
        pos, exact = m.insertion_point(po.arrival)
        if not exact:
            self.beyond_history += 1
            metrics.EXCHANGE_ERRORS.labels("paper", "late_beyond_history").inc()
        self._arrive(po, m.state_at(pos), out)
        for e in m.since(pos):
            if self._is_resting(po):
                self._match(po, e, out)
        return out

    def cancel(self, c: CancelRequest) -> list[Event]:
        po = self.orders.get(c.client_order_id)
        if po is None or po.state.status.terminal:
            return []
        self.version += 1
        key = (c.exchange, c.symbol)
        m = self.markets.get(key)
        at = c.ts_event + self.latency_ns(c.id)
        if m is None or at >= m.watermark:
            self._seq += 1
            heapq.heappush(self.in_flight.setdefault(key, []), InFlight(at, self._seq, None, c))
            return []
        out: list[Event] = []
        self._do_cancel(po, max(at, po.arrival), c.reason, out)
        return self._settle(out)

    def on_market(self, e: MarketEvent) -> list[Event]:
        """One market event in stream order; the fills and updates it causes."""
        if type(e) is Bar:
            by_bar = self.bar_fills.on_bar(e)
            if by_bar:
                self.version += 1
            return self._settle(by_bar) if by_bar else by_bar
        out: list[Event] = []
        key = (e.exchange, e.symbol)
        m = self._market(key)
        flights = self.in_flight.get(key)
        if flights:
            self.version += 1
            self._land(flights, e.ts_event - 1, m.state, out)
        m.apply(e)
        book = self.resting.get(key)
        if book:
            self.version += 1
            for po in list(book.values()):
                self._match(po, e, out)
        return self._settle(out) if out else out

    def on_markets(self, events: Iterable[MarketEvent]) -> list[Event]:
        """``on_market`` for each event in order, with the same result.

        When the batch is of one symbol, the events from the point where no
        order is resting or in flight on it go to the market history in one
        ``extend``: with nothing to match or land, ``on_market`` would only
        have appended them one by one.
        """
        evs = events if isinstance(events, list) else list(events)
        out: list[Event] = []
        if any(type(e) is Bar for e in evs):
            for e in evs:
                out.extend(self.on_market(e))
            return out
        if len(set(map(_KEY, evs))) == 1:
            key = _KEY(evs[0])
            m = self._market(key)
            for i, e in enumerate(evs):
                if not self.in_flight.get(key) and not self.resting.get(key):
                    m.extend(evs[i:] if i else evs)
                    return out
                out.extend(self.on_market(e))
            return out
        for e in evs:
            out.extend(self.on_market(e))
        return out

    def advance(self, now_ns: int) -> list[Event]:
        """Land every order due by ``now_ns`` (wall-clock runs: quiet symbols)."""
        out: list[Event] = []
        for key, flights in list(self.in_flight.items()):
            if flights and flights[0].arrival <= now_ns:
                self.version += 1
                self._land(flights, now_ns, self._market(key).state, out)
        return self._settle(out) if out else out

    def _land(self, flights: list[InFlight], upto: int, st: MarketState, out: list[Event]) -> None:
        while flights and flights[0].arrival <= upto:
            f = heapq.heappop(flights)
            if f.order is not None:
                self._arrive(f.order, st, out)
            elif f.cancel is not None:
                po = self.orders.get(f.cancel.client_order_id)
                if po is not None:
                    self._do_cancel(po, max(f.arrival, po.arrival), f.cancel.reason, out)

    # --- matching ------------------------------------------------------------------
    def _is_resting(self, po: PaperOrder) -> bool:
        r = self.resting.get((po.request.exchange, po.request.symbol))
        return r is not None and po.request.client_order_id in r

    def _position(self, key: tuple[str, str], at: int) -> Decimal:
        return sum((q for ts, q in self.ledger.get(key, ()) if ts <= at), _ZERO)

    def _arrive(self, po: PaperOrder, st: MarketState, out: list[Event]) -> None:
        o, ts = po.request, po.arrival
        if po.state.status.terminal:
            return
        inst = self.instruments.get(o.exchange, o.symbol)
        if o.reduce_only:
            pos = self._position((o.exchange, o.symbol), ts)
            reducible = -pos if o.side is Side.BUY else pos
            if reducible <= 0:
                out.extend(po.state.transition(S.REJECTED, ts, "reduce-only: nothing to reduce"))
                return
            po.qty = min(po.qty, reducible)
        levels = st.levels(o.side.opposite)
        if o.order_type is OrderType.MARKET:
            self._arrive_market(po, inst, levels, st, out)
            return
        if o.price is None:
            out.extend(po.state.transition(S.REJECTED, ts, "limit order without a price"))
            return
        limit = o.price
        crossing = [
            lv for lv in levels or [] if (lv[0] <= limit if o.side is Side.BUY else lv[0] >= limit)
        ]
        tif = o.time_in_force
        if tif is TimeInForce.POST_ONLY and crossing:
            out.extend(po.state.transition(S.REJECTED, ts, "post-only order would take liquidity"))
            return
        if tif is TimeInForce.FOK and sum(q for _, q in crossing) < po.qty:
            out.extend(po.state.transition(S.ACCEPTED, ts))
            out.extend(po.state.transition(S.EXPIRED, ts, "fill-or-kill: not enough liquidity"))
            return
        out.extend(po.state.transition(S.ACCEPTED, ts))
        self._take(po, inst, crossing, ts, out)
        if po.remaining <= 0:
            return
        if tif in (TimeInForce.IOC, TimeInForce.FOK):
            out.extend(po.state.transition(S.EXPIRED, ts, "immediate-or-cancel remainder"))
            return
        po.queue_ahead = _ZERO if crossing else st.level_qty(o.side, limit)
        self.resting.setdefault((o.exchange, o.symbol), {})[o.client_order_id] = po

    def _arrive_market(
        self,
        po: PaperOrder,
        inst: Instrument,
        levels: list[Level] | None,
        st: MarketState,
        out: list[Event],
    ) -> None:
        o, ts = po.request, po.arrival
        if levels is None:
            px = self.fill_price(o) if st.last is None else self._slipped(o, inst, dec(st.last))
            if px is None:
                out.extend(po.state.transition(S.REJECTED, ts, "no market price"))
                return
            levels = [(px, po.qty)]
        elif not st.synced:
            levels = [(levels[0][0], po.qty)]
        if o.time_in_force is TimeInForce.FOK and sum(q for _, q in levels) < po.qty:
            out.extend(po.state.transition(S.ACCEPTED, ts))
            out.extend(po.state.transition(S.EXPIRED, ts, "fill-or-kill: not enough liquidity"))
            return
        out.extend(po.state.transition(S.ACCEPTED, ts))
        self._take(po, inst, levels, ts, out)
        if po.remaining > 0:
            out.extend(po.state.transition(S.EXPIRED, ts, "market order beyond visible liquidity"))

    def _slipped(self, o: OrderRequest, inst: Instrument, ref: Decimal) -> Decimal:
        slip = self.settings.slippage_bps * _BPS
        if o.side is Side.BUY:
            return inst.round_price(ref * (1 + slip), ROUND_CEILING)
        return inst.round_price(ref * (1 - slip), ROUND_FLOOR)

    def _take(
        self, po: PaperOrder, inst: Instrument, levels: list[Level], ts: int, out: list[Event]
    ) -> None:
        for px, avail in levels:
            left = po.remaining
            if left <= 0:
                break
            qty = inst.round_qty(min(left, avail))
            if qty > 0:
                self._fill(po, px, qty, Liquidity.TAKER, ts, out)

    def _fill(
        self, po: PaperOrder, px: Decimal, qty: Decimal, liq: Liquidity, ts: int, out: list[Event]
    ) -> None:
        o = po.request
        inst = self.instruments.get(o.exchange, o.symbol)
        po.fills += 1
        fid = f"{o.client_order_id}:f{po.fills}"
        po.state.record_fill(fid, qty, px)
        out.append(
            Fill(
                id=fid,
                ts_event=ts,
                client_order_id=o.client_order_id,
                exchange_order_id=po.state.exchange_order_id,
                exchange=o.exchange,
                symbol=o.symbol,
                side=o.side,
                price=px,
                qty=qty,
                fee=self._fee(inst, px, qty, liq),
                fee_currency=inst.base if inst.inverse else self.settings.quote_currency,
                liquidity=liq,
                strategy=o.strategy,
                ts_recv=o.ts_recv,
            )
        )
        key = (o.exchange, o.symbol)
        ledger = self.ledger.setdefault(key, [])
        ledger.append((ts, qty * o.side.sign))
        if len(ledger) > max(LEDGER_COMPACT_AT, 2 * self._ledger_kept.get(key, 0)):
            self._compact_ledger(key)
        done = po.remaining <= 0
        full = po.state.filled_qty >= po.state.quantity
        out.extend(po.state.transition(S.FILLED if full else S.PARTIALLY_FILLED, ts))
        if done and not full:
            out.extend(po.state.transition(S.EXPIRED, ts, "reduce-only: rest beyond the position"))
        if done:
            self._unrest(po)

    def _compact_ledger(self, key: tuple[str, str]) -> None:
        """Sum the fills no order can arrive before any more (older than the
        retained history: such an order is matched from the oldest state)."""
        m = self.markets.get(key)
        ledger = self.ledger[key]
        if m is None:
            return
        cut = m.evicted_max_ts
        old = [q for ts, q in ledger if ts <= cut]
        if len(old) > 1:
            self.ledger[key] = [(cut, sum(old, _ZERO)), *((ts, q) for ts, q in ledger if ts > cut)]
        self._ledger_kept[key] = len(self.ledger[key])

    def _unrest(self, po: PaperOrder) -> None:
        r = self.resting.get((po.request.exchange, po.request.symbol))
        if r is not None:
            r.pop(po.request.client_order_id, None)

    def _do_cancel(self, po: PaperOrder, ts: int, reason: str, out: list[Event]) -> None:
        if po.state.status.terminal:
            return
        if po.state.status is S.SUBMITTED:
            out.extend(po.state.transition(S.ACCEPTED, ts))
        out.extend(po.state.transition(S.CANCELED, ts, reason or "canceled"))
        self._unrest(po)
        for flights in self.in_flight.values():
            for f in flights:
                if f.order is po:
                    f.order = None

    def _match(self, po: PaperOrder, e: MarketEvent, out: list[Event]) -> None:
        """Advance one resting order by one later market event."""
        o = po.request
        limit = o.price
        if limit is None:
            return
        buy = o.side is Side.BUY
        if type(e) is Trade:
            px = dec(e.price)
            ts = max(e.ts_event, po.arrival)
            if (buy and px < limit) or (not buy and px > limit):
                self._fill(po, limit, po.remaining, Liquidity.MAKER, ts, out)
            elif px == limit and e.side is not o.side:
                left = po.queue_ahead - dec(e.qty)
                po.queue_ahead = max(left, _ZERO)
                if left < 0:
                    inst = self.instruments.get(o.exchange, o.symbol)
                    qty = inst.round_qty(min(po.remaining, -left))
                    if qty > 0:
                        self._fill(po, limit, qty, Liquidity.MAKER, ts, out)
        elif type(e) is Quote:
            best, qty_at = (e.bid, e.bid_qty) if buy else (e.ask, e.ask_qty)
            b = dec(best)
            if b == limit:
                po.queue_ahead = min(po.queue_ahead, dec(qty_at))
            elif (buy and b < limit) or (not buy and b > limit):
                po.queue_ahead = _ZERO
        elif type(e) is BookDelta:
            levels = e.bids if buy else e.asks
            p = float(limit)
            if e.snapshot:
                visible = next((q for lp, q in levels if lp == p), 0.0)
                po.queue_ahead = min(po.queue_ahead, dec(visible))
            else:
                for lp, q in levels:
                    if lp == p:
                        po.queue_ahead = min(po.queue_ahead, dec(q))

    # --- introspection ---------------------------------------------------------------
    def open_orders(self) -> list[OrderState]:
        return [po.state for po in self.orders.values() if not po.state.status.terminal]

    def open_count(self) -> int:
        return sum(map(len, self.resting.values())) + sum(map(len, self.in_flight.values()))
