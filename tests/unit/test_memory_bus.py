from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import pytest

from tests.bus_contract import BusContract, trade
from tradewind.bus import Bus, MemoryBus
from tradewind.config import ExecutionSettings
from tradewind.events import Event, OrderRequest, OrderType, Side
from tradewind.execution.router import LiveRouter
from tradewind.execution.venue import Venue, VenueFill, VenueOrder, VenueRejected
from tradewind.topics import EXECUTIONS, ORDERS


@pytest.fixture
async def make_bus() -> AsyncIterator[Any]:
    buses: list[Bus] = []

    async def make(**kw: Any) -> Bus:
        bus = MemoryBus(**kw)
        await bus.start()
        buses.append(bus)
        return bus

    yield make
    for b in buses:
        await b.close()


class TestMemoryBus(BusContract):
    async def test_publish_waits_while_the_slowest_group_is_full(self) -> None:
        bus = MemoryBus(capacity=10)
        sub = await bus.subscribe(["t"], "g", "c")
        await bus.publish("t", [trade(i) for i in range(10)])
        blocked = asyncio.create_task(bus.publish("t", [trade(99)]))
        await asyncio.sleep(0.05)
        assert not blocked.done()
        got = await sub.fetch(10, 1.0)
        await sub.ack(got)
        await asyncio.wait_for(blocked, 1.0)
        assert [m.event.id for m in await sub.fetch(10, 1.0)] == [trade(99).id]


class _RejectingVenue(Venue):
    """Rejects every order: each one finishes at once (a ``done`` record)."""

    exchange = "binance"

    def __init__(self) -> None:
        self.placed = 0

    async def place(self, o: OrderRequest) -> VenueOrder:
        self.placed += 1
        raise VenueRejected("insufficient balance", code=-2010)

    async def cancel(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        return None

    async def query(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        return None

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        return []

    async def fills(self, symbol: str, order: VenueOrder) -> list[VenueFill]:
        return []

    async def balances(self) -> dict[str, Decimal]:
        return {}

    async def reports(self) -> AsyncIterator[VenueOrder | None]:
        return
        yield None


async def test_finished_live_order_record_expires_after_the_horizon() -> None:
    bus = MemoryBus(max_deliveries=3, claim_idle_ms=1000)
    venue = _RejectingVenue()

    async def publish(events: Sequence[Event]) -> None:
        await bus.publish(EXECUTIONS, events)

    router = LiveRouter(venue, bus, ExecutionSettings(), "e0", publish)
    assert router.outbox.done_ttl_ms == 2 * 3 * 1000 + 60_000
    router.outbox.done_ttl_ms = 150  # the horizon, shortened for the test
    sub = await bus.subscribe([ORDERS], "execution", "e0")
    o = OrderRequest(
        id="c1",
        ts_event=1,
        client_order_id="c1",
        signal_id="s1",
        strategy="t",
        exchange="binance",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=Decimal("0.002"),
    )
    await bus.publish(ORDERS, [o, o])  # the second: a late duplicate within the horizon
    first, again = await sub.fetch(2, 1.0)
    await router.handle(sub, first)
    assert await bus.get_state(router.outbox.key("c1")) is not None
    await router.handle(sub, again)
    assert venue.placed == 1
    await asyncio.sleep(0.3)
    assert await bus.get_state(router.outbox.key("c1")) is None
    assert await bus.get_state(router.outbox.index_key()) is not None  # no TTL on the index


async def test_wait_idle_does_not_wait_for_groups_it_was_told_to_skip() -> None:
    bus = MemoryBus(capacity=50)
    bus.not_waited_for = frozenset({"sink"})
    worker = await bus.subscribe(["t"], "worker", "w")
    sink = await bus.subscribe(["t"], "sink", "s")
    await bus.publish("t", [trade(i) for i in range(30)])
    await worker.ack(await worker.fetch(100, 0.1))
    await asyncio.wait_for(bus.wait_idle(), 1.0)
    assert not await bus.idle()  # idle() still waits for everyone
    await bus.publish("t", [trade(i) for i in range(30, 60)])
    publishing = asyncio.ensure_future(bus.publish("t", [trade(i) for i in range(60, 90)]))
    await asyncio.sleep(0.05)
    assert not publishing.done()  # capacity bounds how far the sink falls behind
    await sink.ack(await sink.fetch(100, 0.1))
    await worker.ack(await worker.fetch(100, 0.1))
    await asyncio.wait_for(publishing, 1.0)
    await worker.ack(await worker.fetch(100, 0.1))
    await sink.ack(await sink.fetch(100, 0.1))
    assert await bus.idle()
    await bus.drop_group("t", "sink")
    await asyncio.wait_for(bus.wait_idle(), 1.0)
