"""Risk's durable state: a batch of market data alone saves only the small
market key, anything touching the account saves the whole snapshot, and a
restart from the two keys equals the live engine."""

from __future__ import annotations

from typing import Any

from tests.conftest import service_context
from tests.unit.test_risk_engine import BTC, T0, fill, signal
from tradewind.bus import MemoryBus
from tradewind.events import Event, OrderRequest, Trade
from tradewind.services import RiskService
from tradewind.services.risk import MARKET_STATE_KEY, STATE_KEY
from tradewind.topics import EXECUTIONS, MARKET, ORDERS, SIGNALS

S = 1_000_000_000


def trade(n: int, price: float) -> Trade:
    return Trade(
        id=f"t{n}",
        ts_event=T0 + n * S,
        exchange=BTC[0],
        symbol=BTC[1],
        price=price,
        qty=0.1,
        side=None,
        trade_id=str(n),
        ts_recv=0,
    )


def service(bus: MemoryBus, settings: Any) -> RiskService:
    ctx = service_context(settings, bus=bus, durable_state=True)
    return RiskService(ctx)


async def test_market_batches_save_only_the_market_key_and_a_restart_equals_live(
    make_settings: Any,
) -> None:
    bus = MemoryBus()
    settings = make_settings()
    risk = service(bus, settings)
    await risk.start()
    sub = await bus.subscribe([SIGNALS, EXECUTIONS, MARKET], "state-test", "t")
    orders = await bus.subscribe([ORDERS], "orders-test", "t")

    async def batch(topic: str, events: list[Event]) -> None:
        await bus.publish(topic, events)
        await risk._on_batch(sub, await sub.fetch(100, 1.0))

    async def saved() -> tuple[bytes | None, bytes | None]:
        return await bus.get_state(STATE_KEY), await bus.get_state(MARKET_STATE_KEY)

    await batch(MARKET, [trade(1, 60_000.0)])
    account, market = await saved()
    assert account is None and market is not None

    await batch(SIGNALS, [signal(sid="sig-1", ts=T0 + S)])
    account, market = await saved()
    assert account is not None and market is not None
    order = next(m.event for m in await orders.fetch(10, 1.0))
    assert isinstance(order, OrderRequest)

    await batch(EXECUTIONS, [fill(order, ts=T0 + 2 * S)])
    assert risk.engine.portfolio.fills == 1
    account, _ = await saved()

    await batch(MARKET, [trade(3, 59_000.0), trade(4, 58_500.0)])
    account_after, market_after = await saved()
    assert account_after == account
    assert market_after is not None and b"58500" in market_after

    restarted = service(bus, settings)
    await restarted.start()
    try:
        assert restarted.engine.snapshot() == risk.engine.snapshot()
        assert restarted.engine.equity() == risk.engine.equity()
    finally:
        await restarted.stop()
        await risk.stop()
