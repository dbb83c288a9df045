"""The order state machine.

Every order moves NEW → SUBMITTED → ACCEPTED → PARTIALLY_FILLED → FILLED, or
ends CANCELED, REJECTED or EXPIRED; it is FILLED exactly when its fills add up
to its quantity, and never fills beyond it. The machine refuses (and counts) anything
else, so a late, duplicated or reordered venue report can never move an order
backwards or revive a finished one. Each accepted transition becomes one
``OrderUpdate`` whose id is derived from its content (order, status, filled
quantity): two replicas or a replay that observe the same venue state emit the
same id, which the idempotent consumers collapse.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec
import structlog

from tradewind.events import OrderRequest, OrderStatus, OrderType, OrderUpdate, Side
from tradewind.observability import metrics

S = OrderStatus
log = structlog.get_logger("tradewind.execution.state")

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.NEW: frozenset({S.SUBMITTED, S.REJECTED}),
    S.SUBMITTED: frozenset({S.ACCEPTED, S.REJECTED}),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}

_IMPLIED: dict[tuple[OrderStatus, OrderStatus], tuple[OrderStatus, ...]] = {
    (S.NEW, S.ACCEPTED): (S.SUBMITTED,),
    (S.NEW, S.PARTIALLY_FILLED): (S.SUBMITTED, S.ACCEPTED),
    (S.NEW, S.FILLED): (S.SUBMITTED, S.ACCEPTED),
    (S.NEW, S.CANCELED): (S.SUBMITTED, S.ACCEPTED),
    (S.NEW, S.EXPIRED): (S.SUBMITTED, S.ACCEPTED),
    (S.SUBMITTED, S.PARTIALLY_FILLED): (S.ACCEPTED,),
    (S.SUBMITTED, S.FILLED): (S.ACCEPTED,),
    (S.SUBMITTED, S.CANCELED): (S.ACCEPTED,),
    (S.SUBMITTED, S.EXPIRED): (S.ACCEPTED,),
}
"""Venue reports may skip states (a market order is reported FILLED at once);
the states it must have passed through are filled in so every order's history
is complete."""


class IllegalTransition(ValueError):
    def __init__(self, coid: str, src: OrderStatus, dst: OrderStatus) -> None:
        super().__init__(f"order {coid}: {src.value} -> {dst.value} is not allowed")
        self.src = src
        self.dst = dst


class OrderState(msgspec.Struct, kw_only=True):
    """One order as execution knows it; serialisable for the outbox."""

    client_order_id: str
    exchange: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    strategy: str = ""
    ts_recv: int = 0
    status: OrderStatus = S.NEW
    filled_qty: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    exchange_order_id: str = ""
    seq: int = 0
    fill_ids: list[str] = []
    reported_qty: Decimal = Decimal(0)

    @classmethod
    def of(cls, o: OrderRequest) -> OrderState:
        return cls(
            client_order_id=o.client_order_id,
            exchange=o.exchange,
            symbol=o.symbol,
            side=o.side,
            order_type=o.order_type,
            quantity=o.quantity,
            price=o.price,
            strategy=o.strategy,
            ts_recv=o.ts_recv,
        )

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_qty

    @property
    def avg_price(self) -> Decimal | None:
        if self.filled_qty == 0:
            return None
        return (self.notional / self.filled_qty).quantize(Decimal("1e-8")).normalize()

    def can(self, dst: OrderStatus) -> bool:
        return dst in TRANSITIONS[self.status]

    def record_fill(self, fill_id: str, qty: Decimal, price: Decimal) -> bool:
        """Add a fill once; False when this fill was already counted, or would
        fill more than the order's quantity (a venue's duplicate under another
        id), which is counted and logged: a position must never move by more
        than the order asked for."""
        if fill_id in self.fill_ids:
            return False
        if self.filled_qty + qty > self.quantity:
            metrics.EXCHANGE_ERRORS.labels(self.exchange, "overfill").inc()
            log.warning(
                "fill beyond the order's quantity refused",
                client_order_id=self.client_order_id,
                fill_id=fill_id,
                filled_qty=str(self.filled_qty),
                qty=str(qty),
                quantity=str(self.quantity),
            )
            return False
        self.fill_ids.append(fill_id)
        self.filled_qty += qty
        self.notional += qty * price
        return True

    def transition(
        self, dst: OrderStatus, ts: int, reason: str = "", *, strict: bool = False
    ) -> list[OrderUpdate]:
        """Move to ``dst`` (through any implied states); the updates to publish.

        A refused transition is counted and logged and yields nothing, unless
        ``strict``, when it raises ``IllegalTransition``. Reporting the state the
        order is already in (other than a growing partial fill) is a no-op, so
        duplicated venue reports are harmless.
        """
        if dst is self.status and (
            dst is not S.PARTIALLY_FILLED or self.filled_qty <= self.reported_qty
        ):
            return []
        path = (*_IMPLIED.get((self.status, dst), ()), dst)
        cur = self.status
        for step in path:
            if step not in TRANSITIONS[cur]:
                metrics.ILLEGAL_TRANSITIONS.labels(self.status.value, dst.value).inc()
                log.warning(
                    "illegal order transition refused",
                    client_order_id=self.client_order_id,
                    from_status=self.status.value,
                    to_status=dst.value,
                )
                if strict:
                    raise IllegalTransition(self.client_order_id, self.status, dst)
                return []
            cur = step
        if (dst is S.PARTIALLY_FILLED and self.filled_qty <= 0) or (
            dst is S.FILLED and self.filled_qty < self.quantity
        ):
            metrics.ILLEGAL_TRANSITIONS.labels(self.status.value, dst.value).inc()
            if strict:
                raise IllegalTransition(self.client_order_id, self.status, dst)
            return []
        out: list[OrderUpdate] = []
        for step in path:
            self.status = step
            self.seq += 1
            self.reported_qty = self.filled_qty
            out.append(self._update(ts, reason if step is dst else ""))
            metrics.ORDERS.labels(self.exchange, step.value).inc()
        return out

    def _update(self, ts: int, reason: str) -> OrderUpdate:
        filled = self.filled_qty.normalize() if self.filled_qty else Decimal(0)
        return OrderUpdate(
            id=f"{self.client_order_id}:{self.status.value}:{filled}",
            ts_event=ts,
            client_order_id=self.client_order_id,
            exchange_order_id=self.exchange_order_id,
            exchange=self.exchange,
            symbol=self.symbol,
            side=self.side,
            order_type=self.order_type,
            status=self.status,
            quantity=self.quantity,
            filled_qty=self.filled_qty,
            avg_price=self.avg_price,
            price=self.price,
            reason=reason,
            seq=self.seq,
            ts_recv=self.ts_recv,
        )
