"""The paper exchange: fills orders against the market the decision saw.

Market orders take the reference ask (buys) or bid (sells) carried on the
order, or the last trade when no quote is known, worsened by the configured
slippage and rounded to the tick away from the trader. Prices never depend on
when the order happens to arrive, so a replay fills identically in one process
or across five.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from tradewind.config import PaperSettings
from tradewind.events import (
    Event,
    Fill,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)
from tradewind.instruments import InstrumentRegistry

_BPS = Decimal("0.0001")
_FEE_Q = Decimal("1e-8")


class PaperExchange:
    name = "paper"

    def __init__(self, settings: PaperSettings, instruments: InstrumentRegistry) -> None:
        self.settings = settings
        self.instruments = instruments
        self._order_seq = 0

    def _update(
        self,
        o: OrderRequest,
        status: OrderStatus,
        seq: int,
        ts: int,
        filled: Decimal = Decimal(0),
        avg: Decimal | None = None,
        reason: str = "",
    ) -> OrderUpdate:
        return OrderUpdate(
            id=f"{o.client_order_id}:{seq}",
            ts_event=ts,
            client_order_id=o.client_order_id,
            exchange_order_id=f"paper-{o.client_order_id}",
            exchange=o.exchange,
            symbol=o.symbol,
            side=o.side,
            order_type=o.order_type,
            status=status,
            quantity=o.quantity,
            filled_qty=filled,
            avg_price=avg,
            price=o.price,
            reason=reason,
            seq=seq,
            ts_recv=o.ts_recv,
        )

    def fill_price(self, o: OrderRequest) -> Decimal | None:
        ref = o.ref_ask if o.side is Side.BUY else o.ref_bid
        if ref is None:
            ref = o.ref_last
        if ref is None:
            return None
        inst = self.instruments.get(o.exchange, o.symbol)
        slip = self.settings.slippage_bps * _BPS
        raw = Decimal(repr(ref))
        if o.side is Side.BUY:
            return inst.round_price(raw * (1 + slip), ROUND_CEILING)
        return inst.round_price(raw * (1 - slip), ROUND_FLOOR)

    def submit(self, o: OrderRequest, ts: int) -> list[Event]:
        out: list[Event] = [self._update(o, OrderStatus.SUBMITTED, 1, ts)]
        if o.order_type is not OrderType.MARKET:
            out.append(
                self._update(
                    o,
                    OrderStatus.REJECTED,
                    2,
                    ts,
                    reason="the foundation paper exchange fills market orders only",
                )
            )
            return out
        px = self.fill_price(o)
        if px is None:
            out.append(self._update(o, OrderStatus.REJECTED, 2, ts, reason="no market price"))
            return out
        fee = (px * o.quantity * self.settings.taker_fee_bps * _BPS).quantize(_FEE_Q)
        out.append(self._update(o, OrderStatus.ACCEPTED, 2, ts))
        out.append(
            Fill(
                id=f"{o.client_order_id}:f1",
                ts_event=ts,
                client_order_id=o.client_order_id,
                exchange_order_id=f"paper-{o.client_order_id}",
                exchange=o.exchange,
                symbol=o.symbol,
                side=o.side,
                price=px,
                qty=o.quantity,
                fee=fee,
                fee_currency=self.settings.quote_currency,
                liquidity=Liquidity.TAKER,
                strategy=o.strategy,
                ts_recv=o.ts_recv,
            )
        )
        out.append(self._update(o, OrderStatus.FILLED, 3, ts, o.quantity, px))
        return out
