"""Pre-trade risk: every signal gets a verdict with a reason code.

Limits are checked against the worst case: the filled position plus every open
order on the same side, so that the verdict does not depend on whether a fill
has arrived yet (which keeps replays deterministic and concurrency safe). Rate
windows run on the signal's event time for the same reason.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tradewind.config import RiskSettings
from tradewind.events import (
    Fill,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    RiskDecision,
    Side,
    Signal,
    TradingState,
    client_order_id,
)
from tradewind.instruments import InstrumentRegistry
from tradewind.portfolio import Portfolio, PositionState

_NS = 1_000_000_000
_SEEN_MAX = 200_000


class Reason(StrEnum):
    OK = "ok"
    TRADING_HALTED = "trading_halted"
    REDUCING_ONLY = "reducing_only"
    DUPLICATE_SIGNAL = "duplicate_signal"
    INVALID_QUANTITY = "invalid_quantity"
    NO_REFERENCE_PRICE = "no_reference_price"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_POSITION = "max_position"
    RATE_LIMIT_SECOND = "rate_limit_second"
    RATE_LIMIT_MINUTE = "rate_limit_minute"


@dataclass(slots=True)
class OpenOrder:
    exchange: str
    symbol: str
    side: Side
    remaining: Decimal


class RiskEngine:
    def __init__(self, settings: RiskSettings, instruments: InstrumentRegistry) -> None:
        self.settings = settings
        self.instruments = instruments
        self.state = TradingState(settings.initial_state)
        self.portfolio = Portfolio()
        self.open_orders: dict[str, OpenOrder] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._approvals: deque[int] = deque()

    def evaluate(self, sig: Signal) -> tuple[RiskDecision, OrderRequest | None]:
        coid = client_order_id(sig.id)
        inst = self.instruments.get(sig.exchange, sig.symbol)
        qty = inst.round_qty(sig.quantity)
        reason, detail = self._check(sig, qty)
        approved = reason is Reason.OK
        decision = RiskDecision(
            id=f"d:{sig.id}",
            ts_event=sig.ts_event,
            signal_id=sig.id,
            client_order_id=coid,
            strategy=sig.strategy,
            exchange=sig.exchange,
            symbol=sig.symbol,
            side=sig.side,
            quantity=qty,
            approved=approved,
            reason=reason.value,
            detail=detail,
            trading_state=self.state,
            ts_recv=sig.ts_recv,
        )
        if sig.id not in self._seen:
            self._seen[sig.id] = None
            if len(self._seen) > _SEEN_MAX:
                self._seen.popitem(last=False)
        if not approved:
            return decision, None
        price = None if sig.limit_price is None else inst.round_price(sig.limit_price)
        order = OrderRequest(
            id=coid,
            ts_event=sig.ts_event,
            client_order_id=coid,
            signal_id=sig.id,
            strategy=sig.strategy,
            exchange=sig.exchange,
            symbol=sig.symbol,
            side=sig.side,
            order_type=sig.order_type,
            quantity=qty,
            price=price,
            time_in_force=sig.time_in_force,
            reduce_only=sig.reduce_only,
            ref_bid=sig.ref_bid,
            ref_ask=sig.ref_ask,
            ref_last=sig.ref_last,
            ts_recv=sig.ts_recv,
        )
        self.open_orders[coid] = OpenOrder(sig.exchange, sig.symbol, sig.side, qty)
        self._approvals.append(sig.ts_event)
        return decision, order

    def _reference_price(self, sig: Signal) -> float | None:
        if sig.limit_price is not None:
            return float(sig.limit_price)
        ref = sig.ref_ask if sig.side is Side.BUY else sig.ref_bid
        return ref if ref is not None else sig.ref_last

    def _check(self, sig: Signal, qty: Decimal) -> tuple[Reason, str]:
        s = self.settings
        if sig.id in self._seen:
            return Reason.DUPLICATE_SIGNAL, f"signal {sig.id} was already decided"
        if qty <= 0:
            return Reason.INVALID_QUANTITY, f"quantity {sig.quantity} rounds to zero"
        pos = self.portfolio.position(sig.exchange, sig.symbol).qty
        reduces = (pos > 0 and sig.side is Side.SELL and qty <= pos) or (
            pos < 0 and sig.side is Side.BUY and qty <= -pos
        )
        if self.state is TradingState.HALTED:
            return Reason.TRADING_HALTED, "trading is halted"
        if self.state is TradingState.REDUCING and not reduces:
            return Reason.REDUCING_ONLY, "only position-reducing orders pass while reducing"
        ref = self._reference_price(sig)
        if ref is None:
            return Reason.NO_REFERENCE_PRICE, "no bid, ask, last or limit price to value the order"
        notional = qty * Decimal(repr(ref))
        if notional > s.max_order_notional:
            return Reason.MAX_ORDER_NOTIONAL, f"notional {notional:.2f} > {s.max_order_notional}"
        long_worst, short_worst = self._worst_case(sig.exchange, sig.symbol, pos)
        if sig.side is Side.BUY:
            long_worst += qty
        else:
            short_worst -= qty
        worst = max(abs(long_worst), abs(short_worst))
        if worst > s.max_position:
            return Reason.MAX_POSITION, f"worst-case position {worst} > {s.max_position}"
        self._expire(sig.ts_event)
        last_second = sum(1 for t in self._approvals if t > sig.ts_event - _NS)
        if last_second >= s.max_orders_per_second:
            return Reason.RATE_LIMIT_SECOND, f"{last_second} orders in the last second"
        if len(self._approvals) >= s.max_orders_per_minute:
            return Reason.RATE_LIMIT_MINUTE, f"{len(self._approvals)} orders in the last minute"
        return Reason.OK, ""

    def _worst_case(self, exchange: str, symbol: str, pos: Decimal) -> tuple[Decimal, Decimal]:
        buys = sells = Decimal(0)
        for o in self.open_orders.values():
            if o.exchange == exchange and o.symbol == symbol:
                if o.side is Side.BUY:
                    buys += o.remaining
                else:
                    sells += o.remaining
        return pos + buys, pos - sells

    def _expire(self, now: int) -> None:
        horizon = now - 60 * _NS
        while self._approvals and self._approvals[0] <= horizon:
            self._approvals.popleft()

    def on_fill(self, fill: Fill) -> PositionState:
        pos = self.portfolio.apply(fill)
        o = self.open_orders.get(fill.client_order_id)
        if o is not None:
            o.remaining -= fill.qty
            if o.remaining <= 0:
                del self.open_orders[fill.client_order_id]
        return pos

    def on_order_update(self, u: OrderUpdate) -> None:
        if u.status.terminal and u.status is not OrderStatus.FILLED:
            self.open_orders.pop(u.client_order_id, None)

    def on_mark(self, exchange: str, symbol: str, price: float) -> None:
        self.portfolio.mark(exchange, symbol, price)

    def set_state(self, state: TradingState) -> None:
        self.state = state

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "positions": {
                f"{k[0]}|{k[1]}": [str(p.qty), str(p.avg_price), str(p.realized_pnl), str(p.fees)]
                for k, p in self.portfolio.positions.items()
            },
            "open_orders": {
                k: [o.exchange, o.symbol, o.side.value, str(o.remaining)]
                for k, o in self.open_orders.items()
            },
            "approvals": list(self._approvals),
            "seen": list(self._seen)[-10_000:],
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.state = TradingState(data["state"])
        for key, (qty, avg, pnl, fees) in data["positions"].items():
            ex, sym = key.split("|", 1)
            p = self.portfolio.position(ex, sym)
            p.qty, p.avg_price, p.realized_pnl, p.fees = (
                Decimal(qty),
                Decimal(avg),
                Decimal(pnl),
                Decimal(fees),
            )
        self.open_orders = {
            k: OpenOrder(e, s, Side(side), Decimal(r))
            for k, (e, s, side, r) in data["open_orders"].items()
        }
        self._approvals = deque(data["approvals"])
        self._seen = OrderedDict((k, None) for k in data["seen"])
