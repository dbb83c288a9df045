"""Positions and PnL from fills, in exact decimals.

Execution, risk and the backtest report all account with this one class so
that they can never disagree about a position.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradewind.events import Fill, Position, Side
from tradewind.instruments import InstrumentRegistry

_ZERO = Decimal(0)
_AVG_Q = Decimal("1e-12")


@dataclass(slots=True)
class PositionState:
    exchange: str
    symbol: str
    qty: Decimal = _ZERO
    avg_price: Decimal = _ZERO
    realized_pnl: Decimal = _ZERO
    fees: Decimal = _ZERO
    mark: Decimal | None = None
    inverse: bool = False
    """Inverse contracts: ``qty`` counts contracts of ``contract_size`` quote
    each; the average entry is the harmonic mean of the prices (the coin paid
    per contract), and PnL and fees are in the base coin."""
    contract_size: Decimal = Decimal(1)
    currency: str = ""
    """What PnL and fees are counted in: the coin for inverse contracts, the
    quote otherwise ("" when the instrument is unknown)."""

    def apply(self, side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> None:
        signed = qty if side is Side.BUY else -qty
        self.fees += fee
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            total = abs(self.qty) + qty
            if self.inverse:
                coin = abs(self.qty) / self.avg_price if self.qty else _ZERO
                avg = total / (coin + qty / price)
            else:
                avg = (abs(self.qty) * self.avg_price + qty * price) / total
            self.avg_price = avg.quantize(_AVG_Q)
            self.qty += signed
            return
        closed = min(qty, abs(self.qty))
        direction = 1 if self.qty > 0 else -1
        self.realized_pnl += self._pnl(closed, price) * direction
        self.qty += signed
        if self.qty == 0:
            self.avg_price = _ZERO
        elif (self.qty > 0) != (direction > 0):
            self.avg_price = price

    def _pnl(self, qty: Decimal, price: Decimal) -> Decimal:
        """Of ``qty`` long from ``avg_price`` to ``price``: quote, or coin when inverse."""
        if self.inverse:
            return qty * self.contract_size * (1 / self.avg_price - 1 / price)
        return qty * (price - self.avg_price)

    @property
    def unrealized_pnl(self) -> Decimal:
        if self.mark is None or self.qty == 0:
            return _ZERO
        return self._pnl(self.qty, self.mark)

    @property
    def notional(self) -> Decimal:
        """In the quote currency (an inverse contract's is its fixed face value)."""
        if self.inverse:
            return self.qty * self.contract_size
        px = self.mark if self.mark is not None else self.avg_price
        return self.qty * px

    def event(self, ts: int, event_id: str, mark: Decimal | None = None) -> Position:
        """The position as an event, marked at ``mark`` when given (risk records
        each fill's position at the fill's own price: the live mark at that
        moment depends on how the market data was batched, the fill does not)."""
        at = self.mark if mark is None else mark
        upnl = _ZERO if at is None or self.qty == 0 else self._pnl(self.qty, at)
        return Position(
            id=event_id,
            ts_event=ts,
            exchange=self.exchange,
            symbol=self.symbol,
            qty=self.qty,
            avg_price=self.avg_price,
            realized_pnl=self.realized_pnl,
            fees=self.fees,
            mark_price=at,
            unrealized_pnl=upnl.quantize(_AVG_Q),
        )


@dataclass(slots=True)
class Totals:
    """Sums over the positions that settle in one currency."""

    realized_pnl: Decimal = _ZERO
    unrealized_pnl: Decimal = _ZERO
    fees: Decimal = _ZERO

    @property
    def pnl(self) -> Decimal:
        """Realized plus unrealized, after fees."""
        return self.realized_pnl + self.unrealized_pnl - self.fees

    def to_json(self) -> dict[str, str]:
        return {
            "realized_pnl": str(self.realized_pnl),
            "unrealized_pnl": str(self.unrealized_pnl),
            "fees": str(self.fees),
            "pnl": str(self.pnl),
        }


class Portfolio:
    """``instruments`` say which symbols are inverse contracts (and their size).

    Totals are kept per settlement currency and never added across currencies:
    a COIN-M position's PnL is in its coin, a linear one's in its quote, and a
    sum of the two numbers means nothing. ``quote`` names the settlement
    currency of instruments whose quote the registry does not know.
    """

    def __init__(self, instruments: InstrumentRegistry | None = None, quote: str = "") -> None:
        self.positions: dict[tuple[str, str], PositionState] = {}
        self.marks: dict[tuple[str, str], Decimal] = {}
        self.fills = 0
        self.instruments = instruments
        self.quote = quote

    def position(self, exchange: str, symbol: str) -> PositionState:
        key = (exchange, symbol)
        p = self.positions.get(key)
        if p is None:
            p = self.positions[key] = PositionState(exchange, symbol, mark=self.marks.get(key))
            p.currency = self.currency_of(exchange, symbol)
            if self.instruments is not None:
                inst = self.instruments.get(exchange, symbol)
                p.inverse, p.contract_size = inst.inverse, inst.contract_size
        return p

    def currency_of(self, exchange: str, symbol: str) -> str:
        """The settlement currency: the coin of an inverse contract, else the quote."""
        if self.instruments is None:
            return self.quote
        inst = self.instruments.get(exchange, symbol)
        return inst.base if inst.inverse else (inst.quote or self.quote)

    def is_inverse(self, exchange: str, symbol: str) -> bool:
        return self.instruments is not None and self.instruments.get(exchange, symbol).inverse

    def apply(self, fill: Fill) -> PositionState:
        p = self.position(fill.exchange, fill.symbol)
        p.apply(fill.side, fill.qty, fill.price, fill.fee)
        self.fills += 1
        return p

    def mark(self, exchange: str, symbol: str, price: float | Decimal) -> None:
        """Remember the price even without a position, so a position opened later
        is valued at the latest mark whatever order the streams arrive in."""
        key = (exchange, symbol)
        m = price if isinstance(price, Decimal) else Decimal(repr(price))
        self.marks[key] = m
        p = self.positions.get(key)
        if p is not None:
            p.mark = m

    def totals(self) -> dict[str, Totals]:
        """PnL and fees by settlement currency, in currency order."""
        out: dict[str, Totals] = {}
        for p in self.positions.values():
            t = out.setdefault(p.currency, Totals())
            t.realized_pnl += p.realized_pnl
            t.unrealized_pnl += p.unrealized_pnl
            t.fees += p.fees
        return dict(sorted(out.items()))

    @property
    def gross_exposure(self) -> Decimal:
        return sum((abs(p.notional) for p in self.positions.values()), _ZERO)

    @property
    def net_exposure(self) -> Decimal:
        return sum((p.notional for p in self.positions.values()), _ZERO)
