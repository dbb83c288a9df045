"""Orders carry risk's signature; execution acts only on signed ones, risk only
on fills for orders it issued. Forged events are dead-lettered, and the
genuine events of the same batch go through exactly once."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tests.conftest import service_context
from tradewind.bus import MemoryBus
from tradewind.control import UnsignedOrder, check_order, sign_order
from tradewind.events import (
    Fill,
    Liquidity,
    OrderRequest,
    OrderType,
    OrderUpdate,
    Quote,
    Side,
)
from tradewind.services import ExecutionService, RiskService
from tradewind.topics import EXECUTIONS, MARKET, ORDERS

KEY = "unit-orders-" + "0123456789abcdef" * 4


def _order(coid: str, qty: str = "0.01") -> OrderRequest:
    return OrderRequest(
        id=f"o:{coid}",
        ts_event=1_723_161_267_000_000_000,
        client_order_id=coid,
        signal_id=f"s:{coid}",
        strategy="t",
        exchange="binance",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal(qty),
    )


def test_a_signature_covers_every_field() -> None:
    signed = sign_order(KEY, _order("a"))
    check_order(KEY, signed)
    for change in ({"quantity": Decimal("-1")}, {"symbol": "ETHUSDT"}, {"reduce_only": True}):
        with pytest.raises(UnsignedOrder):
            check_order(KEY, msgspec.structs.replace(signed, **change))
    with pytest.raises(UnsignedOrder):
        check_order(KEY, _order("b"))
    with pytest.raises(UnsignedOrder):
        check_order("another-" + KEY, signed)


async def _settle(bus: MemoryBus) -> None:
    for _ in range(500):
        if await bus.idle():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the bus did not settle")


async def test_execution_refuses_unsigned_orders_and_fills_the_signed_once(
    make_settings: Any,
) -> None:
    settings = make_settings(
        control={"order_key": KEY}, bus={"max_deliveries": 2, "claim_idle_ms": 10}
    )
    bus = MemoryBus(max_deliveries=2, claim_idle_ms=10)
    svc = ExecutionService(service_context(settings, bus=bus))
    await svc.start()
    try:
        quote = Quote(
            id="q1",
            ts_event=1_723_161_267_000_000_000,
            exchange="binance",
            symbol="BTCUSDT",
            bid=60_000.0,
            bid_qty=5.0,
            ask=60_001.0,
            ask_qty=5.0,
            ts_recv=1_723_161_267_000_000_000,
        )
        await bus.publish(MARKET, [quote])
        good, forged = sign_order(KEY, _order("good")), _order("forged", "-1")
        await bus.publish(ORDERS, [good, forged])
        await _settle(bus)
        later = msgspec.structs.replace(quote, id="q2", ts_event=quote.ts_event + 10**9)
        await bus.publish(MARKET, [later])
        await _settle(bus)
        out = [m.event for m in await bus.read_all(EXECUTIONS)]
        coids = {e.client_order_id for e in out if isinstance(e, OrderUpdate | Fill)}
        assert coids == {"good"}, out
        fills = [e for e in out if isinstance(e, Fill)]
        assert len(fills) == 1 and fills[0].qty == Decimal("0.01")
        dead = await bus.dead_letters()
        assert [d.topic for d in dead] == [ORDERS] and "not signed" in dead[0].error
    finally:
        await svc.stop()


async def test_risk_refuses_a_fill_for_an_order_it_never_issued(make_settings: Any) -> None:
    settings = make_settings(bus={"max_deliveries": 2, "claim_idle_ms": 10})
    bus = MemoryBus(max_deliveries=2, claim_idle_ms=10)
    risk = RiskService(service_context(settings, bus=bus))
    await risk.start()
    try:
        forged = Fill(
            id="f1",
            ts_event=time.time_ns(),
            client_order_id="never",
            exchange_order_id="x",
            exchange="binance",
            symbol="BTCUSDT",
            side=Side.BUY,
            price=Decimal("100"),
            qty=Decimal("7"),
            fee=Decimal("1"),
            fee_currency="USDT",
            liquidity=Liquidity.TAKER,
        )
        await bus.publish(EXECUTIONS, [forged])
        await _settle(bus)
        assert all(p.qty == 0 for p in risk.engine.portfolio.positions.values())
        dead = await bus.dead_letters()
        assert [d.topic for d in dead] == [EXECUTIONS] and "never approved" in dead[0].error
    finally:
        await risk.stop()
