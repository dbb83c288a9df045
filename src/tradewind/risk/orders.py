"""Open orders as risk sees them: approved and not yet terminal.

Risk counts an order as open from the moment it approves it, before execution
has even seen it, so that two signals in flight can never together exceed a
limit that each respects alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradewind.events import Fill, OrderStatus, OrderUpdate, Side

_ZERO = Decimal(0)


@dataclass(slots=True)
class OpenOrder:
    exchange: str
    symbol: str
    side: Side
    remaining: Decimal
    reduce_only: bool = False
    price: Decimal = _ZERO
    """The price the order was valued at when approved."""


class OpenOrders:
    def __init__(self) -> None:
        self.orders: dict[str, OpenOrder] = {}

    def __len__(self) -> int:
        return len(self.orders)

    def add(self, coid: str, order: OpenOrder) -> None:
        self.orders[coid] = order

    def on_fill(self, fill: Fill) -> None:
        o = self.orders.get(fill.client_order_id)
        if o is None:
            return
        o.remaining -= fill.qty
        if o.remaining <= 0:
            del self.orders[fill.client_order_id]

    def on_update(self, u: OrderUpdate) -> None:
        """Terminal updates close the order; FILLED is left to the fills, which
        carry the quantity the position moved by."""
        if u.status.terminal and u.status is not OrderStatus.FILLED:
            self.orders.pop(u.client_order_id, None)

    def pending(self, exchange: str, symbol: str) -> tuple[Decimal, Decimal]:
        """Open buy and sell quantity of one symbol."""
        buys = sells = _ZERO
        for o in self.orders.values():
            if o.exchange == exchange and o.symbol == symbol:
                if o.side is Side.BUY:
                    buys += o.remaining
                else:
                    sells += o.remaining
        return buys, sells

    def symbols(self) -> set[tuple[str, str]]:
        return {(o.exchange, o.symbol) for o in self.orders.values()}

    def snapshot(self) -> dict[str, list[str | bool]]:
        return {
            k: [o.exchange, o.symbol, o.side.value, str(o.remaining), o.reduce_only, str(o.price)]
            for k, o in sorted(self.orders.items())
        }

    def restore(self, data: dict[str, list[str | bool]]) -> None:
        self.orders = {
            k: OpenOrder(
                str(e), str(s), Side(str(side)), Decimal(str(r)), bool(ro), Decimal(str(px))
            )
            for k, (e, s, side, r, ro, px) in data.items()
        }
