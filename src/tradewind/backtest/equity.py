"""The equity curve of a run, from its own events: fills and market marks.

Fills go through the same ``Portfolio`` that risk accounts with, and every
mark revalues the open positions, so the curve is the run's own book marked to
market rather than a second bookkeeping. Marks and fills are merged by exchange
time (marks first at equal times: a fill at t was decided on the market at t),
which makes the curve independent of how the services interleaved on the bus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter

from tradewind.events import Fill
from tradewind.portfolio import Portfolio, PositionState

Mark = tuple[int, str, str, float]
"""(ts_event ns, exchange, symbol, price)"""

_ZERO = Decimal(0)
MAX_SAMPLES = 100_000


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """A position from flat (or a reversal) back to flat (or the next reversal)."""

    exchange: str
    symbol: str
    direction: str
    opened_ns: int
    closed_ns: int
    max_qty: Decimal
    pnl: Decimal
    """Realized PnL of the trip minus its fees."""
    fees: Decimal


@dataclass(slots=True)
class _Trip:
    direction: int
    opened_ns: int
    realized0: Decimal
    fees0: Decimal
    max_qty: Decimal


@dataclass
class EquityCurve:
    capital: Decimal
    portfolio: Portfolio
    times: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    first_ns: int = 0
    last_ns: int = 0
    exposed_ns: int = 0
    trips: list[RoundTrip] = field(default_factory=list)
    fills: int = 0

    @property
    def pnl(self) -> Decimal:
        pf = self.portfolio
        return pf.realized_pnl + pf.unrealized_pnl - pf.fees

    @property
    def final_equity(self) -> Decimal:
        return self.capital + self.pnl

    @property
    def exposure(self) -> float:
        span = self.last_ns - self.first_ns
        return self.exposed_ns / span if span > 0 else 0.0

    def sample(self, period_ns: int) -> tuple[list[int], list[float]]:
        """Equity at every ``period_ns`` from the first market event, plus the
        final value when the span is not a whole number of periods."""
        if period_ns <= 0:
            raise ValueError("period must be positive")
        if not self.times:
            return [], []
        times, values = self.times, self.equity
        start, end = self.first_ns, self.last_ns
        out_t: list[int] = []
        out_v: list[float] = []
        j, n, cur = 0, len(times), values[0]
        t = start
        while t <= end:
            while j < n and times[j] <= t:
                cur = values[j]
                j += 1
            out_t.append(t)
            out_v.append(cur)
            t += period_ns
        if out_t[-1] < end:
            out_t.append(end)
            out_v.append(values[-1])
        return out_t, out_v


def sample_period_ns(span_ns: int, period_s: float) -> int:
    """The requested period, widened when it would give more than MAX_SAMPLES."""
    period = max(1, int(period_s * 1e9))
    if span_ns // period > MAX_SAMPLES:
        period = -(-span_ns // MAX_SAMPLES)
    return period


class _Walker:
    def __init__(self, capital: Decimal) -> None:
        self.pf = Portfolio()
        self.curve = EquityCurve(capital=capital, portfolio=self.pf)
        self.open: dict[tuple[str, str], _Trip] = {}
        self.exposed_since = 0

    def value(self) -> float:
        return float(self.curve.final_equity)

    def point(self, ts: int) -> None:
        c = self.curve
        v = self.value()
        if c.times and c.times[-1] == ts:
            c.equity[-1] = v
        else:
            c.times.append(ts)
            c.equity.append(v)

    def mark(self, ts: int, exchange: str, symbol: str, price: float) -> None:
        self.pf.mark(exchange, symbol, price)
        p = self.pf.positions.get((exchange, symbol))
        if p is not None and p.qty != 0:
            self.point(ts)

    def fill(self, f: Fill) -> None:
        key = (f.exchange, f.symbol)
        before = self.pf.position(*key)
        qty0, fees0 = before.qty, before.fees
        was_exposed = bool(self.open)
        p = self.pf.apply(f)
        self.curve.fills += 1
        self._trips(key, f, p, qty0, fees0)
        if not was_exposed and self.open:
            self.exposed_since = f.ts_event
        elif was_exposed and not self.open:
            self.curve.exposed_ns += f.ts_event - self.exposed_since
        self.point(f.ts_event)

    def _trips(
        self, key: tuple[str, str], f: Fill, p: PositionState, qty0: Decimal, fees0: Decimal
    ) -> None:
        trip = self.open.get(key)
        if trip is not None:
            trip.max_qty = max(trip.max_qty, abs(p.qty))
        closes = qty0 != 0 and (p.qty == 0 or (p.qty > 0) != (qty0 > 0))
        if not closes:
            if trip is None and p.qty != 0:
                self.open[key] = _Trip(
                    1 if p.qty > 0 else -1, f.ts_event, p.realized_pnl, fees0, abs(p.qty)
                )
            return
        assert trip is not None
        close_fee = f.fee * min(abs(qty0), f.qty) / f.qty
        fees = fees0 - trip.fees0 + close_fee
        self.curve.trips.append(
            RoundTrip(
                exchange=f.exchange,
                symbol=f.symbol,
                direction="long" if trip.direction > 0 else "short",
                opened_ns=trip.opened_ns,
                closed_ns=f.ts_event,
                max_qty=max(trip.max_qty, abs(qty0)),
                pnl=p.realized_pnl - trip.realized0 - fees,
                fees=fees,
            )
        )
        del self.open[key]
        if p.qty != 0:
            self.open[key] = _Trip(
                1 if p.qty > 0 else -1,
                f.ts_event,
                p.realized_pnl,
                p.fees - (f.fee - close_fee),
                abs(p.qty),
            )


def build_equity(
    marks: list[Mark],
    fills: Sequence[Fill],
    capital: Decimal,
    span: tuple[int, int] | None = None,
) -> EquityCurve:
    """Walk marks and fills in exchange-time order through a fresh Portfolio.

    ``span`` is the first and last market event time (marks may skip events
    that did not move the price); by default the marks' and fills' own span.
    """
    marks.sort(key=itemgetter(0))
    ordered = sorted(fills, key=lambda f: f.ts_event)
    w = _Walker(capital)
    c = w.curve
    stamps = [m[0] for m in marks[:1] + marks[-1:]]
    if span is not None:
        stamps += [t for t in span if t]
    stamps += [f.ts_event for f in ordered[:1] + ordered[-1:]]
    if stamps:
        c.first_ns, c.last_ns = min(stamps), max(stamps)
    w.point(c.first_ns)
    i, n = 0, len(ordered)
    for ts, exchange, symbol, price in marks:
        while i < n and ordered[i].ts_event < ts:
            w.fill(ordered[i])
            i += 1
        w.mark(ts, exchange, symbol, price)
    while i < n:
        w.fill(ordered[i])
        i += 1
    if w.open:
        c.exposed_ns += c.last_ns - w.exposed_since
    w.point(c.last_ns)
    return c
